"""First-stage retrieval: dense (FAISS), keyword (bm25s) and their reciprocal-rank fusion."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import bm25s
import numpy as np

from index.embedders import Vectors
from index.keywords import bm25_terms
from index.milvus_store import MilvusPassageIndex
from index.store import PassageIndex
from index.types import Chunk
from rag.settings import RetrieverKind


@dataclass(frozen=True)
class Query:
    text: str
    vector: Vectors


@dataclass(frozen=True)
class ScoredChunk:
    chunk: Chunk
    score: float


class Retriever(ABC):
    name: str

    @abstractmethod
    def retrieve(self, query: Query, k: int) -> list[ScoredChunk]:
        """The k best passages, best first."""


class DenseRetriever(Retriever):
    name = "dense"

    def __init__(self, index: PassageIndex) -> None:
        self.index = index

    def retrieve(self, query: Query, k: int) -> list[ScoredChunk]:
        return [ScoredChunk(chunk, score) for chunk, score in self.index.search(query.vector, k)]


class BM25Retriever(Retriever):
    """bm25s over the index's passages, rebuilt when the index changes."""

    name = "bm25"

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

    def retrieve(self, query: Query, k: int) -> list[ScoredChunk]:
        self._ensure_fresh()
        model, chunks = self._model, self._chunks
        if model is None or not chunks:
            return []
        k = min(k, len(chunks))
        # n_threads=0: bm25s maps in this thread; any other value starts a thread pool for every query.
        ids, scores = model.retrieve(self._tokenize([query.text]), k=k, show_progress=False, n_threads=0)
        return [ScoredChunk(chunks[int(i)], float(s)) for i, s in zip(ids[0], scores[0], strict=True) if float(s) > 0.0]


class HybridRetriever(Retriever):
    """Reciprocal-rank fusion of dense and keyword rankings (Cormack et al., 2009)."""

    name = "hybrid"

    def __init__(self, dense: DenseRetriever, keyword: BM25Retriever, candidates: int, rrf_k: int) -> None:
        self.dense = dense
        self.keyword = keyword
        self.candidates = candidates
        self.rrf_k = rrf_k

    def retrieve(self, query: Query, k: int) -> list[ScoredChunk]:
        fused: dict[str, float] = {}
        by_id: dict[str, Chunk] = {}
        for ranking in (
            self.dense.retrieve(query, self.candidates),
            self.keyword.retrieve(query, self.candidates),
        ):
            for rank, hit in enumerate(ranking, start=1):
                fused[hit.chunk.chunk_id] = fused.get(hit.chunk.chunk_id, 0.0) + 1.0 / (self.rrf_k + rank)
                by_id[hit.chunk.chunk_id] = hit.chunk
        best = sorted(fused.items(), key=lambda item: item[1], reverse=True)[:k]
        return [ScoredChunk(by_id[chunk_id], score) for chunk_id, score in best]


class MilvusKeywordRetriever(Retriever):
    """BM25 computed by Milvus (its full-text search function): no passage list held in this process."""

    name = "bm25"

    def __init__(self, index: MilvusPassageIndex) -> None:
        self.index = index

    def retrieve(self, query: Query, k: int) -> list[ScoredChunk]:
        return [ScoredChunk(chunk, score) for chunk, score in self.index.keyword_search(query.text, k)]


class MilvusHybridRetriever(Retriever):
    """Dense and BM25 rankings fused by Milvus's own RRF ranker, in one request."""

    name = "hybrid"

    def __init__(self, index: MilvusPassageIndex, candidates: int, rrf_k: int) -> None:
        self.index = index
        self.candidates = candidates
        self.rrf_k = rrf_k

    def retrieve(self, query: Query, k: int) -> list[ScoredChunk]:
        hits = self.index.hybrid_search(query.text, query.vector, k, self.candidates, self.rrf_k)
        return [ScoredChunk(chunk, score) for chunk, score in hits]


def make_retriever(kind: RetrieverKind | str, index: PassageIndex, candidates: int, rrf_k: int) -> Retriever:
    try:
        chosen = RetrieverKind(kind)
    except ValueError:
        valid = ", ".join(r.value for r in RetrieverKind)
        raise ValueError(f"unknown retriever {kind!r}; valid values: {valid}") from None
    if isinstance(index, MilvusPassageIndex):  # Milvus ranks keywords and fuses in the store itself
        if chosen is RetrieverKind.BM25:
            return MilvusKeywordRetriever(index)
        if chosen is RetrieverKind.HYBRID:
            return MilvusHybridRetriever(index, candidates, rrf_k)
    dense = DenseRetriever(index)
    if chosen is RetrieverKind.DENSE:
        return dense
    keyword = BM25Retriever(index)
    if chosen is RetrieverKind.BM25:
        return keyword
    return HybridRetriever(dense, keyword, candidates, rrf_k)


def cosine_relevance(index: PassageIndex, query: Query, chunks: list[Chunk]) -> list[float]:
    """Cosine similarity of the question to each passage (vectors are unit length)."""
    if not chunks:
        return []
    vectors = index.vectors_for([c.chunk_id for c in chunks])
    return [float(x) for x in np.asarray(vectors @ query.vector)]
