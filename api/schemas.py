"""Request and response bodies of the REST and OpenAI-compatible APIs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.types import Passage, Turn


def _require_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain text, not only whitespace")
    return value


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    history: list[Turn] = Field(default_factory=list, max_length=40)
    top_k: int | None = Field(None, ge=1, le=20)

    _not_blank = field_validator("question")(_require_text)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    top_k: int | None = Field(None, ge=1, le=50)

    _not_blank = field_validator("query")(_require_text)


class SearchResponse(BaseModel):
    query: str
    passages: list[Passage]


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    source: str
    sha256: str
    passages: int
    chars: int


class DocumentDetail(BaseModel):
    doc_id: str
    title: str
    source: str
    text: str


class IngestResponse(BaseModel):
    doc_id: str
    status: Literal["added", "replaced", "unchanged"]
    passages: int


class HealthResponse(BaseModel):
    status: Literal["ok"]
    documents: int
    passages: int
    generator: str
    model: str
    embedder: str


# ---- OpenAI-compatible ----------------------------------------------------------------------------
class ChatMessageIn(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send many optional fields

    model: str = "rag-chatbot"
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=100)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None
