"""Years (or days) between two events the question names, computed from the passages instead of by the model.

"How many years after Deng's U.S. visit did Gorbachev resign?" needs two years from two sentences and one
subtraction; "How many days after the phone call was the article published?" needs two dates, one of them the
document's own publication date (from its header, cited to it). A 1.5B model picks the wrong year or invents one
(1828 for 1858) in most such drafts; finding the sentence that best matches each event and the year (or date)
that sentence states is a computation, and so is the difference. When both events are found, the computed answer
replaces the draft (and cites the two sentences' passages); when either is not, the draft goes through the
ordinary checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from index.sentences import sentence_spans
from index.types import Document
from rag.grounding import stem, terms
from rag.types import Passage

_SPAN_QUESTION = re.compile(r"^\s*how\s+many\s+(?P<unit>years|days)\b", re.IGNORECASE)
# The document's own publication as one of the two events.
PUBLICATION = "(publication)"
_PUBLISHED = (
    r"(?:the|this)\s+(?:article|story|piece|column|op-?ed|report|post|essay)\s+(?:was\s+)?"
    r"(?:published|written|posted|printed)"
)
_PUBLICATION_EVENTS = [
    re.compile(rf"\b(?:after|before)\s+{_PUBLISHED}\s+(?:did|was|were|had|has|is)\s+(?P<b>.+)$", re.IGNORECASE),
    re.compile(rf"\b(?:after|before)\s+(?P<a>.+?)\s+(?:was|is)\s+{_PUBLISHED}$", re.IGNORECASE),
    re.compile(rf"\bbetween\s+(?P<a>.+?)\s+and\s+(?:the\s+)?(?:publication|{_PUBLISHED})", re.IGNORECASE),
]
_MONTH_NUMBER = {
    m: i
    for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)
}
# "February 26, 2025", "Feb. 24", "Dec. 25, 1991": a month, a day, maybe a year.
_DATE = re.compile(
    r"\b(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?\s+(?P<day>\d{1,2})(?!\d)"
    r"(?:,?\s+(?P<year>1[5-9]\d{2}|20\d{2}))?"
)
_EVENTS = [
    re.compile(r"\bbetween\s+(?P<a>.+?)\s+and\s+(?P<b>.+)$", re.IGNORECASE),
    re.compile(r"\bapart\s+(?:were|are|was|is)\s+(?P<a>.+?)\s+and\s+(?P<b>.+)$", re.IGNORECASE),
    re.compile(r"\b(?:after|before)\s+(?P<a>.+?)\s+(?:did|was|were|had|has|is)\s+(?P<b>.+)$", re.IGNORECASE),
]
_YEAR = re.compile(r"(?<![\d,.$])(1[5-9]\d{2}|20\d{2})(?!\d|[,.]\d|\s*%)")
_WORD = re.compile(r"[A-Za-z]+(?:['’][a-z]+)?")
# Words every event description shares with the question's frame, not with its event.
_FRAME = frozenset({"year", "years", "passe", "elaps", "went", "happe", "occur", "take", "took"})
# Share of an event's content words the dating sentence must contain.
_MIN_MATCH = 0.6
# How far back (characters, same paragraph) a sentence without a year of its own looks for the narrative's year.
_NARRATIVE_REACH = 600


@dataclass(frozen=True)
class DatedEvent:
    """An event of the question, dated by a passage sentence (`day` when the sentence gives month and day)."""

    year: int
    passage: int  # 0-based index into the passages
    match: float
    day: date | None = None


@dataclass(frozen=True)
class YearSpan:
    """A computed answer and the numbers it rests on that no passage need state: the years it was computed from
    (each read from a cited passage, the paragraph it is narrated in or the report's date) or, for days, the
    result."""

    text: str
    numbers: frozenset[str]


def parse_date(text: str, default_year: int | None = None) -> date | None:
    """The first "Month day[, year]" in `text`, the year defaulting to `default_year`."""
    match = _DATE.search(text)
    if match is None:
        return None
    year = int(match.group("year")) if match.group("year") else default_year
    if year is None:
        return None
    try:
        return date(year, _MONTH_NUMBER[match.group("month")[:3].lower()], int(match.group("day")))
    except ValueError:
        return None


class YearSpanSolver:
    """Computes "how many years (or days) between A and B" from the passages, or says it cannot."""

    def __init__(
        self,
        document_text: Callable[[str], str | None] | None = None,
        document: Callable[[str], Document | None] | None = None,
    ) -> None:
        # The whole document, to find the year a sentence without one is narrated in ("That March, …").
        self.document_text = document_text
        # The document's parsed facts, for its publication date.
        self.document = document

    @staticmethod
    def events(question: str) -> tuple[str, str] | None:
        """The two events a span question names (`PUBLICATION` for the document's own), or None when it is not one."""
        if not _SPAN_QUESTION.search(question):
            return None
        body = question.strip().rstrip("?").strip()
        for pattern in _PUBLICATION_EVENTS:
            match = pattern.search(body)
            if match:
                other = match.groupdict().get("a") or match.groupdict().get("b") or ""
                return (other, PUBLICATION) if "a" in match.groupdict() else (PUBLICATION, other)
        for pattern in _EVENTS:
            match = pattern.search(body)
            if match:
                return match.group("a"), match.group("b")
        return None

    def run(self, question: str, passages: Sequence[Passage]) -> YearSpan | None:
        """The computed answer with its citations ("12 years: 1991 - 1979 = 12 [2][1]."), or None."""
        events = self.events(question)
        if events is None:
            return None
        in_days = _SPAN_QUESTION.search(question).group("unit").lower() == "days"  # type: ignore[union-attr]
        dated = [self._published(passages) if e == PUBLICATION else self.date(e, passages) for e in events]
        first, second = dated
        if first is None or second is None:
            return None
        if in_days:
            if first.day is None or second.day is None or first.day == second.day:
                return None
            later, earlier = (first, second) if first.day > second.day else (second, first)
            days = (later.day - earlier.day).days  # type: ignore[operator]
            text = f"{days} days: from {_show(earlier.day)} to {_show(later.day)} {_cites(earlier, later)}."
            read = {str(n) for d in (earlier.day, later.day) if d is not None for n in (d.day, d.year)}
            return YearSpan(text, frozenset({str(days), *read}))
        if first.year == second.year:
            return None
        later, earlier = (first, second) if first.year > second.year else (second, first)
        years = later.year - earlier.year
        text = f"{years} years: {later.year} - {earlier.year} = {years} {_cites(earlier, later)}."
        return YearSpan(text, frozenset({str(later.year), str(earlier.year)}))

    def _published(self, passages: Sequence[Passage]) -> DatedEvent | None:
        """The publication date of the document whose header passage is given, when the header states it."""
        if self.document is None:
            return None
        for index, passage in enumerate(passages):
            if passage.retriever != "document":
                continue
            document = self.document(passage.doc_id)
            if document is None or not document.published or document.published not in passage.text:
                return None
            published = parse_date(document.published)
            if published is None:
                return None
            return DatedEvent(published.year, index, 1.0, published)
        return None

    def date(self, event: str, passages: Sequence[Passage]) -> DatedEvent | None:
        """The year (and day, when stated) of the passage sentence that best matches the event, if one matches
        well enough."""
        wanted = terms(event)[0] - _FRAME
        if not wanted:
            return None
        best: DatedEvent | None = None
        for index, passage in enumerate(passages):
            for span in sentence_spans(passage.text):
                sentence = passage.text[span.start : span.end]
                matched = wanted & terms(sentence)[0]
                share = len(matched) / len(wanted)
                if share < _MIN_MATCH or (best is not None and share <= best.match):
                    continue
                year = (
                    self._year_of(sentence, matched)
                    or self._narrative_year(passage, span.start)
                    or self._report_year(passage, sentence)
                )
                if year is not None:
                    best = DatedEvent(year, index, share, parse_date(sentence, year))
        return best

    @staticmethod
    def _year_of(sentence: str, matched: set[str]) -> int | None:
        """The year stated nearest to the event's words in the sentence ("1858 and the Treaty of Aigun and
        the Treaty of Peking in 1860": Peking is 1860)."""
        years = [(m.start(), int(m.group(1))) for m in _YEAR.finditer(sentence)]
        if not years:
            return None
        positions = [m.start() for m in _WORD.finditer(sentence) if stem(m.group()) in matched]
        if not positions:
            return years[0][1]
        return min(years, key=lambda year: min(abs(year[0] - p) for p in positions))[1]

    def _narrative_year(self, passage: Passage, offset: int) -> int | None:
        """The last year stated before this sentence in its paragraph (the passage first, then the document)."""
        before = passage.text[:offset]
        if self.document_text is not None:
            document = self.document_text(passage.doc_id)
            if document is not None and document[passage.start : passage.end] == passage.text:
                before = document[max(0, passage.start - _NARRATIVE_REACH) : passage.start + offset]
        paragraph = before.rsplit("\n\n", 1)[-1]
        years = _YEAR.findall(paragraph)
        return int(years[-1]) if years else None

    def _report_year(self, passage: Passage, sentence: str) -> int | None:
        """A news report's "Feb. 24" without a year is the last Feb. 24 on or before the day it was published (so
        only a month and day, never an undated event, is placed in the publication year)."""
        document = self.document(passage.doc_id) if self.document is not None else None
        published = parse_date(document.published) if document is not None and document.published else None
        if published is None:
            return None
        for year in (published.year, published.year - 1):
            day = parse_date(sentence, year)
            if day is not None and day <= published:
                return year
        return None


def _cites(earlier: DatedEvent, later: DatedEvent) -> str:
    """The citation marks of the passages the two events were dated from, earlier first, each once."""
    return "".join(f"[{n + 1}]" for n in dict.fromkeys([earlier.passage, later.passage]))


def _show(day: date | None) -> str:
    return f"{day:%B} {day.day}, {day.year}" if day is not None else ""
