"""Ratings from the chat page turned into candidate gold items for a person to review (`rag eval --feedback`).

The page posts thumbs up/down to `POST /api/feedback`, which appends one JSON line per rating to
`RAG_FEEDBACK_PATH` (`api.routes.feedback`). This module reads that file and writes one candidate per rated
question in the gold format (`eval.gold.GoldItem`), so `load_gold` reads the candidates as they are; what a
reviewer needs to decide travels in an extra `review` field, which the gold loader ignores.

How a rating becomes a candidate (the latest rating of a question decides; see `collapse`):

- thumbs up on an answer whose cited passages' text the feedback carries: `approved-answer`. The answer the
  user approved, without its `[n]` marks, is the expected answer and the cited passages are the evidence.
- thumbs up on an answer whose cited passages' text it does not carry: `needs-evidence`. The gold format
  requires evidence beside an answer, so the candidate has neither yet; the approved answer is in `review`.
- thumbs up on an abstention: `approved-abstention`, an unanswerable item.
- thumbs down: `needs-answer`. Nothing about the answer is trusted, so the candidate has no answer and no
  evidence; the reviewer writes the right answer, or confirms that the documents do not hold one.

A candidate without an answer has the type `unanswerable`, as the shipped gold sets do for such items; an
approved answer's type is guessed from the question's wording. Nothing here touches `eval/gold/`: the
output is a separate file, and a reviewed item is copied into a gold set by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eval.gold import GOLD_DIR, GoldItem, QuestionType
from rag.errors import UserError
from rag.prompt import is_abstention

Rating = Literal["up", "down"]
ReviewStatus = Literal["approved-answer", "approved-abstention", "needs-evidence", "needs-answer"]

# "[1]", "[1, 2]", "[1][2]": the citation marks of an answer (`rag.citations` writes them), with the space before.
_CITATION_MARK = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?])")


class FeedbackError(UserError, ValueError):
    """A feedback file that cannot be turned into candidates (missing, holding no rating, or an unsafe output)."""


class RatedCitation(BaseModel):
    """A passage the rated answer cited; `text` is the passage as the server's index held it at rating time."""

    model_config = ConfigDict(extra="ignore")

    doc_id: str
    chunk_id: str
    text: str | None = None


