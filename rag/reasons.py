"""The reason a sentence gives, read from its wording, for a "why" question whose draft was withheld.

A 1.5B model answers most "why" questions with the sentence's other clause, or with the question itself
("catastrophic because it is catastrophic"), and the checks rightly withhold those drafts. The reason is usually
marked in the text: a causal connective inside the sentence the question paraphrases ("…at discount prices, given
the array of sanctions…", "…catastrophic, with millions of people displaced"), an effect connective after the
reason ("This area now includes Vladivostok, allowing Russia to have … a naval base"), or a sentence that draws a
conclusion from the one before ("That means Poland, Finland … are vulnerable"). The reason found is copied
verbatim, cited, and checked like any draft; it is offered only when the sentence matches most of the question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from index.sentences import sentence_spans
from rag.grounding import terms
from rag.types import Passage

_WHY = re.compile(r"^\s*why\b", re.IGNORECASE)
# "with" gives a circumstance only as its own clause (", with millions of people displaced"); inside a clause it is
# a preposition ("a relationship with a revanchist Russia").
_CAUSE = re.compile(
    r"(?:(?:^|[,;]\s+|\s)(?P<cue>because(?:\s+of)?|given|due\s+to|owing\s+to|as\s+a\s+result\s+of)|"
    r"[,;]\s+(?P<with>with))\s+(?P<reason>[^,;.]+)",
    re.IGNORECASE,
)
_EFFECT = re.compile(r",\s+(?:allowing|enabling|which\s+allowed|which\s+enabled|so\s+that|thus)\b", re.IGNORECASE)
_CONCLUSION = re.compile(r"^\s*(?:that\s+means|this\s+means|therefore|thus|as\s+a\s+result|so)\b", re.IGNORECASE)
_LEADING_LINK = re.compile(r"^\s*(?:therefore|thus|indeed|so|and)\s*,?\s*", re.IGNORECASE)
_QUESTION_FRAME = frozenset({"autho", "artic", "write", "think", "belie", "say", "says", "call", "calls"})
# Share of the question's content words the sentence must contain to be the one the question paraphrases.
MIN_MATCH = 0.6
# A reason must say something the question does not: at least this many content words of its own.
MIN_NEW_WORDS = 2


@dataclass(frozen=True)
class Reason:
    """A reason copied from a passage, as an answer citing it."""

    text: str
    passage: int  # 0-based


class ReasonFinder:
    """Finds the reason the passages give for what a "why" question asks about, by the text's own connectives."""

    def run(self, question: str, passages: Sequence[Passage]) -> Reason | None:
        """The reason as an answer ("Given the array of sanctions imposed on Russia [1]."), or None."""
        if not _WHY.search(question):
            return None
        wanted = terms(question)[0] - _QUESTION_FRAME
        if not wanted:
            return None
        best: tuple[float, int, int] | None = None  # share, passage, sentence
        for index, passage in enumerate(passages):
            if passage.retriever == "document":
                continue
            for number, span in enumerate(sentence_spans(passage.text)):
                share = len(wanted & terms(passage.text[span.start : span.end])[0]) / len(wanted)
                if share >= MIN_MATCH and (best is None or share > best[0]):
                    best = (share, index, number)
        if best is None:
            return None
        _, index, number = best
        spans = sentence_spans(passages[index].text)
        sentences = [passages[index].text[s.start : s.end] for s in spans]
        reason = self._reason(sentences, number, wanted)
        if reason is None:
            return None
        reason = reason.strip().rstrip(".")
        return Reason(f"{reason[0].upper()}{reason[1:]} [{index + 1}].", index)

    @staticmethod
    def _reason(sentences: Sequence[str], number: int, wanted: set[str]) -> str | None:
        sentence = sentences[number]

        def says_more(text: str) -> bool:
            return len(terms(text)[0] - wanted) >= MIN_NEW_WORDS

        for cause in _CAUSE.finditer(sentence):
            text = f"{cause.group('cue') or cause.group('with')} {cause.group('reason')}"
            if says_more(cause.group("reason")):
                return text
        effect = _EFFECT.search(sentence)
        if effect is not None:
            before = _LEADING_LINK.sub("", sentence[: effect.start()])
            if says_more(before):
                return before
        if _CONCLUSION.search(sentence) and number > 0:
            earlier = _LEADING_LINK.sub("", sentences[number - 1])
            if says_more(earlier):
                return earlier
        return None
