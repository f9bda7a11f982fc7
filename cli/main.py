"""`rag index build|add|rm|info`, `rag ask`, `rag chat`, `rag serve`, `rag eval`."""

from __future__ import annotations

import json
import queue
import re
import sys
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Annotated, ClassVar, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.padding import Padding
from rich.spinner import Spinner
from rich.status import Status
from rich.table import Table
from rich.text import Text

from cli.prompt import DeferredInterrupt, PromptReader
from index.library import Library
from index.loaders import load_documents, load_documents_reporting
from index.service import new_index, open_index
from index.store import IndexNotFoundError, PassageIndex
from rag.errors import UserError
from rag.pipeline import DoneEvent, Event, Pipeline, StatusEvent, TokenEvent
from rag.settings import RetrieverKind, Settings, StoreKind
from rag.types import Answer, Citation, Turn

app = typer.Typer(help="Ask questions about your documents and get answers that cite them.", no_args_is_help=True)
index_app = typer.Typer(help="Build and change the passage index.", no_args_is_help=True)
app.add_typer(index_app, name="index")
console = Console()
err = Console(stderr=True)

# Problems a user can fix: every layer's errors derive from `UserError`; pydantic's report of a bad value is the
# other. Anything else (a bare ValueError included) is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (UserError, ValidationError)


def fail(message: str) -> NoReturn:
    """Print one `error:` line on stderr and exit 1."""
    report_error(message)
    raise typer.Exit(1)


def report_error(message: str) -> None:
    """One `error:` line on stderr; the message is printed as it is, brackets included."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def validation_line(error: ValidationError, flags: Collection[str] = ()) -> str:
    """Pydantic's report as one line naming each bad field: `RAG_TOP_K: Input should be a valid integer`.

    For Settings the name is the environment variable (or the CLI flag, for fields given in `flags`),
    because that is what the user typed; for other models it is the field's path."""
    is_settings = error.title == Settings.__name__
    parts = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"])
        if is_settings and location in flags:
            name = "--" + location.replace("_", "-")
        elif is_settings and location:
            name = f"RAG_{location.upper()}"
        else:
            name = f"{error.title}.{location}" if location else error.title
        got = problem.get("input")
        shown = f" (got {got!r})" if isinstance(got, str | int | float) and len(repr(got)) <= 40 else ""
        parts.append(f"{name}: {problem['msg']}{shown}")
    return "; ".join(parts)


def error_line(error: Exception) -> str:
    """The one line a user error is reported as."""
    return validation_line(error) if isinstance(error, ValidationError) else str(error)


@contextmanager
def user_errors() -> Iterator[None]:
    """Known problems become one line and exit code 1, never a traceback."""
    try:
        yield
    except USER_ERRORS as error:
        fail(error_line(error))


def settings_from(index_dir: Path | None = None, **overrides: object) -> Settings:
    """The settings from the environment (and .env), with the command's flags applied; exits on a bad value."""
    try:
        base = Settings()
    except ValidationError as error:
        fail(validation_line(error))
    given = {"index_dir": index_dir, **overrides}
    try:
        return base.with_overrides(**given)
    except ValidationError as error:
        fail(validation_line(error, flags={key for key, value in given.items() if value is not None}))


IndexDirOption = Annotated[Path | None, typer.Option("--index-dir", help="Index directory (RAG_INDEX_DIR).")]
DEFAULT_INDEX_DIR = Path(Settings.model_fields["index_dir"].default)


def uses_default_store(settings: Settings) -> bool:
    """True when the settings name the default place for the selected store (where a missing index is
    built from the built-in corpus rather than taken for a typo)."""
    if settings.store is StoreKind.MILVUS:
        defaults = Settings.model_fields
        return (settings.milvus_uri, settings.milvus_collection) == (
            defaults["milvus_uri"].default,
            defaults["milvus_collection"].default,
        )
    return settings.index_dir.resolve() == DEFAULT_INDEX_DIR.resolve()


def store_location(settings: Settings) -> str:
    """Where the index lives, in words: the FAISS directory or the Milvus URI and collections."""
    if settings.store is StoreKind.MILVUS:
        return f"Milvus at {settings.milvus_uri} (collections {settings.milvus_collection}_*)"
    return str(settings.index_dir)


