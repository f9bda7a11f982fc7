"""Does the answer fit the question? Computable checks of what kind of answer was asked for.

The evidence checks (`rag.grounding`) show that an answer's words come from a cited sentence; they cannot
show that the sentence answers *this* question. Near-miss questions ("What percentage of Russia's drones…",
"Which U.S. president did Deng meet…") were answered with text copied faithfully from a neighbouring fact.
These checks catch the measurable part of that: an answer that only repeats the question, a percentage
asked for and a dollar figure given, a count asked for and a share or a sum of money given, a year asked for
and none given, a rate per day asked for and one per month given, the first of something asked for and the
sources only telling of the second.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.grounding import normalise_number, shared_prefix, stem, terms

# Citation marks ("[1]", "[1, 2]"), removed before an answer's words are compared.
CITATION_MARKS = re.compile(r"\s*\[[^\]]*\]")
_PERCENT_QUESTION = re.compile(
    r"\b(what|which)\s+(percentage|percent|share|proportion|fraction)\b|\bby\s+what\s+(percentage|percent)\b",
    re.IGNORECASE,
)
_PERCENT_ANSWER = re.compile(
    r"%|\bper\s?cent|\bpercent|\b(half|halves|thirds?|quarters?|fifths?|tenths?|majority|most|all|none)\b",
    re.IGNORECASE,
)
_COUNT_QUESTION = re.compile(r"\bhow\s+many\s+(?P<unit>[a-z]+)", re.IGNORECASE)
_QUANTITY = re.compile(
    r"\d|\b(zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundreds?|"
    r"thousands?|millions?|billions?|dozens?|several|few|many|numerous|none|no|single|both|once|twice)\b",
    re.IGNORECASE,
)
_PERCENTAGE_ONLY = re.compile(r"\d[\d,.]*\s*(%|per\s?cent|percent)", re.IGNORECASE)
_YEAR_QUESTION = re.compile(r"\b(what|which)\s+year\b", re.IGNORECASE)
_YEAR = re.compile(r"\b(1\d{3}|20\d{2})\b")
# The period a rate word names.
PERIOD_NAMES = {
    "day": "day",
    "daily": "day",
    "week": "week",
    "weekly": "week",
    "month": "month",
    "monthly": "month",
    "year": "year",
    "yearly": "year",
    "annually": "year",
    "annual": "year",
}
# "each day", "per month", "a year", "daily": the period a rate is given for.
_RATE = re.compile(
    r"\b(?:each|per|a|every)\s+(day|week|month|year)\b|\b(daily|weekly|monthly|yearly|annually|annual)\b", re.IGNORECASE
)
_MONEY_UNIT = re.compile(
    r"\b(dollars?|euros?|yuan|rubles?|roubles?|money|worth|value|cost|spend|spent|pay|paid)\b", re.IGNORECASE
)
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
# "75 members", "about 400 hives", "1 million troops": a number, its scale word if any, and what it counts.
_COUNTED = re.compile(r"(?<![\d,.])(\d[\d,]*)[ \t]+(?:(?:hundred|thousand|million|billion|trillion)[ \t]+)?([A-Za-z]+)")
# The words that qualify a count where it is stated ("more than 1 million troops"): part of the answer.
_COUNT_QUALIFIER = re.compile(
    r"(?:\b(?:more\s+than|over|about|around|nearly|almost|roughly|some|at\s+least|up\s+to|fewer\s+than|less\s+than)\s+)?$",
    re.IGNORECASE,
)
# "the first telephone exchange", "their 2nd visit": an ordinal and the word it ranks.
_ORDINAL = re.compile(
    r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|\d+(?:st|nd|rd|th))\s+"
    r"(?:[a-z]+[ \t]+)?([A-Za-z]+)",
    re.IGNORECASE,
)
# An either-or question is answered by repeating one of its options.
_CHOICE = re.compile(r"\bor\b", re.IGNORECASE)


# A word repeats a question's word when they differ only in an ending this long ("system"/"systems",
# "China"/"Chinese"); the five-letter stems of the evidence check are too coarse here ("immunomodulators" is not
# "immune").
MAX_REPEAT_ENDING = 3


def _repeated(word: str, question_words: set[str]) -> bool:
    return any(
        stem(word) == stem(other) and shared_prefix(word, other) >= max(len(word), len(other)) - MAX_REPEAT_ENDING
        for other in question_words
    )


@dataclass(frozen=True)
class AnswerFit:
    """Checks the shape of an answer against the shape of its question; `problem` says what does not fit."""

    def problem(self, question: str, answer: str, computed: bool = False, sources: Sequence[str] = ()) -> str | None:
        """None when the answer fits the question; otherwise a short reason, for logs and the eval report.
        `sources` are the cited passages' texts, where the answer's numbers come from."""
        text = CITATION_MARKS.sub(" ", answer)
        if not computed and not _CHOICE.search(question):
            answer_words, answer_numbers = terms(text, whole_words=True)
            question_words, question_numbers = terms(question, whole_words=True)
            repeated = all(_repeated(word, question_words) for word in answer_words)
            repeats = repeated and answer_numbers <= question_numbers
            if (answer_words or answer_numbers) and repeats:
                return "the answer only repeats the question"
        if _PERCENT_QUESTION.search(question) and not _PERCENT_ANSWER.search(text):
            return "a percentage was asked for and the answer gives none"
        count = _COUNT_QUESTION.search(question)
        if count is not None:
            if not _QUANTITY.search(text):
                return "a count was asked for and the answer gives no number"
            unit = count.group("unit").lower()
            if not unit.startswith("percent") and not computed:
                numbers = _NUMBER.findall(text)
                if numbers and len(_PERCENTAGE_ONLY.findall(text)) == len(numbers):
                    return "a count was asked for and the answer gives a percentage"
            if not computed and _money_only(text, sources) and not _MONEY_UNIT.search(question):
                return "a count was asked for and the answer gives a sum of money"
            if not computed and _counts_something_else(text, unit, sources):
                return f"a count of {unit} was asked for and the sources give the answer's number for something else"
        if _YEAR_QUESTION.search(question) and not _YEAR.search(text) and not computed:
            return "a year was asked for and the answer gives none"
        other = _other_ordinal(question, sources)
        if other is not None:
            return other
        asked, given = periods(question), periods(text)
        if asked and given and not asked & given:
            return "a rate per " + "/".join(sorted(asked)) + " was asked for and the answer gives another period"
        return None


def recount(question: str, answer: str, sources: Sequence[str]) -> tuple[str, int] | None:
    """For "how many troops?" answered with the figure the sources give for something else ("42 divisions" beside
    "more than 1 million troops"): the one phrase in `sources` that counts what was asked, qualifier included, and
    the index of the source stating it. None when the answer fits, or when the sources count it more than one way
    (which one is meant cannot be told)."""
    count = _COUNT_QUESTION.search(question)
    text = CITATION_MARKS.sub(" ", answer)
    if count is None or not _counts_something_else(text, count.group("unit").lower(), sources):
        return None
    unit_stem = stem(count.group("unit"))
    found: dict[str, tuple[str, int]] = {}
    for index, source in enumerate(sources):
        for match in _COUNTED.finditer(source):
            if stem(match.group(2)) != unit_stem:
                continue
            qualifier = _COUNT_QUALIFIER.search(source[: match.start()])
            start = qualifier.start() if qualifier is not None else match.start()
            found.setdefault(normalise_number(match.group(1)), (source[start : match.end()], index))
    return next(iter(found.values())) if len(found) == 1 else None


def _ordinals(text: str) -> set[tuple[str, str]]:
    """(ordinal, stem of the word it ranks) pairs, with one optional word between ("second telephone exchange"
    gives both "second/telep" and "second/excha")."""
    pairs = set()
    for match in _ORDINAL.finditer(text):
        ordinal = match.group(1).lower()
        pairs.add((ordinal, stem(match.group(2))))
        between = re.match(r"\s+([A-Za-z]+)", text[match.end(1) :])
        if between:
            pairs.add((ordinal, stem(between.group(1))))
    return pairs


def _other_ordinal(question: str, sources: Sequence[str]) -> str | None:
    """The question asks for the first of something and the sources rank that thing only as the second (or any
    other mismatch): the answer is about another occurrence than the one asked for."""
    asked = _ordinals(question)
    if not asked or not sources:
        return None
    stated = set().union(*(_ordinals(source) for source in sources))
    for ordinal, ranked in asked:
        others = {o for o, r in stated if r == ranked and o != ordinal}
        if others and (ordinal, ranked) not in stated:
            return f"the {ordinal} {ranked}… was asked for and the sources tell of the {'/'.join(sorted(others))}"
    return None


def periods(text: str) -> set[str]:
    """The periods the text gives rates for ("per month", "daily" → {"month", "day"})."""
    return {PERIOD_NAMES[(m.group(1) or m.group(2)).lower()] for m in _RATE.finditer(text)}


def _counts_something_else(answer: str, unit: str, sources: Sequence[str]) -> bool:
    """The sources count `unit` with another number ("400 hives") and give each of the answer's numbers only as
    a count of something else ("75 members"): the answer copied the neighbouring figure."""
    counted: dict[str, set[str]] = {}
    for source in sources:
        for number, noun in _COUNTED.findall(source):
            counted.setdefault(normalise_number(number), set()).add(stem(noun))
    unit_stem = stem(unit)
    if not any(unit_stem in nouns for nouns in counted.values()):
        return False
    numbers = [normalise_number(n) for n in _NUMBER.findall(answer)]
    return bool(numbers) and all(n in counted and unit_stem not in counted[n] for n in numbers)


def _money_only(answer: str, sources: Sequence[str]) -> bool:
    """Every number of the answer is written as a sum of money ("$300 million") wherever the sources state it."""
    numbers = _NUMBER.findall(answer)
    if not numbers or not sources:
        return False
    for number in numbers:
        found = [m for source in sources for m in re.finditer(rf"(?<![\d,.]){re.escape(number)}(?![\d,]|\.\d)", source)]
        as_money = [m for m in found if m.string[max(0, m.start() - 4) : m.start()].rstrip().endswith("$")]
        if not found or len(as_money) < len(found):
            return False
    return True
