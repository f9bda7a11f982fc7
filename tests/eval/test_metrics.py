"""The metrics on hand-made cases."""

from __future__ import annotations

import math

import pytest

from eval import metrics as m


class TestRetrievalMetrics:
    def test_hits_and_reciprocal_rank(self) -> None:
        flags = [False, True, False, True]
        assert (m.hit_at_k(flags, 1), m.hit_at_k(flags, 2)) == (0.0, 1.0)
        assert m.reciprocal_rank(flags) == 0.5
        assert m.reciprocal_rank([False, False]) == 0.0

    def test_ndcg_ideal_is_bounded_by_the_relevant_count(self) -> None:
        # One relevant passage at rank 1 is a perfect ranking, whatever k is (IDCG over min(k, relevant)).
        assert m.ndcg_at_k([True, False, False, False, False], 5, relevant_total=1) == 1.0
        assert m.ndcg_at_k([False, True], 5, relevant_total=1) == pytest.approx(1 / math.log2(3))
        # Two relevant, only one retrieved at rank 1: DCG 1, IDCG 1 + 1/log2(3).
        assert m.ndcg_at_k([True, False, False], 3, relevant_total=2) == pytest.approx(1 / (1 + 1 / math.log2(3)))
        assert m.ndcg_at_k([False, False], 5, relevant_total=0) == 0.0

    def test_ndcg_never_exceeds_one_when_more_passages_hold_the_evidence(self) -> None:
        # One evidence string found in two overlapping passages: a perfect ranking, not 1.63.
        assert m.ndcg_at_k([True, True, False], 5, relevant_total=1) == pytest.approx(1.0)
        assert m.ndcg_at_k([False, True, True], 5, relevant_total=1) < 1.0

    def test_support_folds_whitespace_and_quotes(self) -> None:
        passage = "Mr. Xi reiterated China’s “no limits”\n partnership with Russia."
        assert m.supports(passage, 'China\'s "no limits" partnership')
        assert not m.supports(passage, "limits partnership with China")

    def test_long_evidence_cut_by_a_passage_boundary_still_counts(self) -> None:
        evidence = "the concern arises that if Mr. Putin prevails in Ukraine, he will not stop and the Baltic states are at risk"
        assert m.supports(
            "Therefore, the concern arises that if Mr. Putin prevails in Ukraine, he will not stop", evidence
        )
        assert not m.supports("he will not stop", evidence)

    def test_all_evidence(self) -> None:
        assert m.all_evidence_retrieved(["a b c", "d e f"], ["b c", "e f"]) == 1.0
        assert m.all_evidence_retrieved(["a b c"], ["b c", "e f"]) == 0.0


class TestAnswerMetrics:
    @pytest.mark.parametrize(
        ("prediction", "gold", "em", "f1"),
        [
            ("The Treaty of Aigun [1].", ["Treaty of Aigun"], 1.0, 1.0),
            ("in 1881", ["1881"], 0.0, 2 / 3),
            ("", [], 1.0, 1.0),  # SQuAD v2: no answer predicted for an unanswerable question
            ("Paris", [], 0.0, 0.0),
            ("42 divisions", ["forty-two", "42"], 0.0, 2 / 3),
        ],
    )
    def test_squad_em_and_f1(self, prediction: str, gold: list[str], em: float, f1: float) -> None:
        assert m.exact_match(prediction, gold) == em
        assert m.token_f1(prediction, gold) == pytest.approx(f1)

    def test_contains_gold_needs_whole_words(self) -> None:
        assert m.contains_gold("It fell $168 billion in 2024 [2].", ["$168 billion"]) == 1.0
        assert m.contains_gold("It was 19900 units.", ["1990"]) == 0.0
        assert m.contains_gold("about 12 years", ["2"]) == 0.0


class TestCitationAndAbstentionMetrics:
    def test_citation_precision_and_recall(self) -> None:
        cited = ["Deng agreed to share intelligence.", "The weather was fine."]
        assert m.citation_precision(cited, ["share intelligence"]) == 0.5
        assert m.citation_recall(cited, ["share intelligence", "January 1979"]) == 0.5
        assert m.citation_precision([], ["x"]) is None and m.citation_recall(cited, []) is None

    def test_auroc(self) -> None:
        assert m.auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
        assert m.auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
        assert m.auroc([0.5, 0.5], [True, False]) == 0.5
        assert m.auroc([0.5], [True]) is None

    def test_latency_summary(self) -> None:
        median, p95 = m.median_p95([10, 20, 30, 40, 1000])
        assert median == 30 and 40 < p95 <= 1000