def ensure_index(settings: Settings) -> PassageIndex:
    """Open the index; only the default directory is built from the built-in corpus when it is missing.

    Any other missing directory is most likely a typo, and answering from the built-in article there
    would look like an answer from the user's own documents, so that is an error."""
    try:
        return open_index(settings.index_dir, settings.index_spec())
    except IndexNotFoundError:
        if not uses_default_store(settings):
            if settings.store is StoreKind.MILVUS:
                fail(
                    f"no index in {store_location(settings)}: check RAG_MILVUS_URI, or build one with `rag index build`"
                )
            fail(
                f"no index at {settings.index_dir}: check the path, or build one with "
                f"`rag index build PATH… --index-dir {settings.index_dir}`"
            )
        err.print(f"No index in {store_location(settings)} yet; indexing the built-in {settings.corpus_path} …")
        library = Library(settings.index_dir, new_index(settings.index_spec()))
        library.rebuild(load_documents(settings.corpus_path), show_progress=True)
        return library.index


# ---- index --------------------------------------------------------------------------------------
@index_app.command("build")
def index_build(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: built-in corpus).")] = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Build a fresh index from files or folders, replacing the old one atomically."""
    settings = settings_from(index_dir)
    with user_errors():
        documents = load_documents(paths or [settings.corpus_path])
        library = Library(settings.index_dir, new_index(settings.index_spec()))
        report = library.rebuild(documents, show_progress=True)
    console.print(
        f"Indexed {len(report.added)} document(s), {report.passages_embedded} passages → {store_location(settings)}"
    )


@index_app.command("add")
def index_add(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to add.")],
    index_dir: IndexDirOption = None,
) -> None:
    """Add documents; unchanged files are skipped and changed files re-embedded."""
    settings = settings_from(index_dir)
    with user_errors():
        loaded = load_documents_reporting(paths)
        for path, reason in loaded.skipped:
            err.print(f"skipped {path}: {reason.removeprefix(f'{path.name}: ')}", highlight=False, markup=False)
        if not loaded.documents:
            fail(f"nothing added: all {len(loaded.skipped)} file(s) were skipped")
        library = Library.open(settings.index_dir, settings.index_spec(), create=True)
        report = library.add(loaded.documents, show_progress=True)
    console.print(
        f"added {len(report.added)}, replaced {len(report.replaced)}, unchanged {len(report.unchanged)}; "
        f"{report.passages_embedded} passages embedded"
        + (f"; skipped {len(loaded.skipped)} file(s)" if loaded.skipped else "")
    )


@index_app.command("rm")
def index_rm(
    doc_id: Annotated[str, typer.Argument(help="The document's id (see `rag index info`).")],
    index_dir: IndexDirOption = None,
) -> None:
    """Remove a document and its passages."""
    settings = settings_from(index_dir)
    with user_errors():
        library = Library.open(settings.index_dir, settings.index_spec())
        if not library.remove(doc_id):
            known = ", ".join(d.doc_id for d in library.index.documents) or "none"
            fail(f"no document {doc_id!r} in the index (known: {known})")
    console.print(f"removed {doc_id}")


