"""The HTTP face of the pipeline: REST, Server-Sent Events, the OpenAI-compatible API and the chat page.

No retrieval logic lives here: every answer comes from `rag.pipeline.Pipeline`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from anyio import to_thread
from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from api.feedback import router as feedback_router
from api.limits import GenerationLimiter, Reservation, Saturated
from api.observability import Metrics, log_event
from api.routes_docs import router as docs_router
from api.schemas import (
    AskRequest,
    ChatCompletionRequest,
    DocumentDetail,
    DocumentSummary,
    HealthResponse,
    IngestResponse,
    SearchRequest,
    SearchResponse,
)
from api.security import (
    AdminGuard,
    AdminGuardMiddleware,
    BodyLimitMiddleware,
    HostCheckMiddleware,
    InternalErrorMiddleware,
    SecurityHeadersMiddleware,
    allowed_hosts,
    client_address,
    internal_error_response,
    public_source,
)
from api.streaming import ClientGone, OpenAIChunks, answer_unless_disconnected, iterate_closing, sse_event
from index.library import Library
from index.loaders import DocumentLoadError, document_from_bytes
from index.store import IndexLockedError, IndexStoreError, IndexWriteError
from rag.generators import ContextOverflowError, GeneratorError
from rag.pipeline import DoneEvent, Pipeline
from rag.settings import PROJECT_ROOT, Settings
from rag.types import Answer, Turn

WEB_DIR = PROJECT_ROOT / "web"
RETRY_AFTER_S = "2"
OPENAI_MODEL_ID = "rag-chatbot"


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, detail: Any = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail, **extra}, status_code=status, headers=headers)


def _utf8_safe(text: str) -> str:
    # A field name the client sent may hold a lone surrogate, which the JSON encoder cannot write.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _field_errors(error: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for item in error.errors():
        location = [_utf8_safe(str(part)) for part in item.get("loc", ())]
        if location and location[0] in ("body", "query", "path", "header"):
            location = location[1:]  # where the field was sent, not its name
        field = ".".join(location) or "body"
        details.append({"field": field, "message": _utf8_safe(str(item.get("msg", "invalid")))})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return f"invalid request: {summary}", details


class AppState:
    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.limiter = GenerationLimiter(settings.max_concurrent_generations, settings.max_queued_generations)
        self.metrics = Metrics()


class _ReservedEventSource(EventSourceResponse):
    """An SSE response that gives its generation place back however it ends, even if its stream never ran
    (a client that disconnects before the first byte)."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], reservation: Reservation, **options: Any) -> None:
        super().__init__(content, **options)
        self.reservation = reservation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.reservation.cancel()


class _ReservedStream(StreamingResponse):
    """A streaming response that gives its generation place back however it ends (see _ReservedEventSource)."""

    def __init__(self, content: AsyncIterator[str], reservation: Reservation, **options: Any) -> None:
        super().__init__(content, **options)
        self.reservation = reservation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.reservation.cancel()


def _state(request: Request) -> AppState:
    rag_state: AppState = request.app.state.rag
    return rag_state


State = Annotated[AppState, Depends(_state)]


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """The admin token, for routes outside /api/documents (those are checked before their body is read)."""
    guard: AdminGuard = request.app.state.admin_guard
    refusal = guard.check(authorization, client_address(request.scope))
    if refusal is not None:
        raise HTTPException(refusal.status, refusal.message, refusal.headers or None)


