"""The passage index: FAISS vectors with ids, passages with offsets, documents, and a manifest.

In memory the index is one immutable `Snapshot`. A read takes the current snapshot once and uses
only it, so a query never sees half of a change; a write builds a new snapshot from a copy and swaps
it in, so a write that fails (to embed or to save) leaves memory as it was.

On disk (format 2) a directory holds numbered generations and one commit pointer:

    manifest.json          the committed manifest: names its generation N and N's files
    passages-00000N.faiss  the vectors of generation N (exact inner product, or HNSW/IVF when large: vector_layout.py)
    passages-00000N.jsonl  passage text and character offsets
    documents-00000N.jsonl the documents
    .lock                  flock-ed by the one writer at a time; holds that writer's pid

A save writes generation N+1's files, fsyncs them and the directory, then replaces manifest.json
with `os.replace` (atomic) and fsyncs the directory again: before that rename generation N is the
index, after it N+1 is, and a crash at any point leaves one of the two whole. Files of other
generations and temporary files are removed by the next writer that holds the lock (a save, or an
open that finds the lock free). Format 1 — unnumbered files in a directory replaced by two renames —
still opens, including a directory interrupted between those renames: the newest retired copy beside
it (by its manifest, not by its random name) is recovered.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import faiss
import numpy as np

from index.embedders import Embedder, Vectors
from index.errors import UserError
from index.types import Chunk, Document, IndexSpec, split_new
from index.vector_layout import VectorIndex, VectorLayout

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MANIFEST = "manifest.json"
LOCK_FILE = ".lock"
# Format 1 names: one unnumbered set of files per directory.
# One query against an exact index is one matrix-vector product: OpenMP's thread hand-off costs more than
# it saves below millions of passages (search p50 on the article 9 ms with one thread vs 16-24 ms with two,
# measured 2026-11-30), and a server's concurrent requests already keep every core busy.
faiss.omp_set_num_threads(1)

FAISS_FILE = "passages.faiss"
PASSAGES_FILE = "passages.jsonl"
DOCUMENTS_FILE = "documents.jsonl"
FORMAT_1_FILES = {"faiss": FAISS_FILE, "passages": PASSAGES_FILE, "documents": DOCUMENTS_FILE}
_NUMBERED_FILE = re.compile(r"^(?:passages|documents)-\d+\.(?:faiss|jsonl)$")
_POINTER_TEMPORARY = f".{MANIFEST}.tmp-"

LOCK_TIMEOUT_S = 120.0
LOAD_ATTEMPTS = 5
# Vectors of passages removed by the last few swaps (at most RETIRED_MAX_VECTORS in all) stay readable:
# a query that found a passage just before a delete still gets its vector (`PassageIndex.vectors_for`).
RETIRED_SWAPS = 8
RETIRED_MAX_VECTORS = 8192

# The steps of a save, in order. From COMMIT_STEP on, the new generation is the index.
SAVE_STEPS = (
    "begin",
    "faiss-written",
    "passages-partial",
    "passages-written",
    "documents-written",
    "files-synced",
    "pointer-written",
    "pointer-replaced",
    "committed",
    "tidying",
)
COMMIT_STEP = "pointer-replaced"
# Crash tests set this in a child process to kill it at a given step; None everywhere else.
save_step_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if save_step_hook is not None:
        save_step_hook(name)


class IndexStoreError(UserError, RuntimeError):
    """Base of index problems a user can fix; the message says how."""


class IndexNotFoundError(IndexStoreError):
    """No index where the settings point (no committed manifest; in Milvus, missing or incomplete collections); the
    message says how to build one."""


class IndexMismatchError(IndexStoreError):
    """The index cannot be used as it is (another format or schema version, another embedder, or files that
    disagree); the message says how to rebuild it."""


class IndexLockedError(IndexStoreError):
    """Another writer held the index for longer than the wait allows."""


class IndexWriteError(IndexStoreError):
    """Saving failed (disk full, permissions): the index, in memory and on disk, is unchanged."""

    def __init__(self, message: str, cause: OSError) -> None:
        super().__init__(message)
        self.errno = cause.errno


class Splitter(Protocol):
    """What the index needs from a chunker."""

    def split(self, document: Document) -> list[Chunk]:
        """The document's passages, in order, with character offsets into `document.text`."""


