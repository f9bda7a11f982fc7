"""What an evaluation runs against: the pipeline in this process, or a running server's REST API."""

from __future__ import annotations

from abc import ABC, abstractmethod

import httpx
from typing_extensions import override

from rag.pipeline import Pipeline
from rag.types import Answer, Passage


class Target(ABC):
    """Where an evaluation sends its questions; `name` labels the run."""

    name: str

    @abstractmethod
    def ask(self, question: str) -> Answer:
        """The whole answer to one question, as a user gets it."""

    @abstractmethod
    def search(self, question: str, top_k: int) -> list[Passage]:
        """The `top_k` passages retrieval finds for a question, best first; nothing is generated."""


class InProcessTarget(Target):
    """The pipeline in this process, called directly: no HTTP, no server limits."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.name = "in-process"

    @override
    def ask(self, question: str) -> Answer:
        return self.pipeline.ask(question)

    @override
    def search(self, question: str, top_k: int) -> list[Passage]:
        return self.pipeline.search(question, top_k=top_k)


class ApiTarget(Target):
    """Scores a server through the same REST contract integrations use."""

    def __init__(self, base_url: str, timeout_s: float = 120.0) -> None:
        self.name = base_url
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)

    def ask(self, question: str) -> Answer:
        """POST /api/ask; an error status raises httpx.HTTPStatusError."""
        response = self._client.post("/api/ask", json={"question": question})
        response.raise_for_status()
        return Answer.model_validate(response.json())

    def search(self, question: str, top_k: int) -> list[Passage]:
        """POST /api/search; an error status raises httpx.HTTPStatusError."""
        response = self._client.post("/api/search", json={"query": question, "top_k": top_k})
        response.raise_for_status()
        return [Passage.model_validate(p) for p in response.json()["passages"]]
