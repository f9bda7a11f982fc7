"""Every evaluation metric, defined once: retrieval, answers, citations, abstention, latency."""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Sequence
from difflib import SequenceMatcher

import numpy as np

from rag.prompt import CITATION_MARKER, is_abstention

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "—": "-", "–": "-"})
_CITATION = re.compile(r"\s*\[\d+\]")


def fold(text: str) -> str:
    """Compare passages with evidence after folding whitespace, case and quote styles."""
    return " ".join(text.translate(_QUOTES).lower().split())


def supports(passage: str, evidence: str) -> bool:
    """A passage supports an evidence string when it contains it; a long string that a passage
    boundary cut in two counts when most of it (≥ 60%, at least 40 characters) is inside."""
    folded_passage, folded_evidence = fold(passage), fold(evidence)
    if folded_evidence in folded_passage:
        return True
    if len(folded_evidence) < 60:
        return False
    matcher = SequenceMatcher(None, folded_passage, folded_evidence, autojunk=False)
    match = matcher.find_longest_match(0, len(folded_passage), 0, len(folded_evidence))
    return match.size >= max(40, 0.6 * len(folded_evidence))


# ---- retrieval ----------------------------------------------------------------------------------
def relevance_flags(passages: Sequence[str], evidence: Sequence[str]) -> list[bool]:
    """For each passage, whether it holds any of the gold evidence strings."""
    return [any(supports(p, e) for e in evidence) for p in passages]


def hit_at_k(flags: Sequence[bool], k: int) -> float:
    """1.0 when a relevant passage is among the first k, else 0.0."""
    return float(any(flags[:k]))


def reciprocal_rank(flags: Sequence[bool]) -> float:
    """1 / rank of the first relevant passage; 0.0 when none is relevant."""
    return next((1.0 / rank for rank, ok in enumerate(flags, start=1) if ok), 0.0)


def ndcg_at_k(flags: Sequence[bool], k: int, relevant_total: int) -> float:
    """Binary nDCG in [0, 1]; the ideal ranking holds min(k, relevant) relevant passages, where relevant is
    `relevant_total` or, if more, the relevant passages actually retrieved."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank, ok in enumerate(flags[:k], start=1) if ok)
    # One gold evidence string can sit in two retrieved passages (overlapping chunks, a merged window): counting
    # only the evidence strings made the ideal smaller than what was found, and nDCG came out above 1.
    ideal_hits = min(k, max(relevant_total, sum(flags)))
    idcg = sum(1.0 / math.log2(rank + 1) for rank in range(1, ideal_hits + 1))
    return dcg / idcg if idcg else 0.0


def all_evidence_retrieved(passages: Sequence[str], evidence: Sequence[str]) -> float:
    """1.0 when every gold evidence string is held by some passage (multi-passage questions need all)."""
    return float(all(any(supports(p, e) for p in passages) for e in evidence))


# ---- answers (SQuAD v2 official definitions) ---------------------------------------------------------
def normalize_answer(text: str) -> str:
    """SQuAD v2's normalisation (lower case, no punctuation or articles), with citation marks and curly quotes
    removed first."""
    text = _CITATION.sub("", text).translate(_QUOTES).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: Sequence[str]) -> float:
    """SQuAD v2 exact match against the best gold answer; an unanswerable item's gold is the empty answer."""
    golds = list(gold) or [""]
    return max(float(normalize_answer(prediction) == normalize_answer(g)) for g in golds)


def _f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = collections.Counter(predicted) & collections.Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, gold: Sequence[str]) -> float:
    """SQuAD v2 token F1 against the best gold answer."""
    return max(_f1(prediction, g) for g in (list(gold) or [""]))


def draft_prediction(draft: str) -> str:
    """A model's draft as an answer is scored: its own abstention is the empty answer, citation marks are not
    words."""
    return "" if is_abstention(draft) else CITATION_MARKER.sub("", draft).strip()


def contains_gold(prediction: str, gold: Sequence[str]) -> float:
    """1.0 when a normalised gold answer appears as whole words inside the normalised prediction."""
    normalized = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(g)} " in normalized for g in gold if normalize_answer(g)))


# ---- citations (ALCE-style, judged by evidence overlap) -------------------------------------------------
def citation_precision(cited_passages: Sequence[str], evidence: Sequence[str]) -> float | None:
    """Share of cited passages that hold some gold evidence (None when nothing was cited)."""
    if not cited_passages:
        return None
    return sum(relevance_flags(cited_passages, evidence)) / len(cited_passages)


def citation_recall(cited_passages: Sequence[str], evidence: Sequence[str]) -> float | None:
    """Share of gold evidence strings found in the cited passages (None for no evidence)."""
    if not evidence:
        return None
    return sum(any(supports(p, e) for p in cited_passages) for e in evidence) / len(evidence)


# ---- abstention ------------------------------------------------------------------------------------------
def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve (probability a positive outranks a negative; ties count half)."""
    pos = [s for s, p in zip(scores, positives, strict=True) if p]
    neg = [s for s, p in zip(scores, positives, strict=True) if not p]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


# ---- latency ----------------------------------------------------------------------------------------------
def median_p95(values: Sequence[float]) -> tuple[float, float]:
    """Median and 95th percentile; NaN for no values."""
    if not values:
        return (float("nan"), float("nan"))
    array = np.asarray(values, dtype=float)
    return float(np.median(array)), float(np.percentile(array, 95))


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are present; None when none is."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
