"""A per-period figure asked for per another period is converted by the calendar (`rag.rates`). The checker case is
the real model's draft for an article gold question ("$300 million [1]." for a yearly figure the article gives
monthly), which was shown wrong by a factor of twelve."""

from __future__ import annotations

import pytest

from rag.checking import AnswerChecker
from rag.rates import RateConversion
from tests.conftest import article_passage


@pytest.mark.parametrize(
    ("question", "draft", "source", "converted"),
    [
        (
            "How much is spent per year?",
            "$300 million [1].",
            "Spending is estimated at $300 million monthly.",
            "$3.6 billion a year: $300 million a month × 12 [1].",
        ),
        (
            "How many cars a week?",
            "10 [1].",
            "The plant makes 10 cars a day.",
            "70 cars a week: 10 cars a day × 7 [1].",
        ),
        (
            "How many cars a day?",
            "70 [1].",
            "The plant makes 70 cars a week.",
            "10 cars a day: 70 cars a week ÷ 7 [1].",
        ),
        (
            "How many cars a year?",
            "10 [1].",
            "The plant makes 10 cars a week.",
            "About 521 cars a year: 10 cars a week × 52.14 [1].",
        ),
    ],
)
def test_the_figure_is_converted_to_the_period_asked(question: str, draft: str, source: str, converted: str) -> None:
    conversion = RateConversion().run(question, draft, [source], "[1]")
    assert conversion is not None and conversion.text == converted


@pytest.mark.parametrize(
    ("question", "draft", "source"),
    [
        ("How much is spent per month?", "$300 million [1].", "Spending is $300 million monthly."),  # same period
        ("How much is spent per year?", "$300 million a month [1].", "Spending is $300 million monthly."),  # says so
        ("How much is spent?", "$300 million [1].", "Spending is $300 million monthly."),  # no period asked
        ("How many cars a month?", "10 [1].", "The plant makes 10 cars a day."),  # months differ in length
        ("How many cars a year?", "10 [1].", "It makes 10 cars a day and 10 vans a week."),  # two periods
        ("How many cars a year?", "10 [1].", "The plant has 10 cars."),  # the figure has no period
        ("What share a year?", "10% [1].", "The share grows 10% a month."),  # a percentage is not a sum
    ],
)
def test_nothing_is_converted_without_one_other_period(question: str, draft: str, source: str) -> None:
    assert RateConversion().run(question, draft, [source], "[1]") is None


def test_the_checker_shows_the_conversion_of_the_copied_monthly_figure() -> None:
    evidence = article_passage("Although China denies", "drones.")
    question = "Roughly how much were China's dual-use component supplies to Russia worth per year?"
    verdict = AnswerChecker(None).run("$300 million [1].", question, [evidence])
    assert verdict.abstain_reason is None
    assert verdict.text == "$3.6 billion a year: $300 million a month × 12 [1]."
    assert verdict.citations[0].support_start is not None
