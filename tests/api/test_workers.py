"""`rag serve --workers N`: several uvicorn worker processes on one port over one FAISS index directory.

Real processes throughout: `rag serve --workers 2` (`rag.testing.ServeProcess`) over an index built here,
real embedder and index files. The generator is the `openai` one pointed at a loopback port nobody listens
on (fake: nothing here generates, and the local model would cost ~1.1 GB per worker); the server still
starts, because a remote generator has nothing to load and its prompt warm-up only logs the failure.

Which worker answered is told by `replica` in `/api/health`, read on the same keep-alive connection as
the request under test; each probe opens a fresh connection so the kernel hands it to any worker.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.server import HeaderTimeoutProtocol, MilvusLiteWorkersError, check_workers, worker_options
from index.loaders import load_documents
from index.service import new_index
from rag.settings import PROJECT_ROOT, Settings
from rag.testing import ServeProcess, free_port, wait_until
from tests.conftest import ARTICLE

TOKEN = "workers-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEADER_TIMEOUT_S = 2.0
NOTE = "The lighthouse keeper of Vardø counts seventeen whaling ships every winter."
NOTE_QUERY = "lighthouse keeper Vardø whaling ships"


def clear_rag_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)


# ---- in-process: what the parent hands its workers ------------------------------------------------------
class TestWhatWorkersReceive:
    def test_settings_survive_the_trip_through_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        given = Settings().with_overrides(
            index_dir=Path("/srv/index"),
            port=8123,
            workers=3,
            rescore=True,
            min_relevance=0.1 + 0.2,  # a float whose shortest repr has many digits
            admin_token="secret",
            allowed_hosts="",
            generator="openai",
        )
        clear_rag_environment(monkeypatch)
        for name, value in given.as_environment().items():
            monkeypatch.setenv(name, value)
        assert Settings().model_dump() == given.model_dump()

    def test_worker_options_pickle_and_load_in_a_fresh_config(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # uvicorn pickles its Config into each spawned worker: nothing in it may be a run-time class or an app.
        settings = Settings().with_overrides(workers=2, http_header_timeout_s=3.0)
        clear_rag_environment(monkeypatch)
        for name, value in settings.as_environment().items():
            monkeypatch.setenv(name, value)
        config = pickle.loads(pickle.dumps(uvicorn.Config(**worker_options(settings))))
        config.load()  # what a worker does: import the protocol, call the factory (no model is loaded)
        assert config.workers == 2 and config.factory
        assert config.http_protocol_class is HeaderTimeoutProtocol

    def test_check_workers_refuses_only_milvus_lite_files(self) -> None:
        base = Settings()
        check_workers(base.with_overrides(workers=4))  # FAISS: fine
        check_workers(base.with_overrides(store="milvus", milvus_uri="var/milvus.db"))  # one worker: fine
        check_workers(base.with_overrides(workers=2, store="milvus", milvus_uri="http://127.0.0.1:19530"))
        with pytest.raises(MilvusLiteWorkersError, match=re.escape("milvus-lite server --data-dir var/milvus.db")):
            check_workers(base.with_overrides(workers=2, store="milvus", milvus_uri="var/milvus.db"))


# ---- real processes ----------------------------------------------------------------------------------
def pid_of(replica: str) -> int:
    return int(replica.rsplit(":", 1)[1])


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def replica_of(client: httpx.Client) -> str:
    response = client.get("/api/health")
    assert response.status_code == 200, response.text
    replica: str = response.json()["replica"]
    return replica


def on_each_replica(url: str, check: Callable[[httpx.Client], None], replicas: int = 2, tries: int = 200) -> set[str]:
    """Run `check` on fresh connections until it has passed on `replicas` distinct worker processes.

    The worker behind a connection is the `replica` its health says before and after `check`, on that same
    keep-alive connection."""
    seen: set[str] = set()
    for _ in range(tries):
        with httpx.Client(base_url=url, timeout=60) as client:
            replica = replica_of(client)
            if replica in seen:
                continue
            check(client)
            assert replica_of(client) == replica, "the connection moved to another worker during the check"
            seen.add(replica)
        if len(seen) >= replicas:
            return seen
    pytest.fail(f"{tries} fresh connections reached only {sorted(seen)}")


def replicas_on_fresh_connections(url: str, count: int) -> set[str]:
    seen: set[str] = set()
    for _ in range(count):
        with httpx.Client(base_url=url, timeout=30) as client:
            seen.add(replica_of(client))
    return seen


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("workers") / "index"
    settings = Settings().with_overrides(index_dir=directory)
    index = new_index(settings.index_spec())
    index.add(load_documents(ARTICLE))
    index.save(directory)
    return directory


@pytest.fixture(scope="module")
def server(index_dir: Path) -> Iterator[ServeProcess]:
    env = {
        "RAG_ADMIN_TOKEN": TOKEN,
        "RAG_GENERATOR": "openai",
        "RAG_OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # nobody listens there
        "RAG_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }
    # --index-dir as a flag, not RAG_INDEX_DIR: a flag must reach the workers too.
    served = ServeProcess(
        env, args=["--workers", "2", "--index-dir", str(index_dir)], log=index_dir.parent / "serve.log"
    )
    with served:
        # ServeProcess returns once one worker answers; the other may still be loading its embedder.
        wait_until(
            lambda: len(replicas_on_fresh_connections(served.url, 20)) >= 2,
            180,
            f"a second worker (log: {served.log})",
            served.process,
        )
        yield served


class TestTwoWorkers:
    def test_health_names_two_worker_processes_serving_the_flagged_index(self, server: ServeProcess) -> None:
        def serves_the_article(client: httpx.Client) -> None:
            health = client.get("/api/health").json()
            assert health["documents"] == 1 and health["changes_allowed"] is True
            assert health["generator"] == "OpenAICompatibleGenerator"

        replicas = on_each_replica(server.url, serves_the_article)
        assert {replica.rsplit(":", 1)[0] for replica in replicas} == {socket.gethostname()}
        assert server.pid not in {pid_of(replica) for replica in replicas}  # workers, not the supervisor

    def test_an_upload_through_one_worker_is_seen_and_removed_by_every_worker(self, server: ServeProcess) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            response = client.post("/api/documents", files={"file": ("keeper.txt", NOTE.encode())}, headers=AUTH)
            assert response.status_code == 201, response.text
            doc_id = response.json()["doc_id"]

        def listed(client: httpx.Client) -> bool:
            return doc_id in {d["doc_id"] for d in client.get("/api/documents").json()}

        def found(client: httpx.Client) -> bool:
            passages = client.post("/api/search", json={"query": NOTE_QUERY, "top_k": 5}).json()["passages"]
            return any(p["doc_id"] == doc_id for p in passages)

        # A worker notices another's commit on its next read (a stat of the manifest); 10 s is only a bound.
        def sees_it(client: httpx.Client) -> None:
            wait_until(lambda: listed(client) and found(client), 10, "the upload on this worker")

        def has_lost_it(client: httpx.Client) -> None:
            wait_until(lambda: not listed(client) and not found(client), 10, "the removal on this worker")

        on_each_replica(server.url, sees_it)
        with httpx.Client(base_url=server.url, timeout=120) as client:
            assert client.delete(f"/api/documents/{doc_id}", headers=AUTH).status_code == 200
        on_each_replica(server.url, has_lost_it)

    def test_the_header_deadline_setting_reaches_the_workers(self, server: ServeProcess) -> None:
        # Four silent connections at once: the kernel spreads them over the workers, each must close with
        # a 408 after RAG_HTTP_HEADER_TIMEOUT_S (2 s), not uvicorn's or the default's 10 s.
        sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=15) for _ in range(4)]
        started = time.monotonic()
        try:
            for sock in sockets:
                sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing
            for sock in sockets:
                data = b""
                while piece := sock.recv(65536):
                    data += piece
                assert data.startswith(b"HTTP/1.1 408 "), data[:200]
        finally:
            for sock in sockets:
                sock.close()
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 5

    def test_sigterm_stops_every_worker(self, server: ServeProcess) -> None:
        # Last in this class: it stops the module's server.
        workers = {pid_of(replica) for replica in on_each_replica(server.url, lambda client: None)}
        server.stop()
        assert server.process is not None and server.process.returncode == 0
        wait_until(lambda: not any(running(pid) for pid in workers), 30, "the workers to exit")


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ("--workers", "2"),
            {"RAG_STORE": "milvus"},
            "error: 2 workers cannot share the Milvus Lite file {uri} (one process per file): run "
            "`milvus-lite server --data-dir {uri} --port 19530` and set RAG_MILVUS_URI=http://127.0.0.1:19530, "
            "or serve with --workers 1",
        ),
        (("--workers", "0"), {}, "error: --workers: Input should be greater than or equal to 1 (got 0)"),
    ],
)
def test_an_impossible_worker_count_is_one_line_before_anything_starts(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    uri = tmp_path / "milvus.db"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "300", "RAG_MILVUS_URI": str(uri), **env},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [expected.format(uri=uri)], result.stderr
    assert "starting" not in result.stdout + result.stderr
    assert not uri.exists()  # refused before this process opened Milvus Lite


def test_a_worker_that_cannot_start_makes_rag_serve_fail(index_dir: Path, tmp_path: Path) -> None:
    # A model file that is not a GGUF: the parent never loads the model, each worker's start-up does and fails.
    # Before, uvicorn's supervisor stopped the others and `rag serve` exited 0 as after Ctrl-C.
    model = tmp_path / "model.gguf"
    model.write_bytes(b"not a model" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(free_port()), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "300", "RAG_INDEX_DIR": str(index_dir), "RAG_MODEL_PATH": str(model)},
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: worker process \d+ failed to start \(its error is logged above\), so rag serve stopped", last
    )
