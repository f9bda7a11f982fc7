"""Uploads and deletes through a real server over a real index: a different file under a known name is
added beside it (replacing must be asked for), an identical re-upload is 200 `unchanged`, a failed
save is a JSON 507 that changed nothing, and a document another process committed is served and
kept by the server's next write.

The generator is a stub that refuses to answer (fake): these routes never generate, and loading the
real model would add minutes. Embedder, chunker, index files, server and second process are real."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from collections.abc import Generator as TextStream
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from index import store
from index.library import Library
from index.loaders import document_from_bytes
from index.service import new_index
from index.store import PassageIndex
from rag.generators import Generator, GeneratorError
from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT, Settings
from rag.types import ChatMessage
from tests.conftest import LiveServer

AUTH = {"Authorization": "Bearer test-token"}


class RefusingGenerator(Generator):
    """Fake: document routes never generate; anything that tries gets an error."""

    @property
    def model_name(self) -> str:
        return "none"

    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None
    ) -> TextStream[str, None, None]:
        raise GeneratorError("no generator in document-write tests")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    directory = tmp_path_factory.mktemp("writes") / "index"
    settings = Settings().with_overrides(index_dir=directory, admin_token="test-token", max_upload_bytes=200_000)
    index = new_index(settings.index_spec())
    seed = document_from_bytes("seed.txt", b"The harbour master keeps the tide tables.", source="upload:seed.txt")
    Library(directory, index).add([seed])
    with LiveServer(create_app(settings, Pipeline(settings, index, RefusingGenerator()))) as live:
        yield live, directory


@pytest.fixture(scope="module")
def client(server: tuple[LiveServer, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0].url, timeout=120) as http:
        yield http


def upload(client: httpx.Client, name: str, text: str, **form: str) -> httpx.Response:
    return client.post("/api/documents", files={"file": (name, text.encode())}, data=form, headers=AUTH)


def listed(client: httpx.Client) -> dict[str, str]:
    return {d["doc_id"]: d["title"] for d in client.get("/api/documents").json()}


def on_disk(directory: Path) -> set[str]:
    return {d["doc_id"] for d in PassageIndex.read_manifest(directory)["documents"]}


class TestIdentity:
    def test_a_different_file_with_a_known_name_is_added_and_replacing_must_be_asked(
        self, client: httpx.Client, server: tuple[LiveServer, Path]
    ) -> None:
        first = upload(client, "notes.txt", "The ferry leaves at nine.")
        assert first.status_code == 201 and first.json()["status"] == "added"
        second = upload(client, "notes.txt", "A colleague's notes: the museum closes at five.")
        assert second.status_code == 201 and second.json()["status"] == "added"
        assert second.json()["doc_id"] != first.json()["doc_id"]
        assert {first.json()["doc_id"], second.json()["doc_id"]} <= set(listed(client))

        same = upload(client, "notes.txt", "The ferry leaves at nine.")
        assert same.status_code == 200, same.text
        assert same.json() == {"doc_id": first.json()["doc_id"], "status": "unchanged", "passages": 0}

        replaced = upload(client, "notes.txt", "Corrected: the ferry leaves at ten.", replace="true")
        assert replaced.status_code == 201 and replaced.json()["status"] == "replaced"
        documents = listed(client)
        assert replaced.json()["doc_id"] in documents
        assert first.json()["doc_id"] not in documents and second.json()["doc_id"] not in documents
        assert on_disk(server[1]) == set(documents)
        client.delete(f"/api/documents/{replaced.json()['doc_id']}", headers=AUTH)

    def test_a_bad_replace_value_is_422_naming_the_field(self, client: httpx.Client) -> None:
        response = upload(client, "notes.txt", "Text.", replace="perhaps")
        assert response.status_code == 422
        assert "replace" in response.json()["error"]


class TestFailedSave:
    def test_a_failed_save_is_507_and_changes_nothing(
        self, client: httpx.Client, server: tuple[LiveServer, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        directory = server[1]
        before, files_before = listed(client), {p.name: p.read_bytes() for p in directory.iterdir()}
        seed_id = next(iter(before))

        # Failure injection (fake): the server runs in this process, so the fsync of the index's data
        # files is made to fail with ENOSPC, as a full disk would.
        def no_space(path: Path) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        with monkeypatch.context() as patch:
            patch.setattr(store, "_fsync_file", no_space)
            failed = upload(client, "ships.txt", "Ships dock at the north quay.")
            assert failed.status_code == 507, failed.text
            body = failed.json()
            assert "nothing was changed" in body["error"] and "No space left" in body["error"]
            assert body["detail"]["changed"] is False
            refused = client.delete(f"/api/documents/{seed_id}", headers=AUTH)
            assert refused.status_code == 507 and "nothing was changed" in refused.json()["error"]

        assert listed(client) == before
        assert {p.name: p.read_bytes() for p in directory.iterdir()} == files_before
        hits = client.post("/api/search", json={"query": "Where do ships dock?"}).json()["passages"]
        assert all("north quay" not in p["text"] for p in hits)

        # The next successful write commits only itself, not the upload that failed.
        later = upload(client, "tides.txt", "Spring tides come after the full moon.")
        assert later.status_code == 201
        assert on_disk(directory) == set(before) | {later.json()["doc_id"]}
        client.delete(f"/api/documents/{later.json()['doc_id']}", headers=AUTH)


OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from index.library import Library
    from index.loaders import document_from_bytes
    from index.types import IndexSpec

    library = Library.open(Path(sys.argv[1]), IndexSpec())
    document = document_from_bytes("cli-note.txt", sys.argv[2].encode(), source="/data/cli-note.txt")
    print(library.add([document]).added[0])
    """
)


class TestAnotherProcess:
    def test_rag_index_add_from_another_process_is_served_and_kept(
        self, client: httpx.Client, server: tuple[LiveServer, Path]
    ) -> None:
        directory = server[1]
        text = "The lighthouse on Skerry island was built in 1894 by Maud Kettle."
        child = subprocess.run(
            [sys.executable, "-c", OTHER_PROCESS, str(directory), text],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert child.returncode == 0, child.stderr
        cli_id = child.stdout.strip()

        # The server picks up the other process's commit on its next request.
        assert cli_id in listed(client)
        hits = client.post("/api/search", json={"query": "Who built the Skerry lighthouse?", "top_k": 1}).json()
        assert hits["passages"][0]["doc_id"] == cli_id

        # And its own next write keeps it (it used to rewrite the directory from memory).
        mine = upload(client, "quay.txt", "The north quay is for fishing boats.")
        assert mine.status_code == 201
        assert {cli_id, mine.json()["doc_id"]} <= on_disk(directory)
        assert client.delete(f"/api/documents/{cli_id}", headers=AUTH).status_code == 200
        assert cli_id not in on_disk(directory) and mine.json()["doc_id"] in on_disk(directory)
        client.delete(f"/api/documents/{mine.json()['doc_id']}", headers=AUTH)
