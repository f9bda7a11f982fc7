"""Sentence segmentation with exact character spans, for passages that never start inside a sentence."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that end in a full stop without ending a sentence ("Mr. Xi", "Feb. 3", "U.S. forces").
ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sen",
        "rep",
        "gen",
        "gov",
        "st",
        "jr",
        "sr",
        "inc",
        "ltd",
        "co",
        "corp",
        "vs",
        "etc",
        "no",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "u.s",
        "u.k",
        "u.n",
        "e.g",
        "i.e",
        "col",
        "lt",
        "capt",
        "sgt",
        "adm",
        "fig",
        "vol",
        "pp",
        "approx",
        "est",
        "dept",
        "univ",
        "ave",
        "blvd",
        "mt",
        "ft",
    ]
)
# End punctuation, any closing quotes or brackets, then space before the next sentence's first character.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])")
_LAST_WORD = re.compile(r"(?<![A-Za-z.])([A-Za-z][A-Za-z.]*)\.$")


@dataclass(frozen=True)
class Span:
    """`text[start:end]` of the text it was found in; never includes surrounding whitespace."""

    start: int
    end: int


def _is_abbreviation(text: str, period_end: int) -> bool:
    match = _LAST_WORD.search(text, max(0, period_end - 12), period_end)
    if not match or text[period_end - 1] != ".":
        return False
    word = match.group(1).lower()
    # A single capital letter is an initial ("Joseph R. DeTrani"), not a sentence end.
    return word in ABBREVIATIONS or (len(word) == 1 and match.group(1).isupper())


def _trimmed(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


def sentence_spans(text: str) -> list[Span]:
    """Sentences of `text` in order. A line break always ends a sentence (headings, bylines, list items)."""
    spans: list[Span] = []
    line_start = 0
    for line in text.split("\n"):
        line_end = line_start + len(line)
        start = line_start
        for boundary in _BOUNDARY.finditer(text, line_start, line_end):
            if _is_abbreviation(text, boundary.start() + len(boundary.group(0).rstrip("\"'”’)]"))):
                continue
            span = _trimmed(text, start, boundary.end())
            if span:
                spans.append(span)
            start = boundary.end()
        span = _trimmed(text, start, line_end)
        if span:
            spans.append(span)
        line_start = line_end + 1
    return spans


def sentences(text: str) -> list[str]:
    """The sentences themselves (for answers and checks)."""
    return [text[s.start : s.end] for s in sentence_spans(text)]
