"""`rag index build|add|rm|info`, `rag ask`, `rag chat`, `rag serve`, `rag eval`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from index.embedders import ModelNotInstalledError
from index.loaders import DocumentLoadError, load_documents
from index.service import new_index, open_index
from index.store import IndexNotFoundError, IndexStoreError, PassageIndex
from rag.generators import GeneratorError
from rag.pipeline import Pipeline
from rag.settings import RetrieverKind, Settings
from rag.types import Answer, Turn

app = typer.Typer(help="Ask questions about your documents and get answers that cite them.", no_args_is_help=True)
index_app = typer.Typer(help="Build and change the passage index.", no_args_is_help=True)
app.add_typer(index_app, name="index")
console = Console()
err = Console(stderr=True)

USER_ERRORS = (IndexStoreError, ModelNotInstalledError, DocumentLoadError, GeneratorError, ValueError)


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


@contextmanager
def user_errors() -> Iterator[None]:
    """Known problems become one line and exit code 1, never a traceback."""
    try:
        yield
    except USER_ERRORS as error:
        fail(str(error))


def settings_from(index_dir: Path | None = None, **overrides: object) -> Settings:
    with user_errors():
        try:
            return Settings().with_overrides(index_dir=index_dir, **overrides)
        except Exception as error:  # pydantic's ValidationError lists every bad field
            fail(f"invalid setting: {error}")


IndexDirOption = Annotated[Path | None, typer.Option("--index-dir", help="Index directory (RAG_INDEX_DIR).")]


def ensure_index(settings: Settings) -> PassageIndex:
    """Open the index, building it from the built-in corpus the first time."""
    try:
        return open_index(settings.index_dir, settings.index_spec())
    except IndexNotFoundError:
        err.print(f"No index at {settings.index_dir}; indexing {settings.corpus_path} …")
        index = new_index(settings.index_spec())
        index.add(load_documents(settings.corpus_path), show_progress=True)
        index.save(settings.index_dir)
        return index


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
        index = new_index(settings.index_spec())
        report = index.add(documents, show_progress=True)
        index.save(settings.index_dir)
    console.print(
        f"Indexed {len(report.added)} document(s), {report.passages_embedded} passages → {settings.index_dir}"
    )


@index_app.command("add")
def index_add(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to add.")],
    index_dir: IndexDirOption = None,
) -> None:
    """Add documents; unchanged files are skipped and changed files re-embedded."""
    settings = settings_from(index_dir)
    with user_errors():
        documents = load_documents(paths)
        try:
            index = open_index(settings.index_dir, settings.index_spec())
        except IndexNotFoundError:
            index = new_index(settings.index_spec())
        report = index.add(documents, show_progress=True)
        if report.added or report.replaced:
            index.save(settings.index_dir)
    console.print(
        f"added {len(report.added)}, replaced {len(report.replaced)}, unchanged {len(report.unchanged)}; "
        f"{report.passages_embedded} passages embedded"
    )


@index_app.command("rm")
def index_rm(
    doc_id: Annotated[str, typer.Argument(help="The document's id (see `rag index info`).")],
    index_dir: IndexDirOption = None,
) -> None:
    """Remove a document and its passages."""
    settings = settings_from(index_dir)
    with user_errors():
        index = open_index(settings.index_dir, settings.index_spec())
        if not index.remove(doc_id):
            known = ", ".join(d.doc_id for d in index.documents) or "none"
            fail(f"no document {doc_id!r} in the index (known: {known})")
        index.save(settings.index_dir)
    console.print(f"removed {doc_id}")


@index_app.command("info")
def index_info(index_dir: IndexDirOption = None) -> None:
    """What the index holds and how it was built."""
    settings = settings_from(index_dir)
    with user_errors():
        manifest = PassageIndex.read_manifest(settings.index_dir)
    embedder, splitter = manifest["embedder"], manifest["splitter"]
    console.print(f"Index {settings.index_dir}: {manifest['passages']} passages, built {manifest['built_at']}")
    console.print(
        f"Embedder {embedder['model']} ({embedder['backend']}, {embedder['dimension']} dims); "
        f"chunks of {splitter['chunk_size']} {splitter['unit']}, overlap {splitter['chunk_overlap']}"
    )
    table = Table("doc_id", "title", "passages", "source")
    for document in manifest["documents"]:
        table.add_row(document["doc_id"], document["title"], str(document["chunk_count"]), document["source"])
    console.print(table)


# ---- asking -------------------------------------------------------------------------------------
def print_answer(answer: Answer) -> None:
    style = "yellow" if answer.abstained else "bold"
    console.print(answer.answer, style=style, highlight=False)
    for citation in answer.citations:
        console.print(
            f"  [{citation.n}] {citation.title} · chars {citation.start}–{citation.end}",
            style="cyan",
            highlight=False,
            markup=False,
        )
        snippet = " ".join(citation.text.split())
        console.print(f"      {snippet[:300]}{'…' if len(snippet) > 300 else ''}", style="dim", highlight=False)
    if answer.abstained and answer.passages:
        console.print("  closest passages:", style="dim")
        for passage in answer.passages[:2]:
            console.print(f"    · {' '.join(passage.text.split())[:160]}…", style="dim", highlight=False)


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
        answer = pipeline.ask(question, top_k=top_k, retriever=retriever, rescore=rescore)
    if as_json:
        sys.stdout.write(answer.model_dump_json(indent=2) + "\n")
    else:
        print_answer(answer)


@app.command()
def chat(index_dir: IndexDirOption = None) -> None:
    """A conversation in the terminal; follow-up questions keep their context. Ctrl-D to leave."""
    settings = settings_from(index_dir)
    with user_errors():
        pipeline = Pipeline.from_settings(settings, index=ensure_index(settings))
        pipeline.warm_up()
    history: list[Turn] = []
    console.print("Ask about the documents (empty line or Ctrl-D to quit, /new for a new conversation).")
    while True:
        try:
            question = console.input("[bold green]you ›[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not question:
            return
        if question == "/new":
            history.clear()
            continue
        with user_errors(), console.status("thinking …"):
            answer = pipeline.ask(question, history)
        print_answer(answer)
        history += [Turn(role="user", content=question), Turn(role="assistant", content=answer.answer)]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (RAG_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (RAG_PORT).")] = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Serve the chat page, the REST API and the OpenAI-compatible API."""
    settings = settings_from(index_dir, host=host, port=port)
    with user_errors():
        ensure_index(settings)
        from api.server import run

        run(settings)


