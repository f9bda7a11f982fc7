"""The service itself: `GET /api/health`, `GET /metrics` (Prometheus) and the chat page at `/` (with `/static`)."""

from __future__ import annotations

import os
import socket
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.schemas import ERROR_RESPONSES, HealthResponse
from api.state import State
from rag.settings import PROJECT_ROOT

WEB_DIR = PROJECT_ROOT / "web"
# No parameters and no body to validate: of the common errors only the body size limit applies (a 422 never comes).
router = APIRouter(tags=["service"], responses={413: ERROR_RESPONSES[413]})
page_router = APIRouter(include_in_schema=False)


@router.get("/api/health", response_model=HealthResponse, summary="Health: the index and models this server runs")
async def health(rag_state: State) -> Any:
    """The server is up: how many documents and passages it serves, with which models, and which process answered."""
    pipeline = rag_state.pipeline
    info = pipeline.model_info(rag_state.settings.retriever, rag_state.settings.rescore)
    return HealthResponse(
        status="ok",
        documents=len(pipeline.index.documents),
        passages=len(pipeline.index),
        generator=info.generator,
        model=info.model,
        embedder=info.embedder,
        changes_allowed=bool(rag_state.settings.admin_token),
        replica=f"{socket.gethostname()}:{os.getpid()}",
    )


@router.get("/metrics", include_in_schema=False, summary="Prometheus metrics")
async def metrics(rag_state: State) -> Response:
    """Request, answer and abstention counters and latencies, in Prometheus's text format."""
    return Response(generate_latest(rag_state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@page_router.get("/", summary="The chat page")
async def chat_page() -> FileResponse:
    """The chat page (`web/index.html`); its scripts and styles are under `/static`."""
    return FileResponse(WEB_DIR / "index.html")
