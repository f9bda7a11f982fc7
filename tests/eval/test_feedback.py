"""`eval.feedback`: ratings from the chat page become candidate gold items that the gold loader reads as they are.

No model, no index, no server: these tests write feedback lines in the shape `POST /api/feedback` stores them
(`tests/eval/test_feedback_cli.py` writes them through the real route).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.feedback import (
    CandidateItem,
    FeedbackError,
    FeedbackRecord,
    candidates_from,
    default_out,
    feedback_candidates,
    guess_type,
    read_feedback,
    strip_citation_marks,
)
from eval.gold import GOLD_DIR, GoldItem, load_gold

DENG = "What did Deng agree in 1979?"
DENG_ANSWER = "He agreed to expand cooperation in sharing intelligence on the Soviet Union [1]."
DENG_PASSAGE = (
    "Deng Xiaoping, who, during his January 1979 visit to the U.S., agreed to expand cooperation in collecting "
    "and sharing intelligence on the Soviet Union."
)
ABSTAIN = "The documents don't say."


def rating(question: str = DENG, answer: str = DENG_ANSWER, rating: str = "up", **fields: Any) -> dict[str, Any]:
    """One feedback line as the route writes it (`id`, `time`, the request's fields, citations with text)."""
    record: dict[str, Any] = {
        "id": fields.pop("id", f"id-{question[:6]}-{rating}"),
        "time": "2026-03-01T10:00:00+00:00",
        "question": question,
        "answer": answer,
        "rating": rating,
        "note": None,
        "abstained": False,
        "citations": [{"doc_id": "article", "chunk_id": "article#7", "text": DENG_PASSAGE}],
    }
    record.update(fields)
    return record


def write_lines(path: Path, records: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records) + tail, encoding="utf-8")
    return path


def convert(*records: dict[str, Any]) -> list[CandidateItem]:
    return candidates_from(FeedbackRecord.model_validate(r) for r in records)


class TestConversion:
    def test_thumbs_up_with_evidence_becomes_an_approved_answer_without_citation_marks(self) -> None:
        [item] = convert(rating(note="exactly right"))
        assert item.answers == ["He agreed to expand cooperation in sharing intelligence on the Soviet Union."]
        assert item.evidence == [DENG_PASSAGE]
        assert item.type == "fact" and item.answerable
        assert item.review.status == "approved-answer" and item.review.rating == "up"
        assert item.review.rated_answer == DENG_ANSWER and item.review.note == "exactly right"
        assert item.review.citations[0].chunk_id == "article#7"
        assert item.review.todo, "the reviewer is told what is left to do"

    def test_thumbs_up_without_the_passages_text_needs_evidence_and_trusts_no_answer_yet(self) -> None:
        # Gold items need evidence beside an answer: a rating stored before the route kept the text has none.
        [item] = convert(rating(citations=[{"doc_id": "article", "chunk_id": "article#7"}]))
        assert item.answers == [] and item.evidence == [] and item.type == "unanswerable"
        assert item.review.status == "needs-evidence" and item.review.rated_answer == DENG_ANSWER

    def test_thumbs_down_is_flagged_for_review_with_no_trusted_answer(self) -> None:
        [item] = convert(rating(rating="down", note="the year is wrong"))
        assert item.answers == [] and item.evidence == [] and item.type == "unanswerable"
        assert item.review.status == "needs-answer" and item.review.note == "the year is wrong"
        assert item.review.rated_answer == DENG_ANSWER, "the rejected answer stays visible to the reviewer"

    def test_thumbs_up_on_an_abstention_is_an_unanswerable_item(self) -> None:
        [item] = convert(rating("What is the population of Vladivostok?", ABSTAIN, abstained=True, citations=[]))
        assert item.answers == [] and item.type == "unanswerable"
        assert item.review.status == "approved-abstention"

    def test_an_abstention_the_client_did_not_flag_is_recognised_from_its_text(self) -> None:
        [item] = convert(rating("What is the population of Vladivostok?", ABSTAIN, abstained=None))
        assert item.review.status == "approved-abstention" and item.answers == []

    def test_repeats_of_a_question_collapse_and_the_latest_rating_wins(self) -> None:
        items = convert(
            rating(id="first"),
            rating("Who wrote the article?", "Joseph R. DeTrani [1].", id="other"),
            rating("  what did deng AGREE in 1979 ", rating="down", note="not quite", id="last"),
        )
        assert len(items) == 2
        deng = items[0]
        assert deng.review.rating == "down" and deng.review.status == "needs-answer" and deng.answers == []
        assert deng.review.note == "not quite"
        assert (deng.review.ups, deng.review.downs) == (1, 1)
        assert deng.review.feedback_ids == ["first", "last"]
        assert deng.question == "what did deng AGREE in 1979", "the latest wording, spacing folded"
        assert items[1].type == "entity"

    def test_the_same_question_keeps_its_id_across_runs_and_wordings(self) -> None:
        [a] = convert(rating())
        [b] = convert(rating("what did deng agree in 1979"))
        [c] = convert(rating("Who wrote the article?"))
        assert a.id == b.id != c.id and a.id.startswith("feedback-")

    def test_evidence_is_each_cited_passage_once(self) -> None:
        cited = [
            {"doc_id": "article", "chunk_id": "article#7", "text": DENG_PASSAGE},
            {"doc_id": "article", "chunk_id": "article#7", "text": DENG_PASSAGE},
            {"doc_id": "article", "chunk_id": "article#9"},
            {"doc_id": "article", "chunk_id": "article#8", "text": "The Soviet Union had 42 divisions."},
        ]
        [item] = convert(rating(citations=cited))
        assert item.evidence == [DENG_PASSAGE, "The Soviet Union had 42 divisions."]