@index_app.command("info")
def index_info(
    index_dir: IndexDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """What the index holds and how it was built, with each document's full id (for `rag index rm`)."""
    settings = settings_from(index_dir)
    with user_errors():
        if settings.store is StoreKind.MILVUS:
            manifest = open_index(settings.index_dir, settings.index_spec()).manifest()
        else:
            manifest = {"index_dir": str(settings.index_dir), **PassageIndex.read_manifest(settings.index_dir)}
    if as_json:
        sys.stdout.write(json.dumps(manifest, indent=2, ensure_ascii=False))
        sys.stdout.write("\n")
        return
    embedder, splitter = manifest["embedder"], manifest["splitter"]
    say(f"Index {store_location(settings)}: {manifest['passages']} passages, built {manifest['built_at']}")
    say(
        f"Embedder {embedder['model']} ({embedder.get('backend', '?')}, {embedder['dimension']} dims); "
        f"chunks of {splitter['chunk_size']} {splitter['unit']}, overlap {splitter['chunk_overlap']}"
    )
    documents = manifest["documents"]
    say(f"{len(documents)} document(s):")
    for document in documents:
        # One id per line, never wrapped or cut (a table column would truncate it at narrow widths),
        # so it can be copied into `rag index rm`.
        say(f"  {document['doc_id']}", "bold")
        say(f"      {document['title']} · {document['chunk_count']} passages · {document['source']}", "dim")


def say(text: str, style: str | None = None) -> None:
    """Print text as it is: no markup, no highlighting, no wrapping (the terminal wraps long lines)."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


# ---- asking -------------------------------------------------------------------------------------
STAGE_LABELS = {
    "searching": "searching the documents…",
    "writing": "writing a draft (not checked yet)…",
    "checking": "checking the draft against the sources…",
}


class AnswerProgress:
    """Progress while an answer is made: the stage beside a spinner and, on a terminal, the draft.

    The draft is the model's unchecked text: it is shown dim under a "draft" label and erased
    (a transient display) before the checked answer is printed, so it never reads as the answer.
    When stdout is not a terminal the draft is not shown at all and the stage goes to stderr.
    """

    def __init__(self, show_draft: bool) -> None:
        self.show_draft = show_draft
        self.stage = "searching"
        self.draft: list[str] = []
        self._live: Live | None = None
        self._status: Status | None = None

    def __enter__(self) -> AnswerProgress:
        if self.show_draft:
            self._live = Live(self.render(), console=console, transient=True, refresh_per_second=8)
            self._live.start()
        else:
            self._status = err.status(STAGE_LABELS[self.stage])
            self._status.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()
        if self._status is not None:
            self._status.stop()

    def update(self, event: Event) -> None:
        """Follow one pipeline event (stage changes and draft tokens; the rest is not shown)."""
        if isinstance(event, StatusEvent):
            self.stage = event.stage
            if self._status is not None:
                self._status.update(STAGE_LABELS[self.stage])
        elif isinstance(event, TokenEvent):
            self.draft.append(event.text)
        else:
            return
        if self._live is not None:
            self._live.update(self.render(), refresh=True)

    def render(self) -> RenderableType:
        """The spinner line, then the draft so far in dim italics."""
        spinner = Spinner("dots", Text(STAGE_LABELS[self.stage], style="cyan"))
        draft = "".join(self.draft).strip()
        if not draft:
            return spinner
        return Group(spinner, Text.assemble(("draft: ", "dim bold"), (draft, "dim italic")))


class AnswerWorker:
    """One answer's event stream, run on its own thread and handed over to the terminal's thread.

    Ctrl-C is seen by the terminal's thread, which polls for events, so the prompt comes back at
    once even while the model loads or reads its prompt (seconds without an event).
    The worker stops at its next event by closing the stream at a `yield`, which ends llama.cpp's
    generation cleanly and releases the model; a KeyboardInterrupt raised inside llama.cpp's Python
    wrapper could leave its state half-updated.
    """

    _live: ClassVar[set[AnswerWorker]] = set()

    def __init__(
        self,
        pipeline: Pipeline,
        question: str,
        history: Sequence[Turn],
        top_k: int | None,
        retriever: RetrieverKind | None,
        rescore: bool | None,
    ) -> None:
        self._events: queue.Queue[Event | BaseException | None] = queue.Queue()
        self._cancelled = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(pipeline, question, list(history), top_k, retriever, rescore),
            name="rag-answer",
            daemon=True,
        )
        AnswerWorker._live.add(self)
        self._thread.start()

    def _run(
        self,
        pipeline: Pipeline,
        question: str,
        history: list[Turn],
        top_k: int | None,
        retriever: RetrieverKind | None,
        rescore: bool | None,
    ) -> None:
        try:
            stream = pipeline.stream(question, history, top_k, retriever, rescore)
            try:
                for event in stream:
                    if self._cancelled.is_set():
                        break
                    self._events.put(event)
            finally:
                # `stream` is a generator (its type only says Iterator); closing it stops the model.
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        except BaseException as error:  # raised again on the terminal's thread
            self._events.put(error)
        finally:
            self._events.put(None)
            AnswerWorker._live.discard(self)

    def events(self, interrupt: DeferredInterrupt) -> Iterator[Event]:
        """The pipeline's events as they come; the pipeline's own exception is raised here, and
        KeyboardInterrupt within a tenth of a second of a Ctrl-C."""
        while True:
            if interrupt.pressed:
                raise KeyboardInterrupt
            try:
                item = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        """Stop at the next event; the thread then ends by itself."""
        self._cancelled.set()

    @classmethod
    def wait_for_cancelled(cls) -> None:
        """Let cancelled answers release the model before the program exits (the interpreter's shutdown
        would otherwise free the model under a thread still using it)."""
        # list() copies the set in one step; workers remove themselves from it on their own threads.
        pending = [worker for worker in list(cls._live) if worker._cancelled.is_set()]
        if pending:
            err.print("waiting for the model to stop …", style="dim")
        for worker in pending:
            worker._thread.join()


def answer_with_progress(
    pipeline: Pipeline,
    question: str,
    history: Sequence[Turn] = (),
    *,
    show_draft: bool,
    top_k: int | None = None,
    retriever: RetrieverKind | None = None,
    rescore: bool | None = None,
) -> Answer:
    """The checked answer, with progress shown while it is made.

    Ctrl-C raises KeyboardInterrupt here within a tenth of a second, after the progress display has
    been closed; the answer's worker stops the generation at its next event and releases the model for
    the next question."""
    with DeferredInterrupt() as interrupt:
        worker = AnswerWorker(pipeline, question, history, top_k, retriever, rescore)
        try:
            with AnswerProgress(show_draft) as progress:
                for event in worker.events(interrupt):
                    if isinstance(event, DoneEvent):
                        return event.answer
                    progress.update(event)
        except KeyboardInterrupt:
            worker.cancel()
            raise
    raise RuntimeError("the pipeline ended without an answer")


def supporting_text(citation: Citation, limit: int = 300) -> str:
    """The sentence that supports the answer, else the start of the cited passage, on one line."""
    text = citation.text
    if citation.support_start is not None and citation.support_end is not None:
        # Support offsets are document offsets; the passage text starts at citation.start.
        begin, end = citation.support_start - citation.start, citation.support_end - citation.start
        if 0 <= begin < end <= len(text):
            text = text[begin:end]
    snippet = " ".join(text.split())
    return snippet if len(snippet) <= limit else snippet[:limit].rstrip() + "…"


def print_answer(answer: Answer) -> None:
    """The checked answer, then each citation's title and supporting sentence (or, for an abstention,
    the closest passages)."""
    style = "yellow" if answer.abstained else "bold"
    console.print(answer.answer, style=style, highlight=False, markup=False)
    if answer.retracted:
        console.print("  (a draft was written, but the documents did not support it)", style="dim", highlight=False)
    for citation in answer.citations:
        console.print(f"  [{citation.n}] {citation.title}", style="cyan", highlight=False, markup=False)
        # Indented as a block, so a long sentence wraps under itself rather than at the left margin.
        console.print(Padding(Text(f"“{supporting_text(citation)}”", style="dim"), (0, 0, 0, 6)))
    if answer.abstained and answer.passages:
        console.print("  closest passages:", style="dim")
        for passage in answer.passages[:2]:
            snippet = " ".join(passage.text.split())
            console.print(Padding(Text(f"· {snippet[:160]}…", style="dim"), (0, 0, 0, 4)))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole Answer as JSON.")] = False,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=20)] = None,
    retriever: Annotated[RetrieverKind | None, typer.Option(help="dense, bm25 or hybrid.")] = None,
    rescore: Annotated[bool | None, typer.Option("--rescore/--no-rescore")] = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Answer one question from the indexed documents, citing the passages used."""
    settings = settings_from(index_dir)
    if not question.strip():
        fail("the question is empty: ask something about the documents")
    with user_errors():
        pipeline = Pipeline.from_settings(settings, index=ensure_index(settings))
        show_draft = not as_json and sys.stdout.isatty()
        try:
            answer = answer_with_progress(
                pipeline, question, show_draft=show_draft, top_k=top_k, retriever=retriever, rescore=rescore
            )
        except KeyboardInterrupt:
            err.print("cancelled", style="yellow")
            AnswerWorker.wait_for_cancelled()
            raise typer.Exit(130) from None
    if as_json:
        sys.stdout.write(answer.model_dump_json(indent=2) + "\n")
    else:
        print_answer(answer)


