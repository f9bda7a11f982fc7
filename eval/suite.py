"""Evaluation runs as `rag eval` drives them: a gold set with a baseline row and an optional ablation grid,
written out with its HTML report and gated (`run_gold_suite`); the SQuAD benchmark (`run_squad_suite`). Each
returns what the command prints, so the CLI only renders."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval import metrics as m
from eval.gate import GateFailure, check_gate
from eval.gold import ARTICLE_GOLD, GoldItem, corpus_for, load_gold
from eval.report import grid_section, write_html_report
from eval.runner import ItemResult, Scorecard, run_items, summarize, write_results
from eval.targets import ApiTarget, InProcessTarget, Target, ask_with_draft
from index.loaders import load_documents
from index.service import new_index
from index.types import ChunkUnit, Document, make_doc_id
from rag.errors import UserError
from rag.generators import Generator, make_generator
from rag.pipeline import Pipeline
from rag.settings import PromptStyle, RetrieverKind, Settings

# The common default elsewhere: dense-only FAISS over 500-character chunks with 50 overlap, k=4, a generic "use the
# context, say you don't know" prompt, no gates (no relevance gate, no answer checks, no sentence window).
BASELINE_OVERRIDES: dict[str, Any] = {
    "chunk_unit": ChunkUnit.CHARS,
    "chunk_size": 500,
    "chunk_overlap": 50,
    "retriever": RetrieverKind.DENSE,
    "rescore": False,
    "top_k": 4,
    "verify_answers": False,
    "min_relevance": -1.0,
    "sentence_window": 0,
    "prompt_style": PromptStyle.PLAIN,
}
CONFIG_KEYS = (
    "chunk_size",
    "chunk_overlap",
    "chunk_unit",
    "retriever",
    "rescore",
    "top_k",
    "verify_answers",
    "sentence_window",
    "min_relevance",
    "prompt_style",
)


def describe(settings: Settings) -> dict[str, Any]:
    """The settings that define an eval configuration (CONFIG_KEYS), as JSON values: the `config` a scorecard
    records."""
    dumped = settings.model_dump(mode="json")
    return {key: dumped[key] for key in CONFIG_KEYS}


class SettingAssignmentError(UserError, ValueError):
    """A `--set`/`--grid` argument that is not `key=value` with a known setting."""


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """`key=value` pairs from the command line (`--set`)."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SettingAssignmentError(f"expected key=value, got {pair!r}")
        if key.strip() not in Settings.model_fields:
            raise SettingAssignmentError(f"unknown setting {key.strip()!r}; see the README's settings table")
        parsed[key.strip()] = value.strip()
    return parsed


def parse_grid(pairs: Sequence[str]) -> dict[str, list[str]]:
    """`key=v1,v2` pairs (`--grid`): every combination is evaluated."""
    return {key: [v for v in value.split(",") if v] for key, value in parse_assignments(pairs).items()}


class PipelineFactory:
    """Builds in-memory pipelines over the corpus for each configuration, sharing one loaded generator."""

    def __init__(self, base: Settings, generator: Generator | None = None) -> None:
        self.base = base
        self._generator = generator
        self._documents: dict[Path, list[Document]] = {}

    @property
    def generator(self) -> Generator:
        """The one generator every pipeline shares, made from the base settings on first use: a configuration's own
        generator settings are not used."""
        if self._generator is None:
            self._generator = make_generator(self.base)
        return self._generator

    def pipeline(self, settings: Settings, documents: Sequence[Document] | None = None) -> Pipeline:
        """A pipeline over `documents` (by default the settings' corpus, read once per path), split and embedded anew
        as `settings` say, with the shared generator."""
        if documents is None:
            path = settings.corpus_path
            if path not in self._documents:
                self._documents[path] = load_documents(path)
            documents = self._documents[path]
        index = new_index(settings.index_spec())
        index.add(documents, show_progress=len(documents) > 50)
        return Pipeline(settings, index, self.generator)


@dataclass
class RunOutput:
    """One configuration's scored items and their scorecard."""

    card: Scorecard
    results: list[ItemResult]


