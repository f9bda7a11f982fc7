"""Which FAISS index holds the passage vectors, chosen by how many there are.

Up to `exact_max` passages the search is exact (`IndexIDMap2(IndexFlatIP)`): one matrix-vector product, 13 ms
at 100,000 passages on one thread here, 120 ms at a million. Beyond it an approximate index
searches a small part of the vectors. Both kinds keep the vectors uncompressed, so stored vectors can still be read
back (the relevance gate and the re-scorer read them):

- **HNSW** (the default, `IndexIDMap2(IndexHNSWFlat)`): a neighbour graph walked from the top. FAISS cannot take a
  node out of the graph, so a removed passage stays in it as a *tombstone* that searches skip (an id selector) and
  the index is rebuilt once tombstones pass `TOMBSTONE_SHARE` of it.
- **IVF** (`IndexIVFFlat` with a hash-table direct map): the `nprobe` clusters nearest the question; removal is
  real, memory a little lower, recall lower for the time (bench/million.py).

The defaults come from bench/million.py (table in the README): at a million passages HNSW with efSearch 128 finds
0.967 of the exact top 10 in 1.1 ms; IVF with nprobe 128 finds 0.928 in 5.1 ms.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from index.types import ApproximateIndex, IndexSpec

# k-means wants at least this many training points per cluster (FAISS warns below 39).
POINTS_PER_LIST = 39
# Training samples at most this many points per cluster: k-means over a million points would take a quarter of an
# hour on two cores, and 64 a cluster is within the 39-256 FAISS recommends.
MAX_TRAINING_POINTS_PER_LIST = 64
# Links per HNSW node: 32 is the usual choice for text embeddings of a few hundred dimensions; it costs ~260 bytes a
# passage beside the 1,536 of the vector.
HNSW_NEIGHBORS = 32
# Rebuild an HNSW graph once this share of its nodes are tombstones: a search still walks through them, so past
# this it spends a tenth of its effort on passages that no longer exist.
TOMBSTONE_SHARE = 0.1


def lists_for(passages: int) -> int:
    """Clusters for an IVF index of `passages`: about 4·√n, the usual rule, and never fewer points than k-means
    needs per cluster."""
    return max(1, min(int(4 * math.sqrt(passages)), passages // POINTS_PER_LIST))


@contextlib.contextmanager
def _all_cores() -> Iterator[None]:
    # Searches run on one OpenMP thread (see index.store); building a million-point index should not.
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


def _ids(values: Iterable[int]) -> np.ndarray:
    # An id array (a million ids on a rebuild) is used as it is; only lists and sets are copied element by element.
    if isinstance(values, np.ndarray):
        return np.ascontiguousarray(values, dtype=np.int64)
    return np.fromiter(values, dtype=np.int64)


class VectorIndex:
    """Passage vectors by id in one FAISS index of any kind here: add, remove, search, read back, save.

    Changed only before it is installed in a snapshot (the store copies it for each write), so concurrent searches
    never see it change."""

    def __init__(self, index: Any, removed: Iterable[int] = ()) -> None:
        self.index = index  # faiss.IndexIDMap2 or faiss.IndexIVFFlat: the stubs have no types
        self.removed: set[int] = set(removed)
        # An id selector over `removed` that searches pass to FAISS, and the batch it wraps (kept alive here);
        # None while nothing is removed.
        self._skip: Any = None
        self._skip_batch: Any = None
        self._refresh_skip()

    @classmethod
    def opened(cls, index: Any, live_ids: Iterable[int]) -> VectorIndex:
        """`index` read from disk, holding the passages `live_ids`: an HNSW graph's other ids are its tombstones."""
        if kind_of(index) is not ApproximateIndex.HNSW:
            return cls(index)
        stored = faiss.vector_to_array(index.id_map)
        return cls(index, set(stored.tolist()) - set(live_ids))

    @property
    def kind(self) -> ApproximateIndex | None:
        """HNSW or IVF, or None for exact search."""
        return kind_of(self.index)

    @property
    def count(self) -> int:
        """Passages held (tombstones not counted)."""
        return int(self.index.ntotal) - len(self.removed)

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        return int(self.index.d)

    def copy(self) -> VectorIndex:
        """An independent copy to change."""
        return VectorIndex(faiss.clone_index(self.index), self.removed)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add `vectors` under `ids` (ids never used before)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = _ids(ids)
        if self.kind is ApproximateIndex.HNSW and len(ids) > 1_000:
            with _all_cores():  # inserting into a graph is a search per vector
                self.index.add_with_ids(vectors, ids)
        else:
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: Iterable[int]) -> None:
        """Remove the vectors with these ids (an HNSW graph keeps them as tombstones that searches skip)."""
        ids = _ids(ids)
        if not len(ids):
            return
        if self.kind is ApproximateIndex.HNSW:
            self.removed.update(ids.tolist())
            self._refresh_skip()
        else:
            self.index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids of the `k` nearest stored vectors to each query row, best first (id -1 where fewer)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self._skip is None:
            scores, ids = self.index.search(queries, k)
        else:
            # New parameters each call: FAISS's id map rewrites the selector in them while it searches.
            parameters = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]  # not in the stubs
                sel=self._skip, efSearch=_graph(self.index).efSearch
            )
            scores, ids = self.index.search(queries, k, params=parameters)
        return scores, ids

    def reconstruct(self, faiss_id: int) -> np.ndarray:
        """The stored vector of one id."""
        return np.asarray(self.index.reconstruct(int(faiss_id)))

    def reconstruct_batch(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, one row each."""
        if not len(ids):
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(self.index.reconstruct_batch(_ids(ids)))

    def write(self, path: str) -> None:
        """Save to `path` (tombstones are not written apart: `opened` derives them from the live ids)."""
        faiss.write_index(self.index, path)

    def _refresh_skip(self) -> None:
        if not self.removed:
            self._skip = self._skip_batch = None
            return
        removed = _ids(self.removed)
        batch = faiss.IDSelectorBatch(len(removed), faiss.swig_ptr(removed))
        self._skip, self._skip_batch = faiss.IDSelectorNot(batch), batch  # Not does not keep its argument alive


def _graph(index: Any) -> Any:
    """The HNSW graph of an `IndexIDMap2(IndexHNSWFlat)` (where efSearch is set)."""
    graph: Any = faiss.downcast_index(index.index)
    return graph.hnsw


def kind_of(index: Any) -> ApproximateIndex | None:
    """HNSW or IVF for an approximate FAISS index, None for an exact one."""
    if isinstance(index, faiss.IndexIVF):
        return ApproximateIndex.IVF
    if isinstance(index, faiss.IndexIDMap2) and isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW):
        return ApproximateIndex.HNSW
    return None


@dataclass(frozen=True)
class VectorLayout:
    """Exact search up to `exact_max` passages, the `approximate` kind above; rebuilt as the count crosses the
    threshold (back to exact below half of it, so an index near the line does not flip on every write), an IVF
    retrained when it has grown enough to want twice the clusters, an HNSW graph rebuilt when tombstones pass
    `TOMBSTONE_SHARE`."""

    exact_max: int = IndexSpec.exact_search_max
    approximate: ApproximateIndex = IndexSpec.approximate_index
    hnsw_ef_search: int = IndexSpec.hnsw_ef_search
    nprobe: int = IndexSpec.ivf_nprobe

    @classmethod
    def of(cls, spec: IndexSpec) -> VectorLayout:
        """The layout an IndexSpec asks for."""
        return cls(spec.exact_search_max, spec.approximate_index, spec.hnsw_ef_search, spec.ivf_nprobe)

    @staticmethod
    def empty(dimension: int) -> VectorIndex:
        """An empty exact index of `dimension`."""
        return VectorIndex(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    def fitted(self, vectors: VectorIndex, ids: np.ndarray) -> VectorIndex:
        """`vectors`, or a new index of the kind its size calls for holding the same vectors. `ids` are the ids
        it holds (the store knows them; FAISS cannot list them cheaply)."""
        count = len(ids)
        kind = vectors.kind
        if kind is None:
            return self._approximate(vectors, ids) if count > self.exact_max else vectors
        if count <= self.exact_max // 2:
            return self._exact(vectors, ids)
        if kind is not self.approximate:  # the setting changed since the index was built
            return self._approximate(vectors, ids)
        if kind is ApproximateIndex.IVF and lists_for(count) >= 2 * faiss.extract_index_ivf(vectors.index).nlist:
            return self._approximate(vectors, ids)
        if kind is ApproximateIndex.HNSW and len(vectors.removed) > TOMBSTONE_SHARE * vectors.index.ntotal:
            return self._approximate(vectors, ids)
        return self.tuned(vectors)

    def tuned(self, vectors: VectorIndex) -> VectorIndex:
        """`vectors` with this layout's search settings (an index read from disk keeps the ones it was saved with)."""
        if vectors.kind is ApproximateIndex.IVF:
            vectors.index.nprobe = self.nprobe
        elif vectors.kind is ApproximateIndex.HNSW:
            _graph(vectors.index).efSearch = self.hnsw_ef_search
        return vectors

    @staticmethod
    def describe(vectors: VectorIndex) -> dict[str, Any]:
        """What the manifest records about the index."""
        if vectors.kind is ApproximateIndex.IVF:
            ivf = faiss.extract_index_ivf(vectors.index)
            return {"type": "IndexIVFFlat", "nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe)}
        if vectors.kind is ApproximateIndex.HNSW:
            hnsw = _graph(vectors.index)
            return {
                "type": "IndexIDMap2(IndexHNSWFlat)",
                "neighbors": HNSW_NEIGHBORS,
                "ef_search": int(hnsw.efSearch),
                "tombstones": len(vectors.removed),
            }
        return {"type": "IndexIDMap2(IndexFlatIP)"}

    def _exact(self, vectors: VectorIndex, ids: np.ndarray) -> VectorIndex:
        exact = self.empty(vectors.dimension)
        if len(ids):
            exact.add(vectors.reconstruct_batch(ids), ids)
        return exact

    def _approximate(self, vectors: VectorIndex, ids: np.ndarray) -> VectorIndex:
        data = vectors.reconstruct_batch(ids)
        ids = _ids(ids)
        if self.approximate is ApproximateIndex.HNSW:
            graph = faiss.IndexHNSWFlat(vectors.dimension, HNSW_NEIGHBORS, faiss.METRIC_INNER_PRODUCT)
            index = faiss.IndexIDMap2(graph)
            with _all_cores():
                index.add_with_ids(data, ids)
            return self.tuned(VectorIndex(index))
        nlist = lists_for(len(ids))
        dimension = vectors.dimension
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = data
        if len(data) > nlist * MAX_TRAINING_POINTS_PER_LIST:
            rows = np.random.default_rng(0).choice(len(data), nlist * MAX_TRAINING_POINTS_PER_LIST, replace=False)
            sample = data[np.sort(rows)]
        with _all_cores():
            ivf.train(sample)
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
            ivf.add_with_ids(data, ids)
        return self.tuned(VectorIndex(ivf))