CHAT_HELP = """\
Ask a question about the documents; follow-ups keep the conversation's context.
  /help   this list
  /new    start a new conversation (earlier questions are forgotten)
  /quit   leave (Ctrl-D or Ctrl-C at the prompt also leave)
Ctrl-C while an answer is being made cancels that answer. Empty lines are ignored."""
QUIT_COMMANDS = {"/quit", "/exit", "/q"}


@app.command()
def chat(index_dir: IndexDirOption = None) -> None:
    """A conversation in the terminal; follow-up questions keep their context. /help lists the commands."""
    settings = settings_from(index_dir)
    with user_errors():
        # The model loads on the first question, so /help, /new and /quit answer at once.
        pipeline = Pipeline.from_settings(settings, index=ensure_index(settings))
    console.print("Ask about the documents. /help lists the commands; /quit or Ctrl-D leaves.", highlight=False)
    try:
        converse(pipeline, show_draft=sys.stdout.isatty())
    finally:
        AnswerWorker.wait_for_cancelled()


def converse(pipeline: Pipeline, show_draft: bool) -> None:
    """Read questions and commands until /quit, Ctrl-D or Ctrl-C at the prompt."""
    history: list[Turn] = []
    with PromptReader(console) as prompt:
        while True:
            try:
                line = prompt.read("[bold green]you ›[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            command = line.lower()
            if not line:
                continue
            if command in QUIT_COMMANDS:
                return
            if command == "/help":
                console.print(CHAT_HELP, highlight=False, markup=False)
                continue
            if command == "/new":
                history.clear()
                console.print("Started a new conversation; earlier questions are forgotten.", style="dim")
                continue
            if re.fullmatch(r"/[a-z]+", command):
                console.print(f"unknown command {line}; /help lists the commands", style="yellow", markup=False)
                continue
            try:
                user_turn = Turn(role="user", content=line)
                answer = answer_with_progress(pipeline, line, history, show_draft=show_draft)
            except KeyboardInterrupt:
                console.print("Answer cancelled.", style="yellow")
                continue
            except USER_ERRORS as error:
                # One bad question (say, too long for the model) should not end the conversation.
                report_error(error_line(error))
                continue
            print_answer(answer)
            history += [user_turn, Turn(role="assistant", content=answer.answer)]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (RAG_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (RAG_PORT).")] = None,
    index_dir: IndexDirOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes serving the one port (RAG_WORKERS, default 1). Each loads its own pipeline: with the "
            "local llama.cpp model that is ~1.1 GB of RAM per worker, all sharing the same cores, so more "
            "workers pay off with RAG_GENERATOR=openai. A Milvus Lite .db store allows only one."
        ),
    ] = None,
) -> None:
    """Serve the chat page, the REST API and the OpenAI-compatible API."""
    settings = settings_from(index_dir, host=host, port=port, workers=workers)
    with user_errors():
        from api.server import check_port_free, check_workers, run

        # Before loading (or building) the index, so a busy port or an impossible worker count fails in a
        # second, not after it; and before this process opens a Milvus Lite file the workers could not share.
        check_port_free(settings.host, settings.port)
        check_workers(settings)
        ensure_index(settings)
        run(settings)