class FeedbackRecord(BaseModel):
    """One line of the feedback file, as `POST /api/feedback` writes it (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    id: str = ""
    time: str | None = None
    question: str = Field(min_length=1)
    answer: str
    rating: Rating
    note: str | None = None
    abstained: bool | None = None
    citations: list[RatedCitation] = Field(default_factory=list)

    @property
    def is_abstention(self) -> bool:
        """Whether the rated answer was an abstention: as the page reported it, else judged from its text."""
        return self.abstained if self.abstained is not None else is_abstention(self.answer)


@dataclass(frozen=True)
class FeedbackFile:
    """The ratings read from a feedback file, oldest first, and the lines that were not a rating."""

    path: Path
    records: list[FeedbackRecord]
    # 1-based numbers of the lines skipped: a torn last line (a write cut short), or anything else that is not
    # a rating. Blank lines are not counted.
    skipped_lines: list[int]


class Review(BaseModel):
    """What a reviewer needs to accept, fix or drop a candidate; the gold loader ignores it."""

    status: ReviewStatus
    todo: list[str] = Field(description="What the reviewer still has to do before the item can join a gold set.")
    rating: Rating = Field(description="The latest rating of the question, the one the candidate is built from.")
    rated_answer: str = Field(description="The answer that rating was given to, as the user saw it.")
    note: str | None = None
    citations: list[RatedCitation] = Field(default_factory=list)
    ups: int = Field(description="How many times the question was rated up, all ratings counted.")
    downs: int = Field(description="How many times the question was rated down, all ratings counted.")
    feedback_ids: list[str] = Field(description="Every feedback line of the question, oldest first.")
    rated_at: str | None = Field(None, description="When the latest rating was given.")


class CandidateItem(GoldItem):
    """A gold item built from ratings, with its `review`; `eval.gold.load_gold` reads it as a plain `GoldItem`."""

    review: Review


@dataclass(frozen=True)
class CandidateReport:
    """What `feedback_candidates` wrote."""

    out: Path
    candidates: list[CandidateItem]
    ratings: int
    skipped_lines: list[int]

    @property
    def ups(self) -> int:
        """Candidates whose latest rating is thumbs up."""
        return sum(item.review.rating == "up" for item in self.candidates)

    @property
    def downs(self) -> int:
        """Candidates whose latest rating is thumbs down."""
        return sum(item.review.rating == "down" for item in self.candidates)

    def summary(self) -> str:
        """One line: how many candidates (by latest rating), skipped lines, ratings read, and where they went."""
        skipped = len(self.skipped_lines)
        repeats = self.ratings - len(self.candidates)
        collapsed = f"; {repeats} repeat(s) collapsed, the latest rating wins" if repeats else ""
        return (
            f"{len(self.candidates)} candidates: {self.ups} up, {self.downs} down, "
            f"{skipped} skipped line{'' if skipped == 1 else 's'} "
            f"(from {self.ratings} rating{'' if self.ratings == 1 else 's'}{collapsed}); "
            f"written to {self.out} for review"
        )


def read_feedback(path: Path) -> FeedbackFile:
    """Every rating in a feedback JSONL file, oldest first, skipping (and counting) lines that are not one.

    A line is skipped rather than fatal because the file is appended to by a running server: a crash or a full
    disk can leave its last line torn, and one bad line should not hide every other rating.
    """
    if not path.is_file():
        raise FeedbackError(f"no feedback file at {path}: rate answers on the chat page (thumbs up/down) first")
    records: list[FeedbackRecord] = []
    skipped: list[int] = []
    try:
        # errors="replace": a line torn inside a multi-byte character is skipped as invalid JSON, not a decode error.
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise FeedbackError(f"the feedback file {path} could not be read: {error.strerror or error}") from error
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(FeedbackRecord.model_validate_json(line))
        except ValidationError:
            skipped.append(number)
    return FeedbackFile(path, records, skipped)


def question_key(question: str) -> str:
    """The form under which two ratings are of the same question: case, spacing and the final `?` ignored."""
    return " ".join(question.split()).casefold().rstrip("?!. ")


def collapse(records: Iterable[FeedbackRecord]) -> list[list[FeedbackRecord]]:
    """The ratings grouped by question, oldest first within a group, groups in order of first rating.

    The latest rating of a group decides its candidate: file order is the order the server appended them in
    (the `time` field has only whole seconds, so it cannot order two ratings of the same second).
    """
    groups: dict[str, list[FeedbackRecord]] = {}
    for record in records:
        groups.setdefault(question_key(record.question), []).append(record)
    return list(groups.values())


def strip_citation_marks(answer: str) -> str:
    """The answer without its `[n]` marks: `"... Soviet Union [1]."` -> `"... Soviet Union."`."""
    without = _CITATION_MARK.sub("", answer)
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(without.split()))


def guess_type(question: str) -> QuestionType:
    """A first guess at an answerable question's type from its wording, for the reviewer to correct."""
    text = f" {question.casefold()} "
    if any(cue in text for cue in (" how many ", " how much ", " how long ", " how old ", " what percentage ")):
        return "number"
    if any(cue in text for cue in (" when ", " what year ", " which year ", " what date ", " what day ")):
        return "date"
    if " why " in text:
        return "why"
    if any(cue in text for cue in (" who ", " whom ", " whose ")):
        return "entity"
    return "fact"


def candidate_id(question: str) -> str:
    """A stable id per question, so candidates written on different days can be compared line by line."""
    return "feedback-" + hashlib.sha256(question_key(question).encode("utf-8")).hexdigest()[:10]


def evidence_of(citations: Sequence[RatedCitation]) -> list[str]:
    """The cited passages' text, each once, in citation order; passages stored without text are left out."""
    return list(dict.fromkeys(c.text.strip() for c in citations if c.text and c.text.strip()))


