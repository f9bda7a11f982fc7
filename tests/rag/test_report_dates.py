"""Spans of years and days that reach the document's own publication date (`rag.year_span`), and calculations
that cannot be a count. The drafts quoted were written by the real model for the article's gold questions."""

from __future__ import annotations

import pytest

from index.types import Document
from rag.checking import AnswerChecker
from rag.context import is_about_the_document
from rag.types import Passage
from rag.year_span import PUBLICATION, YearSpanSolver, parse_date

HEADER = "# A treaty remembered\n\n*By Ann Lee, The Daily Bugle*\n\n- Friday, March 7, 2025"
BODY = (
    "The Treaty of Aigun was signed in 1858.\n\n"
    "During a March 3 meeting, the two ministers spoke again. The treaty's anniversary was marked on Dec. 20."
)
TEXT = f"{HEADER}\n\n{BODY}"
DOCUMENT = Document(
    "d", "A treaty remembered", "d.md", TEXT, "Ann Lee", "March 7, 2025", "The Daily Bugle", None, len(HEADER)
)


def passages() -> list[Passage]:
    body_start = TEXT.index("The Treaty")
    return [
        Passage(
            chunk_id="d#header",
            doc_id="d",
            title="t",
            text=HEADER,
            start=0,
            end=len(HEADER),
            score=1.0,
            rank=1,
            retriever="document",
        ),
        Passage(
            chunk_id="d#1",
            doc_id="d",
            title="t",
            text=BODY,
            start=body_start,
            end=len(TEXT),
            score=1.0,
            rank=2,
            retriever="hybrid",
        ),
    ]


def solver() -> YearSpanSolver:
    return YearSpanSolver(lambda _: TEXT, lambda _: DOCUMENT)


@pytest.mark.parametrize(
    ("question", "events"),
    [
        (
            "How many years before the article was published was the Treaty of Aigun signed?",
            (PUBLICATION, "the Treaty of Aigun signed"),
        ),
        (
            "How many days after the ministers' meeting was the article published?",
            ("the ministers' meeting", PUBLICATION),
        ),
        ("How many years passed between the treaty and the publication of the article?", ("the treaty", PUBLICATION)),
    ],
)
def test_the_publication_is_one_of_the_events(question: str, events: tuple[str, str]) -> None:
    assert YearSpanSolver.events(question) == events
    assert is_about_the_document(question)  # so the header passage, with the date, is given to the model


def test_years_back_from_the_publication() -> None:
    span = solver().run("How many years before the article was published was the Treaty of Aigun signed?", passages())
    assert span is not None and span.text == "167 years: 2025 - 1858 = 167 [2][1]."


def test_days_from_an_undated_day_of_the_report_to_its_publication() -> None:
    span = solver().run("How many days after the ministers' meeting was the article published?", passages())
    assert span is not None and span.text == "4 days: from March 3, 2025 to March 7, 2025 [2][1]."
    # Through the checker: the answer is final, cited to both passages.
    verdict = AnswerChecker(None, year_span=solver()).run(
        "10 days [1].", "How many days after the ministers' meeting was the article published?", passages()
    )
    assert verdict.abstain_reason is None and verdict.text.startswith("4 days")


def test_a_day_later_in_the_year_than_the_report_belongs_to_the_year_before() -> None:
    span = solver().run("How many days after the treaty's anniversary was the article published?", passages())
    assert span is not None and span.text.startswith("77 days: from December 20, 2024")


def test_without_the_header_or_its_date_nothing_is_computed() -> None:
    question = "How many years before the article was published was the Treaty of Aigun signed?"
    assert solver().run(question, passages()[1:]) is None
    assert YearSpanSolver(lambda _: TEXT, lambda _: None).run(question, passages()) is None


@pytest.mark.parametrize(("text", "day"), [("Feb. 24", "2025-02-24"), ("on Dec. 25, 1991,", "1991-12-25")])
def test_dates_are_parsed(text: str, day: str) -> None:
    assert str(parse_date(text, 2025)) == day


def test_a_negative_count_is_withheld() -> None:
    verdict = AnswerChecker(None).run(
        "-2 years: 1858 - 1860 = -2 [1].", "How many years apart were the treaties?", passages()[1:]
    )
    assert verdict.abstain_reason == "calculation"
