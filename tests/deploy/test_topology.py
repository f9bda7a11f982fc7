"""The scale-out topology of deploy/compose.yaml, run here with its stand-ins, every part a real process:
a `milvus-lite server` for Milvus, llama.cpp's own server (`python -m llama_cpp.server`, the default
model) for vLLM, and two `rag serve` replicas over them — and the same two replicas over one FAISS
directory. Upload through one replica, ask through the other; delete through one, gone from the other;
kill a replica with SIGKILL while it writes an upload, and the store stays consistent while the other
replica keeps serving.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.settings import PROJECT_ROOT
from rag.testing import LlamaServer, MilvusLiteServer, ServeProcess, wait_until

pytestmark = pytest.mark.slow

TOKEN = "topology-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIGHTHOUSE = (
    "The Harwick lighthouse keeper logged 412 ships in the winter of 1911. "
    "Its lamp burned whale oil until the keeper, Ada Morrow, installed a kerosene burner in 1902."
)
LIGHTHOUSE_QUESTION = "Who installed the kerosene burner in the Harwick lighthouse?"
# A document long enough (~550 passages) that writing it takes a while; its made-up words appear nowhere else.
RARE_WORDS = ["zorblat", "quenvire", "mistrakel", "dobrunna", "fylkevin", "traskolm", "vendralix", "poskavet"]


def big_document(seed: int) -> bytes:
    rng = random.Random(seed)
    sentences = []
    for n in range(2500):
        words = rng.sample(RARE_WORDS, 3)
        sentences.append(f"Ledger entry {n} records the {words[0]} of the {words[1]} near the {words[2]} quay.")
    return " ".join(sentences).encode()


@pytest.fixture(scope="module")
def llm(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with LlamaServer(model_file, log=tmp_path_factory.mktemp("llm") / "llama-server.log") as server:
        yield server


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLiteServer]:
    data = tmp_path_factory.mktemp("milvus-data")
    with MilvusLiteServer(data, log=data.parent / "milvus-server.log") as server:
        yield server


def replica_env(llm: LlamaServer, **store: str) -> dict[str, str]:
    """What every replica of one deployment shares: the store, the generation server and the token."""
    return {
        "RAG_GENERATOR": "openai",
        "RAG_OPENAI_BASE_URL": llm.base_url,
        "RAG_OPENAI_MODEL": "local",
        "RAG_ADMIN_TOKEN": TOKEN,
        "RAG_MAX_UPLOAD_BYTES": "2000000",
        **store,
    }


def rag_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def built_replica_pair(env: dict[str, str], logs: Path) -> Iterator[tuple[ServeProcess, ServeProcess, dict[str, str]]]:
    """`rag index build` into the store `env` names, then two replicas over it."""
    built = rag_cli(env, "index", "build")
    assert built.returncode == 0, built.stderr
    with ServeProcess(env, log=logs / "a.log") as a, ServeProcess(env, log=logs / "b.log") as b:
        yield a, b, env


def upload(url: str, name: str, content: bytes) -> str:
    response = httpx.post(f"{url}/api/documents", files={"file": (name, content)}, headers=AUTH, timeout=300)
    assert response.status_code in (200, 201), response.text  # 200: the same content was there already
    doc_id: str = response.json()["doc_id"]
    return doc_id


def searched_doc_ids(url: str, query: str) -> set[str]:
    response = httpx.post(f"{url}/api/search", json={"query": query, "top_k": 5}, timeout=30)
    assert response.status_code == 200, response.text
    return {passage["doc_id"] for passage in response.json()["passages"]}


def listed(url: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{url}/api/documents", timeout=30)
    assert response.status_code == 200, response.text
    return {document["doc_id"]: document for document in response.json()}


def upload_ask_delete(one: ServeProcess, other: ServeProcess) -> None:
    """Upload through `one`; the `other` finds it within a second and answers from it; delete through
    `one`; gone from the `other` within a second."""
    doc_id = upload(one.url, "lighthouse.txt", LIGHTHOUSE.encode())
    seconds = wait_until(
        lambda: doc_id in searched_doc_ids(other.url, LIGHTHOUSE_QUESTION), 1.0, "the upload seen by the other"
    )
    print(f"upload visible on the other replica after {seconds:.2f} s")
    asked = httpx.post(f"{other.url}/api/ask", json={"question": LIGHTHOUSE_QUESTION}, timeout=300)
    assert asked.status_code == 200, asked.text
    answer = asked.json()
    assert not answer["abstained"] and "Morrow" in answer["answer"], (answer["answer"], answer["abstain_reason"])
    assert doc_id in {citation["doc_id"] for citation in answer["citations"]}

    assert httpx.delete(f"{one.url}/api/documents/{doc_id}", headers=AUTH).status_code == 200
    wait_until(lambda: doc_id not in searched_doc_ids(other.url, LIGHTHOUSE_QUESTION), 1.0, "the delete seen")
    # The document itself may be read from the other replica's cache until it next reads the generation token
    # (every 0.2 s over Milvus): answering the question read it there (the premise check reads cited documents).
    wait_until(
        lambda: httpx.get(f"{other.url}/api/documents/{doc_id}").status_code == 404, 1.0, "the delete seen by a GET"
    )


class Prober:
    """Searches the surviving replica without pause while another is killed; counts what is not a 200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failures: list[str] = []
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"{self.url}/api/search", json={"query": "ledger entry quay"})
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                self.requests += 1

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def kill_while_uploading(victim: ServeProcess, content: bytes, writing: Any) -> bool:
    """Upload `content` through `victim` and SIGKILL it as soon as `writing()` says the store is being
    written; True if the kill landed before the upload returned."""
    result: dict[str, Any] = {}

    def send() -> None:
        try:
            result["response"] = httpx.post(
                f"{victim.url}/api/documents", files={"file": ("ledger.txt", content)}, headers=AUTH, timeout=300
            )
        except httpx.HTTPError as error:
            result["error"] = error

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.monotonic() + 240
    while sender.is_alive() and time.monotonic() < deadline:
        if writing():
            victim.kill()
            break
        time.sleep(0.005)
    sender.join(timeout=60)
    return "error" in result


