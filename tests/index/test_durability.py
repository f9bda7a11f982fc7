"""Nothing committed is ever lost: kill -9 at every step of a save (twice in a row), format-1 recovery
by generation rather than by a random name, leftovers removed, and a failed save that changes nothing.

These tests use the hashing embedder and paragraph splitter from `tests.index.fakes` (fakes: the
file handling under test does not depend on what the vectors mean, and fast child processes let the
crash loop run every step twice in seconds). The processes, files, fsyncs and kills are real.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from index import store
from index.library import Library
from index.store import COMMIT_STEP, SAVE_STEPS, IndexWriteError, PassageIndex, Snapshot, generation_files
from rag.settings import PROJECT_ROOT
from tests.index.fakes import fake_index, make_document, open_fake_index

CRASHING_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from index import store
    from index.library import Library
    from tests.index.fakes import make_document, open_fake_index

    directory, step, name, expected = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    library = Library(directory, open_fake_index(directory))
    found = sorted(d.doc_id for d in library.index.documents)
    if found != sorted(expected.split(",")):
        print(f"opened with {found}, committed were {expected}")
        sys.exit(3)

    def crash(reached):
        if reached == step:
            os.kill(os.getpid(), signal.SIGKILL)

    store.save_step_hook = crash  # set after opening: only this save is interrupted
    library.add([make_document(name)])
    print(f"the save finished without reaching step {step}")
    sys.exit(4)
    """
)


def doc_ids(index: PassageIndex) -> set[str]:
    return {d.doc_id for d in index.documents}


def committed_ids(directory: Path) -> set[str]:
    """The documents the commit pointer names, read without opening (which would tidy)."""
    return {d["doc_id"] for d in PassageIndex.read_manifest(directory)["documents"]}