@pytest.mark.parametrize(
    ("answer", "stripped"),
    [
        ("He agreed [1].", "He agreed."),
        ("Two things [1, 2]. And more [3][4]!", "Two things. And more!"),
        ("No marks at all.", "No marks at all."),
        ("In 1979 [2], he agreed.", "In 1979, he agreed."),
    ],
)
def test_strip_citation_marks(answer: str, stripped: str) -> None:
    assert strip_citation_marks(answer) == stripped


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many Soviet divisions were on the border?", "number"),
        ("When did Putin phone Xi Jinping?", "date"),
        ("Why did Moscow consider a strike?", "why"),
        ("Who wrote the article?", "entity"),
        ("What partnership did Xi reiterate?", "fact"),
    ],
)
def test_guess_type(question: str, kind: str) -> None:
    assert guess_type(question) == kind


class TestFile:
    def test_a_torn_last_line_and_a_bad_line_are_skipped_and_counted(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "feedback.jsonl", [rating(), rating("Who wrote the article?")])
        text = path.read_text()
        # A line that is JSON but not a rating, a blank line (not counted), and a last line cut mid-write.
        path.write_text(text + '{"question": "no rating"}\n\n' + text.splitlines()[0][:40], encoding="utf-8")
        feedback = read_feedback(path)
        assert len(feedback.records) == 2
        assert feedback.skipped_lines == [3, 5]

    def test_candidates_load_with_the_gold_loader_unchanged(self, tmp_path: Path) -> None:
        path = write_lines(
            tmp_path / "feedback.jsonl",
            [
                rating(),
                rating("Who wrote the article?", "Joseph R. DeTrani [1].", rating="down"),
                rating("What is the population of Vladivostok?", ABSTAIN, abstained=True, citations=[]),
                rating("When did Putin phone Xi?", "On Feb. 24 [1].", citations=[]),
            ],
            tail='{"id": "torn", "question": "Wh',
        )
        report = feedback_candidates(path)
        assert report.out == default_out(path) == tmp_path / "feedback-candidates.jsonl"
        assert (len(report.candidates), report.ups, report.downs, report.skipped_lines) == (4, 3, 1, [5])
        assert report.summary().startswith("4 candidates: 3 up, 1 down, 1 skipped line (from 4 ratings)")
        gold = load_gold(report.out)
        assert [type(item) for item in gold] == [GoldItem] * 4
        assert [item.answerable for item in gold] == [True, False, False, False]
        assert gold[0].evidence == [DENG_PASSAGE]
        statuses = [json.loads(line)["review"]["status"] for line in report.out.read_text().splitlines()]
        assert statuses == ["approved-answer", "needs-answer", "approved-abstention", "needs-evidence"]

    def test_the_summary_says_repeats_were_collapsed(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "feedback.jsonl", [rating(), rating(rating="down")])
        report = feedback_candidates(path, tmp_path / "out" / "candidates.jsonl")
        assert report.out.is_file() and report.summary().startswith("1 candidates: 0 up, 1 down, 0 skipped lines")
        assert "1 repeat(s) collapsed, the latest rating wins" in report.summary()

    def test_a_folder_as_out_gets_the_default_name_inside(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "ratings.jsonl", [rating()])
        folder = tmp_path / "reports"
        folder.mkdir()
        assert feedback_candidates(path, folder).out == folder / "ratings-candidates.jsonl"

    def test_a_missing_file_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(FeedbackError, match=r"no feedback file at .*thumbs up/down"):
            feedback_candidates(tmp_path / "feedback.jsonl")

    @pytest.mark.parametrize("content", ["", "\n\n", "not json\n"])
    def test_a_file_without_ratings_writes_nothing(self, tmp_path: Path, content: str) -> None:
        path = tmp_path / "feedback.jsonl"
        path.write_text(content)
        with pytest.raises(FeedbackError, match="no feedback yet"):
            feedback_candidates(path)
        assert not default_out(path).exists()

    def test_never_writes_into_the_gold_sets_or_over_the_feedback(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "feedback.jsonl", [rating()])
        before = {p: p.read_bytes() for p in GOLD_DIR.iterdir()}
        with pytest.raises(FeedbackError, match="inside"):
            feedback_candidates(path, GOLD_DIR / "candidates.jsonl")
        with pytest.raises(FeedbackError, match="inside"):
            feedback_candidates(path, GOLD_DIR)
        assert {p: p.read_bytes() for p in GOLD_DIR.iterdir()} == before
        with pytest.raises(FeedbackError, match="feedback file itself"):
            feedback_candidates(path, path)
        assert len(read_feedback(path).records) == 1
