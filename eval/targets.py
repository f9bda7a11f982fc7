"""What an evaluation runs against: the pipeline in this process, or a running server's REST API."""

from __future__ import annotations

from abc import ABC, abstractmethod

import httpx
from typing_extensions import override

from rag.pipeline import DoneEvent, Pipeline, TokenEvent
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

    def ask_with_draft(self, question: str) -> tuple[Answer, str | None]:
        """The answer and the model's draft before the checks; None where the target does not show its drafts."""
        return self.ask(question), None


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

    @override
    def ask_with_draft(self, question: str) -> tuple[Answer, str | None]:
        return ask_with_draft(self.pipeline, question)


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


def ask_with_draft(pipeline: Pipeline, question: str) -> tuple[Answer, str]:
    """The checked answer and the draft the model wrote on the way (its streamed tokens; a fact read from a
    document's header stands in for a draft, as it does in the pipeline)."""
    pieces: list[str] = []
    for event in pipeline.stream(question):
        if isinstance(event, TokenEvent):
            pieces.append(event.text)
        elif isinstance(event, DoneEvent):
            answer = event.answer
            draft = "".join(pieces).strip()
            if not draft and answer.abstain_reason is None:
                draft = answer.answer
            return answer, draft
    raise RuntimeError("the pipeline ended without an answer")
