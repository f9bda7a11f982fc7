"""Security and availability guards from issue 10, each through a real uvicorn server on loopback.

Most servers here run the real index, retrieval and HTTP stack with a *scripted fake generator* (no
model, so each test takes well under a second); the token-overflow tests (marked slow) use the real
model. Several tests speak raw HTTP over a socket, because the defects are about what the server does
before a request is complete (an unfinished chunked body) or after a response (the connection).
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.limits import GenerationLimiter, Saturated
from api.security import PAGE_CSP, allowed_hosts, host_name, public_source
from api.server import uvicorn_options
from index.store import PassageIndex
from rag.generators import Generator
from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT, Settings
from rag.testing import free_port
from tests.conftest import ARTICLE, LiveServer

DENG = "what did Deng agree in 1979?"
SCRIPTED_ANSWER = "He agreed to expand cooperation in collecting and sharing intelligence on the Soviet Union [1]."
TOKEN = "s3cret-token"


class ScriptedGenerator(Generator):
    """A fake generator for fast tests: yields scripted text, optionally after a gate opens or by raising."""

    def __init__(
        self,
        pieces: Iterable[str] = (SCRIPTED_ANSWER,),
        gate: threading.Event | None = None,
        error: Exception | None = None,
    ) -> None:
        self.pieces = list(pieces)
        self.gate = gate
        self.error = error
        self.calls = 0

    @property
    def model_name(self) -> str:
        return "scripted"

    def stream(self, messages: Any, max_tokens: int, *args: Any, **kwargs: Any) -> Iterator[str]:  # type: ignore[override]
        self.calls += 1
        if self.gate is not None and not self.gate.wait(30):
            raise TimeoutError("the test never opened the gate")
        if self.error is not None:
            raise self.error
        yield from self.pieces


def serve(settings: Settings, index: PassageIndex, generator: Generator, **overrides: Any) -> LiveServer:
    own = settings.with_overrides(**overrides)
    return LiveServer(create_app(own, Pipeline(own, index, generator)))


@pytest.fixture(scope="module")
def server(settings: Settings, article_index: PassageIndex) -> Iterator[LiveServer]:
    """The article index, a scripted generator, an admin token and a 200 kB upload limit."""
    with serve(settings, article_index, ScriptedGenerator(), admin_token=TOKEN, max_upload_bytes=200_000) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


# ---- raw HTTP -----------------------------------------------------------------------------------
class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_response(sock: socket.socket, timeout: float = 5.0) -> RawResponse:
    """One HTTP/1.1 response with a Content-Length body; socket.timeout if none arrives in time."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            break  # the server may reset after answering; what arrived before still counts
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 "):
        raise AssertionError(f"no HTTP response, got {data[:200]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return RawResponse(int(lines[0].split()[1]), headers, body[:length])


def request_head(method: str, path: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_chunks_until_answered(sock: socket.socket, chunks: Iterable[bytes]) -> RawResponse:
    """Send a chunked body piece by piece, never its terminating chunk; stop as soon as the server
    answers. A server that waits for the whole body never answers (socket.timeout)."""
    for chunk in chunks:
        if select.select([sock], [], [], 0)[0]:
            break
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            break
        time.sleep(0.002)
    return read_response(sock)


def multipart_start(name: str = "notes.txt") -> bytes:
    return (
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="'
        + name.encode()
        + b'"\r\nContent-Type: text/plain\r\n\r\n'
    )


def assert_error_shape(body: Any) -> None:
    assert set(body) >= {"error", "detail"} and isinstance(body["error"], str) and body["error"]


# ---- S2/S3: body limits on streamed bytes, token before body --------------------------------------
class TestBodyLimits:
    def test_chunked_json_over_the_limit_is_413_not_parsed(self, client: httpx.Client) -> None:
        def body() -> Iterator[bytes]:
            yield b'{"query": "'
            for _ in range(40):
                yield b"x" * 4096
            yield b'"}'

        response = client.post("/api/search", content=body(), headers={"content-type": "application/json"})
        assert "content-length" not in response.request.headers  # it really went chunked
        assert response.status_code == 413
        assert_error_shape(response.json())
        assert "RAG_MAX_BODY_BYTES" in response.json()["error"]
        assert client.get("/api/health").status_code == 200

    def test_chunked_json_is_cut_off_without_waiting_for_its_end(self, server: LiveServer) -> None:
        with connect(server) as sock:
            head = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
            sock.sendall(request_head("POST", "/api/search", server.port, head))
            response = send_chunks_until_answered(sock, [b'{"query": "'] + [b"y" * 8192] * 100)
        assert response.status == 413
        assert response.headers.get("connection") == "close"

    @pytest.mark.parametrize(("auth", "status"), [(None, 401), (f"Bearer {TOKEN}x", 403), ("Basic abc", 401)])
    def test_upload_without_the_token_is_refused_before_the_body_is_read(
        self, server: LiveServer, auth: str | None, status: int
    ) -> None:
        head = {"Content-Type": "multipart/form-data; boundary=BOUNDARY", "Transfer-Encoding": "chunked"}
        if auth:
            head["Authorization"] = auth
        with connect(server) as sock:
            sock.sendall(request_head("POST", "/api/documents", server.port, head))
            sock.sendall(b"%x\r\n%s\r\n" % (len(multipart_start()) + 1000, multipart_start() + b"a" * 1000))
            # the body is unfinished: a server that reads it before checking the token never answers
            response = read_response(sock)
        assert response.status == status
        assert_error_shape(response.json())
        assert response.headers.get("connection") == "close"

    def test_chunked_upload_over_the_limit_is_413_as_it_streams(self, server: LiveServer) -> None:
        head = {
            "Content-Type": "multipart/form-data; boundary=BOUNDARY",
            "Transfer-Encoding": "chunked",
            "Authorization": f"Bearer {TOKEN}",
        }
        with connect(server) as sock:
            sock.sendall(request_head("POST", "/api/documents", server.port, head))
            response = send_chunks_until_answered(sock, [multipart_start()] + [b"word " * 3000] * 100)
        assert response.status == 413
        assert "RAG_MAX_UPLOAD_BYTES" in response.json()["error"]

    def test_server_keeps_serving_after_the_refusals(self, client: httpx.Client) -> None:
        assert client.post("/api/search", json={"query": "Deng", "top_k": 1}).status_code == 200


# ---- S4: Host ---------------------------------------------------------------------------------------
class TestHost:
    @pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.2", ""])
    def test_unknown_host_is_refused(self, server: LiveServer, host: str) -> None:
        response = httpx.get(f"{server.url}/api/documents", headers={"Host": host})
        assert response.status_code == 400
        assert_error_shape(response.json())
        assert "RAG_ALLOWED_HOSTS" in response.json()["error"]
        assert response.headers["x-frame-options"] == "DENY"

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
    def test_bind_address_and_loopback_names_are_served(self, server: LiveServer, host: str) -> None:
        response = httpx.get(f"{server.url}/api/documents", headers={"Host": f"{host}:{server.port}"})
        assert response.status_code == 200

    def test_the_setting_replaces_the_default_list(self, settings: Settings, article_index: PassageIndex) -> None:
        with serve(settings, article_index, ScriptedGenerator(), allowed_hosts="127.0.0.1, rag.example") as live:
            assert httpx.get(f"{live.url}/api/health", headers={"Host": "rag.example"}).status_code == 200
            assert httpx.get(f"{live.url}/api/health", headers={"Host": "localhost"}).status_code == 400

    def test_host_parsing(self) -> None:
        assert host_name("Example.org:8000") == "example.org"
        assert host_name("[::1]:8000") == "[::1]"
        assert host_name("[::1]") == "[::1]"
        assert allowed_hosts("", "0.0.0.0") == {"localhost", "127.0.0.1", "[::1]"}
        assert "10.0.0.5" in allowed_hosts("", "10.0.0.5")
        assert "[fe80::1]" in allowed_hosts("", "fe80::1")
        assert allowed_hosts("a.example, B.example", "127.0.0.1") == {"a.example", "b.example"}


# ---- S5: security headers -----------------------------------------------------------------------------
class TestSecurityHeaders:
    @pytest.mark.parametrize(
        ("method", "path"),
        [("GET", "/"), ("GET", "/api/health"), ("GET", "/static/app.js"), ("GET", "/nope"), ("POST", "/api/ask")],
    )
    def test_every_response_carries_them(self, client: httpx.Client, method: str, path: str) -> None:
        response = client.request(method, path, json={} if method == "POST" else None)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"

    def test_the_chat_page_policy_is_strict(self, client: httpx.Client) -> None:
        csp = client.get("/").headers["content-security-policy"]
        assert csp == PAGE_CSP
        for directive in ("script-src 'self';", "style-src 'self';", "base-uri 'none'", "form-action 'self'"):
            assert directive in csp

    def test_the_pages_have_nothing_inline_that_the_policy_blocks(self) -> None:
        class Inline(HTMLParser):
            def __init__(self) -> None:
                super().__init__()
                self.found: list[str] = []

            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                names = {name for name, _ in attrs}
                if tag == "script" and "src" not in names:
                    self.found.append("<script> without src")
                if tag == "style":
                    self.found.append("<style>")
                self.found += [f"{tag} {name}=" for name in names if name == "style" or name.startswith("on")]

        pages = sorted((PROJECT_ROOT / "web").glob("*.html"))
        assert pages
        for page in pages:
            parser = Inline()
            parser.feed(page.read_text(encoding="utf-8"))
            assert parser.found == [], f"{page.name}: {parser.found}"


# ---- S6: exposure ----------------------------------------------------------------------------------------
class TestExposure:
    def test_documents_show_file_names_not_server_paths(self, client: httpx.Client) -> None:
        documents = client.get("/api/documents").json()
        assert documents and [d["source"] for d in documents] == [ARTICLE.name]
        detail = client.get(f"/api/documents/{documents[0]['doc_id']}").json()
        assert detail["source"] == ARTICLE.name
        assert str(ARTICLE.parent) not in json.dumps(documents) + json.dumps(detail)

    def test_public_source(self) -> None:
        assert public_source("/home/me/corpus/notes.md") == "notes.md"
        assert public_source("C:\\Users\\me\\notes.md") == "notes.md"
        assert public_source("upload:notes.md") == "upload:notes.md"
        assert public_source("notes.md") == "notes.md"

    def test_wrong_admin_tokens_are_rate_limited_per_client(
        self, settings: Settings, article_index: PassageIndex
    ) -> None:
        with serve(settings, article_index, ScriptedGenerator(), admin_token=TOKEN, admin_failure_window_s=2.0) as live:
            wrong = {"Authorization": "Bearer guess"}
            right = {"Authorization": f"Bearer {TOKEN}"}
            statuses = [httpx.delete(f"{live.url}/api/documents/x", headers=wrong).status_code for _ in range(5)]
            assert statuses == [403] * 5
            limited = httpx.delete(f"{live.url}/api/documents/x", headers=wrong)
            assert limited.status_code == 429
            assert 1 <= int(limited.headers["Retry-After"]) <= 2
            assert_error_shape(limited.json())
            # while limited, even the right token learns nothing
            assert httpx.delete(f"{live.url}/api/documents/x", headers=right).status_code == 429
            assert (
                httpx.post(f"{live.url}/api/documents", files={"file": ("a.txt", b"x")}, headers=right).status_code
                == 429
            )
            # reads are not limited
            assert httpx.get(f"{live.url}/api/documents").status_code == 200
            time.sleep(2.1)
            assert httpx.delete(f"{live.url}/api/documents/x", headers=right).status_code == 404


# ---- A3: unhandled errors ---------------------------------------------------------------------------------
class TestInternalErrors:
    def test_an_unhandled_error_is_json_and_the_connection_stays_usable(
        self, settings: Settings, article_index: PassageIndex
    ) -> None:
        failing = ScriptedGenerator(error=RuntimeError("secret internal detail"))
        with serve(settings, article_index, failing) as live, connect(live) as sock:
            body = json.dumps({"question": DENG}).encode()
            head = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            sock.sendall(request_head("POST", "/api/ask", live.port, head) + body)
            response = read_response(sock, timeout=30)
            assert failing.calls == 1
            assert response.status == 500
            assert response.headers["content-type"] == "application/json"
            assert_error_shape(response.json())
            assert "secret internal detail" not in response.body.decode()
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers.get("connection") != "close"
            # the same keep-alive connection answers the next request
            sock.sendall(request_head("GET", "/api/health", live.port, {}))
            assert read_response(sock).status == 200


# ---- A4 and polish: bad input is a 4xx naming the field -------------------------------------------------
class TestBadInput:
    @pytest.mark.parametrize(
        ("path", "raw", "field"),
        [
            ("/api/ask", b'{"question": "\\ud800"}', "question"),
            ("/api/ask", b'{"question": "hi \\udfff there"}', "question"),
            (
                "/api/ask",
                b'{"question": "hi", "history": [{"role": "user", "content": "\\ud800"}]}',
                "history.0.content",
            ),
            ("/api/ask/stream", b'{"question": "\\ud800"}', "question"),
            ("/api/search", b'{"query": "\\ud800"}', "query"),
            ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "messages.0.content"),
            (
                "/v1/chat/completions",
                b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud800"}]}]}',
                "messages.0.content",
            ),
            ("/v1/chat/completions", b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model"),
            ("/api/ask", b'{"question": "hi", "top_k": "3"}', "top_k"),
            ("/api/ask", b'{"question": "hi", "top_k": true}', "top_k"),
            ("/api/search", b'{"query": "hi", "top_k": "3"}', "top_k"),
        ],
    )
    def test_is_422_naming_the_field(self, client: httpx.Client, path: str, raw: bytes, field: str) -> None:
        response = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        body = response.json()
        assert_error_shape(body)
        assert any(d["field"] == field for d in body["detail"]), body

    def test_a_surrogate_in_a_field_name_is_422(self, client: httpx.Client) -> None:
        raw = b'{"question": "hi", "\\ud800": 1}'
        response = client.post("/api/ask", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422
        assert_error_shape(response.json())

    def test_a_valid_surrogate_pair_is_text(self, client: httpx.Client) -> None:
        response = client.post(
            "/api/search", content=b'{"query": "Deng \\ud83d\\ude00"}', headers={"content-type": "application/json"}
        )
        assert response.status_code == 200

    def test_unknown_route_and_method_answer_error_and_detail(self, client: httpx.Client) -> None:
        missing = client.get("/api/nope")
        assert missing.status_code == 404
        assert_error_shape(missing.json())
        wrong_method = client.delete("/api/health")
        assert wrong_method.status_code == 405
        assert_error_shape(wrong_method.json())
        assert "GET" in wrong_method.headers["allow"]


# ---- A6: a saturated stream is refused before it starts ---------------------------------------------------
class TestSaturation:
    def test_saturated_stream_is_503_with_retry_after_never_200(
        self, settings: Settings, article_index: PassageIndex
    ) -> None:
        gate = threading.Event()
        busy = ScriptedGenerator(gate=gate)
        with serve(settings, article_index, busy, max_concurrent_generations=1, max_queued_generations=0) as live:
            results: list[tuple[int, str | None, list[str]]] = []
            start = threading.Barrier(8)

            def ask() -> None:
                with httpx.Client(timeout=60) as http:
                    start.wait()
                    with http.stream("POST", f"{live.url}/api/ask/stream", json={"question": DENG}) as response:
                        kinds = [line[6:].strip() for line in response.iter_lines() if line.startswith("event:")]
                        results.append((response.status_code, response.headers.get("retry-after"), kinds))

            threads = [threading.Thread(target=ask) for _ in range(8)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 20
            while len(results) < 7 and time.monotonic() < deadline:
                time.sleep(0.05)
            refused = list(results)
            gate.set()
            for thread in threads:
                thread.join(30)
            assert len(refused) == 7, results
            assert all(status == 503 and retry == "2" for status, retry, _ in refused), refused
            served = [r for r in results if r[0] == 200]
            assert len(served) == 1 and served[0][2][-1] == "done", results
            # every place was given back: the next question streams
            with httpx.stream("POST", f"{live.url}/api/ask/stream", json={"question": DENG}, timeout=30) as again:
                assert again.status_code == 200
                assert [line for line in again.iter_lines() if line.startswith("event:")][-1] == "event: done"


def test_a_reservation_is_given_back_however_the_stream_ends() -> None:
    """Unit test of the limiter's reservation (no server): a refused or abandoned stream leaks no place."""

    async def scenario() -> None:
        limiter = GenerationLimiter(concurrent=1, queued=1)
        first = limiter.reserve()
        second = limiter.reserve()
        assert limiter.full
        with pytest.raises(Saturated):
            limiter.reserve()
        second.cancel()  # its response never ran its stream
        assert not limiter.full
        async with first:
            waiting = limiter.reserve()
            task = asyncio.create_task(waiting.__aenter__())
            await asyncio.sleep(0.01)
            task.cancel()  # the client left while waiting for the slot
            with pytest.raises(asyncio.CancelledError):
                await task
            waiting.cancel()  # the response's own clean-up: a no-op now
            assert not limiter.full
        first.cancel()  # a no-op after the stream ran
        assert limiter._admitted == 0
        async with limiter.reserve():
            assert not limiter.full  # one running, one queue place free

    asyncio.run(scenario())


# ---- A7: slow clients ------------------------------------------------------------------------------------
class RagServe(LiveServer):
    """LiveServer with the uvicorn options `rag serve` uses (`api.server.uvicorn_options`)."""

    def __init__(self, app: object, settings: Settings) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = {**uvicorn_options(settings), "host": "127.0.0.1", "port": self.port}
        self.server = uvicorn.Server(uvicorn.Config(app, **options))  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.server.run, daemon=True)


@pytest.fixture(scope="module")
def strict(settings: Settings, article_index: PassageIndex) -> Iterator[RagServe]:
    """`rag serve`'s uvicorn options with one-second header, body and keep-alive timeouts."""
    own = settings.with_overrides(http_header_timeout_s=1.0, http_body_timeout_s=1.0, http_keep_alive_s=1.0)
    live = RagServe(create_app(own, Pipeline(own, article_index, ScriptedGenerator())), own)
    with live:
        yield live


class TestSlowClients:
    @staticmethod
    def closed_within(sock: socket.socket, seconds: float) -> bytes:
        """Everything the server sends until it closes the connection; fails if it is still open after `seconds`."""
        sock.settimeout(seconds)
        data = b""
        while piece := sock.recv(65536):
            data += piece
        return data

    def test_headers_sent_too_slowly_get_408_and_the_connection_closes(self, strict: RagServe) -> None:
        with connect(strict) as sock:
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing
            started = time.monotonic()
            data = self.closed_within(sock, 5)
        assert data.startswith(b"HTTP/1.1 408 ")
        assert 0.8 <= time.monotonic() - started < 4
        assert json.loads(data.partition(b"\r\n\r\n")[2])["error"]

    def test_a_connection_that_sends_nothing_is_closed(self, strict: RagServe) -> None:
        with connect(strict) as sock:
            self.closed_within(sock, 5)

    def test_a_stalled_body_gets_408(self, strict: RagServe) -> None:
        with connect(strict) as sock:
            head = {"Content-Type": "application/json", "Content-Length": "100"}
            sock.sendall(request_head("POST", "/api/search", strict.port, head) + b'{"query": ')
            response = read_response(sock)
        assert response.status == 408
        assert_error_shape(response.json())

    def test_prompt_clients_are_served_on_one_keep_alive_connection(self, strict: RagServe) -> None:
        with connect(strict) as sock:
            for _ in range(3):
                sock.sendall(request_head("GET", "/api/health", strict.port, {}))
                assert read_response(sock).status == 200
            self.closed_within(sock, 5)  # idle beyond the keep-alive time: closed


# ---- A2: a question within the character limit that overflows the model's context (real model) ----------
# English first so it passes the relevance gate and reaches the model; then CJK (what the embedder reads of
# it: its first 256 tokens) and a rare character the model's tokenizer spends three tokens on: ~4,500 tokens.
OVERFLOWING = ("What did Deng agree in 1979? " + "邓小平一九七九年访问美国时同意了什么？" * 30 + "𠜎" * 2000)[:2000]


@pytest.fixture(scope="module")
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A client of the session's real-model server."""
    with httpx.Client(base_url=live_server.url, timeout=180) as client:
        yield client


@pytest.mark.slow
class TestTokenOverflow:
    def test_ask_is_422_naming_the_question(self, http: httpx.Client) -> None:
        response = http.post("/api/ask", json={"question": OVERFLOWING})
        assert response.status_code == 422, response.text
        body = response.json()
        assert [d["field"] for d in body["detail"]] == ["question"]
        assert "too long" in body["error"] and "context window" in body["error"]

    def test_stream_ends_with_an_error_event(self, http: httpx.Client) -> None:
        with http.stream("POST", "/api/ask/stream", json={"question": OVERFLOWING}) as response:
            assert response.status_code == 200
            events = [line[6:].strip() for line in response.iter_lines() if line.startswith("event:")]
        assert events[-1] == "error" and "done" not in events

    def test_openai_stream_still_ends_with_done(self, http: httpx.Client) -> None:
        body = {"model": "rag-chatbot", "stream": True, "messages": [{"role": "user", "content": OVERFLOWING}]}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line.startswith("data:")]
        assert lines[-1] == "data: [DONE]"
        assert "too long" in "".join(lines[:-1])

    def test_openai_non_stream_is_422_naming_messages(self, http: httpx.Client) -> None:
        body = {"model": "rag-chatbot", "messages": [{"role": "user", "content": OVERFLOWING}]}
        response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == 422
        assert [d["field"] for d in response.json()["detail"]] == ["messages"]

    def test_the_model_still_answers_afterwards(self, http: httpx.Client) -> None:
        response = http.post("/api/ask", json={"question": DENG})
        assert response.status_code == 200 and response.json()["answer"]