def _injection_row(settings: Settings, out: Path) -> None:
    """Run the injection corpus, write its rows to `out/injection.jsonl` and print the one-row summary."""
    from dataclasses import asdict

    from eval.injection import run_injection
    from rag.generators import make_generator

    with Status("Asking the injection corpus…", console=err):
        report = run_injection(settings, make_generator(settings))
    out.mkdir(parents=True, exist_ok=True)
    rows = "".join(json.dumps(asdict(row), ensure_ascii=False) + "\n" for row in report.rows)
    (out / "injection.jsonl").write_text(rows, encoding="utf-8")
    table = Table("cases", "hijacked", "lost", title="Prompt injection (eval/injection/)")
    table.add_row(str(report.cases), str(report.hijacked), f"{report.lost} of {report.expected_cases}")
    console.print(table)
    for row in report.failures():
        kind = "hijacked" if row.hijacked else "lost"
        err.print(f"{kind}: {row.doc}: {row.question!r} -> {row.answer!r}", highlight=False, markup=False)
    if report.hijacked:
        raise typer.Exit(1)


def _feedback_candidates(flag: bool, feedback_file: Path | None, out: Path | None, others_given: bool) -> None:
    """`rag eval --feedback`: write candidate gold items from the ratings and print the one-line summary."""
    if not flag:
        fail(f"{feedback_file} is read only with --feedback: rag eval --feedback {feedback_file}")
    if others_given:
        fail("--feedback takes only FEEDBACK_FILE and --out; score the reviewed items with rag eval --gold FILE")
    from eval.feedback import feedback_candidates

    # Only the feedback path is read from the settings: no model, no index, so this runs while a server is busy.
    path = feedback_file or settings_from().feedback_path
    with user_errors():
        report = feedback_candidates(path, out)
    console.print(report.summary(), soft_wrap=True, highlight=False, markup=False)


