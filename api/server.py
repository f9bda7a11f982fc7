"""`rag serve`: uvicorn (uvloop + httptools) in front of the app."""

from __future__ import annotations

import errno
import logging
import socket

import uvicorn
from rich.console import Console

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


def run(settings: Settings) -> None:
    check_port_free(settings.host, settings.port)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = create_app(settings)
    url = f"http://{settings.host}:{settings.port}"
    Console(stderr=True).print(
        f"[bold]RAG chatbot[/] starting — open [link={url}]{url}[/] for the chat page, "
        f"{url}/docs for the API docs, {url}/v1 for OpenAI clients. Ctrl-C stops it."
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