@dataclass(frozen=True)
class IngestReport:
    """What one add did, as doc_ids: `added` (new), `replaced` (an older version went: same doc_id, or same source),
    `unchanged` (the id already holding identical content); `passages_embedded` counts the passages written."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    passages_embedded: int = 0


@dataclass(frozen=True)
class DocumentInfo:
    """One row of a document listing: identity, content hash and passage count (no text)."""

    doc_id: str
    title: str
    source: str
    sha256: str
    chunk_count: int


@dataclass(frozen=True)
class Embedded:
    """A document's passages and their vectors, computed before any lock is taken."""

    chunks: list[Chunk]
    vectors: Vectors


def embedding_key(document: Document) -> tuple[str, str]:
    """The key of a document's `Embedded` passages: doc_id and content hash, so vectors computed for one version of a
    document are never used for another."""
    return document.doc_id, document.sha256


# ---- the immutable in-memory index ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Snapshot:
    """One version of the index. Never changed after construction: `with_added` and `without` return
    new snapshots built on copies (the FAISS index is cloned), so readers holding this one are safe."""

    documents: Mapping[str, Document]
    chunks: Mapping[int, Chunk]
    ids_by_doc: Mapping[str, tuple[int, ...]]
    faiss_id_by_chunk: Mapping[str, int]
    vectors: VectorIndex
    next_id: int
    built_at: float
    # The on-disk generation this snapshot is, or was derived from (None: never saved).
    base_generation: int | None = None
    # True when the snapshot equals generation `base_generation` (nothing unsaved).
    saved: bool = False
    # Change counter within one PassageIndex: derived structures (BM25) rebuild when it moves.
    version: int = 0
    # Which FAISS index kind the vectors get as their count changes.
    layout: VectorLayout = field(default_factory=VectorLayout)

    @classmethod
    def empty(cls, dimension: int, layout: VectorLayout | None = None) -> Snapshot:
        """A snapshot with no documents, over an exact inner-product FAISS index of `dimension`."""
        layout = layout or VectorLayout()
        return cls({}, {}, {}, {}, layout.empty(dimension), 0, time.time(), layout=layout)

    def ordered_chunks(self) -> list[Chunk]:
        """All passages in document order."""
        return [self.chunks[i] for ids in self.ids_by_doc.values() for i in ids]

    def infos(self) -> list[DocumentInfo]:
        """One DocumentInfo per document, in the order they were added."""
        return [
            DocumentInfo(d.doc_id, d.title, d.source, d.sha256, len(self.ids_by_doc.get(d.doc_id, ())))
            for d in self.documents.values()
        ]

    def fresh(self, documents: Iterable[Document]) -> list[Document]:
        """The documents whose content is not indexed yet (the first of in-batch duplicates)."""
        known = {d.sha256 for d in self.documents.values()}
        fresh: list[Document] = []
        for document in documents:
            if document.sha256 not in known:
                known.add(document.sha256)
                fresh.append(document)
        return fresh

    def with_added(
        self, documents: Sequence[Document], embedded: Mapping[tuple[str, str], Embedded], replace_same_source: bool
    ) -> tuple[Snapshot, IngestReport]:
        """A new snapshot with `documents` added. Identical content is skipped; a document replaces one
        with the same doc_id, and (if `replace_same_source`) every one with the same source."""
        unchanged, additions = split_new(documents, {d.sha256: d.doc_id for d in self.documents.values()})
        report = IngestReport(unchanged=unchanged)
        if not additions:
            return self, report

        documents_map = dict(self.documents)
        chunks = dict(self.chunks)
        ids_by_doc = dict(self.ids_by_doc)
        by_chunk = dict(self.faiss_id_by_chunk)
        by_source: dict[str, set[str]] = {}
        for d in documents_map.values():
            by_source.setdefault(d.source, set()).add(d.doc_id)
        vectors = self.vectors.copy()
        removed: list[int] = []
        next_id = self.next_id
        passages = 0
        for document in additions:
            old_ids = {document.doc_id} & documents_map.keys()
            if replace_same_source:
                old_ids |= by_source.get(document.source, set())
            for old_id in old_ids:
                old = documents_map.pop(old_id)
                by_source.get(old.source, set()).discard(old_id)
                for faiss_id in ids_by_doc.pop(old_id, ()):
                    removed.append(faiss_id)
                    chunk = chunks.pop(faiss_id)
                    if by_chunk.get(chunk.chunk_id) == faiss_id:
                        del by_chunk[chunk.chunk_id]
            (report.replaced if old_ids else report.added).append(document.doc_id)
            item = embedded[embedding_key(document)]
            ids = np.arange(next_id, next_id + len(item.chunks), dtype=np.int64)
            next_id += len(item.chunks)
            if len(ids):
                vectors.add(item.vectors, ids)
            documents_map[document.doc_id] = document
            by_source.setdefault(document.source, set()).add(document.doc_id)
            ids_by_doc[document.doc_id] = tuple(int(i) for i in ids)
            for new_id, chunk in zip(ids, item.chunks, strict=True):
                chunks[int(new_id)] = chunk
                by_chunk[chunk.chunk_id] = int(new_id)
            passages += len(item.chunks)
        vectors.remove(removed)
        vectors = self.layout.fitted(vectors, np.fromiter(chunks, dtype=np.int64, count=len(chunks)))
        updated = replace(
            self,
            documents=documents_map,
            chunks=chunks,
            ids_by_doc=ids_by_doc,
            faiss_id_by_chunk=by_chunk,
            vectors=vectors,
            next_id=next_id,
            saved=False,
        )
        return updated, replace(report, passages_embedded=passages)

    def without(self, doc_id: str) -> Snapshot | None:
        """A new snapshot without the document, or None if it is not there."""
        if doc_id not in self.documents:
            return None
        documents_map = dict(self.documents)
        chunks = dict(self.chunks)
        ids_by_doc = dict(self.ids_by_doc)
        by_chunk = dict(self.faiss_id_by_chunk)
        del documents_map[doc_id]
        ids = ids_by_doc.pop(doc_id, ())
        for faiss_id in ids:
            chunk = chunks.pop(faiss_id)
            if by_chunk.get(chunk.chunk_id) == faiss_id:
                del by_chunk[chunk.chunk_id]
        vectors = self.vectors.copy()
        vectors.remove(ids)
        vectors = self.layout.fitted(vectors, np.fromiter(chunks, dtype=np.int64, count=len(chunks)))
        return replace(
            self,
            documents=documents_map,
            chunks=chunks,
            ids_by_doc=ids_by_doc,
            faiss_id_by_chunk=by_chunk,
            vectors=vectors,
            saved=False,
        )


