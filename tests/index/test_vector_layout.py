"""The FAISS index kind follows the passage count: exact up to `exact_search_max`, HNSW or IVF above, with search,
removal, stored vectors and saving all working on every kind. Synthetic clustered vectors for the layout itself
(recall is geometry, not meaning); the real embedder and the article for the store end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import pytest

from index.loaders import load_documents
from index.service import new_index, open_index
from index.store import PassageIndex
from index.types import ApproximateIndex, IndexSpec
from index.vector_layout import TOMBSTONE_SHARE, VectorIndex, VectorLayout, lists_for
from tests.conftest import ARTICLE

DIMENSION = 32
KINDS = [ApproximateIndex.HNSW, ApproximateIndex.IVF]


def clustered(count: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, DIMENSION))
    vectors = centres[rng.integers(0, 50, count)] + 0.3 * rng.normal(size=(count, DIMENSION))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def filled(layout: VectorLayout, vectors: np.ndarray, ids: np.ndarray) -> VectorIndex:
    index = layout.empty(DIMENSION)
    index.add(vectors, ids)
    return layout.fitted(index, ids)


def top_ids(index: VectorIndex, queries: np.ndarray, k: int = 10) -> np.ndarray:
    return index.search(queries, k)[1]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def reloaded(index: VectorIndex, layout: VectorLayout, live: np.ndarray) -> VectorIndex:
    return layout.tuned(VectorIndex.opened(faiss.deserialize_index(faiss.serialize_index(index.index)), live))


class TestVectorLayout:
    def test_clusters_follow_the_square_root_rule_and_never_starve_k_means(self) -> None:
        assert lists_for(1_000_000) == 4000
        assert lists_for(100_000) == 1264
        assert lists_for(2_000) == 51  # 2000 // 39: k-means needs ~39 points a cluster
        assert lists_for(10) == 1

    @pytest.mark.parametrize("kind", KINDS)
    def test_small_stays_exact_and_large_becomes_approximate_with_high_recall(self, kind: ApproximateIndex) -> None:
        vectors, queries = clustered(4_000), clustered(100, seed=1)
        ids = np.arange(1_000, 5_000, dtype=np.int64)
        exact = filled(VectorLayout(exact_max=10_000, approximate=kind), vectors, ids)
        approximate = filled(VectorLayout(exact_max=1_000, approximate=kind, nprobe=16), vectors, ids)
        assert exact.kind is None and approximate.kind is kind
        assert recall(top_ids(approximate, queries), top_ids(exact, queries)) >= 0.9
        assert np.allclose(approximate.reconstruct(1_007), vectors[7])
        assert VectorLayout.describe(approximate)["type"] != VectorLayout.describe(exact)["type"]

    @pytest.mark.parametrize("kind", KINDS)
    def test_removed_vectors_are_never_found_and_survive_saving(self, kind: ApproximateIndex) -> None:
        layout = VectorLayout(exact_max=1_000, approximate=kind, hnsw_ef_search=64, nprobe=7)
        vectors = clustered(3_000)
        ids = np.arange(3_000, dtype=np.int64)
        index = filled(layout, vectors, ids)
        index.remove([5, 6])
        live = ids[(ids != 5) & (ids != 6)]
        assert index.count == 2_998
        # Each removed vector is its own nearest neighbour: searching for it must return others.
        assert not {5, 6} & set(top_ids(index, vectors[5:7], 3).ravel().tolist())
        again = reloaded(index, layout, live)
        assert again.kind is kind and again.count == 2_998
        assert not {5, 6} & set(top_ids(again, vectors[5:7], 3).ravel().tolist())
        if kind is ApproximateIndex.IVF:
            assert again.index.nprobe == 7
        else:
            assert again.removed == {5, 6} and VectorLayout.describe(again)["ef_search"] == 64

    def test_hnsw_finds_as_much_among_the_living_after_removals(self) -> None:
        layout = VectorLayout(exact_max=1_000)
        vectors, queries = clustered(4_000), clustered(100, seed=1)
        ids = np.arange(4_000, dtype=np.int64)
        index = filled(layout, vectors, ids)
        gone = ids[::20]  # 5 %: below the rebuild share, so they stay in the graph as tombstones
        index.remove(gone.tolist())
        live = np.setdiff1d(ids, gone)
        index = layout.fitted(index, live)
        assert index.kind is ApproximateIndex.HNSW and len(index.removed) == len(gone)
        truth = filled(VectorLayout(exact_max=10_000), vectors[live], live)
        found = top_ids(index, queries)
        assert not set(found.ravel().tolist()) & set(gone.tolist())
        assert recall(found, top_ids(truth, queries)) >= 0.9

    def test_hnsw_is_rebuilt_once_tombstones_pass_their_share(self) -> None:
        layout = VectorLayout(exact_max=1_000)
        vectors = clustered(3_000)
        ids = np.arange(3_000, dtype=np.int64)
        index = filled(layout, vectors, ids)
        gone = ids[: int(3_000 * TOMBSTONE_SHARE) + 1]
        index.remove(gone.tolist())
        rebuilt = layout.fitted(index, ids[len(gone) :])
        assert rebuilt.kind is ApproximateIndex.HNSW and not rebuilt.removed
        assert rebuilt.index.ntotal == rebuilt.count == 3_000 - len(gone)
        assert np.allclose(rebuilt.reconstruct(2_999), vectors[2_999])

    @pytest.mark.parametrize("kind", KINDS)
    def test_shrinking_below_half_the_threshold_returns_to_exact(self, kind: ApproximateIndex) -> None:
        layout = VectorLayout(exact_max=1_000, approximate=kind)
        vectors = clustered(1_200)
        ids = np.arange(1_200, dtype=np.int64)
        index = filled(layout, vectors, ids)
        assert index.kind is kind
        index.remove(ids[400:].tolist())
        shrunk = layout.fitted(index, ids[:400])
        assert shrunk.kind is None and shrunk.count == shrunk.index.ntotal == 400
        assert np.allclose(shrunk.reconstruct(3), vectors[3])

    def test_ivf_is_retrained_when_it_outgrows_its_clusters(self) -> None:
        layout = VectorLayout(exact_max=1_000, approximate=ApproximateIndex.IVF)
        vectors = clustered(8_000)
        ids = np.arange(8_000, dtype=np.int64)
        index = filled(layout, vectors[:1_200], ids[:1_200])
        assert faiss.extract_index_ivf(index.index).nlist == lists_for(1_200)
        index.add(vectors[1_200:], ids[1_200:])
        grown = layout.fitted(index, ids)
        assert faiss.extract_index_ivf(grown.index).nlist == lists_for(8_000) > 2 * lists_for(1_200)

    def test_a_changed_setting_rebuilds_the_index_as_the_new_kind_on_the_next_write(self) -> None:
        vectors = clustered(2_000)
        ids = np.arange(2_000, dtype=np.int64)
        ivf = filled(VectorLayout(exact_max=1_000, approximate=ApproximateIndex.IVF), vectors, ids)
        hnsw = VectorLayout(exact_max=1_000).fitted(ivf, ids)
        assert hnsw.kind is ApproximateIndex.HNSW and hnsw.count == 2_000


class TestStoreAboveTheThreshold:
    """The real embedder and the article's 22 passages, with the threshold set below them."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_an_index_over_the_threshold_searches_saves_reloads_and_removes(
        self, kind: ApproximateIndex, tmp_path: Path
    ) -> None:
        spec = replace(IndexSpec(), exact_search_max=10, approximate_index=kind, ivf_nprobe=4)
        exact = new_index(IndexSpec())
        exact.add(load_documents(ARTICLE))
        index = new_index(spec, exact.embedder)
        index.add(load_documents(ARTICLE))
        assert index.snapshot().vectors.kind is kind
        for question in (
            "What did Deng agree in 1979?",
            "Who wrote the article?",
            "Which city lies in the ceded land?",
        ):
            query = index.embedder.embed_query(question)
            # 22 passages: one IVF cluster, and an HNSW graph that holds every node within reach, so both must
            # rank exactly as the exact index does.
            assert [c.chunk_id for c, _ in index.search(query, 5)] == [c.chunk_id for c, _ in exact.search(query, 5)]
        index.save(tmp_path / "index")
        manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
        assert manifest["faiss"]["type"] == {"ivf": "IndexIVFFlat", "hnsw": "IndexIDMap2(IndexHNSWFlat)"}[kind]
        reloaded = open_index(tmp_path / "index", spec, exact.embedder)
        assert isinstance(reloaded, PassageIndex) and reloaded.snapshot().vectors.kind is kind
        doc_id = reloaded.documents[0].doc_id
        assert reloaded.remove(doc_id)
        assert len(reloaded) == 0 and reloaded.snapshot().vectors.kind is None
