"""Questions: `POST /api/ask`, `POST /api/ask/stream` (Server-Sent Events) and `POST /api/search`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from sse_starlette.sse import ServerSentEvent

from api.limits import Saturated
from api.schemas import ASK_STREAM, BUSY_RESPONSES, ERROR_RESPONSES, AskRequest, SearchRequest, SearchResponse
from api.state import State
from api.streaming import ReservedEventSource, iterate_closing, sse_event
from rag.generators import GeneratorError
from rag.pipeline import DoneEvent
from rag.types import Answer

router = APIRouter(tags=["questions"], responses=ERROR_RESPONSES)


@router.post(
    "/api/ask", response_model=Answer, responses=BUSY_RESPONSES, summary="Answer a question, citing the passages used"
)
async def ask(body: AskRequest, rag_state: State, request: Request) -> Any:
    """Answer a question from the indexed documents, citing the passages used."""
    try:
        async with rag_state.limiter.slot():
            return await rag_state.answer(body.question, body.history, body.top_k, request)
    except Saturated:
        return rag_state.saturated()


# response_class (with the status it cannot read from that class) only keeps FastAPI from documenting a JSON 200
# as well: the route builds its own response.
@router.post(
    "/api/ask/stream",
    summary="Answer a question as Server-Sent Events (draft, then the checked answer)",
    response_class=ReservedEventSource,
    status_code=200,
    responses={200: ASK_STREAM, **BUSY_RESPONSES},
)
async def ask_stream(body: AskRequest, rag_state: State) -> Any:
    """Server-Sent Events: `passages`, then `token`s, then `done` (the Answer) or `error`."""
    rag_state.check_question(body.question)
    try:
        # The queue place is taken now, not when the stream starts: in between, other requests
        # could fill the queue and this one would become a 200 carrying an error event.
        reservation = rag_state.limiter.reserve()
    except Saturated:
        return rag_state.saturated()

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async with reservation:
                stream = rag_state.pipeline.stream(body.question, history=body.history, top_k=body.top_k)
                async for event in iterate_closing(stream):
                    if isinstance(event, DoneEvent):
                        rag_state.record(event.answer)
                    yield sse_event(event)
        except Saturated:
            rag_state.metrics.saturated.inc()
            yield ServerSentEvent(json.dumps({"message": "the answer generator is busy; retry"}), event="error")
        except (GeneratorError, ValueError) as error:
            rag_state.metrics.errors.labels(kind="stream").inc()
            yield ServerSentEvent(json.dumps({"message": str(error)}), event="error")

    return ReservedEventSource(events(), reservation, ping=15)


@router.post("/api/search", response_model=SearchResponse, summary="Search passages (retrieval only, no model)")
async def search(body: SearchRequest, rag_state: State) -> Any:
    """Retrieval only: the ranked passages, for integrations that bring their own model."""
    passages = await to_thread.run_sync(lambda: rag_state.pipeline.search(body.query, top_k=body.top_k))
    return SearchResponse(query=body.query, passages=passages)