def evaluate_target(
    name: str, config: dict[str, Any], items: Sequence[GoldItem], target: Target, retrieval_only: bool
) -> RunOutput:
    """Run the items against `target` and score them; `config` is recorded on the scorecard as given."""
    results = run_items(items, target, retrieval_only=retrieval_only, desc=name)
    return RunOutput(summarize(name, config, results), results)


def evaluate_settings(
    name: str, settings: Settings, items: Sequence[GoldItem], factory: PipelineFactory, retrieval_only: bool
) -> RunOutput:
    """Score an in-process pipeline built for `settings` (its corpus embedded anew)."""
    target = InProcessTarget(factory.pipeline(settings))
    return evaluate_target(name, describe(settings), items, target, retrieval_only)


def run_grid(
    base: Settings,
    grid: Mapping[str, Sequence[str]],
    items: Sequence[GoldItem],
    factory: PipelineFactory,
    retrieval_only: bool,
    out_dir: Path,
) -> list[tuple[str, Scorecard]]:
    """Score every combination of the grid's values over `base`, writing each run's items and scorecard to `out_dir`;
    a combination that sets chunk_size but not chunk_overlap gets a quarter of it as overlap. Rows are (label,
    scorecard), labelled `key=value …`."""
    rows = []
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        overrides = dict(zip(keys, values, strict=True))
        if "chunk_size" in overrides and "chunk_overlap" not in overrides:
            overrides["chunk_overlap"] = str(int(overrides["chunk_size"]) // 4)
        settings = base.with_overrides(**overrides)
        label = " ".join(f"{k}={v}" for k, v in overrides.items())
        output = evaluate_settings(label, settings, items, factory, retrieval_only)
        write_results(out_dir, "grid-" + label.replace(" ", "_").replace("=", "-"), output.results, output.card)
        rows.append((label, output.card))
    return rows


def file_stem(run_name: str) -> str:
    """The name a run's files are written under (`api http://…` has spaces and slashes)."""
    return run_name.replace(" ", "_").replace("/", "_")


@dataclass(frozen=True)
class GoldRunPlan:
    """What `rag eval` was asked to do on a gold set."""

    out: Path
    gold: Path = ARTICLE_GOLD
    api: str | None = None  # score a running server instead of in-process pipelines
    baseline: bool = True
    grid: Mapping[str, Sequence[str]] = field(default_factory=dict)
    retrieval_only: bool = False
    gate: bool = False


@dataclass
class EvalRunResult:
    """Everything one `rag eval` on a gold set produced: the runs (the gated one first), the grid rows, the
    report's path and the gate's verdict (None when no gate was asked for)."""

    runs: list[RunOutput]
    grid: list[tuple[str, Scorecard]]
    report: Path
    gate_failures: list[GateFailure] | None

    @property
    def cards(self) -> list[Scorecard]:
        """Each run's scorecard, the gated one first."""
        return [run.card for run in self.runs]


def run_gold_suite(settings: Settings, plan: GoldRunPlan) -> EvalRunResult:
    """Score the gold set (against its own corpus, if it names one), write every run's items and scorecard
    and the HTML report to `plan.out`, and check the first run against the gate if asked."""
    items = load_gold(plan.gold)
    corpus = corpus_for(plan.gold)
    if corpus is not None:
        settings = settings.with_overrides(corpus_path=corpus)
    factory = PipelineFactory(settings)
    runs = []
    if plan.api:
        target = ApiTarget(plan.api)
        runs.append(evaluate_target(f"api {plan.api}", {"api": plan.api}, items, target, plan.retrieval_only))
    else:
        runs.append(evaluate_settings("default", settings, items, factory, plan.retrieval_only))
        if plan.baseline:
            baseline = settings.with_overrides(**BASELINE_OVERRIDES)
            runs.append(evaluate_settings("baseline", baseline, items, factory, plan.retrieval_only))
    grid_rows = run_grid(settings, plan.grid, items, factory, plan.retrieval_only, plan.out) if plan.grid else []
    for run in runs:
        write_results(plan.out, file_stem(run.card.name), run.results, run.card)
    report = write_html_report(
        plan.out / "report.html",
        [run.card for run in runs],
        {run.card.name: run.results for run in runs},
        [grid_section(grid_rows)] if plan.grid else [],
    )
    return EvalRunResult(runs, grid_rows, report, check_gate(runs[0].card) if plan.gate else None)


# ---- SQuAD 2.0 ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SquadQuestion:
    """One SQuAD 2.0 question: its gold answers (none when it is unanswerable), the paragraph document it was asked
    about and that paragraph's article title."""

    id: str
    question: str
    answers: list[str]
    doc_id: str
    article: str


def load_squad(path: Path) -> tuple[list[Document], list[SquadQuestion]]:
    """One document per paragraph, titled by its article."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    documents, questions = [], []
    for article in data:
        title = article["title"].replace("_", " ")
        for number, paragraph in enumerate(article["paragraphs"], start=1):
            text = paragraph["context"]
            # Each paragraph is its own source: documents sharing a source replace one another on ingest.
            source = f"squad:{title}#{number}"
            document = Document(make_doc_id(f"{title}-{number}", text), f"{title} ¶{number}", source, text)
            documents.append(document)
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else [a["text"] for a in qa["answers"]]
                questions.append(SquadQuestion(qa["id"], qa["question"], answers, document.doc_id, title))
    return documents, questions


def stratified_sample(questions: Sequence[SquadQuestion], limit: int | None, seed: int = 2026) -> list[SquadQuestion]:
    """A fixed sample that keeps every article and the answerable/unanswerable mix."""
    if limit is None or limit >= len(questions):
        return list(questions)
    groups: dict[tuple[str, bool], list[SquadQuestion]] = {}
    for question in questions:
        groups.setdefault((question.article, bool(question.answers)), []).append(question)
    rng = random.Random(seed)
    for members in groups.values():
        rng.shuffle(members)
    ordered = [groups[key] for key in sorted(groups)]
    sample: list[SquadQuestion] = []
    for round_ in itertools.count():
        added = False
        for members in ordered:
            if round_ < len(members):
                sample.append(members[round_])
                added = True
                if len(sample) == limit:
                    return sample
        if not added:
            return sample
    return sample


@dataclass
class SquadRow:
    """One SQuAD question's scores (one item of `squad.json`); retrieval scores only for answerable questions,
    answer scores only when the run answered. `draft` is the model's text before any check (empty when the relevance
    gate answered without the model)."""

    id: str
    answerable: bool
    question: str = ""
    gold_answers: list[str] = field(default_factory=list)
    answer: str | None = None
    draft: str | None = None
    abstain_reason: str | None = None
    confidence: float | None = None
    hit_at_1: float | None = None
    hit_at_5: float | None = None
    mrr: float | None = None
    exact_match: float | None = None
    f1: float | None = None
    contains_gold: float | None = None
    draft_f1: float | None = None
    draft_contains_gold: float | None = None
    abstained: float | None = None
    total_ms: float | None = None


def run_squad(
    path: Path, settings: Settings, factory: PipelineFactory, limit: int | None, retrieval_only: bool
) -> tuple[dict[str, float | None], list[SquadRow]]:
    """Index the SQuAD paragraphs, ask a stratified sample of `limit` questions, and score it: the run's summary
    and its rows."""
    documents, questions = load_squad(path)
    pipeline = factory.pipeline(settings, documents)
    sample = stratified_sample(questions, limit)
    rows: list[SquadRow] = []
    for question in tqdm(sample, desc="squad", unit="q", leave=False):
        passages = pipeline.search(question.question, top_k=5, rescore=False)
        flags = [p.doc_id == question.doc_id for p in passages]
        row = SquadRow(question.id, bool(question.answers), question.question, list(question.answers))
        if question.answers:
            row.hit_at_1, row.hit_at_5, row.mrr = m.hit_at_k(flags, 1), m.hit_at_k(flags, 5), m.reciprocal_rank(flags)
        if not retrieval_only:
            answer, row.draft = ask_with_draft(pipeline, question.question)
            prediction = "" if answer.abstained else answer.answer
            row.exact_match = m.exact_match(prediction, question.answers)
            row.f1 = m.token_f1(prediction, question.answers)
            row.abstained = float(answer.abstained)
            row.answer, row.abstain_reason, row.confidence = answer.answer, answer.abstain_reason, answer.confidence
            row.total_ms = answer.timings_ms.get("total", 0.0)
            if question.answers:
                drafted = m.draft_prediction(row.draft)
                row.contains_gold = m.contains_gold(prediction, question.answers)
                row.draft_f1 = m.token_f1(drafted, question.answers)
                row.draft_contains_gold = m.contains_gold(drafted, question.answers)
        rows.append(row)
    return squad_summary(rows, len(documents), retrieval_only), rows


def squad_summary(rows: Sequence[SquadRow], paragraphs: int, retrieval_only: bool) -> dict[str, float | None]:
    """The run's figures (SQuAD v2 definitions: an abstention is the empty answer). `draft_contains_gold` scores the
    model's drafts before any check, and `perfect_gate_f1` scores them as a perfect gate would pass them (every
    answerable draft shown, every unanswerable question withheld): what gating alone could make of this reader. The
    checks also correct and compute answers (a recount, a year span, a reason), which can add to it."""
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    summary: dict[str, float | None] = {
        "questions": float(len(rows)),
        "paragraphs_indexed": float(paragraphs),
        "hit@1": m.mean([r.hit_at_1 for r in answerable]),
        "hit@5": m.mean([r.hit_at_5 for r in answerable]),
        "mrr": m.mean([r.mrr for r in answerable]),
    }
    if not retrieval_only:
        perfect_gate = [r.draft_f1 for r in answerable] + [1.0 for _ in unanswerable]
        summary |= {
            "exact_match": m.mean([r.exact_match for r in rows]),
            "f1": m.mean([r.f1 for r in rows]),
            "has_ans_f1": m.mean([r.f1 for r in answerable]),
            "contains_gold": m.mean([r.contains_gold for r in answerable]),
            "unanswerable_abstained": m.mean([r.abstained for r in unanswerable]),
            "false_abstention": m.mean([r.abstained for r in answerable]),
            "confidence_auroc": m.auroc([r.confidence or 0.0 for r in rows], [r.answerable for r in rows]),
            "draft_contains_gold": m.mean([r.draft_contains_gold for r in answerable]),
            "perfect_gate_f1": m.mean(perfect_gate),
            "median_ms": m.median_p95([r.total_ms or 0.0 for r in rows])[0],
        }
    return summary


@dataclass
class SquadRun:
    """One configuration's SQuAD figures and per-question rows."""

    name: str
    config: dict[str, Any]
    summary: dict[str, float | None]
    rows: list[SquadRow]


def run_squad_suite(
    path: Path,
    settings: Settings,
    limit: int | None,
    retrieval_only: bool,
    out: Path,
    baseline: bool = True,
    factory: PipelineFactory | None = None,
) -> list[SquadRun]:
    """Run the SQuAD sample with `settings` and, unless told not to, with the plain baseline in the same run (the
    same model; `BASELINE_OVERRIDES`), and write `out/squad.json`: the first run's summary and items at the top,
    each run under `runs`, the others' items under `{name}_items`."""
    factory = factory or PipelineFactory(settings)
    configs = [("default", settings)]
    if baseline:
        configs.append(("baseline", settings.with_overrides(**BASELINE_OVERRIDES)))
    runs = []
    for name, config in configs:
        summary, rows = run_squad(path, config, factory, limit, retrieval_only)
        runs.append(SquadRun(name, describe(config), summary, rows))
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "summary": runs[0].summary,
        "items": [asdict(row) for row in runs[0].rows],
        "runs": [{"name": r.name, "config": r.config, "summary": r.summary} for r in runs],
    }
    for run in runs[1:]:
        document[f"{run.name}_items"] = [asdict(row) for row in run.rows]
    (out / "squad.json").write_text(json.dumps(document, indent=1))
    return runs