# ---- the cross-process write lock ----------------------------------------------------------------
class DirectoryLock:
    """One writer at a time per index directory: a re-entrant thread lock inside this process and an
    flock on `<directory>/.lock` (holding the writer's pid) across processes. The kernel drops an
    flock when its holder dies, so a killed writer never leaves the index locked."""

    _registry: ClassVar[dict[Path, DirectoryLock]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._thread_lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0
        self._fd: int | None = None

    @classmethod
    def of(cls, directory: Path) -> DirectoryLock:
        """The lock of a directory: one object per path, so every thread of this process shares it."""
        key = Path(directory).resolve()
        with cls._registry_lock:
            return cls._registry.setdefault(key, cls(key))

    @property
    def held(self) -> bool:
        """Held by the calling thread."""
        return self._owner == threading.get_ident()

    def holder(self) -> str:
        """The pid written by the last holder (for messages)."""
        try:
            return (self.directory / LOCK_FILE).read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self, timeout: float | None = LOCK_TIMEOUT_S) -> bool:
        """Take the lock, waiting up to `timeout` seconds (0: try once; None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        if self._depth:
            self._depth += 1
            return True
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if deadline is not None and time.monotonic() >= deadline:
                            os.close(fd)
                            self._thread_lock.release()
                            return False
                        time.sleep(0.02)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
        except BaseException:
            self._thread_lock.release()
            raise
        self._fd, self._owner, self._depth = fd, threading.get_ident(), 1
        return True

    def release(self) -> None:
        """Undo one `acquire` of the calling thread; the flock is dropped when the outermost hold ends. RuntimeError
        if this thread does not hold the lock."""
        self._depth -= 1
        if self._depth == 0:
            fd, self._fd, self._owner = self._fd, None, None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        self._thread_lock.release()

    @contextmanager
    def hold(self, timeout: float | None = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the lock for a `with` block; IndexLockedError, naming the holder's pid, if it is not free within
        `timeout` seconds."""
        if not self.acquire(timeout):
            raise IndexLockedError(
                f"the index at {self.directory} is being changed by another process (pid {self.holder()}); "
                "try again when it has finished"
            )
        try:
            yield
        finally:
            self.release()


# ---- files -----------------------------------------------------------------------------------------
Signature = tuple[int, int, int]


