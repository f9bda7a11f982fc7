"""Assemble the index's parts from an IndexSpec: one place that knows which classes to use."""

from __future__ import annotations

from pathlib import Path

from index.embedders import Embedder, make_embedder, minilm_folder
from index.splitter import TokenChunker
from index.store import PassageIndex
from index.types import IndexSpec


def make_chunker(spec: IndexSpec) -> TokenChunker:
    return TokenChunker(
        minilm_folder() / "tokenizer.json", spec.chunk_size_tokens, spec.chunk_overlap_tokens, spec.chunk_unit
    )


def make_spec_embedder(spec: IndexSpec) -> Embedder:
    return make_embedder(spec.embedder_backend, threads=spec.embed_threads, batch_size=spec.embed_batch_size)


def new_index(spec: IndexSpec, embedder: Embedder | None = None) -> PassageIndex:
    return PassageIndex(spec, embedder or make_spec_embedder(spec), make_chunker(spec))


def open_index(directory: Path, spec: IndexSpec, embedder: Embedder | None = None) -> PassageIndex:
    """Load the index at `directory`; IndexNotFoundError / IndexMismatchError say how to fix."""
    return PassageIndex.load(directory, spec, embedder or make_spec_embedder(spec), make_chunker(spec))
