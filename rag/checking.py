"""The answer gate: a draft becomes the final answer only when computed checks say its cited text supports it.

Order: years between two events computed from the passages (`rag.year_span`) → the model's own abstention →
calculations recomputed (operands quoted from the passages, a wrong result corrected; a difference given without
its calculation written out as one, `rag.implied_numbers`) → citations made honest, a one-sentence answer's moved
to the passage that clearly supports it best → a numeric answer is the number of the clause the question is about
(`rag.number_binding`, corrected or withheld) → the answer's shape fits the question (`rag.answer_fit`) →
evidence score (a year the question names must be the supporting sentence's; a count the cited sentence shows
counts as stated). A clear score decides alone; only a middling one asks the calibrated judge (P(yes) from one
forward pass). The same numbers give the answer's `confidence`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answer_fit import AnswerFit, recount
from rag.citations import check_citations
from rag.focus import QuestionFocus
from rag.generators import Generator, PromptSize
from rag.grounding import EvidenceChecker, correct_calculations, find_calculations, terms
from rag.growth import GrowthBase
from rag.implied_numbers import ImpliedNumbers
from rag.number_binding import NumberBinding
from rag.premise import QuestionPremise
from rag.prompt import ABSTAIN_TEXT, is_abstention, support_messages
from rag.rates import Conversion, RateConversion
from rag.reasons import ReasonFinder
from rag.types import AbstainReason, Citation, Passage
from rag.year_span import YearSpanSolver

_CITED = re.compile(r"\[(\d+)\]")
_HOW_MANY = re.compile(r"\bhow\s+(?:many|long|much)\b", re.IGNORECASE)


@dataclass(frozen=True)
class CheckThresholds:
    """Evidence ≥ accept is final without a judge; < reject abstains; between, the judge decides."""

    accept: float = 0.75
    reject: float = 0.35
    judge: float = 0.5


@dataclass(frozen=True)
class Verdict:
    """The checked answer, or the reason it is withheld, with one confidence score in [0, 1]."""

    text: str
    citations: list[Citation]
    supported: bool
    confidence: float
    abstain_reason: AbstainReason | None
    judged: bool = False
    # The judge's prompt, when it was asked (its size, for the answer's `prompt_tokens`).
    judge_prompt: PromptSize | None = None

    @property
    def abstained(self) -> bool:
        """True when the answer is withheld; `abstain_reason` says why."""
        return self.abstain_reason is not None


def _near(citations: Sequence[Citation], windows: Sequence[tuple[int, int]]) -> bool:
    """Some citation's supporting sentence lies in one of the windows (no windows: nothing to be near)."""
    if not windows:
        return True
    return any(
        c.support_start is not None and c.support_end is not None and c.support_start < end and c.support_end > start
        for c in citations
        for start, end in windows
    )


@dataclass(frozen=True)
class Judgement:
    """The judge's P(yes), and the size of the prompt it read (None when the generator cannot tell)."""

    probability: float
    prompt: PromptSize | None


def _judged_by(verdict: Verdict, prompts: Sequence[PromptSize | None]) -> Verdict:
    """The verdict carrying the judge calls made on the way to it: their prompts' sizes summed."""
    asked = [p for p in prompts if p is not None]
    if not asked:
        return verdict
    total = PromptSize(sum(p.tokens for p in asked), sum(p.new_tokens for p in asked))
    return dataclasses.replace(verdict, judged=True, judge_prompt=total)


