"""The REST contract, through a real uvicorn server on loopback, with the real models."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from api.app import create_app
from rag.generators import Generator
from rag.settings import Settings
from tests.conftest import LiveServer, server_pipeline

DENG = "what did Deng agree in 1979?"
OFF_TOPIC = "Who won the 2024 US presidential election?"
PASSAGE_FIELDS = {"chunk_id", "doc_id", "title", "text", "start", "end", "score", "rank"}
CITATION_FIELDS = {"n", "chunk_id", "doc_id", "title", "text", "start", "end", "score"}


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:  # type: ignore[type-arg]
    event, data = "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=120) as http:
        yield http


class TestQuestions:
    def test_ask_answers_deng_from_the_right_passage(self, client: httpx.Client) -> None:
        response = client.post("/api/ask", json={"question": DENG})
        assert response.status_code == 200
        body = response.json()
        assert {"answer", "abstained", "citations", "passages", "timings_ms", "model"} <= set(body)
        assert body["abstained"] is False
        assert "intelligence" in body["answer"].lower()
        assert "[1]" in body["answer"]
        assert [c["n"] for c in body["citations"]] == list(range(1, len(body["citations"]) + 1))
        assert set(body["citations"][0]) >= CITATION_FIELDS
        assert "Deng Xiaoping" in body["citations"][0]["text"]
        assert all(set(p) >= PASSAGE_FIELDS for p in body["passages"])
        assert [p["rank"] for p in body["passages"]] == list(range(1, len(body["passages"]) + 1))
        assert body["timings_ms"]["total"] > 0 and "retrieve_ms" in body["timings_ms"]

    def test_off_topic_question_abstains_at_the_gate(self, client: httpx.Client) -> None:
        body = client.post("/api/ask", json={"question": OFF_TOPIC}).json()
        assert body["abstained"] is True and body["abstain_reason"] == "relevance_gate"
        assert body["answer"] == "The documents don't say." and body["citations"] == []
        assert body["passages"], "the closest passages are still returned"

    def test_stream_events_in_order_and_done_equals_ask(self, client: httpx.Client) -> None:
        kinds, tokens, done = [], [], None
        with client.stream("POST", "/api/ask/stream", json={"question": DENG}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for kind, data in sse_events(response):
                kinds.append(kind)
                if kind == "token":
                    tokens.append(data["text"])
                if kind == "done":
                    done = data
        assert kinds[:2] == ["status", "passages"] and kinds[-1] == "done"
        assert kinds[2] == "status" and kinds[-2] == "status", "writing … checking around the draft"
        assert set(kinds[3:-2]) == {"token"} and len(tokens) > 1
        plain = client.post("/api/ask", json={"question": DENG}).json()
        assert done is not None
        for field in ("answer", "abstained", "citations", "passages"):
            assert done[field] == plain[field], field

    def test_search_returns_ranked_passages(self, client: httpx.Client) -> None:
        body = client.post("/api/search", json={"query": "Bagram Airfield 1989", "top_k": 5}).json()
        assert len(body["passages"]) == 5
        assert "Bagram" in body["passages"][0]["text"]
        assert all(set(p) >= PASSAGE_FIELDS for p in body["passages"])

    @pytest.mark.parametrize(
        ("path", "payload", "field"),
        [
            ("/api/ask", {"question": ""}, "question"),
            ("/api/ask", {"question": "   "}, "question"),
            ("/api/ask", {"question": "x" * 2001}, "question"),
            ("/api/ask", {"question": "hi", "top_k": 0}, "top_k"),
            ("/api/ask", {"question": "hi", "history": [{"role": "robot", "content": "x"}]}, "history.0.role"),
            ("/api/ask", {"question": "hi", "colour": "red"}, "colour"),
            ("/api/ask", {}, "question"),
            ("/api/ask/stream", {"question": ""}, "question"),
            ("/api/search", {"query": "", "top_k": 3}, "query"),
            ("/api/search", {"query": "x", "top_k": "many"}, "top_k"),
        ],
    )
    def test_invalid_input_is_422_naming_the_field(
        self,
        client: httpx.Client,
        path: str,
        payload: dict,
        field: str,  # type: ignore[type-arg]
    ) -> None:
        response = client.post(path, json=payload)
        assert response.status_code == 422
        body = response.json()
        assert field in body["error"]
        assert any(d["field"] == field for d in body["detail"])

    def test_malformed_json_is_422_not_500(self, client: httpx.Client) -> None:
        response = client.post("/api/ask", content=b"{not json", headers={"content-type": "application/json"})
        assert response.status_code == 422

    def test_oversized_body_is_413(self, client: httpx.Client) -> None:
        response = client.post("/api/ask", json={"question": "x" * 100_000})
        assert response.status_code == 413
        assert "limit" in response.json()["error"]


class TestDocuments:
    def test_list_and_get(self, client: httpx.Client) -> None:
        documents = client.get("/api/documents").json()
        assert len(documents) == 1 and documents[0]["passages"] > 10
        detail = client.get(f"/api/documents/{documents[0]['doc_id']}").json()
        passage = client.post("/api/search", json={"query": "Deng", "top_k": 1}).json()["passages"][0]
        assert detail["text"][passage["start"] : passage["end"]] == passage["text"]
        assert client.get("/api/documents/nope").status_code == 404

    @pytest.mark.parametrize(
        ("headers", "status"),
        [({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Authorization": "Basic abc"}, 401)],
    )
    def test_admin_routes_need_the_token(self, client: httpx.Client, headers: dict, status: int) -> None:  # type: ignore[type-arg]
        upload = client.post("/api/documents", files={"file": ("a.txt", b"text")}, headers=headers)
        assert upload.status_code == status
        assert client.delete("/api/documents/whatever", headers=headers).status_code == status

    def test_upload_search_ask_and_remove(self, client: httpx.Client, live_server: LiveServer) -> None:
        auth = {"Authorization": "Bearer test-token"}
        text = (
            "# Lighthouse notes\n\nThe Skerry lighthouse was built in 1894 by engineer Maud Kettle. "
            "Its lamp is visible from 22 nautical miles away."
        )
        response = client.post("/api/documents", files={"file": ("lighthouse.md", text.encode())}, headers=auth)
        assert response.status_code == 201, response.text
        doc_id = response.json()["doc_id"]
        assert response.json()["status"] == "added"
        again = client.post("/api/documents", files={"file": ("lighthouse.md", text.encode())}, headers=auth)
        assert again.json()["status"] == "unchanged" and again.json()["passages"] == 0

        hits = client.post("/api/search", json={"query": "Who built the Skerry lighthouse?"}).json()["passages"]
        assert hits[0]["doc_id"] == doc_id
        answer = client.post("/api/ask", json={"question": "Who built the Skerry lighthouse?"}).json()
        assert "Kettle" in answer["answer"] and answer["citations"][0]["doc_id"] == doc_id

        assert client.delete(f"/api/documents/{doc_id}", headers=auth).status_code == 200
        assert client.get(f"/api/documents/{doc_id}").status_code == 404
        assert all(
            p["doc_id"] != doc_id for p in client.post("/api/search", json={"query": "lighthouse"}).json()["passages"]
        )

    def test_ingest_is_written_to_disk(self, client: httpx.Client, settings: Settings, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
        auth = {"Authorization": "Bearer test-token"}
        response = client.post("/api/documents", files={"file": ("tide.txt", b"High tide is at noon.")}, headers=auth)
        doc_id = response.json()["doc_id"]
        health = client.get("/api/health").json()
        assert health["documents"] == 2
        from index.store import PassageIndex

        index_dirs = list(tmp_path_factory.getbasetemp().glob("server*/index"))
        manifests = [PassageIndex.read_manifest(d) for d in index_dirs]
        assert any(doc_id in [d["doc_id"] for d in m["documents"]] for m in manifests)
        client.delete(f"/api/documents/{doc_id}", headers=auth)

    @pytest.mark.parametrize(
        ("name", "data", "status"),
        [("notes.pdf", b"%PDF-1.4", 422), ("empty.txt", b"   ", 422), ("big.txt", b"a" * 300_000, 413)],
    )
    def test_bad_uploads(self, client: httpx.Client, name: str, data: bytes, status: int) -> None:
        response = client.post(
            "/api/documents", files={"file": (name, data)}, headers={"Authorization": "Bearer test-token"}
        )
        assert response.status_code == status
        assert response.json()["error"]

    def test_reads_keep_working_during_an_ingest(self, client: httpx.Client) -> None:
        auth = {"Authorization": "Bearer test-token"}
        big = ("Paragraph about harbours and ships and tides. " * 40 + "\n\n") * 60
        outcome: dict[str, int] = {}

        def upload() -> None:
            with httpx.Client(base_url=str(client.base_url), timeout=120) as other:
                outcome["status"] = other.post(
                    "/api/documents", files={"file": ("harbours.txt", big.encode())}, headers=auth
                ).status_code

        thread = threading.Thread(target=upload)
        thread.start()
        statuses = []
        while thread.is_alive():
            statuses.append(client.post("/api/search", json={"query": "Deng 1979", "top_k": 2}).status_code)
        thread.join()
        assert outcome["status"] == 201
        assert statuses and set(statuses) == {200}
        doc_id = next(d["doc_id"] for d in client.get("/api/documents").json() if d["title"] == "Harbours")
        client.delete(f"/api/documents/{doc_id}", headers=auth)


class TestService:
    def test_health_metrics_docs_and_page(self, client: httpx.Client) -> None:
        assert client.get("/api/health").json()["status"] == "ok"
        client.post("/api/search", json={"query": "trade"})
        metrics = client.get("/metrics").text
        assert 'rag_requests_total{method="POST",route="/api/search",status="200"}' in metrics
        assert "rag_stage_seconds_bucket" in metrics
        assert client.get("/docs").status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and "Ask the documents" in page.text

    def test_admin_routes_refused_without_a_configured_token(
        self, settings: Settings, generator: Generator, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        own, pipeline = server_pipeline(settings, generator, tmp_path_factory.mktemp("notoken") / "index")
        with LiveServer(create_app(own.with_overrides(admin_token=None), pipeline)) as server:
            response = httpx.post(
                f"{server.url}/api/documents", files={"file": ("a.txt", b"x")}, headers={"Authorization": "Bearer x"}
            )
            assert response.status_code == 403
            assert "RAG_ADMIN_TOKEN" in response.json()["error"]

    def test_saturated_generator_answers_503_with_retry_after(
        self, settings: Settings, generator: Generator, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        own, pipeline = server_pipeline(settings, generator, tmp_path_factory.mktemp("busy") / "index")
        busy = own.with_overrides(max_concurrent_generations=1, max_queued_generations=0)
        with LiveServer(create_app(busy, pipeline)) as server:
            results: list[httpx.Response] = []

            def ask() -> None:
                results.append(httpx.post(f"{server.url}/api/ask", json={"question": DENG}, timeout=120))

            threads = [threading.Thread(target=ask) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            statuses = sorted(r.status_code for r in results)
            assert statuses[0] == 200 and 503 in statuses
            refused = next(r for r in results if r.status_code == 503)
            assert refused.headers["Retry-After"] == "2" and "busy" in refused.json()["error"]
            # the service keeps serving afterwards
            assert httpx.post(f"{server.url}/api/search", json={"query": "Deng"}).status_code == 200
