from __future__ import annotations

import numpy as np
import pytest

from index.embedders import make_embedder
from index.service import make_chunker
from index.types import Document, EmbedderBackend, IndexSpec

QUESTIONS = [
    "what did Deng agree in 1979?",
    "When did the last Soviet aircraft leave Bagram Airfield?",
    "How much was trade between China and Russia in 2023?",
    "Who is the author of the article?",
    "Where did Chinese and Soviet forces clash in 1969?",
    "What did Putin call the collapse of the Soviet Union?",
    "How much did foreign direct investment in China fall?",
    "Which treaties ceded land to Russia?",
]


class TestEmbedderBackends:
    """Every faster backend must rank the article's passages exactly as sentence-transformers does."""

    @pytest.mark.parametrize(
        ("backend", "min_cosine"), [(EmbedderBackend.ONNX_INT8, 0.995), (EmbedderBackend.OPENVINO, 0.9995)]
    )
    def test_backend_matches_torch_rankings_on_the_article(
        self, article_text: str, backend: EmbedderBackend, min_cosine: float
    ) -> None:
        chunks = make_chunker(IndexSpec()).split(Document("a", "t", "s", article_text))
        texts = [c.text for c in chunks]
        torch_backend = make_embedder(EmbedderBackend.TORCH)
        fast_backend = make_embedder(backend)
        passages_torch, passages_fast = torch_backend.embed(texts), fast_backend.embed(texts)
        cosines = (passages_torch * passages_fast).sum(axis=1)
        assert cosines.min() > min_cosine
        for question in QUESTIONS:
            top_torch = np.argsort(-(passages_torch @ torch_backend.embed_query(question)))[:3]
            top_fast = np.argsort(-(passages_fast @ fast_backend.embed_query(question)))[:3]
            assert top_torch[0] == top_fast[0], question
            assert set(top_torch) == set(top_fast), question

    @pytest.mark.parametrize("backend", list(EmbedderBackend))
    def test_vectors_are_normalised_and_batching_keeps_order(self, backend: EmbedderBackend) -> None:
        embedder = make_embedder(backend, batch_size=2)
        texts = ["short", "a much longer sentence about the Treaty of Aigun in 1858", "mid length text"]
        together = embedder.embed(texts)
        alone = np.stack([embedder.embed_query(t) for t in texts])
        assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
        assert np.allclose(together, alone, atol=2e-3)

    def test_unknown_backend_lists_valid_values(self) -> None:
        with pytest.raises(ValueError, match="openvino, onnx-int8, torch"):
            make_embedder("gpu-magic")