# ---- Milvus ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def milvus_replicas(
    llm: LlamaServer, milvus: MilvusLiteServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServeProcess, ServeProcess, dict[str, str]]]:
    env = replica_env(llm, RAG_STORE="milvus", RAG_MILVUS_URI=milvus.uri, RAG_MILVUS_COLLECTION="topology")
    yield from built_replica_pair(env, tmp_path_factory.mktemp("replicas"))  # `rag index build` on a server URI


def test_two_replicas_share_one_milvus_server_and_one_generation_server(
    milvus_replicas: tuple[ServeProcess, ServeProcess, dict[str, str]],
) -> None:
    a, b, _ = milvus_replicas
    assert listed(a.url).keys() == listed(b.url).keys() != set()
    upload_ask_delete(a, b)
    upload_ask_delete(b, a)


def test_a_replica_killed_while_writing_leaves_milvus_consistent(
    milvus_replicas: tuple[ServeProcess, ServeProcess, dict[str, str]], milvus: MilvusLiteServer, tmp_path: Path
) -> None:
    from pymilvus import MilvusClient

    _, survivor, env = milvus_replicas
    client = MilvusClient(uri=milvus.uri)
    passages = "topology_passages"

    def rows(collection: str) -> int:
        return int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])

    before = listed(survivor.url)
    content = big_document(seed=1)
    landed = False
    try:
        with Prober(survivor.url) as prober:
            for trial in range(3):  # the kill must land after the first passage row and before the head
                baseline = rows(passages)
                victim = ServeProcess(env, log=tmp_path / f"victim-{trial}.log").start()
                try:
                    killed = kill_while_uploading(victim, content, lambda baseline=baseline: rows(passages) > baseline)
                finally:
                    victim.stop()
                orphans = rows(passages) - baseline
                if killed and orphans > 0:
                    landed = True
                    break
        assert landed, "no kill landed while the upload was being written"
        assert prober.failures == [] and prober.requests > 0, prober.failures[:5]
        print(f"killed with {orphans} passage rows written; {prober.requests} searches on the survivor, 0 failed")

        # Nothing half-visible: the same documents as before, no passage of an unlisted document is found,
        # and every listed document has exactly the passages it reports.
        now = listed(survivor.url)
        assert now.keys() == before.keys()
        assert searched_doc_ids(survivor.url, " ".join(RARE_WORDS)) <= now.keys()
        health = httpx.get(f"{survivor.url}/api/health").json()
        assert health["documents"] == len(now)
        assert health["passages"] == sum(d["passages"] for d in now.values())

        # The same upload through the survivor completes, and replaces the dead writer's leftovers.
        doc_id = upload(survivor.url, "ledger.txt", content)
        assert doc_id in searched_doc_ids(survivor.url, " ".join(RARE_WORDS))
        stored = client.query(passages, filter=f'doc_id == "{doc_id}"', output_fields=["count(*)"])[0]["count(*)"]
        assert stored == listed(survivor.url)[doc_id]["passages"]
        assert httpx.delete(f"{survivor.url}/api/documents/{doc_id}", headers=AUTH).status_code == 200
    finally:
        client.close()


