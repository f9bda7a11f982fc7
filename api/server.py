"""`rag serve`: uvicorn (uvloop + httptools) in front of the app, in one process or in `--workers N`."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI
from rich.console import Console
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from api.app import HEADER_TIMEOUT_STATE, create_app
from index.milvus_store import is_local_file
from index.types import StoreKind
from rag.errors import UserError
from rag.settings import Settings

# uvicorn pickles its options into each worker process, so the workers' app and protocol are import strings.
WORKER_APP = "api.server:worker_app"
PROTOCOL = "api.server:HeaderTimeoutProtocol"


class WorkerStartupError(UserError):
    """A `rag serve --workers N` worker process failed to start, so the supervisor stopped them all."""


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


class MilvusLiteWorkersError(UserError):
    """`rag serve --workers N` over a Milvus Lite `.db` file, which only one process can open."""


def check_workers(settings: Settings) -> None:
    """Raise MilvusLiteWorkersError when `settings.workers` processes cannot share the store: before any
    worker starts, rather than one worker serving and the others failing on the file's lock."""
    if settings.workers > 1 and settings.store is StoreKind.MILVUS and is_local_file(settings.milvus_uri):
        raise MilvusLiteWorkersError(
            f"{settings.workers} workers cannot share the Milvus Lite file {settings.milvus_uri} (one process per "
            f"file): run `milvus-lite server --data-dir {settings.milvus_uri} --port 19530` and set "
            "RAG_MILVUS_URI=http://127.0.0.1:19530, or serve with --workers 1"
        )


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline for each request's headers.

    uvicorn times out idle keep-alive connections but not a client that connects and then sends its
    headers slowly (or never): a thousand such connections stay open indefinitely. Here the clock starts
    when the connection opens or a new request's first byte arrives, and stops when its headers end.
    The deadline is the served app's `RAG_HTTP_HEADER_TIMEOUT_S`, read from its lifespan state, so each
    worker process (and each in-process test server) uses the settings its app was built with.
    """

    header_timeout_s: float = Settings.model_fields["http_header_timeout_s"].default

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Read the deadline from the app's lifespan state and start the clock for the first request's headers."""
        self.header_timeout_s = float(self.app_state.get(HEADER_TIMEOUT_STATE, self.header_timeout_s))
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
        """A new request's first byte (keep-alive or pipelined): start the clock for its headers, unless it is
        running."""
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        """The headers are in: stop the clock (the body's pace is BodyLimitMiddleware's concern)."""
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock, so it never fires on a closed connection."""
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
    terminates TLS and can rate-limit per address. Every value is plain data, so the options also reach
    worker processes.
    """
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": PROTOCOL,
        "timeout_keep_alive": settings.http_keep_alive_s,
        "limit_concurrency": settings.http_max_connections,
        "timeout_graceful_shutdown": 10,
        "log_level": "warning",
        "access_log": False,
    }


def worker_options(settings: Settings) -> dict[str, Any]:
    """`uvicorn.run`'s arguments for `settings.workers` > 1 processes: the app by import string, built in
    each worker by `worker_app`."""
    return {
        **uvicorn_options(settings),
        "app": WORKER_APP,
        "factory": True,
        "workers": settings.workers,
        # The parent pings each worker and kills one that does not answer within this. Loading a model can
        # hold the GIL (which the answering thread needs) for seconds on busy cores, beyond uvicorn's 5 s, and
        # a worker killed while loading would only be restarted to load again.
        "timeout_worker_healthcheck": 60,
    }


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def worker_app() -> FastAPI:
    """The app of one `rag serve --workers N` worker process (uvicorn's factory): built from `Settings()`,
    which reads the settings the parent exported to the environment. Its lifespan loads the pipeline."""
    _configure_logging()
    return create_app(Settings())


def run(settings: Settings) -> None:
    """Serve until Ctrl-C or SIGTERM: one process with the app, or `settings.workers` processes on one
    port (uvicorn's supervisor stops them all on either signal)."""
    check_port_free(settings.host, settings.port)
    check_workers(settings)
    _configure_logging()
    app = create_app(settings) if settings.workers == 1 else None
    url = f"http://{settings.host}:{settings.port}"
    workers = f" with {settings.workers} worker processes" if settings.workers > 1 else ""
    Console(stderr=True).print(
        f"[bold]RAG chatbot[/] starting{workers} — open [link={url}]{url}[/] for the chat page, "
        f"{url}/docs for the API docs, {url}/v1 for OpenAI clients. Ctrl-C stops it."
    )
    if app is not None:
        uvicorn.run(app, **uvicorn_options(settings))
        return
    # The workers are new interpreters: they rebuild these settings (flags included) from the environment.
    os.environ.update(settings.as_environment())
    supervise_workers(uvicorn.Config(**worker_options(settings)))


def supervise_workers(config: uvicorn.Config) -> None:
    """What `uvicorn.run` does for several workers, plus an exit status: uvicorn's supervisor stops every worker
    when one fails to start, then returns as after Ctrl-C, and `uvicorn.run` ends normally, so a server that never
    served would exit 0. Raise WorkerStartupError then."""
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    failed = [worker.pid for worker in supervisor.processes if worker.exitcode == STARTUP_FAILURE]
    if failed:
        raise WorkerStartupError(
            f"worker process {failed[0]} failed to start (its error is logged above), so rag serve stopped"
        )
