"""Assemble the index's parts from an IndexSpec: one place that knows which classes to use."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from index.embedders import Embedder, make_embedder, minilm_folder
from index.splitter import TokenChunker
from index.store import IndexNotFoundError, PassageIndex
from index.types import ChunkUnit, IndexSpec, StoreKind

log = logging.getLogger(__name__)


def make_chunker(spec: IndexSpec) -> TokenChunker:
    """The spec's splitter over all-MiniLM's tokenizer, so passage lengths are counted in the embedder's own tokens."""
    return TokenChunker(minilm_folder() / "tokenizer.json", spec.chunk_size, spec.chunk_overlap, spec.chunk_unit)


def make_spec_embedder(spec: IndexSpec) -> Embedder:
    """A new embedder with the spec's backend, thread count and batch size (its model loads on first use)."""
    return make_embedder(
        spec.embedder_backend,
        threads=spec.embed_threads,
        batch_size=spec.embed_batch_size,
        cache_dir=spec.model_cache_dir,
    )


def new_index(spec: IndexSpec, embedder: Embedder | None = None) -> PassageIndex:
    """An empty in-memory FAISS index, or — with `spec.store` milvus — the Milvus store, created if absent
    (a Milvus store is never private to one process, so it is not emptied here: `Library.rebuild` does)."""
    if spec.store is StoreKind.MILVUS:
        from index.milvus_store import open_milvus  # imports pymilvus only when it is used

        return open_milvus(spec, embedder or make_spec_embedder(spec), make_chunker(spec), create=True)
    return PassageIndex(spec, embedder or make_spec_embedder(spec), make_chunker(spec))


def open_index(directory: Path, spec: IndexSpec, embedder: Embedder | None = None) -> PassageIndex:
    """Load the index at `directory` (FAISS) or at `spec.milvus_uri` (Milvus); IndexNotFoundError /
    IndexMismatchError say how to fix. Documents added later are split as the index was built, whatever
    the settings say now (the Milvus store applies its stored splitter itself)."""
    if spec.store is StoreKind.MILVUS:
        from index.milvus_store import open_milvus

        return open_milvus(spec, embedder or make_spec_embedder(spec), make_chunker(spec))
    spec = built_spec(spec, PassageIndex.read_manifest(directory).get("splitter") or {}, str(directory))
    return PassageIndex.load(directory, spec, embedder or make_spec_embedder(spec), make_chunker(spec))


def built_spec(spec: IndexSpec, splitter: Mapping[str, Any], where: str) -> IndexSpec:
    """`spec` with the splitter an existing index records (`unit`, `chunk_size`, `chunk_overlap`), so one
    index never mixes passage lengths; a difference from the settings is logged in one line."""
    if not splitter:
        return spec
    stored = replace(
        spec,
        chunk_unit=ChunkUnit(splitter["unit"]),
        chunk_size=int(splitter["chunk_size"]),
        chunk_overlap=int(splitter["chunk_overlap"]),
    )
    if stored != spec:
        log.warning(
            "the index in %s was built with chunks of %d %s (overlap %d); new documents are split the same way, "
            "not as the settings say (%d %s, overlap %d): rebuild it (`rag index build`) to change that",
            where,
            stored.chunk_size,
            stored.chunk_unit.value,
            stored.chunk_overlap,
            spec.chunk_size,
            spec.chunk_unit.value,
            spec.chunk_overlap,
        )
    return stored


class StoreSettings(Protocol):
    """What `open_store` needs from the settings (rag.settings.Settings has it; index/ cannot import rag/)."""

    index_dir: Path

    def index_spec(self) -> IndexSpec:
        """How the index is built and where it is stored, from these settings."""


def open_store(settings: StoreSettings, embedder: Embedder | None = None, create: bool = False) -> PassageIndex:
    """The passage store the settings select (`store`: faiss or milvus); with `create`, an empty one if
    there is none yet."""
    spec = settings.index_spec()
    try:
        return open_index(settings.index_dir, spec, embedder)
    except IndexNotFoundError:
        if not create:
            raise
        return new_index(spec, embedder)
