"""The HTTP face of the pipeline: `create_app` wires the routers (`api/routes/`) over one `AppState`.

No retrieval logic lives here: every answer comes from `rag.pipeline.Pipeline`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.errors import install_error_handlers
from api.observability import RequestLogMiddleware
from api.routes import docs, documents, feedback, openai, questions, service
from api.security import (
    AdminGuard,
    AdminGuardMiddleware,
    BodyLimitMiddleware,
    HostCheckMiddleware,
    InternalErrorMiddleware,
    SecurityHeadersMiddleware,
    allowed_hosts,
)
from api.state import AppState
from rag.pipeline import Pipeline
from rag.settings import Settings

# The key under which the app's lifespan state carries its header deadline; uvicorn hands that state to each
# connection's protocol (`api.server.HeaderTimeoutProtocol`), which reads it there.
HEADER_TIMEOUT_STATE = "http_header_timeout_s"


def create_app(settings: Settings, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the app; a pipeline may be passed in (tests share one loaded model)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if not hasattr(app.state, "rag"):
            loaded = await to_thread.run_sync(Pipeline.from_settings, settings)
            await to_thread.run_sync(loaded.warm_up)
            app.state.rag = AppState(settings, loaded)
            loaded.warm_prompts_in_background()
        yield {HEADER_TIMEOUT_STATE: settings.http_header_timeout_s}

    app = FastAPI(
        title="RAG chatbot",
        summary="Answers from your documents, with citations.",
        version="0.1.0",
        lifespan=lifespan,
        # /docs is served from vendored files by api.routes.docs (FastAPI's own loads a CDN).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    if pipeline is not None:
        app.state.rag = AppState(settings, pipeline)

    # Middlewares run outermost-last-added. Inside the logging one (so every refusal is counted):
    # JSON 500, then Host, then the admin token (before any body byte), then the streamed body limit.
    app.state.admin_guard = AdminGuard(
        settings.admin_token, settings.admin_max_failures, settings.admin_failure_window_s
    )
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.max_body_bytes,
        upload_limit=settings.max_upload_bytes,
        idle_timeout_s=settings.http_body_timeout_s,
    )
    app.add_middleware(AdminGuardMiddleware, guard=app.state.admin_guard)
    app.add_middleware(HostCheckMiddleware, hosts=allowed_hosts(settings.allowed_hosts, settings.host))
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(RequestLogMiddleware)
    # Outermost, so the Host refusal, the JSON 500 and every route's answer carry the headers.
    app.add_middleware(SecurityHeadersMiddleware)
    install_error_handlers(app)

    # In this order in the API docs.
    for router in (docs.router, questions.router, service.router, documents.router, openai.router, feedback.router):
        app.include_router(router)
    if service.WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=service.WEB_DIR), name="static")
        app.include_router(service.page_router)
    return app
