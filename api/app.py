"""The HTTP face of the pipeline: REST, Server-Sent Events, the OpenAI-compatible API and the chat page.

No retrieval logic lives here: every answer comes from `rag.pipeline.Pipeline`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from anyio import to_thread
from fastapi import Depends, FastAPI, File, Header, HTTPException, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import iterate_in_threadpool

from api.limits import GenerationLimiter, Saturated
from api.observability import Metrics, log_event
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
from index.loaders import DocumentLoadError, document_from_bytes
from rag.generators import GeneratorError
from rag.pipeline import DoneEvent, PassagesEvent, Pipeline, TokenEvent
from rag.settings import PROJECT_ROOT, Settings
from rag.types import Answer, Turn

WEB_DIR = PROJECT_ROOT / "web"
RETRY_AFTER_S = "2"
OPENAI_MODEL_ID = "rag-chatbot"


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _field_errors(error: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ())]
        if location and location[0] in ("body", "query", "path", "header"):
            location = location[1:]  # where the field was sent, not its name
        field = ".".join(location) or "body"
        details.append({"field": field, "message": item.get("msg", "invalid")})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return f"invalid request: {summary}", details


class AppState:
    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.limiter = GenerationLimiter(settings.max_concurrent_generations, settings.max_queued_generations)
        self.metrics = Metrics()
        # One writer at a time; readers never wait for it (the index swaps its state under a short lock).
        self.write_lock = threading.Lock()


def _state(request: Request) -> AppState:
    rag_state: AppState = request.app.state.rag
    return rag_state


State = Annotated[AppState, Depends(_state)]


def require_admin(rag_state: State, authorization: Annotated[str | None, Header()] = None) -> None:
    token = rag_state.settings.admin_token
    if not token:
        raise HTTPException(403, "document changes are disabled: start the server with RAG_ADMIN_TOKEN set")
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(
            401,
            "missing admin token: send 'Authorization: Bearer <RAG_ADMIN_TOKEN>'",
            {"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(authorization[7:].strip().encode(), token.encode()):
        raise HTTPException(403, "the admin token is wrong")


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
    )
    if pipeline is not None:
        app.state.rag = AppState(settings, pipeline)

    # ---- cross-cutting -----------------------------------------------------------------------
    @app.middleware("http")
    async def limits_and_logging(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        limit = settings.max_body_bytes
        if request.url.path == "/api/documents" and request.method == "POST":
            limit = settings.max_upload_bytes + 16_384  # multipart framing
        if length is not None and length.isdigit() and int(length) > limit:
            response: Response = _error(413, f"request body of {length} bytes is over the limit of {limit} bytes")
        else:
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

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        message, details = _field_errors(error)
        return _error(422, message, detail=details)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), headers=dict(error.headers or {}))

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

    async def _answer(rag_state: AppState, question: str, history: list[Turn], top_k: int | None) -> Answer:
        try:
            answer = await to_thread.run_sync(lambda: rag_state.pipeline.ask(question, history=history, top_k=top_k))
        except GeneratorError as error:
            rag_state.metrics.errors.labels(kind="generator").inc()
            raise HTTPException(503, f"the answer generator failed: {error}", {"Retry-After": "5"}) from error
        _record(rag_state, answer)
        return answer

    @app.post("/api/ask", response_model=Answer, tags=["questions"])
    async def ask(body: AskRequest, rag_state: State) -> Any:
        """Answer a question from the indexed documents, citing the passages used."""
        try:
            async with rag_state.limiter.slot():
                return await _answer(rag_state, body.question, body.history, body.top_k)
        except Saturated:
            return _saturated(rag_state)

    @app.post("/api/ask/stream", tags=["questions"])
    async def ask_stream(body: AskRequest, rag_state: State) -> Any:
        """Server-Sent Events: `passages`, then `token`s, then `done` (the Answer) or `error`."""
        if rag_state.limiter.full:
            return _saturated(rag_state)

        async def events() -> AsyncIterator[ServerSentEvent]:
            try:
                async with rag_state.limiter.slot():
                    stream = rag_state.pipeline.stream(body.question, history=body.history, top_k=body.top_k)
                    async for event in iterate_in_threadpool(stream):
                        if isinstance(event, PassagesEvent):
                            payload = {
                                "passages": [p.model_dump() for p in event.passages],
                                "standalone_question": event.standalone_question,
                            }
                            yield ServerSentEvent(json.dumps(payload), event="passages")
                        elif isinstance(event, TokenEvent):
                            yield ServerSentEvent(json.dumps({"text": event.text}), event="token")
                        elif isinstance(event, DoneEvent):
                            _record(rag_state, event.answer)
                            yield ServerSentEvent(event.answer.model_dump_json(), event="done")
            except Saturated:
                rag_state.metrics.saturated.inc()
                yield ServerSentEvent(json.dumps({"message": "the answer generator is busy; retry"}), event="error")
            except (GeneratorError, ValueError) as error:
                rag_state.metrics.errors.labels(kind="stream").inc()
                yield ServerSentEvent(json.dumps({"message": str(error)}), event="error")

        return EventSourceResponse(events(), ping=15)

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
        )

    @app.get("/api/documents", response_model=list[DocumentSummary], tags=["documents"])
    async def list_documents(rag_state: State) -> Any:
        index = rag_state.pipeline.index
        texts = {d.doc_id: len(d.text) for d in index.documents}
        return [
            DocumentSummary(
                doc_id=info.doc_id,
                title=info.title,
                source=info.source,
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
        return DocumentDetail(doc_id=document.doc_id, title=document.title, source=document.source, text=document.text)

    @app.post(
        "/api/documents",
        response_model=IngestResponse,
        status_code=201,
        tags=["documents"],
        dependencies=[Depends(require_admin)],
    )
    async def upload_document(rag_state: State, file: Annotated[UploadFile, File()]) -> Any:
        """Add a .txt, .md or .html document (admin token required); the index on disk is updated atomically."""
        data = await file.read(rag_state.settings.max_upload_bytes + 1)
        if len(data) > rag_state.settings.max_upload_bytes:
            raise HTTPException(413, f"file is over the limit of {rag_state.settings.max_upload_bytes} bytes")
        name = Path(file.filename or "upload.txt").name
        try:
            document = document_from_bytes(name, data, source=f"upload:{name}")
        except DocumentLoadError as error:
            return _error(422, f"file: {error}", detail=[{"field": "file", "message": str(error)}])

        def ingest() -> IngestResponse:
            with rag_state.write_lock:
                index = rag_state.pipeline.index
                report = index.add([document])
                if report.added or report.replaced:
                    index.save(rag_state.settings.index_dir)
            status = "added" if report.added else "replaced" if report.replaced else "unchanged"
            doc_id = (report.added or report.replaced or report.unchanged)[0]
            return IngestResponse(doc_id=doc_id, status=status, passages=report.passages_embedded)

        result = await to_thread.run_sync(ingest)
        log_event("ingest", doc_id=result.doc_id, status=result.status, passages=result.passages)
        return result

    @app.delete("/api/documents/{doc_id}", tags=["documents"], dependencies=[Depends(require_admin)])
    async def delete_document(doc_id: str, rag_state: State) -> Any:
        def remove() -> bool:
            with rag_state.write_lock:
                removed = rag_state.pipeline.index.remove(doc_id)
                if removed:
                    rag_state.pipeline.index.save(rag_state.settings.index_dir)
                return removed

        if not await to_thread.run_sync(remove):
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
                    answer = await _answer(rag_state, question, history, None)
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

        if rag_state.limiter.full:
            return _saturated(rag_state)

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        async def stream() -> AsyncIterator[str]:
            try:
                async with rag_state.limiter.slot():
                    yield chunk({"role": "assistant", "content": ""})
                    events = rag_state.pipeline.stream(question, history=history)
                    async for event in iterate_in_threadpool(events):
                        if isinstance(event, TokenEvent):
                            yield chunk({"content": event.text})
                        elif isinstance(event, DoneEvent):
                            _record(rag_state, event.answer)
                            yield chunk(
                                {},
                                "stop",
                                citations=[c.model_dump() for c in event.answer.citations],
                                rag=event.answer.model_dump(),
                            )
            except (Saturated, GeneratorError) as error:
                yield chunk({"content": f"\n[error: {error or 'the generator is busy'}]"}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    # ---- the chat page -----------------------------------------------------------------------
    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

        @app.get("/", include_in_schema=False)
        async def chat_page() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html")

    return app
