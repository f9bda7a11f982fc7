"""Which of a sentence's numbers the question asks about: a short numeric answer must be the number of the clause
the question is about.

A sentence often pairs several numbers with several things ("about 70% of the machine tools and 90% of the
microelectronics Russia imports come from China"; "a former special envoy … (2003-2006) and a former director of
the National Counterproliferation Center"). The evidence check sees the answer's number in the cited sentence and
passes it, however it was paired. This check splits the sentence into clauses and compares them: when the answer's
number sits in a clause that shares no word with the question, while a *parallel* clause (one that carries a number
of the same kind, or repeats the answer clause's opening words) does, the answer copied the neighbouring figure.
With exactly one number of the right kind in that clause the answer is corrected to it; otherwise it is withheld.
A number whose clause is dated to another year than the one the question names is withheld too ("$240 billion in
2023, an increase of 64% since 2021" does not say what trade was worth in 2021).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from index.sentences import sentences
from rag.answer_fit import CITATION_MARKS
from rag.grounding import MONTHS, normalise_number, terms
from rag.stopwords import STOPWORDS

NumberKind = Literal["percent", "money", "year", "count"]

_NUMBER = re.compile(
    r"(?P<dollar>\$\s?)?(?<![\d,.])(?P<n>\d[\d,]*(?:\.\d+)?)(?![\d,]*\d)(?P<percent>\s?(?:%|per\s?cent\b|percent\b))?",
    re.IGNORECASE,
)
_YEAR = re.compile(r"^(1[5-9]\d{2}|20\d{2})$")
_YEAR_RANGE_GAP = re.compile(r"\s*[-–]\s*")
# Where one clause of a sentence ends and the next begins: commas, semicolons, dashes, coordinating words.
_CLAUSE_BREAK = re.compile(r",\s+|;\s+|\s+[—–]\s+|\s+(?:and|or|but|while|whereas)\s+")
_OPENING = re.compile(r"[a-z]+", re.IGNORECASE)
# Words and figures of a clause, to tell a list item ("Ireland") from a clause ("Norway in 1972").
_LIST_WORD = re.compile(r"[A-Za-z][\w'’.-]*|\d")
MAX_LIST_ITEM_WORDS = 3
# Words every question shares with any clause: they say nothing about which clause is meant.
_QUESTION_FRAME = frozenset({"year", "share", "perce", "many", "much", "numbe", "amoun", "total", "roughly", "about"})


@dataclass(frozen=True)
class NumberMention:
    """A number in a sentence: its normalised value, what kind of number it is, and the clause it sits in."""

    value: str
    kind: NumberKind
    clause: int


@dataclass(frozen=True)
class BindingResult:
    """`corrected` is the answer with its number replaced by the one the question asks about; `problem` says why
    the answer's number answers another question. Both None: the number is where the question points."""

    corrected: str | None = None
    problem: str | None = None


def _kind(match: re.Match[str]) -> NumberKind:
    if match.group("percent"):
        return "percent"
    if match.group("dollar"):
        return "money"
    if _YEAR.match(match.group("n").replace(",", "")):
        return "year"
    return "count"


def _list_item(piece: str) -> bool:
    """A piece that is only a name or two and no figure ("Ireland", "the UK"): an item of a list whose figure, if
    any, comes with the last item ("the UK, Ireland, Denmark and Norway in 1972")."""
    words = [w for w in _LIST_WORD.findall(piece) if w.lower() not in STOPWORDS]
    return 0 < len(words) <= MAX_LIST_ITEM_WORDS and all(w[0].isupper() for w in words)


def clauses(sentence: str) -> list[str]:
    """The sentence cut at commas, semicolons, dashes and coordinating words. A piece with no content word of its
    own ("On Dec. 25", "1991"), or an item of a list of names, belongs to the piece after it."""
    pieces = [p.strip() for p in _CLAUSE_BREAK.split(sentence) if p.strip()]
    merged: list[str] = []
    carry = ""
    for piece in pieces:
        if not terms(piece)[0] - MONTHS or _list_item(piece):
            carry = f"{carry} {piece}".strip()
            continue
        merged.append(f"{carry} {piece}".strip())
        carry = ""
    if carry:
        if merged:
            merged[-1] = f"{merged[-1]} {carry}"
        else:
            merged.append(carry)
    return merged


def mentions(clause_texts: Sequence[str]) -> list[NumberMention]:
    """Every number of every clause, in order."""
    return [
        NumberMention(normalise_number(m.group("n")), _kind(m), i)
        for i, text in enumerate(clause_texts)
        for m in _NUMBER.finditer(text)
    ]


