"""Request and response bodies of the REST and OpenAI-compatible APIs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from rag.types import Passage, Turn


def _require_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain text, not only whitespace")
    return value


def _lone_surrogate(value: Any, where: str = "") -> str | None:
    """Where inside a JSON value a string holds half a UTF-16 pair (JSON allows `"\\ud800"`), or None."""
    if isinstance(value, str):
        return where if any("\ud800" <= char <= "\udfff" for char in value) else None
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and _lone_surrogate(key) is not None:
                return f"{where} (a key)"
        items: list[tuple[str, Any]] = [(f".{key}", item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(f".{i}", item) for i, item in enumerate(value)]
    else:
        return None
    for suffix, item in items:
        found = _lone_surrogate(item, where + suffix)
        if found is not None:
            return found
    return None


class RequestBody(BaseModel):
    """A JSON request body whose text must be encodable as UTF-8.

    pydantic refuses a lone surrogate in a `str` field, but not inside `Any` (OpenAI content parts) or
    in a field name, where it later fails in the tokenizer or the response encoder as a 500.
    """

    @field_validator("*")
    @classmethod
    def _valid_unicode(cls, value: Any, info: ValidationInfo) -> Any:
        where = _lone_surrogate(value)
        if where is not None:
            raise ValueError(
                f"{info.field_name}{where} contains a lone UTF-16 surrogate, which is not text: send valid Unicode"
            )
        return value


class AskRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    history: list[Turn] = Field(default_factory=list, max_length=40)
    # strict: "3" and true are mistakes in a client, not numbers to guess at.
    top_k: int | None = Field(None, ge=1, le=20, strict=True)

    _not_blank = field_validator("question")(_require_text)


class SearchRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    top_k: int | None = Field(None, ge=1, le=50, strict=True)

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
    changes_allowed: bool = Field(
        description="True when the server has an admin token, so documents can be uploaded and removed."
    )


# ---- OpenAI-compatible ----------------------------------------------------------------------------
class ChatMessageIn(RequestBody):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(RequestBody):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send many optional fields

    model: str = "rag-chatbot"
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=100)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None
