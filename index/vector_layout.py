"""Which FAISS index holds the passage vectors, chosen by how many there are.

Up to `exact_max` passages the search is exact (`IndexIDMap2(IndexFlatIP)`): one matrix-vector product, ~8 ms
at 50,000 passages on one thread here (16 ms at 100,000, 145 ms at a million). Beyond it, an inverted-file index
(`IndexIVFFlat`) searches only the `nprobe` clusters nearest the question. It keeps the vectors themselves (no
compression), so stored vectors can still be read back, and a hash-table direct map keeps removal by id working
(HNSW cannot remove). The defaults come from bench/million.py (table in the README): at 100,000 real passages,
nprobe 128 of 1,264 lists finds 0.948 of the exact top 10 in 1.9 ms.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from index.types import IndexSpec

# k-means wants at least this many training points per cluster (FAISS warns below 39).
POINTS_PER_LIST = 39
# Training samples at most this many points per cluster: k-means over a million points would take a quarter of an
# hour on two cores, and 64 a cluster is within the 39-256 FAISS recommends.
MAX_TRAINING_POINTS_PER_LIST = 64


def lists_for(passages: int) -> int:
    """Clusters for an IVF index of `passages`: about 4·√n, the usual rule, and never fewer points than k-means
    needs per cluster."""
    return max(1, min(int(4 * math.sqrt(passages)), passages // POINTS_PER_LIST))


def is_ivf(vectors: Any) -> bool:
    """Whether `vectors` is an inverted-file index."""
    return isinstance(vectors, faiss.IndexIVF)


def remove_ids(vectors: Any, ids: np.ndarray) -> None:
    """Remove the vectors with these ids (an id selector both index kinds accept)."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)))


@contextlib.contextmanager
def _all_cores() -> Iterator[None]:
    # Searches run on one OpenMP thread (see index.store); training a million-point k-means should not.
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


@dataclass(frozen=True)
class VectorLayout:
    """Exact search up to `exact_max` passages, IVF with `nprobe` probed clusters above; rebuilt as the count
    crosses the threshold (back to exact below half of it, so an index near the line does not flip on every
    write) and retrained when it has grown enough to want twice the clusters."""

    exact_max: int = IndexSpec.exact_search_max
    nprobe: int = IndexSpec.ivf_nprobe

    @staticmethod
    def empty(dimension: int) -> Any:
        """An empty exact index of `dimension`."""
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def fitted(self, vectors: Any, ids: np.ndarray) -> Any:
        """`vectors`, or a new index of the kind its size calls for holding the same vectors. `ids` are the ids
        it holds (the store knows them; FAISS cannot list them cheaply)."""
        count = int(vectors.ntotal)
        if not is_ivf(vectors):
            return self._ivf(vectors, ids) if count > self.exact_max else vectors
        if count <= self.exact_max // 2:
            return self._exact(vectors, ids)
        if lists_for(count) >= 2 * faiss.extract_index_ivf(vectors).nlist:
            return self._ivf(vectors, ids)
        return self.tuned(vectors)

    def tuned(self, vectors: Any) -> Any:
        """`vectors` with this layout's search settings (an index read from disk keeps the ones it was saved with)."""
        if is_ivf(vectors):
            vectors.nprobe = self.nprobe
        return vectors

    @staticmethod
    def describe(vectors: Any) -> dict[str, Any]:
        """What the manifest records about the index."""
        if is_ivf(vectors):
            ivf = faiss.extract_index_ivf(vectors)
            return {"type": "IndexIVFFlat", "nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe)}
        return {"type": "IndexIDMap2(IndexFlatIP)"}

    def _exact(self, vectors: Any, ids: np.ndarray) -> Any:
        exact = self.empty(vectors.d)
        if len(ids):
            exact.add_with_ids(vectors.reconstruct_batch(ids), ids)
        return exact

    def _ivf(self, vectors: Any, ids: np.ndarray) -> Any:
        data = vectors.reconstruct_batch(ids)
        nlist = lists_for(len(ids))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(vectors.d), vectors.d, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = data
        if len(data) > nlist * MAX_TRAINING_POINTS_PER_LIST:
            rows = np.random.default_rng(0).choice(len(data), nlist * MAX_TRAINING_POINTS_PER_LIST, replace=False)
            sample = data[np.sort(rows)]
        with _all_cores():
            ivf.train(sample)
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
            ivf.add_with_ids(data, ids)
        return self.tuned(ivf)
