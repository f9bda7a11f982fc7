"""Who wrote a document, its title, when and where it appeared, who holds its copyright: read, not generated.

The byline "By Joseph R. DeTrani, The Washington Times" names both an author and a publisher, and the small
model answered "Who wrote the article?" with the publisher. The loader already parsed which is which
(`Document.author`, `.publisher`, `.published`, `.title`); when the question asks for one of those and the
document's header is among the passages, that fact, cited to the header, replaces the draft; so does the holder or
year of a copyright notice ("Copyright © 2025 The Washington Times, LLC.") printed in a passage. The answer then
goes through the ordinary checks like any other, so it is final only if the header states it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from index.types import Document
from rag.types import Passage

Fact = Literal["author", "title", "published", "weekday", "publisher", "copyright_holder", "copyright_year"]

_DOCUMENT = r"(?:article|story|piece|column|op-?ed|document|report|post|essay)"
# The question must name the document ("the article", "this story", "it"): "who wrote the treaty?" and "which
# newspaper published the Pentagon Papers?" ask about something the document reports, not about the document.
_IT = rf"(?:(?:the|this)\s+{_DOCUMENT}|it|this)"
_WRITTEN = r"(?:published|written|posted|dated|printed)"
# Most specific first: "what day of the week was it published" asks for the weekday, not the date.
_FACT_QUESTIONS: list[tuple[Fact, re.Pattern[str]]] = [
    ("weekday", re.compile(rf"\b(?:what|which)\s+day\s+of\s+the\s+week\b.{{0,30}}\b{_IT}\s+{_WRITTEN}\b", re.I)),
    (
        "author",
        re.compile(
            rf"\bwho\s+(?:wrote|authored|penned)\s+{_IT}\s*\??\s*$|"
            rf"\bwho\s+is\s+the\s+(?:author|writer)\s+of\s+{_IT}\b|\bwho\s+is\s+the\s+(?:author|writer)\s*\??\s*$|"
            rf"\b(?:name|identity)\s+of\s+the\s+(?:author|writer)(?:\s+of\s+{_IT})?\s*\??\s*$|"
            r"^\s*what\s+is\s+the\s+(?:author|writer)['’]s\s+name\s*\??\s*$",
            re.IGNORECASE,
        ),
    ),
    ("title", re.compile(rf"\b(?:title|headline)\s+of\s+(?:the|this)\s+{_DOCUMENT}\s*\??\s*$", re.IGNORECASE)),
    (
        "published",
        re.compile(
            rf"^\s*(?:when|(?:on\s+)?(?:what|which)\s+date)\s+(?:was|is)\s+{_IT}\s+{_WRITTEN}\s*\??\s*$|"
            rf"\bpublication\s+date\s+of\s+{_IT}\b",
            re.IGNORECASE,
        ),
    ),
    (
        "copyright_holder",
        re.compile(rf"\bwho\s+(?:holds|owns|has)\s+(?:the\s+)?copyright\s+(?:of|to|on|for)\s+{_IT}\b", re.I),
    ),
    (
        "copyright_year",
        re.compile(
            rf"\b(?:what|which)\s+year\s+(?:was|is)\s+{_IT}\s+copyrighted\b|\bcopyright\s+year\s+of\s+{_IT}\b",
            re.IGNORECASE,
        ),
    ),
    (
        "publisher",
        re.compile(
            r"\b(?:which|what)\s+(?:newspaper|paper|publication|outlet|magazine|site|website)\s+"
            rf"(?:published|ran|printed|carried)\s+{_IT}\s*\??\s*$|\bwho\s+published\s+{_IT}\s*\??\s*$",
            re.IGNORECASE,
        ),
    ),
]
# "Copyright © 2025 The Washington Times, LLC." — the notice a site prints under each article.
_COPYRIGHT = re.compile(
    r"(?:\bcopyright\b\s*(?:©|\(c\))?|©)\s*(?P<year>(?:19|20)\d{2})(?:\s*[-–]\s*(?:19|20)\d{2})?\s*,?\s+"
    r"(?P<holder>[^\n]+?)(?=\.\s|\.?$|\n)",
    re.IGNORECASE | re.MULTILINE,
)
_WEEKDAYS = re.compile(r"\b(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b")


def asked_fact(question: str) -> Fact | None:
    """Which fact about the document the question asks for, or None when it asks about something else."""
    for fact, pattern in _FACT_QUESTIONS:
        if pattern.search(question):
            return fact
    return None


class DocumentFactSolver:
    """Answers a question about a document's author, title, date or publisher from its parsed facts."""

    def __init__(self, document: Callable[[str], Document | None]) -> None:
        self.document = document

    def run(self, question: str, passages: Sequence[Passage]) -> str | None:
        """The answer citing the header passage ("Joseph R. DeTrani [1]."), or None when the question asks for
        no such fact, no passage holds a document's header, or the header does not state the fact."""
        fact = asked_fact(question)
        if fact is None:
            return None
        if fact in ("copyright_holder", "copyright_year"):
            # The notice is in the footer, not the header: cite the passage that prints it.
            for n, passage in enumerate(passages, start=1):
                notice = _COPYRIGHT.search(passage.text)
                if notice:
                    return f"{notice.group('holder' if fact == 'copyright_holder' else 'year').strip()} [{n}]."
            return None
        for n, passage in enumerate(passages, start=1):
            document = self.document(passage.doc_id)
            if document is None or document.header_end <= 0 or passage.start >= document.header_end:
                continue
            value = self._value(fact, document, document.text[: document.header_end])
            # The fact must be written in the header the answer cites, not only in the loader's metadata.
            if value and value.casefold() in passage.text.casefold():
                return f"{value} [{n}]."
            return None
        return None

    @staticmethod
    def _value(fact: Fact, document: Document, header: str) -> str | None:
        if fact == "weekday":
            days = set(_WEEKDAYS.findall(header))
            return days.pop() if len(days) == 1 else None
        if fact == "title":
            return document.title
        value: str | None = getattr(document, fact)
        return value
