"""The reason a sentence marks with its own connectives, offered when a "why" draft is withheld (`rag.reasons`).
The checker case is the real model's draft for an article gold question ("catastrophic because it is
'catastrophic'"), which the checks withhold."""

from __future__ import annotations

import pytest

from rag.checking import AnswerChecker, SupportJudge
from rag.reasons import ReasonFinder
from rag.testing import ScriptedGenerator
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
            "Why did the league win the cup?",
            "Training mostly with the coach's brother, the league won the cup in the final.",
            "Training mostly with the coach's brother [1].",
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
        # an opener ending in -ing that is no participle gives no means
        ("Why did the league win the cup?", "During the long spring season, the league won the cup in the final."),
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


def test_a_withheld_why_draft_gives_way_to_the_means_the_sentence_opens_with() -> None:
    # Article gold question: "Working primarily with China, the Reagan administration succeeded in defeating the Soviets
    # in Afghanistan …"; the opening participle is how the main clause came about.
    evidence = article_passage("Working primarily with China", "Bagram Airfield")
    question = "Why does the article credit China in the Soviet defeat in Afghanistan?"
    verdict = AnswerChecker(None).run("The documents don't say.", question, [evidence])
    assert verdict.abstain_reason is None and verdict.text == "Working primarily with China [1]."


def test_a_draft_restating_the_main_clause_gives_way_to_the_means() -> None:
    evidence = article_passage("Working primarily with China", "Bagram Airfield")
    question = "Why does the article credit China in the Soviet defeat in Afghanistan?"
    draft = "The Reagan administration succeeded in defeating the Soviets in Afghanistan [1]."
    verdict = AnswerChecker(None).run(draft, question, [evidence])
    assert verdict.text == "Working primarily with China [1]."


class TestWhyAnswersComeFromTheQuestionsSentence:
    """A "why" answer must be supported near the sentence the question paraphrases. The drafts are the real model's
    for two article gold questions; both were shown, explaining something else."""

    COMPENSATION = "Why does the author say Ukraine is owed compensation?"

    def test_a_reason_from_another_paragraph_is_withheld(self) -> None:
        settlement = article_passage("The concern is that a fair settlement", "inflict on Ukraine.")
        empire = article_passage("Mr. Putin’s invasion of Ukraine could be", "Russian empire.")
        draft = (
            "Because the invasion of Ukraine could be the beginning of his effort to re-create the Russian empire [2]."
        )
        # The real judge said yes to it; a scripted judge (a fake generator's P(yes)) stands in for it here.
        lenient = AnswerChecker(SupportJudge(ScriptedGenerator([0.99, 0.99])))  # type: ignore[arg-type]
        assert lenient.run(draft, "Why could the invasion be a beginning?", [empire]).abstain_reason is None
        verdict = lenient.run(draft, self.COMPENSATION, [settlement, empire])
        assert verdict.abstain_reason == "off_question"

    def test_a_reason_from_the_question_s_sentence_stays(self) -> None:
        settlement = article_passage("The concern is that a fair settlement", "inflict on Ukraine.")
        empire = article_passage("Mr. Putin’s invasion of Ukraine could be", "Russian empire.")
        draft = "For the lives lost and the social and economic devastation Russia continues to inflict on Ukraine [1]."
        verdict = AnswerChecker(None).run(draft, self.COMPENSATION, [settlement, empire])
        assert verdict.abstain_reason is None

    def test_the_neighbouring_sentence_counts_as_near(self) -> None:
        interest = article_passage("Mr. Putin’s invasion of Ukraine could be", "will be profound.")
        question = "Why does the author think a close alliance with Russia is not in China's interest?"
        draft = "Because the impact on China’s economy and international credibility will be profound [1]."
        verdict = AnswerChecker(None).run(draft, question, [interest])
        assert verdict.abstain_reason is None

    def test_no_window_when_no_sentence_paraphrases_the_question(self) -> None:
        empire = article_passage("Mr. Putin’s invasion of Ukraine could be", "Russian empire.")
        assert ReasonFinder().topic_windows("Why is the sky blue over the harbour?", [empire]) == []
        assert ReasonFinder().topic_windows("What is owed to Ukraine?", [empire]) == []
