"""Bounded generation: a few answers at once, a short queue, and a fast 503 beyond it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Saturated(Exception):
    """Every generation slot and queue place is taken."""


class Reservation:
    """A queue place taken now, for a generation that starts later (when a streamed response runs).

    A streaming route must refuse with 503 before its response starts, but its generation only runs
    once the response body is iterated; reserving in the route closes the gap in which other requests
    could take the last place. Use it as `async with reservation:` in the stream, and call
    `cancel()` once the response is over, which frees the place if the stream never ran.
    """

    def __init__(self, limiter: GenerationLimiter) -> None:
        self._limiter = limiter
        self._state = "reserved"  # → "running" → "done"; "reserved" → "done" when cancelled

    async def __aenter__(self) -> None:
        if self._state != "reserved":
            raise RuntimeError("a reservation is used once")
        self._state = "running"
        try:
            await self._limiter._slots.acquire()
        except BaseException:
            self._finish()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._limiter._slots.release()
        self._finish()

    def _finish(self) -> None:
        if self._state != "done":
            self._state = "done"
            self._limiter._admitted -= 1

    def cancel(self) -> None:
        """Free the queue place if the stream never started; a no-op once it has."""
        if self._state == "reserved":
            self._finish()


class GenerationLimiter:
    """Admission for generation: `concurrent` answers run at once and up to `queued` more wait; beyond that a request
    is refused at once (Saturated, answered 503). Event-loop only: not thread-safe."""

    def __init__(self, concurrent: int, queued: int) -> None:
        self._slots = asyncio.Semaphore(concurrent)
        self._capacity = concurrent + queued
        self._admitted = 0

    @property
    def full(self) -> bool:
        """Every slot and queue place is taken: a new request would be refused."""
        return self._admitted >= self._capacity

    def reserve(self) -> Reservation:
        """Take a queue place now or raise Saturated; the generation slot is awaited on entering it."""
        if self.full:
            raise Saturated
        self._admitted += 1
        return Reservation(self)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a generation slot for an `async with` block, waiting in the queue for it; Saturated at once when
        every slot and queue place is taken."""
        if self.full:
            raise Saturated
        self._admitted += 1
        try:
            async with self._slots:
                yield
        finally:
            self._admitted -= 1
