"""Run a gold set against a target and score every item with the metrics in `eval.metrics`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval import metrics as m
from eval.gold import GoldItem
from eval.targets import Target

RETRIEVAL_DEPTH = 10


@dataclass
class ItemResult:
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
    citations: list[dict[str, Any]]
    retrieved: list[dict[str, Any]]
    scores: dict[str, float | None]
    timings_ms: dict[str, float] = field(default_factory=dict)
    prompt_tokens: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def score_item(item: GoldItem, target: Target, retrieval_only: bool) -> ItemResult:
    retrieved = target.search(item.question, RETRIEVAL_DEPTH)
    texts = [p.text for p in retrieved]
    flags = m.relevance_flags(texts, item.evidence)
    scores: dict[str, float | None] = {}
    if item.answerable:
        relevant_total = max(1, len(item.evidence))
        scores |= {
            "hit@1": m.hit_at_k(flags, 1),
            "hit@3": m.hit_at_k(flags, 3),
            "hit@5": m.hit_at_k(flags, 5),
            "mrr": m.reciprocal_rank(flags),
            "ndcg@5": m.ndcg_at_k(flags, 5, relevant_total),
            "all_evidence@5": m.all_evidence_retrieved(texts[:5], item.evidence),
        }
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
        retrieved=[{"rank": p.rank, "text": p.text, "relevant": f} for p, f in zip(retrieved, flags, strict=True)],
        scores=scores,
    )
    if retrieval_only:
        return result

    answer = target.ask(item.question)
    cited = [c.text for c in answer.citations]
    result.answer = answer.answer
    result.abstained = answer.abstained
    result.abstain_reason = answer.abstain_reason
    result.gate_score = max((p.relevance or 0.0 for p in answer.passages), default=0.0)
    result.confidence = answer.confidence
    result.citations = [c.model_dump(include={"n", "chunk_id", "text", "start", "end"}) for c in answer.citations]
    result.timings_ms = answer.timings_ms
    result.prompt_tokens = answer.prompt_tokens
    if item.answerable:
        text = "" if answer.abstained else answer.answer
        scores |= {
            "exact_match": m.exact_match(text, item.answers),
            "f1": m.token_f1(text, item.answers),
            "contains_gold": m.contains_gold(text, item.answers),
            "false_abstention": float(answer.abstained),
            "citation_precision": None if answer.abstained else m.citation_precision(cited, item.evidence),
            "citation_recall": None if answer.abstained else m.citation_recall(cited, item.evidence),
            "supported": None if answer.abstained else float(answer.supported),
        }
    else:
        scores["unanswerable_abstained"] = float(answer.abstained)
    return result


@dataclass
class Scorecard:
    name: str
    config: dict[str, Any]
    items: int
    metrics: dict[str, float | None]
    by_type: dict[str, dict[str, float | None]]
    latency_ms: dict[str, dict[str, float]]
    prompt_tokens: dict[str, dict[str, float]] = field(default_factory=dict)

    def headline(self) -> str:
        def fmt(key: str) -> str:
            value = self.metrics.get(key)
            return "—" if value is None else f"{value:.3f}"

        total = self.latency_ms.get("total", {}).get("median")
        latency = f"{total / 1000:.2f}s" if total == total and total is not None else "—"
        return (
            f"{self.name}: hit@3 {fmt('hit@3')} | MRR {fmt('mrr')} | contains-gold {fmt('contains_gold')} | "
            f"F1 {fmt('f1')} | cite-P {fmt('citation_precision')} | cite-R {fmt('citation_recall')} | "
            f"abstain(unans) {fmt('unanswerable_abstained')} | false-abstain {fmt('false_abstention')} | "
            f"gate AUROC {fmt('gate_auroc')} | confidence AUROC {fmt('confidence_auroc')} | p50 {latency}"
        )


METRIC_ORDER = [
    "hit@1",
    "hit@3",
    "hit@5",
    "mrr",
    "ndcg@5",
    "all_evidence@5",
    "exact_match",
    "f1",
    "contains_gold",
    "citation_precision",
    "citation_recall",
    "supported",
    "unanswerable_abstained",
    "false_abstention",
    "gate_auroc",
    "confidence_auroc",
]
# Computed over the whole run, not averaged per item.
RUN_METRICS = frozenset({"gate_auroc", "confidence_auroc"})
ITEM_METRICS = [key for key in METRIC_ORDER if key not in RUN_METRICS]


def summarize(name: str, config: dict[str, Any], results: Sequence[ItemResult]) -> Scorecard:
    def average(rows: Sequence[ItemResult], key: str) -> float | None:
        return m.mean([r.scores.get(key) for r in rows if key in r.scores])

    summary: dict[str, float | None] = {}
    for key in ITEM_METRICS:
        if key == "all_evidence@5":
            summary[key] = average([r for r in results if len(r.evidence) > 1], key)
        else:
            summary[key] = average(results, key)
    scored = [r for r in results if r.gate_score is not None]
    summary["gate_auroc"] = m.auroc([r.gate_score or 0.0 for r in scored], [r.answerable for r in scored])
    summary["confidence_auroc"] = m.auroc([r.confidence or 0.0 for r in scored], [r.answerable for r in scored])
    by_type = {
        kind: {key: average([r for r in results if r.type == kind], key) for key in ITEM_METRICS}
        for kind in sorted({r.type for r in results})
    }
    stages = sorted({stage for r in results for stage in r.timings_ms})
    latency = {}
    for stage in stages:
        median, p95 = m.median_p95([r.timings_ms[stage] for r in results if stage in r.timings_ms])
        latency[stage] = {"median": round(median, 1), "p95": round(p95, 1)}
    prompt_tokens = {}
    for call in sorted({call for r in results for call in r.prompt_tokens}):
        median, p95 = m.median_p95([float(r.prompt_tokens[call]) for r in results if call in r.prompt_tokens])
        prompt_tokens[call] = {"median": round(median, 1), "p95": round(p95, 1)}
    return Scorecard(name, config, len(results), summary, by_type, latency, prompt_tokens)


def run_items(
    items: Sequence[GoldItem], target: Target, retrieval_only: bool = False, desc: str = "eval"
) -> list[ItemResult]:
    results = []
    for item in tqdm(items, desc=desc, unit="q", leave=False):
        results.append(score_item(item, target, retrieval_only))
    return results


def write_results(out_dir: Path, name: str, results: Sequence[ItemResult], card: Scorecard) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / f"{name}.items.jsonl").open("w", encoding="utf-8") as lines:
        for result in results:
            lines.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
    (out_dir / f"{name}.scorecard.json").write_text(json.dumps(asdict(card), indent=2), encoding="utf-8")
