"""First-stage retrieval: dense (FAISS or Milvus), keyword (bm25s or Milvus's BM25) and their fusion."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np

from index.embedders import Vectors
from index.keywords import bm25_terms
from index.milvus_store import MilvusPassageIndex
from index.store import PassageIndex
from index.types import Chunk
from rag.fusion import ConvexFusion, Fusion
from rag.settings import RetrieverKind
from rag.types import Passage


@dataclass(frozen=True)
class Query:
    """A question as the retrievers take it: its text (for BM25) and its unit-length embedding (for dense)."""

    text: str
    vector: Vectors


class Retriever(ABC):
    """A first-stage ranking of the index's passages for a query."""

    @abstractmethod
    def retrieve(self, query: Query, k: int) -> list[Passage]:
        """The k best passages, best first, ranked from 1. `relevance` is the passage's cosine similarity to the
        question when this ranking computed it (dense search does), else None: `with_relevance` fills it."""


def _titled(
    index: PassageIndex,
    hits: Sequence[tuple[Chunk, float]],
    retriever: RetrieverKind,
    relevance: Sequence[float | None] | None = None,
) -> list[Passage]:
    """Ranked hits as passages, each document's title looked up once."""
    titles: dict[str, str] = {}
    passages = []
    for rank, (chunk, score) in enumerate(hits, start=1):
        if chunk.doc_id not in titles:
            document = index.document(chunk.doc_id)
            titles[chunk.doc_id] = document.title if document else ""
        cosine = relevance[rank - 1] if relevance is not None else None
        passages.append(Passage.from_chunk(chunk, titles[chunk.doc_id], score, rank, retriever.value, cosine))
    return passages


class DenseRetriever(Retriever):
    """Nearest passages by cosine similarity; the score is the cosine, so it is also the relevance."""

    def __init__(self, index: PassageIndex) -> None:
        self.index = index

    def retrieve(self, query: Query, k: int) -> list[Passage]:
        """The k passages nearest the question."""
        hits = self.index.search(query.vector, k)
        return _titled(self.index, hits, RetrieverKind.DENSE, [score for _, score in hits])


class BM25Retriever(Retriever):
    """bm25s over the index's passages, rebuilt when the index changes."""

    def __init__(self, index: PassageIndex) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._generation = -1
        self._model: bm25s.BM25 | None = None
        self._chunks: list[Chunk] = []

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        # The same terms the Milvus store gives its BM25 (index.keywords), so both stores rank alike.
        return [bm25_terms(text) for text in texts]

    def _ensure_fresh(self) -> None:
        with self._lock:
            if self._generation == self.index.generation:
                return
            chunks = self.index.chunks()
            model = bm25s.BM25()
            if chunks:
                model.index(self._tokenize([c.text for c in chunks]), show_progress=False)
            self._model, self._chunks, self._generation = model, chunks, self.index.generation

    def retrieve(self, query: Query, k: int) -> list[Passage]:
        """The k passages with the highest BM25 score above zero (fewer when fewer share a term)."""
        self._ensure_fresh()
        model, chunks = self._model, self._chunks
        if model is None or not chunks:
            return []
        k = min(k, len(chunks))
        # n_threads=0: bm25s maps in this thread; any other value starts a thread pool for every query.
        ids, scores = model.retrieve(self._tokenize([query.text]), k=k, show_progress=False, n_threads=0)
        hits = [(chunks[int(i)], float(s)) for i, s in zip(ids[0], scores[0], strict=True) if float(s) > 0.0]
        return _titled(self.index, hits, RetrieverKind.BM25)


class HybridRetriever(Retriever):
    """The dense and keyword rankings of `candidates` each, fused (`rag.fusion`); over either store."""

    def __init__(
        self, index: PassageIndex, dense: Retriever, keyword: Retriever, candidates: int, fusion: Fusion
    ) -> None:
        self.index = index
        self.dense = dense
        self.keyword = keyword
        self.candidates = candidates
        self.fusion = fusion

    def retrieve(self, query: Query, k: int) -> list[Passage]:
        """The k passages with the highest fused score, each with its cosine to the question as relevance; equal
        scores go to the passage nearer the question."""
        dense = self.dense.retrieve(query, self.candidates)
        cosine = {p.chunk_id: p.relevance for p in dense}
        # Only passages the keywords alone found go back to the index for their vectors.
        keyword = with_relevance(
            self.index,
            query,
            [
                p.model_copy(update={"relevance": cosine.get(p.chunk_id)})
                for p in self.keyword.retrieve(query, self.candidates)
            ],
        )
        fused = self.fusion.scores(dense, keyword)
        by_id = {p.chunk_id: p for p in [*keyword, *dense]}  # a dense copy keeps the dense passage's fields
        best = sorted(fused, key=lambda chunk_id: (-fused[chunk_id], -(by_id[chunk_id].relevance or 0.0)))[:k]
        return [
            by_id[chunk_id].model_copy(
                update={"score": fused[chunk_id], "rank": rank, "retriever": RetrieverKind.HYBRID.value}
            )
            for rank, chunk_id in enumerate(best, start=1)
        ]


class MilvusKeywordRetriever(Retriever):
    """BM25 computed by Milvus (its full-text search function): no passage list held in this process."""

    def __init__(self, index: MilvusPassageIndex) -> None:
        self.index = index

    def retrieve(self, query: Query, k: int) -> list[Passage]:
        """The k passages Milvus ranks highest by BM25."""
        return _titled(self.index, self.index.keyword_search(query.text, k), RetrieverKind.BM25)


def make_retriever(
    kind: RetrieverKind | str, index: PassageIndex, candidates: int, fusion: Fusion | None = None
) -> Retriever:
    """The retriever of that kind over `index`: keywords ranked by Milvus's own BM25 for a Milvus store, else by
    bm25s in this process; hybrid fuses them with `fusion` (default: the convex combination at its default weight).
    ValueError names the valid kinds."""
    try:
        chosen = RetrieverKind(kind)
    except ValueError:
        valid = ", ".join(r.value for r in RetrieverKind)
        raise ValueError(f"unknown retriever {kind!r}; valid values: {valid}") from None
    dense = DenseRetriever(index)
    if chosen is RetrieverKind.DENSE:
        return dense
    keyword: Retriever = (
        MilvusKeywordRetriever(index) if isinstance(index, MilvusPassageIndex) else BM25Retriever(index)
    )
    if chosen is RetrieverKind.BM25:
        return keyword
    return HybridRetriever(index, dense, keyword, candidates, fusion or ConvexFusion())


def with_relevance(index: PassageIndex, query: Query, passages: list[Passage]) -> list[Passage]:
    """The passages with `relevance` set (rounded to 4 places): the cosine the retriever carried, or for a passage
    only keyword search found, computed from its stored vector (vectors are unit length)."""
    missing = [p.chunk_id for p in passages if p.relevance is None]
    computed: dict[str, float] = {}
    if missing:
        vectors = index.vectors_for(missing)
        computed = {chunk_id: float(x) for chunk_id, x in zip(missing, np.asarray(vectors @ query.vector), strict=True)}
    return [
        p.model_copy(update={"relevance": round(p.relevance if p.relevance is not None else computed[p.chunk_id], 4)})
        for p in passages
    ]
