"""The passage index: FAISS vectors with ids, passages with offsets, documents, and a manifest.

On disk it is one directory, always replaced whole: a new version is written beside it and renamed
into place, so a crash mid-write leaves the previous index intact.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.embedders import Embedder, Vectors
from index.splitter import TokenChunker
from index.types import Chunk, Document, IndexSpec

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FAISS_FILE = "passages.faiss"
PASSAGES_FILE = "passages.jsonl"
DOCUMENTS_FILE = "documents.jsonl"


class IndexStoreError(RuntimeError):
    """Base of index problems a user can fix; the message says how."""


class IndexNotFoundError(IndexStoreError):
    pass


class IndexMismatchError(IndexStoreError):
    pass


@dataclass(frozen=True)
class IngestReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    passages_embedded: int = 0


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str
    source: str
    sha256: str
    chunk_count: int


class PassageIndex:
    """Documents, their passages and an exact inner-product FAISS index keyed by passage id."""

    def __init__(self, spec: IndexSpec, embedder: Embedder, chunker: TokenChunker) -> None:
        self.spec = spec
        self.embedder = embedder
        self.chunker = chunker
        self._documents: dict[str, Document] = {}
        self._chunks: dict[int, Chunk] = {}
        self._ids_by_doc: dict[str, list[int]] = {}
        self._faiss_id_by_chunk: dict[str, int] = {}
        self._faiss: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(embedder.dimension))
        self._next_id = 0
        self._lock = threading.RLock()
        self.built_at: float = time.time()
        # Bumped on every change so that derived structures (the BM25 index) know to rebuild.
        self.generation = 0

    # ---- reading -------------------------------------------------------------------------
    @property
    def documents(self) -> list[Document]:
        with self._lock:
            return list(self._documents.values())

    def document(self, doc_id: str) -> Document | None:
        with self._lock:
            return self._documents.get(doc_id)

    def document_infos(self) -> list[DocumentInfo]:
        with self._lock:
            return [
                DocumentInfo(d.doc_id, d.title, d.source, d.sha256, len(self._ids_by_doc.get(d.doc_id, [])))
                for d in self._documents.values()
            ]

    def chunks(self) -> list[Chunk]:
        """All passages in document order."""
        with self._lock:
            return [self._chunks[i] for ids in self._ids_by_doc.values() for i in ids]

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)

    def search(self, query_vector: Vectors, k: int) -> list[tuple[Chunk, float]]:
        with self._lock:
            if not self._chunks or k <= 0:
                return []
            scores, ids = self._faiss.search(query_vector.reshape(1, -1).astype(np.float32), k)
            return [(self._chunks[int(i)], float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def vectors_for(self, chunk_ids: Sequence[str]) -> Vectors:
        """Stored vectors of the given passages (for re-scoring and the relevance gate)."""
        with self._lock:
            return np.stack([self._faiss.reconstruct(self._faiss_id_by_chunk[c]) for c in chunk_ids])

    # ---- writing -------------------------------------------------------------------------
    def add(self, documents: Sequence[Document], show_progress: bool = False) -> IngestReport:
        """Add documents; identical content is skipped, a changed file replaces its old version."""
        report = IngestReport()
        with self._lock:
            known_hashes = {d.sha256: d.doc_id for d in self._documents.values()}
            by_source = {d.source: d.doc_id for d in self._documents.values()}
        fresh: list[Document] = []
        for document in documents:
            if document.sha256 in known_hashes or any(d.sha256 == document.sha256 for d in fresh):
                report.unchanged.append(known_hashes.get(document.sha256, document.doc_id))
            else:
                fresh.append(document)
        if not fresh:
            return report
        # Split and embed outside the lock: readers keep working during a long ingest.
        split = [(document, self.chunker.split(document)) for document in fresh]
        texts = [chunk.text for _, chunks in split for chunk in chunks]
        vectors = self.embedder.embed(texts, show_progress=show_progress)
        with self._lock:
            row = 0
            for document, chunks in split:
                old_id = by_source.get(document.source)
                if old_id is not None and old_id in self._documents:
                    self._remove_locked(old_id)
                    report.replaced.append(document.doc_id)
                else:
                    report.added.append(document.doc_id)
                ids = np.arange(self._next_id, self._next_id + len(chunks), dtype=np.int64)
                self._next_id += len(chunks)
                self._faiss.add_with_ids(vectors[row : row + len(chunks)], ids)
                row += len(chunks)
                self._documents[document.doc_id] = document
                self._ids_by_doc[document.doc_id] = [int(i) for i in ids]
                for faiss_id, chunk in zip(ids, chunks, strict=True):
                    self._chunks[int(faiss_id)] = chunk
                    self._faiss_id_by_chunk[chunk.chunk_id] = int(faiss_id)
            self.generation += 1
        return IngestReport(report.added, report.replaced, report.unchanged, passages_embedded=len(texts))

    def remove(self, doc_id: str) -> bool:
        with self._lock:
            if doc_id not in self._documents:
                return False
            self._remove_locked(doc_id)
            self.generation += 1
            return True

    def _remove_locked(self, doc_id: str) -> None:
        ids = self._ids_by_doc.pop(doc_id, [])
        if ids:
            self._faiss.remove_ids(faiss.IDSelectorBatch(np.array(ids, dtype=np.int64)))
        for faiss_id in ids:
            chunk = self._chunks.pop(faiss_id, None)
            if chunk is not None:
                self._faiss_id_by_chunk.pop(chunk.chunk_id, None)
        self._documents.pop(doc_id, None)

    # ---- persistence ---------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        with self._lock:
            return {
                "format_version": FORMAT_VERSION,
                "embedder": {
                    "model": self.embedder.model_name,
                    "backend": self.embedder.backend.value,
                    "dimension": self.embedder.dimension,
                    "normalized": True,
                },
                "splitter": {
                    "kind": "recursive-character",
                    "unit": self.spec.chunk_unit.value,
                    "chunk_size": self.spec.chunk_size_tokens,
                    "chunk_overlap": self.spec.chunk_overlap_tokens,
                },
                "faiss": {"type": "IndexIDMap2(IndexFlatIP)", "metric": "inner product on unit vectors"},
                "next_id": self._next_id,
                "documents": [asdict(info) for info in self.document_infos()],
                "passages": len(self._chunks),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.built_at)),
            }

    def save(self, directory: Path) -> None:
        """Write the whole index to a sibling temporary directory, then rename it into place."""
        directory = directory.resolve()
        directory.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:8]
        staging = directory.parent / f".{directory.name}.tmp-{token}"
        retired = directory.parent / f".{directory.name}.old-{token}"
        with self._lock:
            self.built_at = time.time()
            staging.mkdir()
            try:
                faiss.write_index(self._faiss, str(staging / FAISS_FILE))
                with (staging / PASSAGES_FILE).open("w", encoding="utf-8") as out:
                    for doc_id, ids in self._ids_by_doc.items():
                        for faiss_id in ids:
                            row = {"faiss_id": faiss_id, **asdict(self._chunks[faiss_id])}
                            assert row["doc_id"] == doc_id
                            out.write(json.dumps(row, ensure_ascii=False) + "\n")
                with (staging / DOCUMENTS_FILE).open("w", encoding="utf-8") as out:
                    for document in self._documents.values():
                        out.write(json.dumps(asdict(document), ensure_ascii=False) + "\n")
                # The manifest goes last: a directory without one is never mistaken for an index.
                (staging / MANIFEST).write_text(json.dumps(self.manifest(), indent=2), encoding="utf-8")
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        if directory.exists():
            directory.rename(retired)
        staging.rename(directory)
        shutil.rmtree(retired, ignore_errors=True)

    @staticmethod
    def _recover(directory: Path) -> None:
        """Finish an interrupted save: if the index is missing but its retired copy exists, restore it."""
        if directory.exists():
            return
        retired = sorted(directory.parent.glob(f".{directory.name}.old-*"))
        if retired:
            retired[-1].rename(directory)

    @staticmethod
    def read_manifest(directory: Path) -> dict[str, Any]:
        PassageIndex._recover(directory)
        path = directory / MANIFEST
        if not path.exists():
            raise IndexNotFoundError(f"no index at {directory}: build one with `rag index build [PATH]`")
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return manifest

    @classmethod
    def load(cls, directory: Path, spec: IndexSpec, embedder: Embedder, chunker: TokenChunker) -> PassageIndex:
        manifest = cls.read_manifest(directory)
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexMismatchError(
                f"index at {directory} has format {manifest.get('format_version')}, this version reads "
                f"{FORMAT_VERSION}: rebuild it with `rag index build`"
            )
        built_with = manifest["embedder"]
        if built_with["model"] != embedder.model_name or built_with["dimension"] != embedder.dimension:
            raise IndexMismatchError(
                f"index at {directory} was built with embedder {built_with['model']} "
                f"({built_with['dimension']} dimensions) but the settings use {embedder.model_name} "
                f"({embedder.dimension}): rebuild it with `rag index build`"
            )
        index = cls(spec, embedder, chunker)
        index._faiss = faiss.read_index(str(directory / FAISS_FILE))
        with (directory / DOCUMENTS_FILE).open(encoding="utf-8") as lines:
            for line in lines:
                document = Document(**json.loads(line))
                index._documents[document.doc_id] = document
                index._ids_by_doc[document.doc_id] = []
        with (directory / PASSAGES_FILE).open(encoding="utf-8") as lines:
            for line in lines:
                row = json.loads(line)
                faiss_id = int(row.pop("faiss_id"))
                chunk = Chunk(**row)
                index._chunks[faiss_id] = chunk
                index._faiss_id_by_chunk[chunk.chunk_id] = faiss_id
                index._ids_by_doc[chunk.doc_id].append(faiss_id)
        index._next_id = int(manifest["next_id"])
        if index._faiss.ntotal != len(index._chunks):
            raise IndexMismatchError(
                f"index at {directory} is inconsistent ({index._faiss.ntotal} vectors, "
                f"{len(index._chunks)} passages): rebuild it with `rag index build`"
            )
        return index
