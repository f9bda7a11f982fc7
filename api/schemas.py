"""Request and response bodies of the REST and OpenAI-compatible APIs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from rag.types import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, MAX_TOP_K, Passage, Turn


def require_text(value: str) -> str:
    """A field validator: the text must not be empty or only whitespace."""
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


class ErrorBody(BaseModel):
    """Every error this API answers with (4xx and 5xx)."""

    error: str = Field(description="What went wrong and what to fix, in one line.")
    detail: Any = Field(
        None, description="For 422, one `{field, message}` per invalid field; otherwise extra facts or null."
    )


# Documented on every route: FastAPI's default 422 schema is not the shape this API sends.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "Invalid request: `detail` names each field and what is wrong."},
    413: {"model": ErrorBody, "description": "The body is over the size limit."},
}


class AskRequest(RequestBody):
    """A question about the indexed documents."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description="The question, 1–2000 characters (fewer where the server sets `RAG_MAX_QUESTION_CHARS`).",
    )
    history: list[Turn] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_TURNS,
        description="Earlier turns of the conversation, oldest first; a follow-up is rewritten with them.",
    )
    # strict: "3" and true are mistakes in a client, not numbers to guess at.
    top_k: int | None = Field(
        None,
        ge=1,
        le=MAX_TOP_K,
        strict=True,
        description="Passages the model reads (default: the server's `RAG_TOP_K`).",
    )

    _not_blank = field_validator("question")(require_text)


class SearchRequest(RequestBody):
    """Retrieval only: no model writes anything."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, max_length=MAX_QUESTION_CHARS, description="What to search for, 1–2000 characters."
    )
    top_k: int | None = Field(
        None, ge=1, le=50, strict=True, description="How many passages (default: the server's `RAG_TOP_K`)."
    )

    _not_blank = field_validator("query")(require_text)


class SearchResponse(BaseModel):
    """The ranked passages for a query."""

    query: str
    passages: list[Passage] = Field(description="Best first; `start`/`end` are offsets into the document's text.")


class DocumentSummary(BaseModel):
    """One indexed document."""

    doc_id: str = Field(description="The id `GET`/`DELETE /api/documents/{doc_id}` take.")
    title: str
    source: str = Field(description="Where it came from: a file name or `upload:<name>`, never a server path.")
    sha256: str = Field(description="Of the document's text: the same content is never indexed twice.")
    passages: int = Field(description="How many passages it was split into.")
    chars: int = Field(description="Length of its text in characters.")


class DocumentDetail(BaseModel):
    """A document's whole text, to show a cited passage (`text[start:end]`) in its context."""

    doc_id: str
    title: str
    source: str
    text: str


class IngestResponse(BaseModel):
    """What an upload changed."""

    doc_id: str
    status: Literal["added", "replaced", "unchanged"] = Field(
        description="`unchanged`: the same content was already indexed (answered with 200, not 201)."
    )
    passages: int = Field(description="Passages embedded by this upload (0 when unchanged).")


class HealthResponse(BaseModel):
    """The server is up; what it serves with."""

    status: Literal["ok"]
    documents: int = Field(description="Documents in the index.")
    passages: int = Field(description="Passages in the index.")
    generator: str = Field(description="The generator class: local llama.cpp or an OpenAI-compatible server.")
    model: str = Field(description="The language model's name.")
    embedder: str = Field(description="The embedding model and its backend.")
    changes_allowed: bool = Field(
        description="True when the server has an admin token, so documents can be uploaded and removed."
    )
    replica: str = Field(
        description="The process that answered, `host:pid`: what tells replicas behind a load balancer (and the "
        "workers of `rag serve --workers N`) apart."
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