def _opening(text: str) -> str:
    words = _OPENING.findall(text.lower())
    return " ".join(words[:2]) if len(words) >= 2 else ""


# Question words a parallel clause must share for its number to replace the answer's.
MIN_CORRECTION_OVERLAP = 2


class NumberBinding:
    """Checks that a short numeric answer is the number of the clause the question is about."""

    def run(self, question: str, answer: str, sources: Sequence[str]) -> BindingResult:
        """The verdict on `answer` (with its citation marks) against the cited passages' texts."""
        text = CITATION_MARKS.sub(" ", answer)
        question_words, question_numbers = terms(question)
        question_words -= _QUESTION_FRAME
        answered = [m for m in _NUMBER.finditer(text) if normalise_number(m.group("n")) not in question_numbers]
        year_range = (
            len(answered) == 2
            and _YEAR_RANGE_GAP.fullmatch(text[answered[0].end() : answered[1].start()]) is not None
            and all(_YEAR.match(m.group("n")) for m in answered)
        )
        if year_range:
            # "2003-2006" is one period, stated in one clause: its first year says which clause it is.
            answered = answered[:1]
        # Only a short answer that is one number: a longer one carries words the evidence check weighs.
        if len(answered) != 1 or len(terms(text)[0] - question_words) > 3:
            return BindingResult()
        number = answered[0]
        value, kind = normalise_number(number.group("n")), _kind(number)
        question_years = {n for n in question_numbers if _YEAR.match(n)}
        verdicts: list[str] = [
            verdict
            for sentence in self._sentences(sources)
            if (verdict := self._in_sentence(sentence, value, kind, question_words, question_years)) is not None
        ]
        if not verdicts or any(v == "bound" for v in verdicts):
            return BindingResult()
        replacements = {v for v in verdicts if v not in ("unbound", "other_year")}
        # A period is never corrected to a single neighbouring year: only withheld.
        if len(replacements) == 1 and len(verdicts) == 1 and not year_range:
            (replacement,) = replacements
            start, end = number.span("n")
            offset = answer.find(text[number.start() : number.end()])
            if offset >= 0:
                begin = offset + (start - number.start())
                return BindingResult(corrected=answer[:begin] + replacement + answer[begin + (end - start) :])
        if "other_year" in verdicts:
            return BindingResult(problem="the answer's number is stated for another year than the question's")
        return BindingResult(problem="the answer's number belongs to another part of the sentence than the question")

    @staticmethod
    def _sentences(sources: Sequence[str]) -> list[str]:
        return [sentence for source in sources for sentence in sentences(source)]

    @staticmethod
    def _in_sentence(
        sentence: str, value: str, kind: NumberKind, question_words: set[str], question_years: set[str]
    ) -> str | None:
        """None when the sentence does not state the number; "bound" when it states it where the question points;
        "other_year" or "unbound" when it does not; otherwise the number (as written) the question points to."""
        parts = clauses(sentence)
        found = mentions(parts)
        own = [m for m in found if m.value == value and m.kind == kind]
        if not own:
            return None
        overlap = [len(question_words & terms(part)[0]) for part in parts]
        for mention in own:
            years = {m.value for m in found if m.clause == mention.clause and m.kind == "year"} - {value}
            if question_years and years and not question_years & years:
                return "other_year"
        if any(overlap[m.clause] > 0 for m in own):
            return "bound"
        answer_clause = own[0].clause
        opening = _opening(parts[answer_clause])
        parallel = [
            i
            for i, part in enumerate(parts)
            if i != answer_clause
            and (
                any(m.clause == i and m.kind == kind for m in found)
                or (opening and f" {opening} " in f" {' '.join(_OPENING.findall(part.lower()))} ")
            )
        ]
        best = max(parallel, key=lambda i: overlap[i], default=None)
        if best is None or overlap[best] == 0:
            return "bound"
        candidates = [m for m in found if m.clause == best and m.kind == kind and m.value != value]
        # One shared word ("Russia") can be the sentence's common subject: the answer is not where the question
        # points, but nothing says the neighbour is the figure asked for ("what share of Russia's drones…").
        strong = overlap[best] >= MIN_CORRECTION_OVERLAP
        if strong and len(candidates) == 1 and sum(overlap[i] == overlap[best] for i in parallel) == 1:
            match = next(
                m for m in _NUMBER.finditer(parts[best]) if normalise_number(m.group("n")) == candidates[0].value
            )
            return match.group("n")
        return "unbound"
