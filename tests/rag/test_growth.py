"""An earlier year's value, or the growth in money, computed from a later figure and its growth since then
(`rag.growth`). The checker cases are the real model's drafts for two article gold questions: "$240 billion" for
2021's trade (withheld by the year check) and "By $240 billion" for the growth (shown, wrong)."""

from __future__ import annotations

import pytest

from rag.checking import AnswerChecker
from rag.growth import GrowthBase
from tests.conftest import article_passage

SALES = "Sales reached $50 million in 2020, up 25% from 2018, while costs fell."
SHRINK = "Exports fell to $30 billion in 2022, a decrease of 40% since 2019."


@pytest.mark.parametrize(
    ("question", "draft", "source", "answer"),
    [
        (
            "What were sales in 2018?",
            "$50 million [1].",
            SALES,
            "About $40 million in 2018: $50 million in 2020 ÷ (1 + 25%) [1].",
        ),
        (
            "By how much did sales grow between 2018 and 2020?",
            "$50 million [1].",
            SALES,
            "About $10 million: $50 million − $50 million in 2020 ÷ (1 + 25%) [1].",
        ),
        (
            "What were exports worth in 2019?",
            "$30 billion [1].",
            SHRINK,
            "About $50 billion in 2019: $30 billion in 2022 ÷ (1 - 40%) [1].",
        ),
    ],
)
def test_the_earlier_value_or_the_growth_is_computed(question: str, draft: str, source: str, answer: str) -> None:
    found = GrowthBase().run(question, draft, [source], "[1]")
    assert found is not None and found.text == answer


@pytest.mark.parametrize(
    ("question", "draft", "source"),
    [
        # the later year is asked for: the stated figure is the answer
        ("What were sales in 2020?", "$50 million [1].", SALES),
        # a percentage is asked for, not money
        ("By what percentage did sales grow between 2018 and 2020?", "25% [1].", SALES),
        # the draft's figure is not the one stated with the growth
        ("What were sales in 2018?", "$45 million [1].", SALES),
        # no growth since an earlier year is stated
        ("What were sales in 2018?", "$50 million [1].", "Sales reached $50 million in 2020."),
        # a year the sentence does not relate to the figure
        ("What were sales in 2015?", "$50 million [1].", SALES),
    ],
)
def test_nothing_is_computed_without_a_stated_growth_the_question_asks_about(
    question: str, draft: str, source: str
) -> None:
    assert GrowthBase().run(question, draft, [source], "[1]") is None


@pytest.mark.parametrize(
    ("question", "draft", "answer"),
    [
        (
            "What was China-Russia trade worth in 2021, before the invasion?",
            "$240 billion [1].",
            "About $146 billion in 2021: $240 billion in 2023 ÷ (1 + 64%) [1].",
        ),
        (
            "By roughly how many dollars did China-Russia trade grow between 2021 and 2023?",
            "By $240 billion [1].",
            "About $93.7 billion: $240 billion − $240 billion in 2023 ÷ (1 + 64%) [1].",
        ),
    ],
)
def test_the_article_s_drafts_are_computed_and_shown(question: str, draft: str, answer: str) -> None:
    evidence = article_passage("Former Secretary of State", "invaded Ukraine.")
    verdict = AnswerChecker(None).run(draft, question, [evidence])
    assert verdict.abstain_reason is None and verdict.text == answer
    assert verdict.citations[0].support_start is not None
