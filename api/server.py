"""`rag serve`: uvicorn (uvloop + httptools) in front of the app."""

from __future__ import annotations

import logging

import uvicorn
from rich.console import Console

from api.app import create_app
from rag.settings import Settings


def run(settings: Settings) -> None:
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
