"""The chatbot as an OpenAI model: `GET /v1/models` and `POST /v1/chat/completions` (plain or streamed).

A stream carries only checked text: the answer is sent once the checks pass (see `api.streaming.OpenAIChunks`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter

from api.limits import Saturated
from api.schemas import (
    BUSY_RESPONSES,
    CHAT_COMPLETION_STREAM,
    ERROR_RESPONSES,
    ChatCompletion,
    ChatCompletionRequest,
)
from api.state import State, error_response
from api.streaming import OpenAIChunks, ReservedStream, iterate_closing
from rag.generators import GeneratorError
from rag.pipeline import DoneEvent
from rag.types import MAX_TURN_CHARS, Turn

router = APIRouter(tags=["openai"], responses=ERROR_RESPONSES)
OPENAI_MODEL_ID = "rag-chatbot"
# The whole `/v1/models` answer, constant: it is also the route's documented example.
MODELS_EXAMPLE: dict[str, Any] = {
    "object": "list",
    "data": [{"id": OPENAI_MODEL_ID, "object": "model", "created": 0, "owned_by": "rag-chatbot"}],
}


@router.get(
    "/v1/models",
    summary="List models (OpenAI-compatible)",
    responses={
        200: {
            "description": "The one model this server answers as.",
            "content": {"application/json": {"example": MODELS_EXAMPLE}},
        }
    },
)
async def list_models() -> Any:
    """The one model this server answers as, in the shape OpenAI clients list models."""
    return MODELS_EXAMPLE


@router.post(
    "/v1/chat/completions",
    summary="Chat completion (OpenAI-compatible, plain or streamed)",
    responses={
        200: {
            "model": ChatCompletion,
            "description": "The completion; with `stream: true`, `chat.completion.chunk` events ending in `[DONE]`.",
            "content": {"text/event-stream": {"itemSchema": CHAT_COMPLETION_STREAM}},
        },
        **BUSY_RESPONSES,
    },
)
async def chat_completions(body: ChatCompletionRequest, rag_state: State) -> Any:
    """The chatbot as an OpenAI model; the cited passages travel in the extra field `citations`."""
    turns = [m for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user" or not turns[-1].text().strip():
        return error_response(
            422,
            "invalid request: messages: the last message must be a non-empty user message",
            detail=[{"field": "messages", "message": "the last message must be a non-empty user message"}],
        )
    question = turns[-1].text()
    rag_state.check_question(question, field="messages")
    # Earlier turns only give a follow-up its context: a long one is cut rather than refused.
    history = [Turn(role=t.role, content=t.text()[:MAX_TURN_CHARS]) for t in turns[:-1]]
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    if not body.stream:
        try:
            async with rag_state.limiter.slot():
                answer = await rag_state.answer(question, history, None, field="messages")
        except Saturated:
            return rag_state.saturated()
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
        return rag_state.saturated()

    chunks = OpenAIChunks(body.model, completion_id, drafts=bool((body.model_extra or {}).get("rag_stream_drafts")))

    async def stream() -> AsyncIterator[str]:
        try:
            async with reservation:
                yield chunks.chunk({"role": "assistant", "content": ""})
                async for event in iterate_closing(rag_state.pipeline.stream(question, history=history)):
                    if isinstance(event, DoneEvent):
                        rag_state.record(event.answer)
                    for line in chunks.for_event(event):
                        yield line
        except Saturated:
            yield chunks.error("the answer generator is busy; retry shortly", "rate_limit_exceeded")
        except (GeneratorError, ValueError) as error:
            rag_state.metrics.errors.labels(kind="stream").inc()
            yield chunks.error(f"the answer generator failed: {error}")
        yield "data: [DONE]\n\n"

    return ReservedStream(stream(), reservation, media_type="text/event-stream")
