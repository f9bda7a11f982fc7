"""Pipeline events over HTTP: the SSE stream of `/api/ask/stream` and the checked-only OpenAI stream.

Both run the synchronous pipeline in a worker thread one event at a time, and close it when the client goes
away, so a Stop button or a dropped connection ends the generation and frees the model's slot.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import anyio
from anyio import to_thread
from fastapi.responses import StreamingResponse
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from api.limits import Reservation
from rag.pipeline import DoneEvent, Event, PassagesEvent, StatusEvent, TokenEvent
from rag.types import Answer

T = TypeVar("T")
_END = object()


async def iterate_closing(iterator: Iterator[T]) -> AsyncIterator[T]:
    """Items of a blocking iterator, each fetched in a worker thread; the iterator is closed however the
    consumer stops (end, error, or cancellation when the client disconnects)."""
    try:
        while True:
            item = await to_thread.run_sync(next, iterator, _END)
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            # Shielded: on a disconnect this scope is cancelled, but the generator must still be closed.
            with anyio.CancelScope(shield=True):
                await to_thread.run_sync(close)


class _ReleasesReservation:
    """Gives a streaming response's generation place back however the response ends, even if its stream never
    ran (a client that disconnects before the first byte). Mixed in before a Starlette response class."""

    def __init__(self, content: AsyncIterator[Any], reservation: Reservation, **options: Any) -> None:
        super().__init__(content, **options)  # type: ignore[call-arg]
        self.reservation = reservation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the response, then release the reservation (also on a disconnect or an error)."""
        try:
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            self.reservation.cancel()


class ReservedEventSource(_ReleasesReservation, EventSourceResponse):
    """The `/api/ask/stream` response: Server-Sent Events holding a generation place until they end."""


class ReservedStream(_ReleasesReservation, StreamingResponse):
    """The streamed OpenAI response: `data:` lines holding a generation place until they end."""


class ClientGone(Exception):
    """The client disconnected before its answer was ready; the generation was stopped."""


async def answer_unless_disconnected(events: Iterator[Event], request: Request | None) -> Answer:
    """Run the pipeline to its answer, stopping the generation as soon as the client disconnects."""
    answer: Answer | None = None
    failure: Exception | None = None

    async def consume(scope: anyio.CancelScope) -> None:
        nonlocal answer, failure
        try:
            async for event in iterate_closing(events):
                if isinstance(event, DoneEvent):
                    answer = event.answer
        except Exception as error:  # re-raised below, outside the task group's exception group
            failure = error
        scope.cancel()

    async def watch(scope: anyio.CancelScope) -> None:
        if request is None:
            return
        # The body has been read, so the next ASGI message is the disconnect; wait for it. (Polling
        # `request.is_disconnected()` never sees it through Starlette's BaseHTTPMiddleware.)
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(consume, group.cancel_scope)
        group.start_soon(watch, group.cancel_scope)
    if failure is not None:
        raise failure
    if answer is None:
        raise ClientGone
    return answer


def sse_event(event: Event) -> ServerSentEvent:
    """One pipeline event as the `/api/ask/stream` protocol's Server-Sent Event."""
    if isinstance(event, StatusEvent):
        return ServerSentEvent(json.dumps({"stage": event.stage}), event="status")
    if isinstance(event, PassagesEvent):
        payload = {
            "passages": [p.model_dump() for p in event.passages],
            "standalone_question": event.standalone_question,
        }
        return ServerSentEvent(json.dumps(payload), event="passages")
    if isinstance(event, TokenEvent):
        return ServerSentEvent(json.dumps({"text": event.text}), event="token")
    return ServerSentEvent(event.answer.model_dump_json(), event="done")


class OpenAIChunks:
    """`chat.completion.chunk` lines. Content carries checked text only: the answer is sent once the checks
    have passed; drafts travel in the extra field `rag_draft` for clients that asked for them."""

    def __init__(self, model: str, completion_id: str, drafts: bool) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = int(time.time())
        self.drafts = drafts

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        """One SSE `data:` line holding a chat.completion.chunk with this `delta` and finish reason; `extra` become
        top-level fields of the chunk (`rag_draft`, `citations`, `rag`)."""
        payload = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def error(self, message: str, kind: str = "server_error") -> str:
        """An error in OpenAI's stream shape (the official client raises it as an APIError)."""
        return f"data: {json.dumps({'error': {'message': message, 'type': kind}}, ensure_ascii=False)}\n\n"

    def for_event(self, event: Event) -> list[str]:
        """The lines one pipeline event produces (often none: nothing unchecked goes into `content`)."""
        if isinstance(event, TokenEvent):
            return [self.chunk({}, rag_draft=event.text)] if self.drafts else []
        if isinstance(event, StatusEvent):
            return [f": {event.stage}\n\n"]  # an SSE comment keeps proxies from timing out while checking
        if isinstance(event, DoneEvent):
            answer = event.answer
            return [
                self.chunk({"content": answer.answer}),
                self.chunk(
                    {},
                    "stop",
                    citations=[c.model_dump() for c in answer.citations],
                    rag=answer.model_dump(),
                ),
            ]
        return []
