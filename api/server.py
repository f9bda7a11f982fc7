"""`rag serve`: uvicorn (uvloop + httptools) in front of the app."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
from typing import Any

import uvicorn
from rich.console import Console
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.app import create_app
from rag.errors import UserError
from rag.settings import Settings


class PortUnavailableError(UserError):
    """`rag serve` cannot listen where it was asked to (the port is taken, or the host is not local)."""


def check_port_free(host: str, port: int) -> None:
    """Raise PortUnavailableError unless (host, port) can be bound now, so a busy port is one line
    before the banner rather than a uvicorn error after it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise PortUnavailableError(f"cannot listen on {host!r}: {error.strerror} (see --host / RAG_HOST)") from error
    with socket.socket(family, kind, proto) as probe:
        # uvicorn sets SO_REUSEADDR as well, so a port left in TIME_WAIT is free for it and for this probe.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortUnavailableError(
                    f"port {port} on {host} is already in use: stop what is using it or pick another "
                    "with --port / RAG_PORT"
                ) from error
            raise PortUnavailableError(f"cannot listen on {host}:{port}: {error.strerror}") from error


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline for each request's headers.

    uvicorn times out idle keep-alive connections but not a client that connects and then sends its
    headers slowly (or never): a thousand such connections stay open indefinitely. Here the clock starts
    when the connection opens or a new request's first byte arrives, and stops when its headers end.
    """

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined request is still answering: close after it
            return
        body = json.dumps(
            {"error": f"request headers not received within {self.header_timeout_s:g} s", "detail": None}
        ).encode()
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How `rag serve` runs uvicorn: bounded waits for slow clients and a cap on open connections.

    httptools has fixed header-size limits of its own (h11's `h11_max_incomplete_event_size` does not
    apply). For production put a reverse proxy in front (see the README): it buffers slow clients,
    terminates TLS and can rate-limit per address.
    """
    protocol = type("RagHttpProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": settings.http_header_timeout_s})
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": protocol,
        "timeout_keep_alive": settings.http_keep_alive_s,
        "limit_concurrency": settings.http_max_connections,
        "timeout_graceful_shutdown": 10,
        "log_level": "warning",
        "access_log": False,
    }


def run(settings: Settings) -> None:
    check_port_free(settings.host, settings.port)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = create_app(settings)
    url = f"http://{settings.host}:{settings.port}"
    Console(stderr=True).print(
        f"[bold]RAG chatbot[/] starting — open [link={url}]{url}[/] for the chat page, "
        f"{url}/docs for the API docs, {url}/v1 for OpenAI clients. Ctrl-C stops it."
    )
    uvicorn.run(app, **uvicorn_options(settings))