def _pointer_signature(directory: Path) -> Signature | None:
    """Cheap identity of the commit pointer: os.replace gives it a new inode on every commit."""
    try:
        stat = os.stat(directory / MANIFEST)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _load_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexStoreError(
            f"the manifest at {source} is unreadable ({error}): rebuild with `rag index build`"
        ) from error
    if not isinstance(manifest, dict):
        raise IndexStoreError(f"the manifest at {source} is not an object: rebuild with `rag index build`")
    return manifest


def _generation_of(manifest: Mapping[str, Any]) -> int:
    return int(manifest.get("generation", 0))


def _locate(directory: Path) -> Path | None:
    """Where the committed manifest is: the directory itself or, for a format-1 save interrupted
    between its two renames, the newest retired copy beside it (by what its manifest says)."""
    if (directory / MANIFEST).is_file():
        return directory
    candidates: list[tuple[tuple[int, str, int], Path]] = []
    for path in directory.parent.glob(f".{directory.name}.old-*"):
        try:
            manifest = _load_manifest(path)
            order = (_generation_of(manifest), str(manifest.get("built_at", "")), (path / MANIFEST).stat().st_mtime_ns)
        except (OSError, ValueError, IndexStoreError):
            continue
        candidates.append((order, path))
    return max(candidates)[1] if candidates else None


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def generation_files(generation: int) -> dict[str, str]:
    """The names of generation `generation`'s three files, keyed as a manifest's `files` (faiss, passages,
    documents)."""
    return {
        "faiss": f"passages-{generation:06d}.faiss",
        "passages": f"passages-{generation:06d}.jsonl",
        "documents": f"documents-{generation:06d}.jsonl",
    }


def tidy(directory: Path) -> None:
    """Remove every file no committed manifest points at: other generations, temporary pointers,
    format-1 files superseded by format 2, and retired or staging copies beside the directory.
    Only a holder of the directory lock may call this (another writer's unfinished files look the same)."""
    if not DirectoryLock.of(directory).held:
        raise RuntimeError("tidy() needs the directory lock")
    if not (directory / MANIFEST).is_file():
        return
    manifest = _load_manifest(directory)
    keep = {MANIFEST, LOCK_FILE, *dict(manifest.get("files") or FORMAT_1_FILES).values()}
    for path in directory.iterdir():
        name = path.name
        if name in keep or not path.is_file():
            continue
        if _NUMBERED_FILE.match(name) or name.startswith(_POINTER_TEMPORARY) or name in FORMAT_1_FILES.values():
            path.unlink(missing_ok=True)
            _step("tidying")
    for pattern in (f".{directory.name}.old-*", f".{directory.name}.tmp-*"):
        for path in directory.parent.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