class SupportJudge:
    """A calibrated yes/no judge: the probability of "yes", not the sampled word."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    def run(self, question: str, answer: str, passages: Sequence[str]) -> Judgement:
        """P(the passages support this answer to the question)."""
        messages = support_messages(passages, question, answer)
        prompt = self.generator.prompt_size(messages)
        return Judgement(self.generator.yes_probability(messages), prompt)


class AnswerChecker:
    """Ground and cite one draft against the passages the model was given."""

    def __init__(
        self,
        judge: SupportJudge | None,
        thresholds: CheckThresholds | None = None,
        year_span: YearSpanSolver | None = None,
        premise: QuestionPremise | None = None,
    ) -> None:
        self.judge = judge
        self.thresholds = thresholds or CheckThresholds()
        self.year_span = year_span or YearSpanSolver()
        self.evidence = EvidenceChecker()
        self.fit = AnswerFit()
        self.binding = NumberBinding()
        self.implied = ImpliedNumbers()
        self.reasons = ReasonFinder()
        self.rates = RateConversion()
        self.growth = GrowthBase()
        self.focus = QuestionFocus()
        self.premise = premise or QuestionPremise()

    def _withheld(self, reason: AbstainReason, confidence: float) -> Verdict:
        return Verdict(ABSTAIN_TEXT, [], True, round(min(confidence, 0.49), 4), reason)

    def run(self, reply: str, question: str, passages: Sequence[Passage]) -> Verdict:
        """The verdict on a draft reply. A "why" draft gives way to the reason the passages mark with their own
        connectives (`rag.reasons`), when one is found and passes the same checks, if the draft was withheld or
        names nothing of it while the reason is explicit or the draft only restates the effect (the small model often
        gives the sentence's other clause as the cause, or the question's own fact)."""
        verdict = self._verdict(reply, question, passages)
        judged = [verdict.judge_prompt]
        reason = self.reasons.run(question, passages)
        replaces = verdict.abstained or (
            reason is not None
            and not reason.mentioned_in(verdict.text, question)
            and (reason.explicit or reason.restates_effect(verdict.text, question))
        )
        if reason is not None and replaces:
            found = self._verdict(reason.text, question, passages)
            judged.append(found.judge_prompt)
            if not found.abstained:
                return _judged_by(found, judged)
        if not verdict.abstained and not _near(verdict.citations, self.reasons.topic_windows(question, passages)):
            # A "why" answer from far away from the sentence the question paraphrases explains something else.
            return _judged_by(self._withheld("off_question", 0.5 * verdict.confidence), judged)
        return _judged_by(verdict, judged)

    def _verdict(self, reply: str, question: str, passages: Sequence[Passage]) -> Verdict:
        # Years between two events are computed from the passages, not taken from the draft.
        span = self.year_span.run(question, passages)
        reply = span.text if span else reply
        if is_abstention(reply):
            return self._withheld("model", 0.1)
        calculations = find_calculations(reply)
        conversion: Conversion | None = None
        if not calculations:
            # "20%" for "by how many points does 90% exceed 70%?": the difference written out as its calculation.
            marked = [n for n in map(int, _CITED.findall(reply)) if 1 <= n <= len(passages)]
            cites = "".join(f"[{n}]" for n in dict.fromkeys(marked))
            cited_texts = [passages[n - 1].text for n in marked]
            difference = self.implied.difference(question, reply, cited_texts, cites)
            if difference is not None:
                reply = difference
                calculations = find_calculations(reply)
            else:
                # "$300 million" for "how much per year?" over "$300 million monthly": converted by the calendar.
                # "$240 billion" for 2021's trade over "$240 billion in 2023, an increase of 64% since 2021": computed.
                conversion = self.rates.run(question, reply, cited_texts, cites) or self.growth.run(
                    question, reply, cited_texts, cites
                )
                reply = conversion.text if conversion else reply
        if calculations:
            quoted = set().union(*(terms(p.text)[1] for p in passages)) | (span.numbers if span else set())
            if any(operand not in quoted for c in calculations for operand in c.operands):
                return self._withheld("calculation", 0.15)
            if _HOW_MANY.search(question) and any(c.computed.startswith("-") for c in calculations):
                # "-2 years: 1858 - 1860": no count or duration is negative; the operands are the wrong way round
                # or the wrong ones, and which cannot be told.
                return self._withheld("calculation", 0.15)
            reply = correct_calculations(reply, calculations)
        checked = check_citations(reply, list(passages))
        if not checked.citations:
            return self._withheld("unsupported", 0.2)
        if not calculations and len(checked.claims) == 1 and len(checked.claims[0][1]) == 1:
            sentence, (cited_index,) = checked.claims[0]
            better = self.evidence.better_cited(sentence, question, passages, cited_index)
            if better is not None:
                checked = check_citations(f"{sentence} [{better + 1}]", list(passages))
        cited_numbers = sorted(checked.passage_for_number.values())
        cited = [passages[i].text for i in cited_numbers]
        derived = bool(calculations) or conversion is not None
        if not derived:
            binding = self.binding.run(question, checked.text, cited)
            if binding.problem is not None:
                return self._withheld("off_question", 0.15)
            if binding.corrected is not None:
                checked = check_citations(binding.corrected, list(passages))
            # "42 divisions" for "how many troops?" beside "more than 1 million troops": the troops' figure; "3" for
            # the countries the cited sentence lists as "Ukraine and Belarus": the count it shows.
            counted = recount(question, checked.text, cited) or self.implied.corrected_count(
                question, checked.text, cited
            )
            if counted is not None:
                phrase, source = counted
                checked = check_citations(
                    f"{phrase[0].upper()}{phrase[1:]} [{cited_numbers[source] + 1}].", list(passages)
                )
                cited = [passages[cited_numbers[source]].text]
        if self.fit.problem(question, checked.text, derived, cited) is not None:
            return self._withheld("off_question", 0.15)
        if not derived and not span:
            focus = self.focus.run(question, checked.text, passages)
            if focus is not None and focus.off_focus:
                return self._withheld("off_question", 0.15)
        # Results were recomputed and operands found in the passages above: the evidence check takes both as known;
        # so is a count the cited sentence shows (a list of that many items, the noun ranked or named that often).
        computed = {c.computed for c in calculations} | {o for c in calculations for o in c.operands}
        computed |= span.numbers if span else set()
        computed |= conversion.numbers if conversion else set()
        count = None if derived else self.implied.count_supported(question, checked.text, cited)
        if count is not None:
            computed.add(count)
        grounding = self.evidence.check(checked.claims, question, passages, computed, bool(derived or span))
        score = grounding.score
        if grounding.other_year:
            return self._withheld("off_question", 0.5 * score)
        cited_passages = [passages[i] for i in cited_numbers]
        sentences = [
            passages[i].text[span.start - passages[i].start : span.end - passages[i].start]
            for i, span in grounding.supports.items()
        ] or [p.text for p in cited_passages]
        if self.premise.run(question, cited_passages, sentences) is not None:
            # The question names what its cited documents never mention, or asks what did not happen of a text that
            # negates nothing: the answer is to another question.
            return self._withheld("unmentioned", 0.5 * score)
        judgement: Judgement | None = None
        t = self.thresholds
        if t.reject <= score < t.accept and self.judge is not None and not grounding.instruction:
            judgement = self.judge.run(question, checked.text, cited)
            probability = judgement.probability
            # Evidence and judge weigh equally; the result is on the same 0..1 scale as the thresholds.
            score = 0.5 * score + 0.5 * probability
            accepted = probability >= t.judge
        else:
            accepted = score >= t.accept
        # One scale for every decision: ≥ 0.5 means shown, < 0.5 means withheld.
        confidence = 0.5 + 0.5 * score if accepted else 0.5 * score
        judged = judgement is not None
        judge_prompt = judgement.prompt if judgement else None
        if not accepted:
            return Verdict(ABSTAIN_TEXT, [], True, round(min(confidence, 0.49), 4), "unsupported", judged, judge_prompt)
        citations = [
            c.model_copy(
                update={
                    "support_start": grounding.supports[checked.passage_for_number[c.n]].start,
                    "support_end": grounding.supports[checked.passage_for_number[c.n]].end,
                }
            )
            if checked.passage_for_number[c.n] in grounding.supports
            else c
            for c in checked.citations
        ]
        return Verdict(checked.text, citations, checked.supported, round(confidence, 4), None, judged, judge_prompt)
