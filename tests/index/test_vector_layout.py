"""The FAISS index kind follows the passage count: exact up to `exact_search_max`, IVF above, with search,
removal, stored vectors and saving all working on both. Synthetic clustered vectors for the layout itself
(recall is geometry, not meaning); the real embedder and the article for the store end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

from index.loaders import load_documents
from index.service import new_index, open_index
from index.store import PassageIndex
from index.types import IndexSpec
from index.vector_layout import VectorLayout, is_ivf, lists_for, remove_ids
from tests.conftest import ARTICLE

DIMENSION = 32


def clustered(count: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, DIMENSION))
    vectors = centres[rng.integers(0, 50, count)] + 0.3 * rng.normal(size=(count, DIMENSION))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def filled(layout: VectorLayout, vectors: np.ndarray, ids: np.ndarray) -> object:
    index = layout.empty(DIMENSION)
    index.add_with_ids(vectors, ids)
    return layout.fitted(index, ids)


def top_ids(index: object, queries: np.ndarray, k: int = 10) -> np.ndarray:
    return index.search(queries, k)[1]  # type: ignore[attr-defined]


class TestVectorLayout:
    def test_clusters_follow_the_square_root_rule_and_never_starve_k_means(self) -> None:
        assert lists_for(1_000_000) == 4000
        assert lists_for(100_000) == 1264
        assert lists_for(2_000) == 51  # 2000 // 39: k-means needs ~39 points a cluster
        assert lists_for(10) == 1

    def test_small_stays_exact_and_large_becomes_ivf_with_high_recall(self) -> None:
        vectors, queries = clustered(4_000), clustered(100, seed=1)
        ids = np.arange(1_000, 5_000, dtype=np.int64)
        exact = filled(VectorLayout(exact_max=10_000), vectors, ids)
        approximate = filled(VectorLayout(exact_max=1_000, nprobe=16), vectors, ids)
        assert not is_ivf(exact) and is_ivf(approximate)
        assert approximate.nprobe == 16  # type: ignore[attr-defined]
        truth, found = top_ids(exact, queries), top_ids(approximate, queries)
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        assert recall >= 0.9
        assert np.allclose(approximate.reconstruct(1_007), vectors[7])  # type: ignore[attr-defined]

    def test_removal_and_saving_work_on_ivf(self) -> None:
        vectors = clustered(3_000)
        ids = np.arange(3_000, dtype=np.int64)
        index = filled(VectorLayout(exact_max=1_000), vectors, ids)
        remove_ids(index, np.array([5, 6], dtype=np.int64))
        assert index.ntotal == 2_998  # type: ignore[attr-defined]
        assert 5 not in top_ids(index, vectors[5:6], 3)[0]
        reloaded = VectorLayout(exact_max=1_000, nprobe=7).tuned(faiss.deserialize_index(faiss.serialize_index(index)))
        assert is_ivf(reloaded) and reloaded.nprobe == 7 and reloaded.ntotal == 2_998

    def test_shrinking_below_half_the_threshold_returns_to_exact_and_growth_retrains(self) -> None:
        layout = VectorLayout(exact_max=1_000)
        vectors = clustered(8_000)
        ids = np.arange(8_000, dtype=np.int64)
        index = filled(layout, vectors[:1_200], ids[:1_200])
        assert is_ivf(index) and faiss.extract_index_ivf(index).nlist == lists_for(1_200)
        index.add_with_ids(vectors[1_200:], ids[1_200:])  # type: ignore[attr-defined]
        grown = layout.fitted(index, ids)
        assert faiss.extract_index_ivf(grown).nlist == lists_for(8_000) > 2 * lists_for(1_200)
        remove_ids(grown, ids[400:])
        shrunk = layout.fitted(grown, ids[:400])
        assert not is_ivf(shrunk) and shrunk.ntotal == 400
        assert np.allclose(shrunk.reconstruct(3), vectors[3])


class TestStoreAboveTheThreshold:
    """The real embedder and the article's 22 passages, with the threshold set below them."""

    def test_an_index_over_the_threshold_searches_saves_reloads_and_removes(self, tmp_path: Path) -> None:
        spec = replace(IndexSpec(), exact_search_max=10, ivf_nprobe=4)
        exact = new_index(IndexSpec())
        exact.add(load_documents(ARTICLE))
        index = new_index(spec, exact.embedder)
        index.add(load_documents(ARTICLE))
        assert is_ivf(index.snapshot().vectors)
        for question in (
            "What did Deng agree in 1979?",
            "Who wrote the article?",
            "Which city lies in the ceded land?",
        ):
            query = index.embedder.embed_query(question)
            # 22 passages make one cluster, so IVF must rank exactly as the exact index does.
            assert [c.chunk_id for c, _ in index.search(query, 5)] == [c.chunk_id for c, _ in exact.search(query, 5)]
        index.save(tmp_path / "index")
        manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
        assert manifest["faiss"]["type"] == "IndexIVFFlat" and manifest["faiss"]["nprobe"] == 4
        reloaded = open_index(tmp_path / "index", spec, exact.embedder)
        assert isinstance(reloaded, PassageIndex) and is_ivf(reloaded.snapshot().vectors)
        doc_id = reloaded.documents[0].doc_id
        assert reloaded.remove(doc_id)
        assert len(reloaded) == 0 and not is_ivf(reloaded.snapshot().vectors)