# ---- the index -------------------------------------------------------------------------------------
class PassageIndex:
    """Documents, their passages and an exact inner-product FAISS index keyed by passage id.

    Reads never block: each takes the current `Snapshot`. An index loaded from (or saved to) a
    directory follows it: when another process commits a newer generation there, the next read
    loads it (one thread loads, the others keep serving the previous snapshot meanwhile). Shared
    directories are changed through `index.library.Library`, which adds the cross-process lock and
    applies each change to the newest generation on disk.
    """

    def __init__(self, spec: IndexSpec, embedder: Embedder, chunker: Splitter) -> None:
        self.spec = spec
        self.embedder = embedder
        self.chunker = chunker
        self.layout = VectorLayout.of(spec)
        self._state = Snapshot.empty(embedder.dimension, self.layout)
        self._swap_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        # One in-memory writer at a time (embedding happens before it is taken).
        self.write_lock = threading.RLock()
        self._retired: deque[dict[str, Vectors]] = deque(maxlen=RETIRED_SWAPS)
        self._directory: Path | None = None
        self._signature: Signature | None = None

    # ---- snapshots ---------------------------------------------------------------------------
    @property
    def directory(self) -> Path | None:
        """The directory this index was loaded from or last saved to (and follows)."""
        return self._directory

    def snapshot(self) -> Snapshot:
        """The current version, after loading a newer generation another process committed."""
        self._follow(wait=False)
        return self._state

    def reload_if_newer(self) -> bool:
        """Load a newer generation from the followed directory now; True if one was loaded. Memory with
        unsaved changes is never replaced."""
        return self._follow(wait=True)

    def _follow(self, wait: bool) -> bool:
        directory, state = self._directory, self._state
        if directory is None or not state.saved:
            return False
        signature = _pointer_signature(directory)
        if signature is None or signature == self._signature:
            return False
        if not self._reload_lock.acquire(blocking=wait):
            return False  # another thread is loading it; serve the current snapshot meanwhile
        try:
            return self._reload(directory, signature)
        finally:
            self._reload_lock.release()

    def _reload(self, directory: Path, signature: Signature) -> bool:
        state = self._state
        if signature == self._signature:
            return False
        try:
            generation = _generation_of(_load_manifest(directory))
            if state.base_generation is not None and generation <= state.base_generation:
                self._signature = signature  # our own commit, or nothing newer
                return False
            loaded, _source, _ = self._read(directory)
        except (IndexStoreError, OSError, ValueError) as error:
            log.warning(
                "the index at %s changed but could not be loaded (%s); serving the previous one", directory, error
            )
            self._signature = signature
            return False
        with self._swap_lock:
            installed = self._state is state  # a write of ours since then is at least as new
            if installed:
                self._install_locked(loaded)
            self._signature = signature
        return installed

    def _install_locked(self, new: Snapshot) -> None:
        old = self._state
        gone = old.faiss_id_by_chunk.keys() - new.faiss_id_by_chunk.keys()
        if gone and len(gone) <= RETIRED_MAX_VECTORS:
            self._retired.append({c: old.vectors.reconstruct(old.faiss_id_by_chunk[c]) for c in gone})
            # A memory bound (about 12 MB at 384 dimensions), not only a count of changes.
            while len(self._retired) > 1 and sum(map(len, self._retired)) > RETIRED_MAX_VECTORS:
                self._retired.popleft()
        self._state = replace(new, version=old.version + 1)

    def install(self, new: Snapshot) -> None:
        """Make `new` the current snapshot (the caller holds `write_lock`)."""
        with self._swap_lock:
            self._install_locked(new)

    # ---- reading -------------------------------------------------------------------------------
    @property
    def documents(self) -> list[Document]:
        """The current documents, in the order they were added (a replaced one moves to the end)."""
        return list(self.snapshot().documents.values())

    def document(self, doc_id: str) -> Document | None:
        """The document with this id in the current snapshot, or None."""
        return self.snapshot().documents.get(doc_id)

    def document_infos(self) -> list[DocumentInfo]:
        """A listing row per current document, in the order they were added."""
        return self.snapshot().infos()

    def chunks(self) -> list[Chunk]:
        """All passages in document order."""
        return self.snapshot().ordered_chunks()

    def __len__(self) -> int:
        return len(self.snapshot().chunks)

    @property
    def generation(self) -> int:
        """Moves on every change of the in-memory index (derived structures rebuild when it does)."""
        return self.snapshot().version

    @property
    def committed_generation(self) -> int | None:
        """The on-disk generation memory equals, or None if it holds unsaved changes."""
        state = self._state
        return state.base_generation if state.saved else None

    @property
    def built_at(self) -> float:
        """When the current snapshot was last committed (Unix seconds), or created if it never was; in-memory changes
        do not move it."""
        return self._state.built_at

    def search(self, query_vector: Vectors, k: int) -> list[tuple[Chunk, float]]:
        """The `k` passages nearest `query_vector` (one vector, shape (dimension,)) by inner product, which is cosine
        on unit vectors: (passage, score) pairs, best first; fewer when the index holds fewer."""
        state = self.snapshot()
        if not state.chunks or k <= 0:
            return []
        scores, ids = state.vectors.search(query_vector.reshape(1, -1).astype(np.float32), k)
        return [(state.chunks[int(i)], float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def vectors_for(self, chunk_ids: Sequence[str]) -> Vectors:
        """Stored vectors of the given passages (for re-scoring and the relevance gate).

        A passage found just before a concurrent delete still has its vector (kept for the last few
        changes); one unknown beyond that gets a zero vector — relevance 0 — rather than an error.
        """
        state = self._state
        with self._swap_lock:
            retired = list(self._retired)
        out = np.zeros((len(chunk_ids), self.embedder.dimension), dtype=np.float32)
        for row, chunk_id in enumerate(chunk_ids):
            faiss_id = state.faiss_id_by_chunk.get(chunk_id)
            if faiss_id is not None:
                out[row] = state.vectors.reconstruct(faiss_id)
                continue
            for vectors in reversed(retired):
                if chunk_id in vectors:
                    out[row] = vectors[chunk_id]
                    break
            else:
                log.debug("no vector for passage %s (removed long ago)", chunk_id)
        return out

    # ---- writing in memory ---------------------------------------------------------------------------
    def embed_documents(
        self, documents: Sequence[Document], show_progress: bool = False
    ) -> dict[tuple[str, str], Embedded]:
        """Split and embed documents (the slow part of a write; needs no lock)."""
        split = [(document, self.chunker.split(document)) for document in documents]
        vectors = self.embedder.embed([c.text for _, chunks in split for c in chunks], show_progress=show_progress)
        embedded: dict[tuple[str, str], Embedded] = {}
        row = 0
        for document, chunks in split:
            embedded[embedding_key(document)] = Embedded(chunks, vectors[row : row + len(chunks)])
            row += len(chunks)
        return embedded

    def apply_add(
        self,
        base: Snapshot,
        documents: Sequence[Document],
        embedded: Mapping[tuple[str, str], Embedded] | None = None,
        replace_same_source: bool = True,
        show_progress: bool = False,
    ) -> tuple[Snapshot, IngestReport]:
        """`base` with the documents added, embedding whatever `embedded` lacks; `base` is unchanged."""
        ready = dict(embedded or {})
        missing = [d for d in base.fresh(documents) if embedding_key(d) not in ready]
        if missing:
            ready.update(self.embed_documents(missing, show_progress))
        return base.with_added(documents, ready, replace_same_source)

    def add(
        self, documents: Sequence[Document], show_progress: bool = False, replace_same_source: bool = True
    ) -> IngestReport:
        """Add documents in memory (`save` writes them); identical content is skipped, a changed file
        replaces its old version (same source)."""
        embedded = self.embed_documents(self.snapshot().fresh(documents), show_progress)
        with self.write_lock:
            base = self._state
            updated, report = self.apply_add(base, documents, embedded, replace_same_source, show_progress)
            if updated is not base:
                self.install(updated)
        return report

    def remove(self, doc_id: str) -> bool:
        """Remove a document in memory (`save` writes it); False if there is no such document."""
        with self.write_lock:
            updated = self._state.without(doc_id)
            if updated is None:
                return False
            self.install(updated)
            return True

    # ---- persistence ---------------------------------------------------------------------------
    def _manifest(self, state: Snapshot, generation: int | None, files: Mapping[str, str]) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "generation": generation,
            "files": dict(files),
            "embedder": {
                "model": self.embedder.model_name,
                "backend": self.embedder.backend.value,
                "dimension": self.embedder.dimension,
                "normalized": True,
            },
            "splitter": {
                "kind": "recursive-character",
                "unit": self.spec.chunk_unit.value,
                "chunk_size": self.spec.chunk_size,
                "chunk_overlap": self.spec.chunk_overlap,
            },
            "faiss": {**VectorLayout.describe(state.vectors), "metric": "inner product on unit vectors"},
            "next_id": state.next_id,
            "documents": [asdict(info) for info in state.infos()],
            "passages": len(state.chunks),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.built_at)),
        }

    def manifest(self) -> dict[str, Any]:
        """The manifest of the current snapshot."""
        state = self._state
        generation = state.base_generation if state.saved else None
        return self._manifest(state, generation, generation_files(generation or 0))

    def save(self, directory: Path) -> None:
        """Commit the in-memory index as the next generation in `directory`, whatever is there.
        (To change a directory other processes also write, use `Library`.) An OSError leaves both
        the directory and memory as they were."""
        with self.write_lock, DirectoryLock.of(directory).hold():
            self.commit(self._state, directory)

    def commit(self, state: Snapshot, directory: Path) -> Snapshot:
        """Write `state` as the next generation of `directory` and make it the current snapshot. The
        caller holds the directory lock. On an OSError nothing changed, on disk or in memory."""
        if not DirectoryLock.of(directory).held:
            raise RuntimeError("commit() needs the directory lock: use Library or save()")
        state = replace(state, built_at=time.time())
        generation = self._write_generation(state, directory)
        committed = replace(state, base_generation=generation, saved=True)
        with self._swap_lock:
            self._directory, self._signature = directory, _pointer_signature(directory)
            self._install_locked(committed)
        try:
            tidy(directory)
        except (OSError, IndexStoreError) as error:
            log.warning("could not remove old index files in %s: %s", directory, error)
        return self._state

    def _write_generation(self, state: Snapshot, directory: Path) -> int:
        directory.mkdir(parents=True, exist_ok=True)
        source = _locate(directory)
        on_disk = _generation_of(_load_manifest(source)) if source is not None else 0
        generation = max(on_disk, state.base_generation or 0) + 1
        files = generation_files(generation)
        written: list[Path] = []
        try:
            _step("begin")
            faiss_path = directory / files["faiss"]
            written.append(faiss_path)
            try:
                state.vectors.write(str(faiss_path))
            except RuntimeError as error:  # faiss reports a failed fwrite (disk full) this way
                raise OSError(errno.EIO, f"writing {faiss_path.name} failed: {error}") from error
            _fsync_file(faiss_path)
            _step("faiss-written")
            passages_path = directory / files["passages"]
            written.append(passages_path)
            with passages_path.open("w", encoding="utf-8") as out:
                for n, (doc_id, ids) in enumerate(state.ids_by_doc.items()):
                    for faiss_id in ids:
                        row = {"faiss_id": faiss_id, **asdict(state.chunks[faiss_id])}
                        assert row["doc_id"] == doc_id
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    if n == 0:
                        out.flush()
                        _step("passages-partial")
                out.flush()
                os.fsync(out.fileno())
            _step("passages-written")
            documents_path = directory / files["documents"]
            written.append(documents_path)
            with documents_path.open("w", encoding="utf-8") as out:
                for document in state.documents.values():
                    out.write(json.dumps(asdict(document), ensure_ascii=False) + "\n")
                out.flush()
                os.fsync(out.fileno())
            _step("documents-written")
            _fsync_dir(directory)
            _step("files-synced")
            pointer = directory / f"{_POINTER_TEMPORARY}{uuid.uuid4().hex[:8]}"
            written.append(pointer)
            with pointer.open("w", encoding="utf-8") as out:
                json.dump(self._manifest(state, generation, files), out, indent=2)
                out.flush()
                os.fsync(out.fileno())
            _step("pointer-written")
            os.replace(pointer, directory / MANIFEST)
        except BaseException:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            raise
        _step("pointer-replaced")
        try:
            _fsync_dir(directory)
        except OSError as error:  # the commit is visible already; only its durability is in doubt
            log.warning("could not fsync %s after committing generation %d: %s", directory, generation, error)
        _step("committed")
        return generation

    def sync_with(self, directory: Path) -> Snapshot:
        """The snapshot a write to `directory` must start from (the caller holds its lock): memory if it
        derives from the generation committed there, otherwise that generation, loaded and installed."""
        if not DirectoryLock.of(directory).held:
            raise RuntimeError("sync_with() needs the directory lock")
        state = self._state
        source = _locate(directory)
        if source is None:
            return state  # nothing committed yet: memory is the base
        generation = _generation_of(_load_manifest(source))
        if source == directory and state.base_generation == generation:
            return state
        if not state.saved and state.base_generation is not None:
            log.warning("discarding unsaved changes: %s has a newer generation %d", directory, generation)
        loaded, _, signature = self._read(directory)
        with self._swap_lock:
            self._install_locked(loaded)
            self._directory, self._signature = directory, signature
        return self._state

    @staticmethod
    def read_manifest(directory: Path) -> dict[str, Any]:
        """The committed manifest at `directory` (or of a recoverable format-1 copy beside it), without loading the
        index; IndexNotFoundError if there is none, IndexStoreError if it is unreadable."""
        source = _locate(directory)
        if source is None:
            raise IndexNotFoundError(f"no index at {directory}: build one with `rag index build [PATH]`")
        return _load_manifest(source)

    def _check(self, manifest: Mapping[str, Any], directory: Path) -> None:
        if manifest.get("format_version") not in READABLE_FORMATS:
            raise IndexMismatchError(
                f"index at {directory} has format {manifest.get('format_version')}, this version reads "
                f"{' and '.join(map(str, READABLE_FORMATS))}: rebuild it with `rag index build`"
            )
        built_with = manifest["embedder"]
        if built_with["model"] != self.embedder.model_name or built_with["dimension"] != self.embedder.dimension:
            raise IndexMismatchError(
                f"index at {directory} was built with embedder {built_with['model']} "
                f"({built_with['dimension']} dimensions) but the settings use {self.embedder.model_name} "
                f"({self.embedder.dimension}): rebuild it with `rag index build`"
            )

    def _read(self, directory: Path) -> tuple[Snapshot, Path, Signature | None]:
        """The committed snapshot (and where it was and the pointer it came from). A reader does not
        lock: if a writer removes the generation it is reading, it reads the newer one."""
        for _ in range(LOAD_ATTEMPTS):
            signature = _pointer_signature(directory)
            source = _locate(directory)
            if source is None:
                raise IndexNotFoundError(f"no index at {directory}: build one with `rag index build [PATH]`")
            manifest = _load_manifest(source)
            self._check(manifest, directory)
            try:
                return self._from_files(source, manifest, directory), source, signature
            except (ValueError, KeyError, TypeError) as error:
                raise IndexStoreError(
                    f"index at {directory} is unreadable ({error!r}): rebuild it with `rag index build`"
                ) from error
            except FileNotFoundError as error:
                if _pointer_signature(directory) == signature:
                    raise IndexStoreError(
                        f"index at {directory} is missing {Path(error.filename or '?').name}: "
                        "rebuild it with `rag index build`"
                    ) from error
        raise IndexStoreError(f"index at {directory} kept changing while it was read; try again")

    def _from_files(self, source: Path, manifest: Mapping[str, Any], directory: Path) -> Snapshot:
        files = dict(manifest.get("files") or FORMAT_1_FILES)
        faiss_path = source / files["faiss"]
        try:
            stored = faiss.read_index(str(faiss_path))
        except RuntimeError as error:  # faiss says "could not open" for a missing file too
            if not faiss_path.exists():
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(faiss_path)) from error
            raise IndexStoreError(
                f"index at {directory}: {faiss_path.name} is unreadable: rebuild it with `rag index build`"
            ) from error
        documents: dict[str, Document] = {}
        ids_by_doc: dict[str, list[int]] = {}
        chunks: dict[int, Chunk] = {}
        by_chunk: dict[str, int] = {}
        with (source / files["documents"]).open(encoding="utf-8") as lines:
            for line in lines:
                document = Document(**json.loads(line))
                documents[document.doc_id] = document
                ids_by_doc[document.doc_id] = []
        with (source / files["passages"]).open(encoding="utf-8") as lines:
            for line in lines:
                row = json.loads(line)
                faiss_id = int(row.pop("faiss_id"))
                chunk = Chunk(**row)
                chunks[faiss_id] = chunk
                by_chunk[chunk.chunk_id] = faiss_id
                ids_by_doc[chunk.doc_id].append(faiss_id)
        vectors = VectorIndex.opened(stored, chunks)
        if vectors.count != len(chunks):
            raise IndexMismatchError(
                f"index at {directory} is inconsistent ({vectors.count} vectors, "
                f"{len(chunks)} passages): rebuild it with `rag index build`"
            )
        try:
            built_at = float(calendar.timegm(time.strptime(str(manifest.get("built_at")), "%Y-%m-%dT%H:%M:%SZ")))
        except ValueError:
            built_at = time.time()
        return Snapshot(
            documents=documents,
            chunks=chunks,
            ids_by_doc={doc_id: tuple(ids) for doc_id, ids in ids_by_doc.items()},
            faiss_id_by_chunk=by_chunk,
            vectors=self.layout.tuned(vectors),
            next_id=int(manifest["next_id"]),
            built_at=built_at,
            base_generation=_generation_of(manifest),
            saved=True,
            layout=self.layout,
        )

    @classmethod
    def load(cls, directory: Path, spec: IndexSpec, embedder: Embedder, chunker: Splitter) -> PassageIndex:
        """Open the index committed in `directory`, then (if no writer is busy) tidy it: finish a
        format-1 recovery and remove files of other generations."""
        index = cls(spec, embedder, chunker)
        state, source, signature = index._read(directory)
        index._state, index._directory, index._signature = state, directory, signature
        index._settle(directory, source)
        return index

    def _settle(self, directory: Path, source: Path) -> None:
        lock = DirectoryLock.of(directory)
        try:
            if not lock.acquire(timeout=0):
                return  # a writer is busy; it tidies after its commit
        except OSError:
            return  # read-only location: nothing to tidy
        try:
            with self.write_lock:
                if source != directory and _locate(directory) == source:
                    self.commit(self._state, directory)  # recovered copy becomes a generation again
                else:
                    tidy(directory)
        except (OSError, IndexStoreError) as error:
            log.warning("could not tidy the index at %s: %s", directory, error)
        finally:
            lock.release()
