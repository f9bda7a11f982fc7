"""Numbers an answer may give although no passage states them: counts of what a passage lists, and differences
between two figures it gives. Each is shown only when the computation from the passages gives the same number.

A 1.5B model answers "How many 19th-century treaties does the article name?" with "2", rightly, and "By how many
percentage points does 90% exceed 70%?" with "20%"; the evidence check withheld both, because "2" and "20" occur in
no passage. Here the count is recomputed from the cited sentence (the question's noun ranked "second", named twice,
or a list of that many items next to the question's words) and the difference from the one pair of same-kind
figures in the cited passages whose difference it is; the difference is then written out as the calculation
(`90 - 70 = 20`), which the ordinary calculation check verifies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from index.sentences import sentences
from rag.answer_fit import CITATION_MARKS
from rag.grounding import normalise_number, stem, terms
from rag.number_binding import NumberKind, mentions
from rag.stopwords import FUNCTION_WORDS

_CITES = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_COUNT_QUESTION = re.compile(r"\bhow\s+many\b", re.IGNORECASE)
# The noun a "how many" question counts, as one of the first two words after it ("how many 19th-century treaties").
_COUNTED_NOUN = re.compile(r"\bhow\s+many\s+([A-Za-z0-9-]+)(?:\s+([A-Za-z]+))?", re.IGNORECASE)
_DIFFERENCE_QUESTION = re.compile(
    r"\bby\s+how\s+(?:many|much)\b|\bhow\s+(?:many|much)\s+(?:more|less|fewer|higher|lower|larger|smaller|bigger)\b"
    r"|\b(?:exceed|difference|gap)\b",
    re.IGNORECASE,
)
_ANSWER_NUMBER = re.compile(
    r"(?<![\d,.])(\d[\d,]*(?:\.\d+)?)(?![\d,]*\d)|\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b",
    re.IGNORECASE,
)
_ORDINALS = {
    "second": "2",
    "third": "3",
    "fourth": "4",
    "fifth": "5",
    "sixth": "6",
    "seventh": "7",
    "eighth": "8",
    "ninth": "9",
    "tenth": "10",
}
_ORDINAL = re.compile(rf"\b({'|'.join(_ORDINALS)})\s+([A-Za-z]+)(?:\s+([A-Za-z]+))?", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_LIST_JOIN = re.compile(r"\s+(?:and|or)\s+")
# Words that end a list item when walking back from "and": they belong to the clause around the list.
# fmt: off
_ITEM_STOP = FUNCTION_WORDS | frozenset([
    "with", "these", "those", "means", "including", "such", "like", "than", "into", "over", "under", "between",
    "during", "after", "before", "about", "said", "says",
])
# fmt: on
# The largest count a model is taken to have counted itself (a list of items), not copied.
MAX_COUNTED = 12
_PERCENT = re.compile(r"%|\bper\s?cent\b|\bpercent\b", re.IGNORECASE)
# How many words either side of a list count as "next to" it.
_NEAR = 4


@dataclass(frozen=True)
class CountedList:
    """A list of items in a sentence ("munitions, tanks, armored vehicles, missiles and drones") and the words
    around it."""

    items: int
    around: frozenset[str]


def _single_number(answer: str, question: str) -> str | None:
    """The answer's one number that the question does not give, normalised ("two" → "2"), or None."""
    text = CITATION_MARKS.sub(" ", answer)
    question_numbers = terms(question)[1]
    numbers = {normalise_number(m.group(1) or m.group(2)) for m in _ANSWER_NUMBER.finditer(text)} - question_numbers
    return numbers.pop() if len(numbers) == 1 else None


def lists(sentence: str) -> list[CountedList]:
    """Every list of two or more items joined by "and"/"or", walked back over commas: an item is the last words
    (at most three) of a comma-separated piece before a word like "with" or "the"; the list goes on past a comma
    only while a whole piece is one item ("produce munitions, tanks, armored vehicles, missiles and drones": 5)."""
    found = []
    for join in _LIST_JOIN.finditer(sentence):
        before = sentence[: join.start()]
        items = 1  # the item after "and"
        for piece in reversed(before.split(",")):
            words = _WORD.findall(piece)
            item: list[str] = []
            for word in reversed(words):
                if word.lower() in _ITEM_STOP or len(item) == 3:
                    break
                item.append(word)
            if not item:
                break
            items += 1
            if len(item) < len(words):
                break
        if items >= 2:
            near = _WORD.findall(before)[-(_NEAR + 6) :] + _WORD.findall(sentence[join.end() :])[: _NEAR + 1]
            found.append(CountedList(items, frozenset(stem(w) for w in near)))
    return found


