"""Guards in front of every route: Host check, security headers, admin token, body limits, a JSON 500.

They are pure ASGI middlewares rather than FastAPI dependencies because a dependency runs only after
FastAPI has read and parsed the whole request body: too late to refuse a 500 MB chunked upload from a
client without a token, or a JSON body that only reveals its size while it streams in.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("rag.api")

# The chat page and the API docs (served from vendored files with no inline script) load only their
# own files. Swagger UI sets inline styles on the elements it draws, so the docs page alone may use
# inline style; no page may run inline script.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOCS_PATHS = ("/docs", "/redoc")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
ANY_ADDRESS = ("0.0.0.0", "::", "")
DOCUMENT_PATH = "/api/documents"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MULTIPART_OVERHEAD_BYTES = 16_384  # boundaries and part headers around the file itself


def _error_response(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail}, status_code=status, headers=headers)


def _has_body(scope: Scope) -> bool:
    headers = Headers(scope=scope)
    length = headers.get("content-length")
    return "chunked" in headers.get("transfer-encoding", "").lower() or (length is not None and length != "0")


def _close_if_body_unread(scope: Scope, headers: dict[str, str] | None = None) -> dict[str, str]:
    """A refusal sent before the body was read must end the connection: the unread body would
    otherwise be parsed as the next request on this keep-alive connection."""
    merged = dict(headers or {})
    if _has_body(scope):
        merged["connection"] = "close"
    return merged


def is_document_write(scope: Scope) -> bool:
    """A request that changes the document set (upload, replace, remove) and so needs the admin token."""
    path: str = scope.get("path", "")
    return scope.get("method") in WRITE_METHODS and (path == DOCUMENT_PATH or path.startswith(DOCUMENT_PATH + "/"))


def has_route(scope: Scope) -> bool:
    """Whether one of the app's routes serves this method at this path (True when the routes are unknown)."""
    routes = getattr(getattr(scope.get("app"), "router", None), "routes", None)
    if routes is None:
        return True
    return any(route.matches(scope)[0] == Match.FULL for route in routes)


def public_source(source: str) -> str:
    """The part of a document's source a client may see: `upload:<name>` as is, a path by its file name.

    Absolute paths tell an attacker the server's user name and directory layout, and the file name is
    all a reader needs to recognise the document.
    """
    if source.startswith("upload:"):
        return source
    return re.split(r"[\\/]", source.rstrip("\\/"))[-1] or source


# ---- the admin token ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """Why an admin request is refused, as the HTTP answer to give."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class AdminGuard:
    """Checks the bearer token and limits wrong guesses per client address.

    After `max_failures` wrong tokens within `window_s` seconds a client gets 429 (even with the right
    token, so the answer reveals nothing) until its oldest failure leaves the window.
    """

    MAX_CLIENTS = 10_000  # addresses remembered at most, so a spray of addresses cannot grow memory

    def __init__(self, token: str | None, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.token = token
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client, deque())
        while failures and now - failures[0] >= self.window_s:
            failures.popleft()
        return failures

    def _record_failure(self, client: str, now: float) -> None:
        failures = self._recent(client, now)
        failures.append(now)
        self._failures[client] = failures
        if len(self._failures) > self.MAX_CLIENTS:
            for stale in [c for c, f in self._failures.items() if not f or now - f[-1] >= self.window_s]:
                del self._failures[stale]
            while len(self._failures) > self.MAX_CLIENTS:
                del self._failures[next(iter(self._failures))]

    def check(self, authorization: str | None, client: str) -> Refusal | None:
        """None when the request carries the right token; otherwise the refusal to answer with."""
        if not self.token:
            return Refusal(403, "document changes are disabled: start the server with RAG_ADMIN_TOKEN set")
        now = time.monotonic()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) >= self.max_failures:
                retry_after = max(1, math.ceil(self.window_s - (now - failures[0])))
                return Refusal(
                    429,
                    f"too many wrong admin tokens from this client: retry in {retry_after} s",
                    {"Retry-After": str(retry_after)},
                )
        if not authorization or not authorization.lower().startswith("bearer "):
            return Refusal(
                401,
                "missing admin token: send 'Authorization: Bearer <RAG_ADMIN_TOKEN>'",
                {"WWW-Authenticate": "Bearer"},
            )
        if secrets.compare_digest(authorization[7:].strip().encode(), self.token.encode()):
            return None
        with self._lock:
            self._record_failure(client, now)
        return Refusal(403, "the admin token is wrong")


