"""Bounded generation: a few answers at once, a short queue, and a fast 503 beyond it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Saturated(Exception):
    """Every generation slot and queue place is taken."""


class GenerationLimiter:
    def __init__(self, concurrent: int, queued: int) -> None:
        self._slots = asyncio.Semaphore(concurrent)
        self._capacity = concurrent + queued
        self._admitted = 0

    @property
    def full(self) -> bool:
        """Every slot and queue place is taken: a new request would be refused."""
        return self._admitted >= self._capacity

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.full:
            raise Saturated
        self._admitted += 1
        try:
            async with self._slots:
                yield
        finally:
            self._admitted -= 1
