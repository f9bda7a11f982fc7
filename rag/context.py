"""What the model reads around a hit: the hit's sentences plus their neighbours, merged per document, and the
document's own header (byline, date) when the question is about the document itself."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence

from index.sentences import Span, sentence_spans
from index.store import PassageIndex
from index.types import Document
from rag.document_facts import asked_fact
from rag.types import Passage

# "Who wrote this?", "when was the article published?", "which newspaper ran it?"
_ABOUT_THE_DOCUMENT = re.compile(
    r"\b(who\s+(wrote|authored|penned|is\s+the\s+(author|writer))|byline|"
    r"(name|identity)\s+of\s+the\s+(author|writer)|(author|writer)['’]s\s+name|"
    r"(when|what\s+date|which\s+day|what\s+day)\b.{0,40}\b(published|written|posted|dated)|publication\s+date|"
    r"(the|this)\s+(article|story|piece|column|report|post|essay)\s+(was\s+)?"
    r"(published|written|posted)|publication\s+of\s+(the|this)\s+(article|story|piece|column|report|post|essay)|"
    r"(which|what)\s+(newspaper|paper|publication|outlet|magazine|site|website)|publisher|published\s+(by|in))\b",
    re.IGNORECASE,
)


def is_about_the_document(question: str) -> bool:
    """True for questions about who wrote a document, its title, when, or where it appeared."""
    return asked_fact(question) is not None or bool(_ABOUT_THE_DOCUMENT.search(question))


class ContextExpander:
    """Turns retrieved passages into reading context: a sentence window around each hit (as LlamaIndex's
    SentenceWindowNodeParser does), overlapping or adjacent hits of one document merged into one passage.
    Offsets stay exact: `document.text[start:end] == passage.text`."""

    def __init__(self, index: PassageIndex, window: int, max_chars: int = 1200, cache_size: int = 256) -> None:
        self.index = index
        self.window = window
        self.max_chars = max_chars
        self._spans: OrderedDict[str, list[Span]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _sentences(self, document: Document) -> list[Span]:
        key = f"{document.doc_id}:{document.sha256}"
        with self._lock:
            if key in self._spans:
                self._spans.move_to_end(key)
                return self._spans[key]
        spans = sentence_spans(document.text)
        with self._lock:
            self._spans[key] = spans
            if len(self._spans) > self._cache_size:
                self._spans.popitem(last=False)
        return spans

    def _window(self, document: Document, start: int, end: int) -> tuple[int, int]:
        spans = self._sentences(document)
        inside = [i for i, s in enumerate(spans) if s.end > start and s.start < end]
        if not inside:
            return start, end
        first = max(0, inside[0] - self.window)
        last = min(len(spans) - 1, inside[-1] + self.window)
        return min(start, spans[first].start), max(end, spans[last].end)

    def run(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        """Expanded, merged passages in rank order; the document header first for questions about it."""
        merged: list[Passage] = []
        documents: dict[str, Document | None] = {}
        for passage in passages:
            if passage.doc_id not in documents:
                documents[passage.doc_id] = self.index.document(passage.doc_id)
            document = documents[passage.doc_id]
            if document is None:
                merged.append(passage)
                continue
            start, end = (
                self._window(document, passage.start, passage.end) if self.window else (passage.start, passage.end)
            )
            for i, kept in enumerate(merged):
                # Adjacent means only whitespace between them.
                joined = max(end, kept.end) - min(start, kept.start)
                # A merged passage stays short enough for its supporting sentence to be found and read.
                if (
                    kept.doc_id == passage.doc_id
                    and start <= kept.end + 2
                    and kept.start <= end + 2
                    and joined <= self.max_chars
                ):
                    start, end = min(start, kept.start), max(end, kept.end)
                    merged[i] = kept.model_copy(
                        update={
                            "start": start,
                            "end": end,
                            "text": document.text[start:end],
                            "relevance": max(kept.relevance or 0.0, passage.relevance or 0.0),
                        }
                    )
                    break
            else:
                merged.append(passage.model_copy(update={"start": start, "end": end, "text": document.text[start:end]}))
        if is_about_the_document(question) and passages:
            merged = self._with_header(merged, self._described(passages, documents))
        return [p.model_copy(update={"rank": rank}) for rank, p in enumerate(merged, start=1)]

    @staticmethod
    def _described(passages: Sequence[Passage], documents: dict[str, Document | None]) -> Document | None:
        """The document a question about "the article" means: the best-ranked one whose loader found its facts
        (author, date or publisher), else the top one. A page that merely talks about "who wrote the article"
        (or orders the assistant to name someone) outranks the article on those words but has no byline."""
        ranked = [documents.get(p.doc_id) for p in passages]
        described = [d for d in ranked if d is not None and (d.author or d.published or d.publisher)]
        return described[0] if described else ranked[0]

    @staticmethod
    def _with_header(passages: list[Passage], document: Document | None) -> list[Passage]:
        """Put the top document's title/byline/date span first (merged with a passage that already covers it)."""
        if document is None or document.header_end <= 0:
            return passages
        best = max((p.relevance or 0.0 for p in passages), default=0.0)
        rest = [p for p in passages if not (p.doc_id == document.doc_id and p.start < document.header_end)]
        covering = [p for p in passages if p.doc_id == document.doc_id and p.start < document.header_end]
        end = max([document.header_end, *(p.end for p in covering)])
        header = Passage(
            chunk_id=covering[0].chunk_id if covering else f"{document.doc_id}#header",
            doc_id=document.doc_id,
            title=document.title,
            text=document.text[:end],
            start=0,
            end=end,
            score=max((p.score for p in passages), default=0.0),
            rank=1,
            retriever="document",
            relevance=best,
        )
        return [header, *rest]
