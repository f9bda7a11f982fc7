"""Fakes for the fast durability tests (each test that uses them says so): a hashing embedder and a
paragraph splitter. How files are written, locked and recovered does not depend on what the vectors
mean, and a child process that starts in a fraction of a second lets a crash loop run dozens of
kill -9 trials in seconds. They record their own model name, so an index they built is never
mistaken for one of the real embedder's."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.embedders import Embedder, Vectors
from index.store import PassageIndex
from index.types import Chunk, Document, EmbedderBackend, IndexSpec

SPEC = IndexSpec()


class HashEmbedder(Embedder):
    """Deterministic unit vectors from a text's sha256 (fake: no meaning, same text → same vector)."""

    model_name = "fake-hash-embedder"
    dimension = 16

    def __init__(self) -> None:
        super().__init__(threads=1, batch_size=32)

    @property
    def backend(self) -> EmbedderBackend:
        return EmbedderBackend.ONNX_INT8

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[: self.dimension], dtype=np.uint8) for t in texts]
        vectors = np.array(rows, dtype=np.float32) - 127.5
        normalised: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return normalised


class ParagraphSplitter:
    """One passage per paragraph, with exact offsets (fake: stands in for the token chunker)."""

    def split(self, document: Document) -> list[Chunk]:
        return [
            Chunk(f"{document.doc_id}#{n}", document.doc_id, match.group(), match.start(), match.end())
            for n, match in enumerate(re.finditer(r"[^\n]+(?:\n[^\n]+)*", document.text))
        ]


def fake_index() -> PassageIndex:
    return PassageIndex(SPEC, HashEmbedder(), ParagraphSplitter())


def open_fake_index(directory: Path) -> PassageIndex:
    return PassageIndex.load(directory, SPEC, HashEmbedder(), ParagraphSplitter())


def make_document(name: str, paragraphs: int = 3) -> Document:
    text = "\n\n".join(f"{name}: paragraph {n} about harbours, tides and ships." for n in range(paragraphs))
    return Document(doc_id=name, title=name, source=f"test:{name}", text=text)
