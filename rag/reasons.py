"""The reason a sentence gives, read from its wording, for a "why" question.

A 1.5B model answers most "why" questions with the sentence's other clause, or with the question itself
("catastrophic because it is catastrophic"), and the checks rightly withhold those drafts. The reason is usually
marked in the text: a causal connective inside the sentence the question paraphrases ("…at discount prices, given
the array of sanctions…", "…catastrophic, with millions of people displaced"), an effect connective after the
reason ("This area now includes Vladivostok, allowing Russia to have … a naval base"), or a sentence that draws a
conclusion from the one before ("That means Poland, Finland … are vulnerable"). The reason found is copied
verbatim, cited, and checked like any draft; it is offered only when the sentence matches most of the question,
and replaces a draft that was withheld or that names nothing of it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from index.sentences import Span, sentence_spans
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
# A purpose right after the last of the question's words: "…moving money abroad for better returns".
_PURPOSE = re.compile(r"^\s*(?P<reason>(?:for|in\s+order\s+to|so\s+as\s+to)\s+[^,;.]+)", re.IGNORECASE)
# The means by which the main clause came about, as its opening participle: "Working primarily with China, the Reagan
# administration succeeded …". Sentence openers that end in -ing without being participles are not means.
_MEANS = re.compile(r"^\s*(?:by\s+)?(?P<reason>(?P<verb>[A-Za-z]{3,}ing)\b[^,;.]*),\s", re.IGNORECASE)
_NOT_PARTICIPLES = frozenset(
    {
        "during",
        "according",
        "including",
        "regarding",
        "following",
        "concerning",
        "beijing",
        "nothing",
        "something",
        "anything",
        "everything",
        "morning",
        "evening",
        "spring",
        "king",
        "thing",
        "wedding",
        "ceiling",
        "building",
        "meeting",
        "notwithstanding",
        "pending",
        "excluding",
        "considering",
        "beginning",
        "starting",
    }
)
_STRONG_CUES = frozenset({"because", "given", "due", "owing", "as"})
_EFFECT = re.compile(r",\s+(?:allowing|enabling|which\s+allowed|which\s+enabled|so\s+that|thus)\b", re.IGNORECASE)
_CONCLUSION = re.compile(r"^\s*(?:that\s+means|this\s+means|therefore|thus|as\s+a\s+result|so)\b", re.IGNORECASE)
_LEADING_LINK = re.compile(r"^\s*(?:therefore|thus|indeed|so|and)\s*,?\s*", re.IGNORECASE)
# The connectives themselves say nothing of the reason: "Because China is…" does not mention "given the sanctions".
_CONNECTIVE_WORDS = terms("because given due owing result allowing enabling allowed enabled means therefore thus")[0]
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
    # Marked by a causal connective ("because", "given", "due to") or a purpose after the question's own words
    # ("moving money abroad for better returns"): explicit enough to replace a draft that names another cause.
    # A circumstance (", with …") only stands in for a withheld draft; a reason before an effect or a conclusion
    # also replaces a draft that restates that effect (`restates_effect`).
    explicit: bool = False
    # For a reason found before an effect connective or a conclusion: the effect's text. A draft that only restates
    # it ("To allow Russia to have … a naval base" for "Why does Russia have a naval base?") gives no reason.
    effect: str = ""

    def mentioned_in(self, answer: str, question: str) -> bool:
        """The answer names something of this reason that the question does not."""
        own_words = terms(self.text)[0] - terms(question)[0] - _CONNECTIVE_WORDS
        return bool(own_words & terms(answer)[0])

    def restates_effect(self, answer: str, question: str) -> bool:
        """The answer says nothing beyond the effect the reason leads to and the question's own words."""
        if not self.effect:
            return False
        said = terms(answer)[0] - terms(question)[0] - _CONNECTIVE_WORDS
        return said <= terms(self.effect)[0]