class TestCrashLoop:
    def test_kill_9_at_every_save_step_twice_in_a_row_loses_nothing(self, tmp_path: Path) -> None:
        directory = tmp_path / "index"
        Library(directory, fake_index()).add([make_document("seed-a"), make_document("seed-b")])
        committed = {"seed-a", "seed-b"}
        started = time.monotonic()
        leftovers_seen = 0
        for step in SAVE_STEPS:
            for attempt in (1, 2):
                name = f"{step}-{attempt}"
                result = subprocess.run(
                    [sys.executable, "-c", CRASHING_WRITER, str(directory), step, name, ",".join(sorted(committed))],
                    cwd=PROJECT_ROOT,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert result.returncode == -signal.SIGKILL, (step, attempt, result.stdout, result.stderr)
                if SAVE_STEPS.index(step) >= SAVE_STEPS.index(COMMIT_STEP):
                    committed.add(name)
                # The pointer alone already names exactly the committed documents.
                assert committed_ids(directory) == committed, (step, attempt)
                current = PassageIndex.read_manifest(directory)["generation"]
                leftovers_seen += any(
                    p.name not in {"manifest.json", ".lock", *generation_files(current).values()}
                    for p in directory.iterdir()
                )
        # The kills really left half-written generations behind for the next writer to clean up.
        assert leftovers_seen >= 8
        reopened = open_fake_index(directory)
        assert doc_ids(reopened) == committed
        generation = PassageIndex.read_manifest(directory)["generation"]
        assert {p.name for p in directory.iterdir()} == {
            "manifest.json",
            ".lock",
            *generation_files(generation).values(),
        }
        assert [p.name for p in tmp_path.iterdir()] == ["index"]
        for chunk in reopened.chunks():
            document = reopened.document(chunk.doc_id)
            assert document is not None and document.text[chunk.start : chunk.end] == chunk.text
        print(f"{2 * len(SAVE_STEPS)} kill -9 trials in {time.monotonic() - started:.1f} s")

    def test_a_killed_writer_does_not_leave_the_index_locked(self, tmp_path: Path) -> None:
        directory = tmp_path / "index"
        Library(directory, fake_index()).add([make_document("seed")])
        result = subprocess.run(
            [sys.executable, "-c", CRASHING_WRITER, str(directory), "files-synced", "killed", "seed"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == -signal.SIGKILL
        library = Library(directory, open_fake_index(directory))
        assert library.lock.acquire(timeout=1.0)  # the kernel dropped the dead writer's flock
        library.lock.release()
        library.add([make_document("after")])
        assert committed_ids(directory) == {"seed", "after"}


def write_format_1(snapshot: Snapshot, index: PassageIndex, directory: Path, built_at: str) -> None:
    """An index as the previous version wrote it: unnumbered files, no generation in the manifest."""
    directory.mkdir(parents=True)
    snapshot.vectors.write(str(directory / "passages.faiss"))
    with (directory / "passages.jsonl").open("w") as out:
        for faiss_id, chunk in snapshot.chunks.items():
            out.write(json.dumps({"faiss_id": faiss_id, **asdict(chunk)}) + "\n")
    with (directory / "documents.jsonl").open("w") as out:
        for document in snapshot.documents.values():
            out.write(json.dumps(asdict(document)) + "\n")
    manifest = index.manifest()
    manifest.update(format_version=1, built_at=built_at, next_id=snapshot.next_id)
    del manifest["generation"], manifest["files"]
    (directory / "manifest.json").write_text(json.dumps(manifest))


class TestFormat1:
    def test_interrupted_format_1_swap_recovers_the_newest_copy_not_the_last_name(self, tmp_path: Path) -> None:
        index = fake_index()
        index.add([make_document("old")])
        stale = index.snapshot()
        index.add([make_document("newer")])
        # Two retired copies, as two crashes of the previous version left them: the stale one sorts last.
        write_format_1(stale, index, tmp_path / ".idx.old-ffffffff", "2026-01-01T10:00:00Z")
        write_format_1(index.snapshot(), index, tmp_path / ".idx.old-00000000", "2026-01-02T10:00:00Z")

        reopened = open_fake_index(tmp_path / "idx")
        assert doc_ids(reopened) == {"old", "newer"}
        # Opening made it a format-2 generation and removed the retired copies.
        assert PassageIndex.read_manifest(tmp_path / "idx")["format_version"] == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
        assert doc_ids(open_fake_index(tmp_path / "idx")) == {"old", "newer"}

    def test_a_format_1_index_opens_and_its_files_go_with_the_first_save(self, tmp_path: Path) -> None:
        index = fake_index()
        index.add([make_document("one"), make_document("two")])
        write_format_1(index.snapshot(), index, tmp_path / "idx", "2026-01-01T10:00:00Z")
        (tmp_path / ".idx.tmp-1234abcd").mkdir()  # a staging copy an old crash left behind

        library = Library(tmp_path / "idx", open_fake_index(tmp_path / "idx"))
        assert doc_ids(library.index) == {"one", "two"}
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".idx")] == []  # tidied on open
        assert (tmp_path / "idx" / "passages.faiss").exists()  # still the committed format-1 files

        library.add([make_document("three")])
        names = {p.name for p in (tmp_path / "idx").iterdir()}
        assert names == {"manifest.json", ".lock", *generation_files(1).values()}
        assert doc_ids(open_fake_index(tmp_path / "idx")) == {"one", "two", "three"}


class TestFailedSave:
    def test_a_failed_add_or_remove_changes_neither_memory_nor_disk(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        directory = tmp_path / "index"
        library = Library(directory, fake_index())
        library.add([make_document("kept"), make_document("other")])
        files_before = {p.name: p.read_bytes() for p in directory.iterdir()}
        version_before = library.index.generation

        # Failure injection (fake): a full disk cannot be provoked safely here, so the fsync of a data
        # file raises ENOSPC as a full disk would.
        with monkeypatch.context() as patch:
            patch.setattr(store, "_fsync_file", self._no_space)
            with pytest.raises(IndexWriteError, match="nothing was changed") as failure:
                library.add([make_document("failed")])
            assert failure.value.errno == errno.ENOSPC
            with pytest.raises(IndexWriteError, match="No space left"):
                library.remove("kept")

        assert doc_ids(library.index) == {"kept", "other"}
        assert library.index.generation == version_before
        assert all(c.doc_id != "failed" for c in library.index.chunks())
        assert {p.name: p.read_bytes() for p in directory.iterdir()} == files_before

        # The next successful write commits only itself, never the operations that failed.
        library.add([make_document("next")])
        assert committed_ids(directory) == {"kept", "other", "next"}
        assert doc_ids(open_fake_index(directory)) == {"kept", "other", "next"}

    @staticmethod
    def _no_space(path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


class TestReaderRace:
    def test_a_reader_whose_generation_is_removed_mid_read_reads_the_newer_one(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        directory = tmp_path / "index"
        writer = Library(directory, fake_index())
        writer.add([make_document("one")])
        read_files = PassageIndex._from_files
        interleaved: list[int] = []

        # Interleaving injection: readers take no lock, so a writer may commit (and remove the old
        # generation's files) between a reader's look at the pointer and its reading of the files.
        # Here that happens on the first read, deterministically.
        def writer_commits_first(self: PassageIndex, source: Path, manifest: dict, where: Path) -> Snapshot:
            if not interleaved:
                interleaved.append(manifest["generation"])
                writer.add([make_document("two")])
            return read_files(self, source, manifest, where)

        monkeypatch.setattr(PassageIndex, "_from_files", writer_commits_first)
        reader = open_fake_index(directory)
        assert interleaved == [1] and not (directory / generation_files(1)["faiss"]).exists()
        assert doc_ids(reader) == {"one", "two"}
