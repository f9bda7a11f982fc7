"""The one owner of index writes: the API's uploads and deletes and the CLI's build/add/rm all go through
a `Library`, so the sequence "lock, catch up with disk, change a copy, commit, swap" lives in one place.

Why each step: the lock (a thread lock plus an flock on the directory) makes one writer at a time
across processes; catching up loads a generation another process committed since this one last
looked (otherwise the server would rewrite the directory from memory and delete what `rag index
add` had just added); the change is applied to a copy of the snapshot and swapped in only after the
commit, so a failed save leaves memory as it was. Embedding — the slow part — happens before the
lock is taken, so readers and other writers are not held up by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from index.embedders import Embedder
from index.milvus_store import MilvusPassageIndex  # imports pymilvus only when one is opened
from index.store import (
    DirectoryLock,
    IndexNotFoundError,
    IndexWriteError,
    IngestReport,
    PassageIndex,
    Snapshot,
)
from index.types import Document, IndexSpec


class Library:
    """An index directory and the `PassageIndex` serving it; every change to either goes through here."""

    def __init__(self, directory: Path, index: PassageIndex) -> None:
        self.directory = Path(directory)
        self.index = index
        self.lock = DirectoryLock.of(self.directory)
        # A Milvus store commits each change itself (its rows are the shared state, there is no directory).
        self.milvus = index if isinstance(index, MilvusPassageIndex) else None

    @classmethod
    def open(cls, directory: Path, spec: IndexSpec, embedder: Embedder | None = None, create: bool = False) -> Library:
        """The library of the index at `directory`; with `create`, an empty one if there is none yet."""
        from index.service import new_index, open_index  # service builds the embedder and chunker

        try:
            index = open_index(directory, spec, embedder)
        except IndexNotFoundError:
            if not create:
                raise
            index = new_index(spec, embedder)
        return cls(directory, index)

    def refresh(self) -> bool:
        """Load a newer generation another process committed; True if one was loaded."""
        return self.index.reload_if_newer()

    def add(
        self, documents: Sequence[Document], *, replace_same_source: bool = True, show_progress: bool = False
    ) -> IngestReport:
        """Add documents and commit. Identical content is reported unchanged; a document replaces one
        with the same doc_id, and — with `replace_same_source` — every one from the same source."""
        if self.milvus is not None:
            return self.milvus.add(documents, show_progress, replace_same_source)
        self.refresh()
        embedded = self.index.embed_documents(self.index.snapshot().fresh(documents), show_progress)
        with self.index.write_lock, self.lock.hold():
            base = self.index.sync_with(self.directory)
            updated, report = self.index.apply_add(base, documents, embedded, replace_same_source, show_progress)
            if updated is not base:
                self._commit(updated)
        return report

    def remove(self, doc_id: str) -> bool:
        """Remove a document and commit; False if there is no such document."""
        if self.milvus is not None:
            return self.milvus.remove(doc_id)
        with self.index.write_lock, self.lock.hold():
            updated = self.index.sync_with(self.directory).without(doc_id)
            if updated is None:
                return False
            self._commit(updated)
            return True

    def rebuild(self, documents: Sequence[Document], show_progress: bool = False) -> IngestReport:
        """Replace the whole index with `documents` as one new generation (whatever is on disk now,
        even an index built with another embedder)."""
        if self.milvus is not None:
            return self.milvus.rebuild(documents, show_progress)
        empty = Snapshot.empty(self.index.embedder.dimension, self.index.layout)
        embedded = self.index.embed_documents(empty.fresh(documents), show_progress)
        with self.index.write_lock, self.lock.hold():
            updated, report = self.index.apply_add(empty, documents, embedded)
            self._commit(updated)
        return report

    def _commit(self, updated: Snapshot) -> None:
        try:
            self.index.commit(updated, self.directory)
        except OSError as error:
            reason = error.strerror or str(error)
            raise IndexWriteError(
                f"could not save the index at {self.directory} ({reason}); nothing was changed", error
            ) from error
