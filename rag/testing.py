"""A scripted generator for tests and demos: no model, replies from a queue (as simonw/llm's MockModel)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from collections.abc import Generator as TextStream

from rag.generators import Generator
from rag.types import ChatMessage


class ScriptedGenerator(Generator):
    """Replies in order from `replies`; each is a string or a function of the prompt's messages.

    `yes_probability` pops a reply too: a float is returned as it is, a string counts as yes/no.
    Every call's messages are kept in `calls` so a test can check what the model was asked.
    """

    def __init__(
        self, replies: Iterable[str | float | Callable[[list[ChatMessage]], str]] = (), default: str = ""
    ) -> None:
        self.replies: deque[str | float | Callable[[list[ChatMessage]], str]] = deque(replies)
        self.default = default
        self.calls: list[list[ChatMessage]] = []
        self.closed_early = 0
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return "scripted"

    def _next(self, messages: list[ChatMessage]) -> str | float:
        with self._lock:
            self.calls.append(messages)
            reply = self.replies.popleft() if self.replies else self.default
        return reply(messages) if callable(reply) else reply

    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None
    ) -> TextStream[str, None, None]:
        reply = str(self._next(messages))
        words = reply.split(" ")
        finished = False
        try:
            for i, word in enumerate(words):
                yield word if i == 0 else f" {word}"
            finished = True
        finally:
            if not finished:
                self.closed_early += 1

    def yes_probability(self, messages: list[ChatMessage]) -> float:
        reply = self._next(messages)
        if isinstance(reply, float):
            return reply
        return 1.0 if str(reply).strip().lower().startswith("yes") else 0.0
