"""The reason a sentence marks with its own connectives, offered when a "why" draft is withheld (`rag.reasons`).
The checker case is the real model's draft for an article gold question ("catastrophic because it is
'catastrophic'"), which the checks withhold."""

from __future__ import annotations

import pytest

from rag.checking import AnswerChecker
from rag.reasons import ReasonFinder
from tests.conftest import article_passage
from tests.conftest import passage_of as passage


@pytest.mark.parametrize(
    ("question", "text", "reason"),
    [
        (
            "Why do farmers sell grain at low prices?",
            "Farmers sell grain at low prices, given the long drought in the north.",
            "Given the long drought in the north [1].",
        ),
        (
            "Why is the harvest described as poor?",
            "The harvest is poor, with half the fields flooded in spring.",
            "With half the fields flooded in spring [1].",
        ),
        (
            "Why can the navy base ships in the bay?",
            "The bay now includes a deep harbour, allowing the navy to base ships in the bay.",
            "The bay now includes a deep harbour [1].",
        ),
        (
            "Why is the valley at risk?",
            "If the old dam fails, the town below floods. That means the valley is at risk.",
            "If the old dam fails, the town below floods [1].",
        ),
        (
            "Why are the firms moving money abroad?",
            "The firms are moving money abroad for better returns.",
            "For better returns [1].",
        ),
    ],
)
def test_the_marked_reason_is_copied(question: str, text: str, reason: str) -> None:
    found = ReasonFinder().run(question, [passage(text)])
    assert found is not None and found.text == reason


@pytest.mark.parametrize(
    ("question", "text"),
    [
        # "with" inside a clause is a preposition, not a circumstance
        ("Why does the town keep a relationship with the port?", "The town keeps a relationship with a busy port."),
        # not a why question
        ("What do farmers sell?", "Farmers sell grain at low prices, given the long drought in the north."),
        # the sentence is not about the question
        ("Why did the mayor resign?", "Farmers sell grain at low prices, given the long drought in the north."),
        # no connective marks a reason
        ("Why is the valley at risk?", "The valley is at risk."),
        # a purpose counts only after every word of the question: here "cash" stands for "money"
        ("Why are firms moving money abroad?", "Firms are moving cash abroad for better returns."),
    ],
)
def test_no_reason_without_a_marked_one(question: str, text: str) -> None:
    assert ReasonFinder().run(question, [passage(text)]) is None


def test_the_header_passage_is_never_the_source() -> None:
    text = "Farmers sell grain at low prices, given the long drought in the north."
    assert ReasonFinder().run("Why do farmers sell grain at low prices?", [passage(text, retriever="document")]) is None


def test_a_withheld_why_draft_gives_way_to_the_marked_reason() -> None:
    evidence = article_passage("The devastation to Ukraine", "displaced.")
    question = "Why does the author call the devastation to Ukraine catastrophic?"
    draft = 'The author calls the devastation to Ukraine catastrophic because it is "catastrophic" [1].'
    verdict = AnswerChecker(None).run(draft, question, [evidence])
    assert verdict.abstain_reason is None and verdict.text == "With millions of people displaced [1]."
    assert verdict.citations[0].support_start is not None


def test_a_shown_why_draft_naming_another_clause_gives_way_to_the_marked_reason() -> None:
    # The real model's draft for an article gold question: the sentence's other clause, supported word for word,
    # was shown as the cause.
    evidence = article_passage("China is Russia’s largest trading partner", "invasion of Ukraine.")
    question = "Why can China buy Russian exports at discount prices?"
    verdict = AnswerChecker(None).run("Because China is Russia’s largest trading partner [1].", question, [evidence])
    assert verdict.abstain_reason is None and verdict.text.startswith("Given the array of sanctions imposed on Russia")


@pytest.mark.parametrize(
    "draft",
    ["Because of the sanctions imposed on Russia [1].", "Given the array of sanctions imposed on Russia [1]."],
)
def test_a_why_draft_that_names_the_marked_reason_stays(draft: str) -> None:
    reason = ReasonFinder().run(
        "Why do farmers sell grain at low prices?",
        [passage("Farmers sell grain at low prices, given the sanctions imposed on Russia.")],
    )
    assert reason is not None and reason.mentioned_in(draft, "Why do farmers sell grain at low prices?")
    assert not reason.mentioned_in("Because farmers are poor [1].", "Why do farmers sell grain at low prices?")


def test_a_circumstance_does_not_replace_a_shown_draft() -> None:
    # The article's ", with indications that Moscow was considering a nuclear strike" is a circumstance, not the
    # cause: the real model's draft naming the 42 divisions is right and stays.
    evidence = article_passage("This Sino-Russian alliance would have been unimaginable in 1969", "facilities.")
    question = "Why would an alliance between Moscow and Beijing have been unimaginable in 1969?"
    reason = ReasonFinder().run(question, [evidence])
    assert reason is not None and not reason.explicit
    draft = "Because the Soviet Union had 42 divisions — more than 1 million troops — on the border with China [1]."
    verdict = AnswerChecker(None).run(draft, question, [evidence])
    assert verdict.abstain_reason is None and verdict.text == draft


def test_a_draft_restating_the_effect_gives_way_to_the_cause() -> None:
    # The real model's draft for an article gold question, shown before: the effect the question asks about, restated.
    evidence = article_passage("This area now includes Vladivostok", "Pacific Ocean.")
    question = "Why does Russia have a naval base on the Pacific Ocean?"
    draft = "To allow Russia to have a military outpost and naval base on the Pacific Ocean [1]."
    verdict = AnswerChecker(None).run(draft, question, [evidence])
    assert verdict.abstain_reason is None and verdict.text == "This area now includes Vladivostok [1]."
