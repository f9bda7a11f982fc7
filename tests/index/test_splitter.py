from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.embedders import minilm_folder
from index.splitter import TokenChunker
from index.types import Document

WORDS = st.sampled_from(
    [
        "Deng",
        "agreed",
        "1979",
        "the",
        "U.S.",
        "Mr.",
        "Xi",
        "—",
        "“no limits”",
        "$240",
        "billion",
        "é",
        "日本",
        "a",
    ]
)
SEPARATORS = st.sampled_from([" ", " ", " ", "\n", "\n\n", ". ", ", ", "  ", "\t"])
TEXTS = st.lists(st.tuples(WORDS, SEPARATORS), min_size=1, max_size=400).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)


@pytest.fixture(scope="module")
def tokenizer_file() -> Path:
    return minilm_folder() / "tokenizer.json"


class TestTokenChunker:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(text=TEXTS, size=st.integers(8, 96), overlap_fraction=st.floats(0, 0.6))
    def test_offsets_are_exact_for_random_documents(
        self, tokenizer_file: Path, text: str, size: int, overlap_fraction: float
    ) -> None:
        chunker = TokenChunker(tokenizer_file, size, int(size * overlap_fraction))
        document = Document("doc", "t", "s", text)
        chunks = chunker.split(document)
        if text.strip():
            assert chunks
        previous_start = -1
        for chunk in chunks:
            assert document.text[chunk.start : chunk.end] == chunk.text
            assert chunk.start > previous_start  # document order, overlap allowed
            previous_start = chunk.start
        # Nothing but whitespace is lost between passages.
        covered = set()
        for chunk in chunks:
            covered.update(range(chunk.start, chunk.end))
        assert all(text[i].isspace() for i in range(len(text)) if i not in covered)

    def test_passages_respect_the_token_budget_and_overlap(self, tokenizer_file: Path, article_text: str) -> None:
        chunker = TokenChunker(tokenizer_file, 64, 16)
        chunks = chunker.split(Document("a", "t", "s", article_text))
        assert len(chunks) > 10
        assert all(chunker.count_tokens(c.text) <= 64 for c in chunks)
        overlapping = sum(1 for a, b in itertools.pairwise(chunks) if b.start < a.end)
        assert overlapping > 0

    @pytest.mark.parametrize(("size", "overlap"), [(4, 0), (64, 64), (64, -1)])
    def test_rejects_impossible_settings(self, tokenizer_file: Path, size: int, overlap: int) -> None:
        with pytest.raises(ValueError, match="chunk_"):
            TokenChunker(tokenizer_file, size, overlap)