@app.command("eval")
def eval_command(
    gold: Annotated[Path | None, typer.Option(help="Gold JSONL file (default: eval/gold/article.jsonl).")] = None,
    api: Annotated[str | None, typer.Option(help="Score a running server's REST API at this URL.")] = None,
    assignments: Annotated[list[str] | None, typer.Option("--set", help="Override a setting: key=value.")] = None,
    grid: Annotated[list[str] | None, typer.Option(help="Ablation: key=v1,v2 (repeatable).")] = None,
    squad: Annotated[Path | None, typer.Option(help="A SQuAD v2.0 JSON file to benchmark on.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stratified sample size for --squad.")] = None,
    out: Annotated[Path, typer.Option(help="Where reports are written.")] = Path("reports/eval"),
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Add the common baseline row.")] = True,
    retrieval_only: Annotated[bool, typer.Option("--retrieval-only", help="Skip generation.")] = False,
    gate: Annotated[bool, typer.Option("--gate", help="Exit 1 if eval/thresholds.json is not met.")] = False,
) -> None:
    """Score answers, citations, abstention and latency; write a scorecard and an HTML report."""
    from eval.gate import check_gate
    from eval.gold import ARTICLE_GOLD, GoldFormatError, load_gold
    from eval.report import grid_section, print_scorecards, write_html_report
    from eval.runner import write_results
    from eval.suite import (
        BASELINE_OVERRIDES,
        PipelineFactory,
        evaluate_settings,
        evaluate_target,
        parse_assignments,
        parse_grid,
        run_grid,
        run_squad,
    )
    from eval.targets import ApiTarget

    with user_errors():
        try:
            settings = Settings().with_overrides(**parse_assignments(assignments or []))
        except ValueError as error:
            fail(str(error))
        factory = PipelineFactory(settings)
        if squad is not None:
            summary, rows = run_squad(squad, settings, factory, limit, retrieval_only)
            out.mkdir(parents=True, exist_ok=True)
            (out / "squad.json").write_text(json.dumps({"summary": summary, "items": rows}, indent=1))
            table = Table("metric", "value", title=f"SQuAD 2.0 ({squad.name}, {int(summary['questions'] or 0)} q)")
            for key, value in summary.items():
                table.add_row(key, "—" if value is None else f"{value:.3f}")
            console.print(table)
            return
        try:
            items = load_gold(gold or ARTICLE_GOLD)
        except GoldFormatError as error:
            fail(str(error))
        outputs = []
        if api:
            outputs.append(evaluate_target(f"api {api}", {"api": api}, items, ApiTarget(api), retrieval_only))
        else:
            outputs.append(evaluate_settings("default", settings, items, factory, retrieval_only))
            if baseline:
                baseline_settings = settings.with_overrides(**BASELINE_OVERRIDES)
                outputs.append(evaluate_settings("baseline", baseline_settings, items, factory, retrieval_only))
        sections = []
        if grid:
            grid_rows = run_grid(settings, parse_grid(grid), items, factory, retrieval_only, out)
            metrics = [
                "hit@3",
                "mrr",
                "contains_gold",
                "citation_precision",
                "unanswerable_abstained",
                "false_abstention",
            ]
            sections.append(grid_section(grid_rows, metrics))
            grid_table = Table("setting", *metrics, "p50 ms", title="Ablation grid")
            for label, card in grid_rows:
                values = [card.metrics.get(key) for key in metrics]
                grid_table.add_row(
                    label,
                    *["—" if v is None else f"{v:.3f}" for v in values],
                    f"{card.latency_ms.get('total', {}).get('median', float('nan')):.0f}",
                )
            console.print(grid_table)
        for output in outputs:
            write_results(out, output.card.name.replace(" ", "_").replace("/", "_"), output.results, output.card)
        report = write_html_report(
            out / "report.html", [o.card for o in outputs], {o.card.name: o.results for o in outputs}, sections
        )
        console.print(f"Per-item results and the HTML report: {report}", soft_wrap=True)
        failures = check_gate(outputs[0].card) if gate else []
        for failure in failures:
            err.print(f"[bold red]gate failed:[/] {failure}", highlight=False)
        if gate and not failures:
            console.print("Gate passed.")
        # The headline figures are the last line.
        print_scorecards([o.card for o in outputs], console)
        if failures:
            raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