def client_address(scope: Scope) -> str:
    """The peer address (behind a reverse proxy: the proxy's, unless uvicorn is told to trust it)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class AdminGuardMiddleware:
    """Refuses document changes without the right token before a single body byte is read."""

    def __init__(self, app: ASGIApp, guard: AdminGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A document write to a route that exists gets the guard's 401, 403 or 429 without the right token;
        everything else passes through."""
        # A method no route serves gets the router's 405 (with `Allow`) rather than a 401: there is nothing to
        # protect, and the answer should say what the resource takes.
        if scope["type"] == "http" and is_document_write(scope) and has_route(scope):
            refusal = self.guard.check(Headers(scope=scope).get("authorization"), client_address(scope))
            if refusal is not None:
                headers = _close_if_body_unread(scope, refusal.headers)
                await _error_response(refusal.status, refusal.message, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ---- Host ---------------------------------------------------------------------------------------
def allowed_hosts(setting: str, bind_host: str) -> frozenset[str]:
    """Host names a request may name: the setting's list, or the bind address plus loopback names."""
    names = [name.strip().lower() for name in setting.split(",") if name.strip()]
    if not names:
        names = list(LOOPBACK_HOSTS)
        if bind_host not in ANY_ADDRESS:
            names.append(f"[{bind_host}]" if ":" in bind_host and not bind_host.startswith("[") else bind_host)
    return frozenset(name.lower() for name in names)


def host_name(host_header: str) -> str:
    """The Host header without its port: `example.org:8000` → `example.org`, `[::1]:80` → `[::1]`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostCheckMiddleware:
    """Answers 400 to a Host header not in the allowed list: a DNS-rebinding page reaches the server
    under its own host name, so the name is what tells it apart from the chat page."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.any_host = "*" in hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Checks HTTP requests only, and none when the list holds `*`; lifespan and websocket scopes pass through."""
        if scope["type"] == "http" and not self.any_host:
            host = host_name(Headers(scope=scope).get("host", ""))
            if host not in self.hosts:
                response = _error_response(
                    400,
                    f"host {host or '(none)'!r} is not served here: "
                    "add it to RAG_ALLOWED_HOSTS (comma-separated) to allow it",
                    detail=[{"field": "Host", "message": "not in RAG_ALLOWED_HOSTS"}],
                    headers=_close_if_body_unread(scope),
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ---- body size and pace -------------------------------------------------------------------------
class _BodyRefused(Exception):
    pass


class BodyLimitMiddleware:
    """Counts the request body's bytes as they arrive and answers 413 once they pass the limit, or 408
    when the body stalls.

    A `Content-Length` over the limit is refused before reading; a chunked body (no length) is cut
    off at the limit, so no more than the limit is ever buffered, parsed or spooled to disk. uvicorn
    has no body timeout, so a client that stops sending mid-body would otherwise hold its request open.
    """

    def __init__(self, app: ASGIApp, json_limit: int, upload_limit: int, idle_timeout_s: float = 30.0) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit
        self.idle_timeout_s = idle_timeout_s

    def _limit(self, scope: Scope) -> tuple[int, str]:
        if is_document_write(scope):
            return self.upload_limit + MULTIPART_OVERHEAD_BYTES, f"RAG_MAX_UPLOAD_BYTES={self.upload_limit}"
        return self.json_limit, f"RAG_MAX_BODY_BYTES={self.json_limit}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HTTP requests only. Once a body is refused, whatever the app makes of it is discarded and the client gets
        the 413 or 408 instead (unless the app had already started its response)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self._limit(scope)
        too_large = f"request body is over the limit of {limit} bytes ({setting}): send less"
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _error_response(413, too_large, headers={"connection": "close"})(scope, receive, send)
            return

        received = 0
        body_done = not _has_body(scope)
        refusal: JSONResponse | None = None
        started = False

        async def guarded_receive() -> Message:
            nonlocal received, body_done, refusal
            if body_done:
                return await receive()  # only the disconnect is left to wait for, however long
            try:
                with anyio.fail_after(self.idle_timeout_s):
                    incoming = await receive()
            except TimeoutError:
                refusal = _error_response(
                    408,
                    f"the request body stalled for {self.idle_timeout_s:g} s: send it without pauses",
                    headers={"connection": "close"},
                )
                raise _BodyRefused from None
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                body_done = not incoming.get("more_body", False)
                if received > limit:
                    refusal = _error_response(413, too_large, headers={"connection": "close"})
                    raise _BodyRefused
            else:
                body_done = True
            return incoming

        async def guarded_send(outgoing: Message) -> None:
            nonlocal started
            if refusal is not None:
                return  # whatever the app makes of the cut-off body, the client gets the refusal below
            if outgoing["type"] == "http.response.start":
                started = True
            await send(outgoing)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _BodyRefused:
            pass
        except Exception:
            if refusal is None:
                raise
        if refusal is not None and not started:
            await refusal(scope, receive, send)


# ---- errors and headers -------------------------------------------------------------------------
class InternalErrorMiddleware:
    """Turns an unhandled exception into a JSON 500 and keeps the connection usable.

    Starlette's own last-resort handler re-raises after answering, so uvicorn drops the keep-alive
    connection without `Connection: close`; answering here ends the request cleanly instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An exception before the response starts is logged with an error id and answered with a JSON 500; after it
        has started, it is re-raised (only closing the connection can signal it)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise  # half a response is out: only closing the connection can signal the failure
            error_id = uuid.uuid4().hex[:12]
            logger.exception("unhandled error %s on %s %s", error_id, scope.get("method"), scope.get("path"))
            await internal_error_response(error_id)(scope, receive, send)


def internal_error_response(error_id: str) -> JSONResponse:
    """The JSON 500 body: an id to find the logged traceback, never the exception text itself."""
    return _error_response(
        500,
        f"internal error {error_id}: the server could not handle this request; it is logged, and the service "
        "keeps running",
        detail={"error_id": error_id},
    )


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff, frame and referrer headers to every response (a route's own value wins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """/docs and /redoc get DOCS_CSP, which allows the inline styles their pages use; every other path gets
        PAGE_CSP."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if any(path == p or path.startswith(p + "/") for p in DOCS_PATHS) else PAGE_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", csp)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
