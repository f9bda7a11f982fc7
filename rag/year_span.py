"""Years between two events the question names, computed from the passages instead of by the model.

"How many years after Deng's U.S. visit did Gorbachev resign?" needs two years from two sentences and one
subtraction. A 1.5B model picks the wrong year or invents one (1828 for 1858) in most such drafts; finding
the sentence that best matches each event and the year that sentence states is a computation, and so is
the difference. When both events are found, the computed answer replaces the draft (and cites the two
sentences' passages); when either is not, the draft goes through the ordinary checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.sentences import sentence_spans
from rag.grounding import stem, terms
from rag.types import Passage

_SPAN_QUESTION = re.compile(r"^\s*how\s+many\s+years\b", re.IGNORECASE)
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
    """An event of the question, dated by a passage sentence."""

    year: int
    passage: int  # 0-based index into the passages
    match: float


@dataclass(frozen=True)
class YearSpan:
    """A computed answer and the years it was computed from (each read from a cited passage or the paragraph
    it is narrated in)."""

    text: str
    years: frozenset[str]


class YearSpanSolver:
    """Computes "how many years between A and B" from the passages, or says it cannot."""

    def __init__(self, document_text: Callable[[str], str | None] | None = None) -> None:
        # The whole document, to find the year a sentence without one is narrated in ("That March, …").
        self.document_text = document_text

    @staticmethod
    def events(question: str) -> tuple[str, str] | None:
        """The two events a year-span question names, or None when it is not one."""
        if not _SPAN_QUESTION.search(question):
            return None
        body = question.strip().rstrip("?").strip()
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
        dated = [self.date(event, passages) for event in events]
        first, second = dated
        if first is None or second is None or first.year == second.year:
            return None
        later, earlier = (first, second) if first.year > second.year else (second, first)
        years = later.year - earlier.year
        cites = "".join(f"[{n + 1}]" for n in dict.fromkeys([earlier.passage, later.passage]))
        text = f"{years} years: {later.year} - {earlier.year} = {years} {cites}."
        return YearSpan(text, frozenset({str(later.year), str(earlier.year)}))

    def date(self, event: str, passages: Sequence[Passage]) -> DatedEvent | None:
        """The year of the passage sentence that best matches the event, if one matches well enough."""
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
                year = self._year_of(sentence, matched) or self._narrative_year(passage, span.start)
                if year is not None:
                    best = DatedEvent(year, index, share)
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
