"""Run a gold set against a target and score every item with the registered metrics (`eval.registry`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval import metrics as m
from eval.gold import GoldItem
from eval.registry import METRICS, MISSING, Observation
from eval.targets import Target
from rag.types import Citation

RETRIEVAL_DEPTH = 10


@dataclass(frozen=True)
class RetrievedPassage:
    """One passage of the retrieval ranking, and whether it holds a gold evidence string."""

    rank: int
    text: str
    relevant: bool


@dataclass(frozen=True)
class CitedPassage:
    """One passage the answer cited as `[n]`, where it sits in its document, and its text."""

    n: int
    chunk_id: str
    text: str
    start: int
    end: int

    @classmethod
    def of(cls, citation: Citation) -> CitedPassage:
        """The parts of a citation the report and the JSONL keep."""
        return cls(citation.n, citation.chunk_id, citation.text, citation.start, citation.end)


@dataclass
class ItemResult:
    """One gold item's run: what was retrieved and answered, and its scores (one line of `*.items.jsonl`)."""

    id: str
    type: str
    question: str
    answerable: bool
    gold_answers: list[str]
    evidence: list[str]
    answer: str | None
    abstained: bool | None
    abstain_reason: str | None
    gate_score: float | None
    confidence: float | None
    citations: list[CitedPassage]
    retrieved: list[RetrievedPassage]
    scores: dict[str, float | None]
    timings_ms: dict[str, float] = field(default_factory=dict)
    prompt_tokens: dict[str, int] = field(default_factory=dict)
    # The model's reply before the checks (None when the target does not show it; empty when the model was not asked).
    draft: str | None = None


def score_item(item: GoldItem, target: Target, retrieval_only: bool) -> ItemResult:
    """Ask the target one gold question (or only search, for a retrieval-only run) and score it with every
    registered item metric whose scope covers it."""
    retrieved = target.search(item.question, RETRIEVAL_DEPTH)
    texts = [p.text for p in retrieved]
    flags = m.relevance_flags(texts, item.evidence)
    result = ItemResult(
        id=item.id,
        type=item.type,
        question=item.question,
        answerable=item.answerable,
        gold_answers=item.answers,
        evidence=item.evidence,
        answer=None,
        abstained=None,
        abstain_reason=None,
        gate_score=None,
        confidence=None,
        citations=[],
        retrieved=[RetrievedPassage(p.rank, p.text, f) for p, f in zip(retrieved, flags, strict=True)],
        scores={},
    )
    answer = None
    if not retrieval_only:
        answer, result.draft = target.ask_with_draft(item.question)
        result.answer = answer.answer
        result.abstained = answer.abstained
        result.abstain_reason = answer.abstain_reason
        result.gate_score = max((p.relevance or 0.0 for p in answer.passages), default=0.0)
        result.confidence = answer.confidence
        result.citations = [CitedPassage.of(c) for c in answer.citations]
        result.timings_ms = answer.timings_ms
        result.prompt_tokens = answer.prompt_tokens
    result.scores = METRICS.score(Observation(item, texts, flags, answer, result.draft))
    return result


@dataclass
class Scorecard:
    """One configuration's run summarized (`*.scorecard.json`): every registered metric, by type, latency."""

    name: str
    config: dict[str, Any]
    items: int
    metrics: dict[str, float | None]
    by_type: dict[str, dict[str, float | None]]
    latency_ms: dict[str, dict[str, float]]
    prompt_tokens: dict[str, dict[str, float]] = field(default_factory=dict)

    def headline(self) -> str:
        """One line: the registered headline metrics and the median answer time."""
        total = self.latency_ms.get("total", {}).get("median")
        latency = f"{total / 1000:.2f}s" if total == total and total is not None else MISSING
        figures = " | ".join(
            f"{metric.headline} {metric.format(self.metrics.get(metric.name))}" for metric in METRICS.headline
        )
        return f"{self.name}: {figures} | p50 {latency}"


def summarize(name: str, config: dict[str, Any], results: Sequence[ItemResult]) -> Scorecard:
    """The scorecard of a run: each registered metric's run figure and by-type means, latency spreads."""
    stages = sorted({stage for r in results for stage in r.timings_ms})
    latency = {}
    for stage in stages:
        median, p95 = m.median_p95([r.timings_ms[stage] for r in results if stage in r.timings_ms])
        latency[stage] = {"median": round(median, 1), "p95": round(p95, 1)}
    prompt_tokens = {}
    for call in sorted({call for r in results for call in r.prompt_tokens}):
        median, p95 = m.median_p95([float(r.prompt_tokens[call]) for r in results if call in r.prompt_tokens])
        prompt_tokens[call] = {"median": round(median, 1), "p95": round(p95, 1)}
    return Scorecard(
        name, config, len(results), METRICS.summarize(results), METRICS.by_type(results), latency, prompt_tokens
    )


def run_items(
    items: Sequence[GoldItem], target: Target, retrieval_only: bool = False, desc: str = "eval"
) -> list[ItemResult]:
    """Score every item in turn, with a progress bar on stderr."""
    results = []
    for item in tqdm(items, desc=desc, unit="q", leave=False):
        results.append(score_item(item, target, retrieval_only))
    return results


def write_results(out_dir: Path, name: str, results: Sequence[ItemResult], card: Scorecard) -> None:
    """`<name>.items.jsonl` (one result a line) and `<name>.scorecard.json` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / f"{name}.items.jsonl").open("w", encoding="utf-8") as lines:
        for result in results:
            lines.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
    (out_dir / f"{name}.scorecard.json").write_text(json.dumps(asdict(card), indent=2), encoding="utf-8")