# ---- FAISS -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def faiss_replicas(
    llm: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServeProcess, ServeProcess, dict[str, str]]]:
    index_dir = tmp_path_factory.mktemp("shared") / "index"
    env = replica_env(llm, RAG_INDEX_DIR=str(index_dir))
    yield from built_replica_pair(env, tmp_path_factory.mktemp("faiss-replicas"))


def test_two_replicas_share_one_faiss_directory(
    faiss_replicas: tuple[ServeProcess, ServeProcess, dict[str, str]],
) -> None:
    a, b, _ = faiss_replicas
    upload_ask_delete(a, b)


def test_a_replica_killed_while_writing_leaves_the_faiss_directory_consistent(
    faiss_replicas: tuple[ServeProcess, ServeProcess, dict[str, str]], tmp_path: Path
) -> None:
    """The commit is one atomic pointer swap (kill -9 at each of its steps: tests/index/test_durability.py);
    here a real replica dies at whatever point its upload reached when the directory started changing."""
    _, survivor, env = faiss_replicas
    index_dir = Path(env["RAG_INDEX_DIR"])
    before = listed(survivor.url)
    content = big_document(seed=2)
    entries = set(os.listdir(index_dir))
    with Prober(survivor.url) as prober:
        victim = ServeProcess(env, log=tmp_path / "victim.log").start()
        try:
            killed = kill_while_uploading(victim, content, lambda: set(os.listdir(index_dir)) != entries)
        finally:
            victim.stop()
        time.sleep(0.5)
    assert prober.failures == [] and prober.requests > 0, prober.failures[:5]
    now = listed(survivor.url)
    # Either the upload committed whole before the kill or it is absent; never half of it.
    added = now.keys() - before.keys()
    assert before.keys() <= now.keys() and len(added) <= 1
    print(f"kill landed before the reply: {killed}; the upload {'committed' if added else 'is absent'}")
    health = httpx.get(f"{survivor.url}/api/health").json()
    assert health["passages"] == sum(d["passages"] for d in now.values())
    doc_id = upload(survivor.url, "ledger.txt", content)
    assert doc_id in searched_doc_ids(survivor.url, " ".join(RARE_WORDS))
    assert httpx.delete(f"{survivor.url}/api/documents/{doc_id}", headers=AUTH).status_code == 200


# ---- one machine on Milvus Lite ---------------------------------------------------------------------
def test_serve_on_a_fresh_milvus_file_indexes_the_article_and_answers_searches(tmp_path: Path) -> None:
    """What `RAG_STORE=milvus make run` does: `rag serve` with no index yet builds the built-in article into
    a new Milvus Lite `.db` and serves it (the generator is unreachable here; only search is asked)."""
    env = {"RAG_STORE": "milvus", "RAG_GENERATOR": "openai", "RAG_OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    # The default URI, var/milvus.db, is relative to where the server runs: here a fresh directory.
    with ServeProcess(env, log=tmp_path / "serve.log", cwd=tmp_path) as server:
        assert (tmp_path / "var" / "milvus.db").exists()
        health = httpx.get(f"{server.url}/api/health").json()
        assert health["documents"] == 1 and health["passages"] > 10
        hits = httpx.post(f"{server.url}/api/search", json={"query": "What did Deng agree in 1979?"}).json()
        assert any("1979" in passage["text"] for passage in hits["passages"])


def test_index_build_and_info_on_a_milvus_file(tmp_path: Path) -> None:
    env = {"RAG_STORE": "milvus", "RAG_MILVUS_URI": str(tmp_path / "built.db")}
    built = rag_cli(env, "index", "build")
    assert built.returncode == 0, built.stderr
    info = rag_cli(env, "index", "info", "--json")
    assert info.returncode == 0, info.stderr
    assert '"store": "milvus"' in info.stdout and "Russia" in info.stdout
    missing = rag_cli({**env, "RAG_MILVUS_URI": str(tmp_path / "typo.db")}, "ask", "What did Deng agree in 1979?")
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0, missing.stderr
    assert "no index in Milvus at" in missing.stderr and "Traceback" not in missing.stderr
