"""The one owner of index writes, with the real embedder and chunker and real second processes: two
writers on one index lose nothing, a reader picks up another process's commit, and searches running
through adds and deletes never fail."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from index.embedders import Embedder
from index.library import Library
from index.loaders import document_from_bytes
from index.service import make_spec_embedder, new_index, open_index
from index.store import IndexLockedError
from index.types import Document, IndexSpec
from rag.settings import PROJECT_ROOT

SPEC = IndexSpec()

OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from index.library import Library
    from index.loaders import document_from_bytes
    from index.types import IndexSpec

    directory, name, text, hold = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "hold"
    library = Library.open(directory, IndexSpec(), create=True)
    document = document_from_bytes(name + ".txt", text.encode(), source="cli:" + name)
    if hold:
        with library.lock.hold():
            print("locked", flush=True)
            sys.stdin.readline()  # the test's own writer is waiting for the lock now
            report = library.add([document])
    else:
        report = library.add([document])
    print(report.added[0], flush=True)
    """
)


def other_process(directory: Path, name: str, text: str, hold: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", OTHER_PROCESS, str(directory), name, text, "hold" if hold else "go"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def note(name: str, text: str) -> Document:
    return document_from_bytes(f"{name}.txt", text.encode(), source=f"test:{name}")


def ids(documents: list[Document]) -> set[str]:
    return {d.doc_id for d in documents}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    model = make_spec_embedder(SPEC)
    model.warm_up()
    return model


@pytest.fixture
def library(tmp_path: Path, embedder: Embedder) -> Iterator[Library]:
    library = Library(tmp_path / "index", new_index(SPEC, embedder))
    library.add([note("seed", "The harbour master keeps the tide tables. Ships leave at high water.")])
    yield library


class TestTwoWriters:
    def test_a_writer_with_a_stale_copy_reapplies_its_change_to_the_newest_generation(
        self, library: Library, embedder: Embedder
    ) -> None:
        child = other_process(library.directory, "cli-note", "The lighthouse keeper is Ada Lovelace.", hold=True)
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "locked", child.stderr and child.stderr.read()
        with pytest.raises(IndexLockedError, match=rf"pid {child.pid}\b"), library.lock.hold(timeout=0.2):
            pass

        # The server-side writer prepares its change from memory, which does not have the other
        # process's document, then waits for the lock while the other process commits.
        outcome: dict[str, object] = {}
        writer = threading.Thread(
            target=lambda: outcome.update(report=library.add([note("server-note", "Ferries run hourly.")]))
        )
        writer.start()
        time.sleep(0.5)
        child.stdin.write("go\n")
        child.stdin.flush()
        cli_id = child.stdout.readline().strip()
        assert child.wait(timeout=120) == 0, child.stderr and child.stderr.read()
        writer.join(timeout=120)

        on_disk = ids(open_index(library.directory, SPEC, embedder).documents)
        assert cli_id.startswith("cli-note-") and cli_id in on_disk
        assert any(d.startswith("server-note-") for d in on_disk) and any(d.startswith("seed-") for d in on_disk)
        assert ids(library.index.documents) == on_disk

    def test_two_processes_adding_at_once_both_keep_their_documents(self, library: Library, embedder: Embedder) -> None:
        child = other_process(library.directory, "other", "The museum opens at nine on Sundays.")
        added = []
        n = 0
        while child.poll() is None or n < 2:
            report = library.add([note(f"mine-{n}", f"Note {n}: the bakery sells rye bread number {n}.")])
            added.extend(report.added)
            n += 1
        assert child.returncode == 0, child.stderr and child.stderr.read()
        assert child.stdout is not None
        other_id = child.stdout.read().strip()
        # One more write from this process after the other's commit: it must not drop it.
        library.add([note("last", "The last ferry leaves at ten.")])
        on_disk = ids(open_index(library.directory, SPEC, embedder).documents)
        assert other_id in on_disk and set(added) <= on_disk and len(on_disk) == n + 3
        assert ids(library.index.documents) == on_disk


class TestReaders:
    def test_a_reader_serves_the_generation_another_process_committed(
        self, library: Library, embedder: Embedder
    ) -> None:
        reader = open_index(library.directory, SPEC, embedder)  # like `rag serve`: loaded once
        text = "The Skerry lighthouse was built in 1894 by engineer Maud Kettle."
        child = other_process(library.directory, "skerry", text)
        assert child.wait(timeout=120) == 0, child.stderr and child.stderr.read()
        assert child.stdout is not None
        doc_id = child.stdout.read().strip()

        # No reload call: the next read notices the new commit pointer.
        assert reader.document(doc_id) is not None
        hits = reader.search(embedder.embed_query("Who built the Skerry lighthouse?"), 1)
        assert hits[0][0].doc_id == doc_id

    @pytest.mark.parametrize("writes", ["in memory", "committed"])
    def test_searches_during_adds_and_removes_never_fail(
        self, writes: str, library: Library, embedder: Embedder
    ) -> None:
        add: Callable[[list[Document]], object]
        remove: Callable[[str], bool]
        if writes == "committed":
            index = library.index
            add, remove = library.add, library.remove
        else:  # many more cycles per second: the race is hit hundreds of times
            index = new_index(SPEC, embedder)
            index.add([note("seed", "The harbour master keeps the tide tables. Ships leave at high water.")])
            add, remove = index.add, index.remove
        query = embedder.embed_query("When do ships leave the harbour?")
        errors: list[str] = []
        reads = [0]
        stop = threading.Event()

        def search_loop() -> None:
            while not stop.is_set():
                try:
                    hits = index.search(query, 8)
                    vectors = index.vectors_for([chunk.chunk_id for chunk, _ in hits])
                    for (chunk, score), vector in zip(hits, vectors, strict=True):
                        # The vector read after the search is the one the search scored.
                        assert abs(float(np.dot(vector, query)) - score) < 1e-3, chunk.chunk_id
                    cached = index.chunks()  # what the keyword retriever keeps between changes
                    index.vectors_for([chunk.chunk_id for chunk in cached[-6:]])
                    reads[0] += 1
                except Exception as error:  # any failure at all is what this test is counting
                    errors.append(repr(error))

        readers = [threading.Thread(target=search_loop) for _ in range(3)]
        for thread in readers:
            thread.start()
        cycles = 0
        started = time.monotonic()
        try:
            # A few seconds and at least ten add+remove cycles, whichever is later (commits fsync, and
            # this machine is shared), but never more than 20 s.
            while (time.monotonic() - started < 3 or cycles < 10) and time.monotonic() - started < 20:
                document = note(f"churn-{cycles}", f"Ships leave the harbour at dawn on day {cycles}.")
                add([document])
                remove(document.doc_id)
                cycles += 1
        finally:
            stop.set()
            for thread in readers:
                thread.join()
        assert errors == []
        assert cycles >= 5 and reads[0] >= 50
        if writes == "committed":
            assert ids(index.documents) == ids(open_index(library.directory, SPEC, embedder).documents)


class TestIdentity:
    def test_a_different_file_with_a_known_name_is_added_unless_replacing(self, library: Library) -> None:
        first = library.add([note("notes", "Version one of the notes.")], replace_same_source=False)
        second = library.add([note("notes", "Version two, a different file.")], replace_same_source=False)
        assert first.added and second.added and first.added != second.added
        assert {first.added[0], second.added[0]} <= ids(library.index.documents)

        again = library.add([note("notes", "Version two, a different file.")], replace_same_source=False)
        assert again.unchanged == second.added and again.added == again.replaced == []

        replacing = library.add([note("notes", "Version three.")], replace_same_source=True)
        assert replacing.replaced and replacing.passages_embedded > 0
        names = [d for d in library.index.documents if d.source == "test:notes"]
        assert [d.doc_id for d in names] == replacing.replaced