class ReasonFinder:
    """Finds the reason the passages give for what a "why" question asks about, by the text's own connectives."""

    def run(self, question: str, passages: Sequence[Passage]) -> Reason | None:
        """The reason as an answer ("Given the array of sanctions imposed on Russia [1]."), or None."""
        wanted, matches = _paraphrasing_sentences(question, passages)
        if not matches:
            return None
        best = max(matches, key=lambda match: match.share)  # the first of the best, in passage order
        index, text = best.passage, passages[best.passage].text
        sentences = [text[s.start : s.end] for s in best.spans]
        found = self._reason(sentences, best.sentence, wanted, best.share == 1.0)
        if found is None:
            return None
        reason, explicit, effect = found
        reason = reason.strip().rstrip(".")
        return Reason(f"{reason[0].upper()}{reason[1:]} [{index + 1}].", index, explicit, effect)

    def topic_windows(self, question: str, passages: Sequence[Passage], window: int = 1) -> list[tuple[int, int]]:
        """Where a "why" question's answer must come from: the document ranges (start, end) of the sentences that
        paraphrase it best (at least `MIN_MATCH` of its words), each with `window` sentences either side. Empty
        when no sentence matches that well (the question is then paraphrased too freely to tell)."""
        matches = _paraphrasing_sentences(question, passages)[1]
        best = max((match.share for match in matches), default=0.0)
        windows = []
        for match in matches:
            if match.share == best:
                spans, start = match.spans, passages[match.passage].start
                first, last = (
                    spans[max(0, match.sentence - window)],
                    spans[min(len(spans) - 1, match.sentence + window)],
                )
                windows.append((start + first.start, start + last.end))
        return windows

    @staticmethod
    def _reason(sentences: Sequence[str], number: int, wanted: set[str], whole: bool) -> tuple[str, bool, str] | None:
        """The reason's text, whether it is explicit, and the effect it leads to (if the text marks one); `whole`:
        the sentence has every word of the question."""
        sentence = sentences[number]

        def says_more(text: str) -> bool:
            return len(terms(text)[0] - wanted) >= MIN_NEW_WORDS

        for cause in _CAUSE.finditer(sentence):
            text = f"{cause.group('cue') or cause.group('with')} {cause.group('reason')}"
            if says_more(cause.group("reason")):
                cue = (cause.group("cue") or "").split()
                return text, bool(cue) and cue[0].lower() in _STRONG_CUES, ""
        means = _MEANS.match(sentence)
        if (
            means is not None
            and means.group("verb").lower() not in _NOT_PARTICIPLES
            and says_more(means.group("reason"))
        ):
            # The main clause is the effect: a draft that only restates it gives no reason.
            return means.group("reason"), False, sentence[means.end() :]
        if whole:
            purpose = _PURPOSE.match(sentence[_after_last_word(sentence, wanted) :])
            if purpose is not None and says_more(purpose.group("reason")):
                return purpose.group("reason"), True, ""
        effect = _EFFECT.search(sentence)
        if effect is not None:
            before = _LEADING_LINK.sub("", sentence[: effect.start()])
            if says_more(before):
                return before, False, sentence[effect.start() :]
        if _CONCLUSION.search(sentence) and number > 0:
            earlier = _LEADING_LINK.sub("", sentences[number - 1])
            if says_more(earlier):
                return earlier, False, sentence
        return None


@dataclass(frozen=True)
class _Paraphrase:
    """A passage sentence holding at least `MIN_MATCH` of a "why" question's words."""

    share: float
    passage: int  # 0-based
    sentence: int  # its number among the passage's sentences
    spans: list[Span]  # every sentence of the passage, in passage offsets


def _paraphrasing_sentences(question: str, passages: Sequence[Passage]) -> tuple[set[str], list[_Paraphrase]]:
    """The "why" question's own words (its frame left out) and, in passage order, the sentences that match at least
    `MIN_MATCH` of them; nothing for another kind of question. The header passage is never one of them: it names
    the title's words whatever the question."""
    if not _WHY.search(question):
        return set(), []
    wanted = terms(question)[0] - _QUESTION_FRAME
    if not wanted:
        return wanted, []
    found = []
    for index, passage in enumerate(passages):
        if passage.retriever == "document":
            continue
        spans = sentence_spans(passage.text)
        for number, span in enumerate(spans):
            share = len(wanted & terms(passage.text[span.start : span.end])[0]) / len(wanted)
            if share >= MIN_MATCH:
                found.append(_Paraphrase(share, index, number, spans))
    return wanted, found


def _after_last_word(sentence: str, wanted: set[str]) -> int:
    """The offset just after the sentence's last word that is one of the question's."""
    end = 0
    for match in re.finditer(r"[\w’']+", sentence):
        if terms(match.group())[0] & wanted:
            end = match.end()
    return end