def create_app(settings: Settings, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the app; a pipeline may be passed in (tests share one loaded model)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not hasattr(app.state, "rag"):
            loaded = await to_thread.run_sync(Pipeline.from_settings, settings)
            await to_thread.run_sync(loaded.warm_up)
            app.state.rag = AppState(settings, loaded)
        yield

    app = FastAPI(
        title="RAG chatbot",
        summary="Answers from your documents, with citations.",
        version="0.1.0",
        lifespan=lifespan,
        # /docs is served from vendored files by api.routes_docs (FastAPI's own loads a CDN).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.include_router(docs_router)
    if pipeline is not None:
        app.state.rag = AppState(settings, pipeline)

    # ---- cross-cutting -----------------------------------------------------------------------
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

    @app.middleware("http")
    async def log_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        route_path = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - started
        if hasattr(request.app.state, "rag"):
            metrics = request.app.state.rag.metrics
            metrics.requests.labels(route=route_path, method=request.method, status=str(response.status_code)).inc()
            metrics.request_seconds.labels(route=route_path).observe(elapsed)
        log_event(
            "request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round(elapsed * 1000, 1),
        )
        return response

    # Outermost, so the Host refusal, the JSON 500 and every route's answer carry the headers.
    app.add_middleware(SecurityHeadersMiddleware)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        message, details = _field_errors(error)
        return _error(422, message, detail=details)

    # Starlette's class, not FastAPI's subclass: the router's own 404 and 405 are Starlette's.
    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), headers=dict(error.headers or {}))

    @app.exception_handler(Exception)
    async def on_unhandled(request: Request, error: Exception) -> JSONResponse:
        # Last resort behind InternalErrorMiddleware (an error raised in the logging middleware itself).
        return internal_error_response("unlogged")

    # ---- questions ---------------------------------------------------------------------------
    def _saturated(rag_state: AppState) -> JSONResponse:
        rag_state.metrics.saturated.inc()
        return _error(503, "the answer generator is busy; retry shortly", headers={"Retry-After": RETRY_AFTER_S})

    def _record(rag_state: AppState, answer: Answer) -> None:
        rag_state.metrics.observe_answer(answer.abstained, answer.abstain_reason, answer.timings_ms)
        log_event(
            "answer",
            abstained=answer.abstained,
            reason=answer.abstain_reason,
            citations=len(answer.citations),
            timings_ms=answer.timings_ms,
        )

    async def _answer(
        rag_state: AppState,
        question: str,
        history: list[Turn],
        top_k: int | None,
        request: Request | None = None,
        field: str = "question",
    ) -> Answer:
        try:
            answer = await answer_unless_disconnected(
                rag_state.pipeline.stream(question, history=history, top_k=top_k), request
            )
        except ContextOverflowError as error:
            # The client's text is too long in tokens (not characters): theirs to shorten, so a 422.
            raise RequestValidationError(
                [{"loc": ("body", field), "msg": str(error), "type": "context_overflow"}]
            ) from error
        except GeneratorError as error:
            rag_state.metrics.errors.labels(kind="generator").inc()
            raise HTTPException(503, f"the answer generator failed: {error}", {"Retry-After": "5"}) from error
        except ClientGone as gone:
            # Nobody is listening; the status is only for the log line.
            raise HTTPException(499, "the client closed the connection; the answer was stopped") from gone
        _record(rag_state, answer)
        return answer

    @app.post("/api/ask", response_model=Answer, tags=["questions"])
    async def ask(body: AskRequest, rag_state: State, request: Request) -> Any:
        """Answer a question from the indexed documents, citing the passages used."""
        try:
            async with rag_state.limiter.slot():
                return await _answer(rag_state, body.question, body.history, body.top_k, request)
        except Saturated:
            return _saturated(rag_state)

    @app.post("/api/ask/stream", tags=["questions"])
    async def ask_stream(body: AskRequest, rag_state: State) -> Any:
        """Server-Sent Events: `passages`, then `token`s, then `done` (the Answer) or `error`."""
        try:
            # The queue place is taken now, not when the stream starts: in between, other requests
            # could fill the queue and this one would become a 200 carrying an error event.
            reservation = rag_state.limiter.reserve()
        except Saturated:
            return _saturated(rag_state)

        async def events() -> AsyncIterator[ServerSentEvent]:
            try:
                async with reservation:
                    stream = rag_state.pipeline.stream(body.question, history=body.history, top_k=body.top_k)
                    async for event in iterate_closing(stream):
                        if isinstance(event, DoneEvent):
                            _record(rag_state, event.answer)
                        yield sse_event(event)
            except Saturated:
                rag_state.metrics.saturated.inc()
                yield ServerSentEvent(json.dumps({"message": "the answer generator is busy; retry"}), event="error")
            except (GeneratorError, ValueError) as error:
                rag_state.metrics.errors.labels(kind="stream").inc()
                yield ServerSentEvent(json.dumps({"message": str(error)}), event="error")

        return _ReservedEventSource(events(), reservation, ping=15)

    @app.post("/api/search", response_model=SearchResponse, tags=["questions"])
    async def search(body: SearchRequest, rag_state: State) -> Any:
        """Retrieval only: the ranked passages, for integrations that bring their own model."""
        passages = await to_thread.run_sync(lambda: rag_state.pipeline.search(body.query, top_k=body.top_k))
        return SearchResponse(query=body.query, passages=passages)

    # ---- documents ---------------------------------------------------------------------------
    @app.get("/api/health", response_model=HealthResponse, tags=["service"])
    async def health(rag_state: State) -> Any:
        pipeline = rag_state.pipeline
        embedder = pipeline.index.embedder
        return HealthResponse(
            status="ok",
            documents=len(pipeline.index.documents),
            passages=len(pipeline.index),
            generator=type(pipeline.generator).__name__,
            model=pipeline.generator.model_name,
            embedder=f"{embedder.model_name} ({embedder.backend.value})",
            changes_allowed=bool(rag_state.settings.admin_token),
        )

    @app.get("/api/documents", response_model=list[DocumentSummary], tags=["documents"])
    async def list_documents(rag_state: State) -> Any:
        index = rag_state.pipeline.index
        texts = {d.doc_id: len(d.text) for d in index.documents}
        return [
            DocumentSummary(
                doc_id=info.doc_id,
                title=info.title,
                source=public_source(info.source),
                sha256=info.sha256,
                passages=info.chunk_count,
                chars=texts.get(info.doc_id, 0),
            )
            for info in index.document_infos()
        ]

    @app.get("/api/documents/{doc_id}", response_model=DocumentDetail, tags=["documents"])
    async def get_document(doc_id: str, rag_state: State) -> Any:
        document = rag_state.pipeline.index.document(doc_id)
        if document is None:
            raise HTTPException(404, f"no document {doc_id!r}; GET /api/documents lists them")
        return DocumentDetail(
            doc_id=document.doc_id, title=document.title, source=public_source(document.source), text=document.text
        )

    @app.post(
        "/api/documents",
        response_model=IngestResponse,
        status_code=201,
        tags=["documents"],
        dependencies=[Depends(require_admin)],
    )
    async def upload_document(
        rag_state: State,
        file: Annotated[UploadFile, File()],
        response: Response,
        replace: Annotated[
            bool,
            Form(description="Replace every document uploaded earlier under the same file name."),
        ] = False,
    ) -> Any:
        """Add a .txt, .md or .html document (admin token required); the index on disk is updated atomically.

        A different file with the name of an earlier one is added beside it unless `replace=true`;
        identical content answers 200 `unchanged`; a failed save answers 507 and changes nothing."""
        data = await file.read(rag_state.settings.max_upload_bytes + 1)
        if len(data) > rag_state.settings.max_upload_bytes:
            raise HTTPException(413, f"file is over the limit of {rag_state.settings.max_upload_bytes} bytes")
        name = Path(file.filename or "upload.txt").name
        try:
            document = document_from_bytes(name, data, source=f"upload:{name}")
        except DocumentLoadError as error:
            return _error(422, f"file: {error}", detail=[{"field": "file", "message": str(error)}])

        def ingest() -> IngestResponse:
            library = Library(rag_state.settings.index_dir, rag_state.pipeline.index)
            report = library.add([document], replace_same_source=replace)
            status = "added" if report.added else "replaced" if report.replaced else "unchanged"
            doc_id = (report.added or report.replaced or report.unchanged)[0]
            return IngestResponse(doc_id=doc_id, status=status, passages=report.passages_embedded)

        try:
            result = await to_thread.run_sync(ingest)
        except IndexWriteError as error:
            return _error(507, str(error), detail={"changed": False, "errno": error.errno})
        except IndexLockedError as error:
            return _error(503, str(error), headers={"Retry-After": "5"}, detail={"changed": False})
        except IndexStoreError as error:
            return _error(409, str(error), detail={"changed": False})
        if result.status == "unchanged":
            response.status_code = 200
        log_event("ingest", doc_id=result.doc_id, status=result.status, passages=result.passages)
        return result

    @app.delete("/api/documents/{doc_id}", tags=["documents"], dependencies=[Depends(require_admin)])
    async def delete_document(doc_id: str, rag_state: State) -> Any:
        def remove() -> bool:
            return Library(rag_state.settings.index_dir, rag_state.pipeline.index).remove(doc_id)

        try:
            removed = await to_thread.run_sync(remove)
        except IndexWriteError as error:
            return _error(507, str(error), detail={"changed": False, "errno": error.errno})
        except IndexLockedError as error:
            return _error(503, str(error), headers={"Retry-After": "5"}, detail={"changed": False})
        except IndexStoreError as error:
            return _error(409, str(error), detail={"changed": False})
        if not removed:
            raise HTTPException(404, f"no document {doc_id!r}; GET /api/documents lists them")
        log_event("remove", doc_id=doc_id)
        return {"removed": doc_id}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(rag_state: State) -> Response:
        return Response(generate_latest(rag_state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ---- OpenAI-compatible -------------------------------------------------------------------
    @app.get("/v1/models", tags=["openai"])
    async def list_models() -> Any:
        return {
            "object": "list",
            "data": [{"id": OPENAI_MODEL_ID, "object": "model", "created": 0, "owned_by": "rag-chatbot"}],
        }

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(body: ChatCompletionRequest, rag_state: State) -> Any:
        """The chatbot as an OpenAI model; the cited passages travel in the extra field `citations`."""
        turns = [m for m in body.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user" or not turns[-1].text().strip():
            return _error(
                422,
                "invalid request: messages: the last message must be a non-empty user message",
                detail=[{"field": "messages", "message": "the last message must be a non-empty user message"}],
            )
        question = turns[-1].text()[: rag_state.settings.max_question_chars]
        history = [Turn(role=t.role, content=t.text()[:8000]) for t in turns[:-1]]
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        if not body.stream:
            try:
                async with rag_state.limiter.slot():
                    answer = await _answer(rag_state, question, history, None, field="messages")
            except Saturated:
                return _saturated(rag_state)
            return {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": body.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer.answer},
                        "finish_reason": "stop",
                    }
                ],
                "citations": [c.model_dump() for c in answer.citations],
                "rag": answer.model_dump(),
            }

        try:
            reservation = rag_state.limiter.reserve()  # as in /api/ask/stream: a 503 now, never a 200 + error
        except Saturated:
            return _saturated(rag_state)

        chunks = OpenAIChunks(body.model, completion_id, drafts=bool((body.model_extra or {}).get("rag_stream_drafts")))

        async def stream() -> AsyncIterator[str]:
            try:
                async with reservation:
                    yield chunks.chunk({"role": "assistant", "content": ""})
                    async for event in iterate_closing(rag_state.pipeline.stream(question, history=history)):
                        if isinstance(event, DoneEvent):
                            _record(rag_state, event.answer)
                        for line in chunks.for_event(event):
                            yield line
            except Saturated:
                yield chunks.error("the answer generator is busy; retry shortly", "rate_limit_exceeded")
            except (GeneratorError, ValueError) as error:
                rag_state.metrics.errors.labels(kind="stream").inc()
                yield chunks.error(f"the answer generator failed: {error}")
            yield "data: [DONE]\n\n"

        return _ReservedStream(stream(), reservation, media_type="text/event-stream")

    # Listed after the question and document routes in the API docs.
    app.include_router(feedback_router)

    # ---- the chat page -----------------------------------------------------------------------
    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

        @app.get("/", include_in_schema=False)
        async def chat_page() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html")

    return app