def to_candidate(ratings: Sequence[FeedbackRecord]) -> CandidateItem:
    """One candidate from every rating of one question (oldest first); the latest rating decides it."""
    latest = ratings[-1]
    answers: list[str] = []
    evidence: list[str] = []
    kind: QuestionType = "unanswerable"
    if latest.rating == "down":
        status: ReviewStatus = "needs-answer"
        todo = [
            "write the right answer(s) and the verbatim evidence, and set the type; "
            "or confirm the documents do not answer it (keep answers and evidence empty)"
        ]
    elif latest.is_abstention:
        status = "approved-abstention"
        todo = ["confirm the documents do not answer it"]
    elif evidence := evidence_of(latest.citations):
        status = "approved-answer"
        answers = [strip_citation_marks(latest.answer)]
        kind = guess_type(latest.question)
        todo = [
            "shorten the answer to the words that answer the question, and add other acceptable wordings",
            "cut each evidence passage down to the words that support the answer",
            "check the type (guessed from the question's wording)",
        ]
    else:
        status = "needs-evidence"
        todo = [
            "add the approved answer (review.rated_answer, without its [n] marks) to answers, with the verbatim "
            "evidence from the documents, and set the type"
        ]
    return CandidateItem(
        id=candidate_id(latest.question),
        question=" ".join(latest.question.split()),
        answers=answers,
        evidence=evidence,
        type=kind,
        review=Review(
            status=status,
            todo=todo,
            rating=latest.rating,
            rated_answer=latest.answer,
            note=latest.note,
            citations=latest.citations,
            ups=sum(r.rating == "up" for r in ratings),
            downs=sum(r.rating == "down" for r in ratings),
            feedback_ids=[r.id for r in ratings if r.id],
            rated_at=latest.time,
        ),
    )


def candidates_from(records: Iterable[FeedbackRecord]) -> list[CandidateItem]:
    """One candidate per rated question, in order of each question's first rating."""
    return [to_candidate(group) for group in collapse(records)]


def default_out(feedback_path: Path) -> Path:
    """Where candidates go by default: beside the feedback file, `feedback.jsonl` -> `feedback-candidates.jsonl`."""
    return feedback_path.with_name(f"{feedback_path.stem}-candidates.jsonl")


def write_candidates(candidates: Sequence[CandidateItem], out: Path) -> None:
    """Write one candidate a line, replacing `out` atomically (a reader never sees half a file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    text = "".join(item.model_dump_json(exclude_none=True) + "\n" for item in candidates)
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)  # only there if the write or the rename failed


def feedback_candidates(feedback_path: Path, out: Path | None = None) -> CandidateReport:
    """Read `feedback_path`, write its candidates to `out` (default: `default_out`) and report what was written.

    An `out` that is a folder gets the default file name inside it. Raises FeedbackError, writing nothing, when
    the file is missing or holds no rating, when `out` cannot be written, and when it would overwrite the
    feedback itself or land among the shipped gold sets (merging into a gold set is a person's decision).
    """
    out = out or default_out(feedback_path)
    if out.is_dir():  # `--out reports/eval`, as the other eval runs take it: the file goes inside
        out = out / default_out(feedback_path).name
    if out.resolve() == feedback_path.resolve():
        raise FeedbackError(f"--out {out} is the feedback file itself: write the candidates elsewhere")
    if out.resolve().is_relative_to(GOLD_DIR):
        raise FeedbackError(
            f"--out {out} is inside {GOLD_DIR}: candidates are written elsewhere and copied into a gold set only "
            "once reviewed"
        )
    feedback = read_feedback(feedback_path)
    if not feedback.records:
        skipped = f" ({len(feedback.skipped_lines)} line(s) were not ratings)" if feedback.skipped_lines else ""
        raise FeedbackError(f"no feedback yet: {feedback_path} holds no rating{skipped}")
    candidates = candidates_from(feedback.records)
    try:
        write_candidates(candidates, out)
    except OSError as error:
        raise FeedbackError(f"the candidates could not be written to {out}: {error.strerror or error}") from error
    return CandidateReport(out, candidates, len(feedback.records), feedback.skipped_lines)