@app.command("eval")
def eval_command(
    gold: Annotated[Path | None, typer.Option(help="Gold JSONL file (default: eval/gold/article.jsonl).")] = None,
    api: Annotated[str | None, typer.Option(help="Score a running server's REST API at this URL.")] = None,
    assignments: Annotated[list[str] | None, typer.Option("--set", help="Override a setting: key=value.")] = None,
    grid: Annotated[list[str] | None, typer.Option(help="Ablation: key=v1,v2 (repeatable).")] = None,
    squad: Annotated[Path | None, typer.Option(help="A SQuAD v2.0 JSON file to benchmark on.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stratified sample size for --squad.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where reports are written (default: reports/eval); with --feedback, the candidates file "
            "(default: beside the feedback file, feedback-candidates.jsonl).",
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Add the common baseline row.")] = True,
    retrieval_only: Annotated[bool, typer.Option("--retrieval-only", help="Skip generation.")] = False,
    gate: Annotated[bool, typer.Option("--gate", help="Exit 1 if eval/thresholds.json is not met.")] = False,
    readme: Annotated[
        bool,
        typer.Option(
            "--readme",
            help="Put this run's table into the README's <!-- eval:NAME --> block (NAME: the gold file's stem, "
            "or squad).",
        ),
    ] = False,
    injection: Annotated[
        bool, typer.Option("--injection", help="Ask the prompt-injection corpus (eval/injection/) instead.")
    ] = False,
    feedback: Annotated[
        bool,
        typer.Option(
            "--feedback",
            help="Turn the chat page's ratings (FEEDBACK_FILE, default RAG_FEEDBACK_PATH) into candidate gold "
            "items for review, written to --out; no model or index is loaded.",
        ),
    ] = False,
    feedback_file: Annotated[
        Path | None,
        typer.Argument(metavar="FEEDBACK_FILE", help="With --feedback: the feedback JSONL file.", show_default=False),
    ] = None,
) -> None:
    """Score answers, citations, abstention and latency; write a scorecard and an HTML report.

    `rag eval --feedback [FEEDBACK_FILE]` instead writes candidate gold items from rated answers."""
    if feedback or feedback_file is not None:
        _feedback_candidates(
            feedback,
            feedback_file,
            out,
            others_given=bool(
                gold or api or assignments or grid or squad or limit or retrieval_only or gate or injection or readme
            ),
        )
        return
    from eval.gold import ARTICLE_GOLD
    from eval.readme import render, update_block
    from eval.report import grid_table, print_scorecards, squad_table
    from eval.suite import GoldRunPlan, parse_assignments, parse_grid, run_gold_suite, run_squad_suite

    out = out or Path("reports/eval")
    with user_errors():
        try:
            settings = Settings().with_overrides(**parse_assignments(assignments or []))
        except ValidationError as error:
            fail(validation_line(error))
        if injection:
            _injection_row(settings, out)
            return
        if squad is not None:
            squad_runs = run_squad_suite(squad, settings, limit, retrieval_only, out, baseline)
            table = squad_table({run.name: run.summary for run in squad_runs}, squad.name)
            console.print(table)
            if readme:
                update_block("eval:squad", render([table]))
            return
        plan = GoldRunPlan(
            out=out,
            gold=gold or ARTICLE_GOLD,
            api=api,
            baseline=baseline,
            grid=parse_grid(grid or []),
            retrieval_only=retrieval_only,
            gate=gate,
        )
        result = run_gold_suite(settings, plan)
        if plan.grid:
            console.print(grid_table(result.grid))
        console.print(f"Per-item results and the HTML report: {result.report}", soft_wrap=True)
        for failure in result.gate_failures or []:
            err.print(f"[bold red]gate failed:[/] {failure}", highlight=False)
        if result.gate_failures == []:
            console.print("Gate passed.")
        # The headline figures are the last line.
        table = print_scorecards(result.cards, console, plan.gold.stem)
        if readme:
            update_block(f"eval:{plan.gold.stem}", render([table]))
        if result.gate_failures:
            raise typer.Exit(1)


def main() -> None:
    """The `rag` console script."""
    app()


if __name__ == "__main__":
    main()