class ImpliedNumbers:
    """Recomputes counts and differences an answer gives from the passages it cites."""

    def count_supported(self, question: str, answer: str, sources: Sequence[str]) -> str | None:
        """The answer's count, when a cited sentence shows it: the question's noun ranked that high ("their second
        telephone exchange"), named that many times, or a list of that many items next to the question's words."""
        if not _COUNT_QUESTION.search(question):
            return None
        count = _single_number(answer, question)
        if count is None or not count.isdigit() or int(count) < 2:
            return None
        question_words = terms(question)[0]
        for sentence in (s for source in sources for s in sentences(source)):
            if any(
                _ORDINALS[m.group(1).lower()] == count and {stem(w) for w in m.groups()[1:] if w} & question_words
                for m in _ORDINAL.finditer(sentence)
            ):
                return count
            named = [stem(w) for w in _WORD.findall(sentence)]
            if any(named.count(word) == int(count) for word in question_words):
                return count
            if any(str(found.items) == count and found.around & question_words for found in lists(sentence)):
                return count
        return None

    def corrected_count(self, question: str, answer: str, sources: Sequence[str]) -> tuple[str, int] | None:
        """A miscounted "how many" draft ("3" where the cited sentence lists two countries) replaced by the one count
        the sources show, with the index of the source showing it. Only a draft that is itself a small count
        (2 to `MAX_COUNTED`) that no source states is replaced: the model tried to count. A figure ("1,000", "30%",
        "millions") is left to the other checks, and so is a difference ("by how many").
        """
        if not _COUNT_QUESTION.search(question) or _DIFFERENCE_QUESTION.search(question):
            return None
        drafted = _single_number(answer, question)
        if drafted is None or not drafted.isdigit() or not 2 <= int(drafted) <= MAX_COUNTED:
            return None
        if _PERCENT.search(CITATION_MARKS.sub(" ", answer)) or any(drafted in terms(s)[1] for s in sources):
            return None
        if self.count_supported(question, answer, sources) is not None:
            return None
        return self.count_shown(question, sources)

    def count_shown(self, question: str, sources: Sequence[str]) -> tuple[str, int] | None:
        """For a "how many" question: the one count the sources show for it (a list of that many items next to the
        question's words, the counted noun named that many times or ranked that high) and the index of the source
        showing it; None when they show none, or different counts (which one is meant cannot be told)."""
        asked = _COUNTED_NOUN.search(question)
        if asked is None:
            return None
        question_words = terms(question)[0]
        nouns = {stem(w) for w in asked.groups() if w} & question_words
        shown: dict[str, int] = {}
        for index, source in enumerate(sources):
            for sentence in sentences(source):
                # Two of the question's words beside the list, not one: "That March, Chinese and Soviet forces" is no
                # answer to "how many Chinese troops".
                counts = {str(found.items) for found in lists(sentence) if len(found.around & question_words) >= 2}
                named = [stem(w) for w in _WORD.findall(sentence)]
                counts |= {str(named.count(noun)) for noun in nouns if named.count(noun) >= 2}
                counts |= {
                    _ORDINALS[m.group(1).lower()]
                    for m in _ORDINAL.finditer(sentence)
                    if {stem(w) for w in m.groups()[1:] if w} & nouns
                }
                for count in counts:
                    shown.setdefault(count, index)
        return next(iter(shown.items())) if len(shown) == 1 else None

    def difference(self, question: str, answer: str, sources: Sequence[str], cites: str) -> str | None:
        """The answer rewritten as the calculation that gives it ("20 percentage points: 90 - 70 = 20 [1]."), when
        exactly one pair of same-kind figures in the cited passages differs by the answer's number."""
        if not _DIFFERENCE_QUESTION.search(question):
            return None
        result = _single_number(answer, question)
        if result is None or any(result in terms(source)[1] for source in sources):
            return None
        figures: dict[tuple[str, NumberKind], None] = {}
        for source in sources:
            for sentence in sentences(source):
                for mention in mentions([sentence]):
                    figures[(mention.value, mention.kind)] = None
        pairs = {
            (a, b, kind)
            for (a, kind) in figures
            for (b, other) in figures
            if kind == other and _difference(a, b) == result
        }
        if len(pairs) != 1:
            return None
        ((larger, smaller, kind),) = pairs
        unit = " percentage points" if kind == "percent" else (" years" if kind == "year" else "")
        return f"{result}{unit}: {larger} - {smaller} = {result} {cites}."


def _difference(a: str, b: str) -> str | None:
    try:
        value = float(a) - float(b)
    except ValueError:
        return None
    if value <= 0:
        return None
    return str(round(value)) if abs(value - round(value)) < 1e-9 else f"{value:.2f}".rstrip("0").rstrip(".")
