"""Request and response bodies of the REST and OpenAI-compatible APIs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from rag.pipeline import Stage
from rag.types import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, MAX_TOP_K, Answer, Citation, Passage, Turn


def require_text(value: str) -> str:
    """A field validator: the text must not be empty or only whitespace."""
    if not value.strip():
        raise ValueError("must contain text, not only whitespace")
    return value


# One character `str.strip` keeps (the whitespace set spelled out, since regex engines' `\s` differ, and Python's
# also holds the separators U+001C–U+001F): what `require_text` asks, stated in the schema so clients know it.
# Only documented: the validator's message says what is wrong better than a failed pattern would.
NOT_BLANK: dict[str, Any] = {
    "pattern": "[^" + "".join(f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace()) + "]"
}


def json_integer(value: Any) -> Any:
    """A before-validator for integer fields: JSON Schema's `integer` includes `3.0`, but `"3"` and `true` are
    mistakes in a client, not numbers to guess at."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer, not a string or a boolean")
    return value


# An optional integer as the schema documents it (non-strict only so that 3.0 counts, as JSON Schema says).
OptionalJsonInt = Annotated[int | None, BeforeValidator(json_integer)]


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

    Strict: a field takes the JSON type its schema documents, so `0` is not `false` and `"0.5"` is not a number.
    """

    model_config = ConfigDict(strict=True)

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


Responses = dict[int | str, dict[str, Any]]


def documented_error(description: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An error status for a route's `responses`: the `ErrorBody` shape and the headers it always carries."""
    response: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        response["headers"] = {
            name: {"description": text, "required": True, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


_RETRY_AFTER = {"Retry-After": "Seconds to wait before retrying."}

# Documented on every route: FastAPI's default 422 schema is not the shape this API sends.
ERROR_RESPONSES: Responses = {
    422: documented_error("Invalid request: `detail` names each field and what is wrong."),
    413: documented_error("The body is over the size limit."),
}
# The answer routes: every generation place and queue place is taken, or the generator failed.
BUSY_RESPONSES: Responses = {
    503: documented_error("The answer generator is busy or failed: retry after `Retry-After` seconds.", _RETRY_AFTER)
}
NOT_FOUND_RESPONSES: Responses = {404: documented_error("No document with this id: `GET /api/documents` lists them.")}
# Document writes, refused by `api.security.AdminGuard` before the body is read.
ADMIN_RESPONSES: Responses = {
    401: documented_error(
        "No admin token: send `Authorization: Bearer <RAG_ADMIN_TOKEN>`.", {"WWW-Authenticate": "`Bearer`"}
    ),
    403: documented_error("The admin token is wrong, or the server has none (`RAG_ADMIN_TOKEN`) and takes no changes."),
    429: documented_error(
        "Too many wrong admin tokens from this client; refused even with the right one until then.", _RETRY_AFTER
    ),
}
# A document write that changed nothing (`api.routes.documents._write_failure`).
WRITE_FAILURE_RESPONSES: Responses = {
    409: documented_error("The index on disk is unreadable or was built with another embedder: rebuild it."),
    503: documented_error("Another writer held the index too long (or Milvus is unreachable).", _RETRY_AFTER),
    507: documented_error("The index could not be saved (disk full, permissions)."),
}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with each `$ref` replaced by its definition, for places a `$ref` into the model's
    own `$defs` cannot point from (inside an event stream's `itemSchema`)."""
    schema = model.model_json_schema()
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {key: value for key, value in node.items() if key != "$ref"}
                return resolve({**definitions[ref.removeprefix("#/$defs/")], **rest})
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def json_text(schema: dict[str, Any]) -> dict[str, Any]:
    """A string that holds JSON matching `schema` (an SSE `data` field); schemathesis parses and checks it."""
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


def event_stream(description: str, item_schema: dict[str, Any]) -> dict[str, Any]:
    """A `text/event-stream` 200 response whose events each match `item_schema` (OpenAPI 3.2's `itemSchema`, which
    FastAPI writes for its own streams too): `{"event"?, "data", "id"?, "retry"?}` per event, comments left out."""
    return {"description": description, "content": {"text/event-stream": {"itemSchema": item_schema}}}


def named_events(events: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """The `itemSchema` of a stream whose events are told apart by name, each with its own JSON `data`."""
    return {
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {"event": {"const": name}, "data": json_text(inline_schema(model))},
            }
            for name, model in events.items()
        ]
    }


# Shown in the API docs, and sent by schemathesis's examples phase.
_EXAMPLE_QUESTION = "What did Deng agree in 1979?"


class AskRequest(RequestBody):
    """A question about the indexed documents."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"question": _EXAMPLE_QUESTION}]})

    question: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        json_schema_extra=NOT_BLANK,
        description="The question, 1–2000 characters (fewer where the server sets `RAG_MAX_QUESTION_CHARS`).",
    )
    history: list[Turn] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_TURNS,
        description="Earlier turns of the conversation, oldest first; a follow-up is rewritten with them.",
    )
    top_k: OptionalJsonInt = Field(
        None,
        ge=1,
        le=MAX_TOP_K,
        strict=False,
        description="Passages the model reads (default: the server's `RAG_TOP_K`).",
    )

    _not_blank = field_validator("question")(require_text)


class SearchRequest(RequestBody):
    """Retrieval only: no model writes anything."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"query": "Deng Xiaoping 1979 intelligence", "top_k": 3}]}
    )

    query: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        json_schema_extra=NOT_BLANK,
        description="What to search for, 1–2000 characters.",
    )
    top_k: OptionalJsonInt = Field(
        None, ge=1, le=50, strict=False, description="How many passages (default: the server's `RAG_TOP_K`)."
    )

    _not_blank = field_validator("query")(require_text)


class SearchResponse(BaseModel):
    """The ranked passages for a query."""

    query: str
    passages: list[Passage] = Field(description="Best first; `start`/`end` are offsets into the document's text.")


_EXAMPLE_DOC_ID = "china-russia-no-limits-2025-02-26-c597e440"
_EXAMPLE_TITLE = "China’s “no limits” partnership with Russia"


class DocumentSummary(BaseModel):
    """One indexed document."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "doc_id": _EXAMPLE_DOC_ID,
                    "title": _EXAMPLE_TITLE,
                    "source": "china-russia-no-limits-2025-02-26.md",
                    "sha256": "c597e4402b6aafb8a8d0c5a5445c4e36c352400ff58bdecaed3973a19cfd8e3e",
                    "passages": 22,
                    "chars": 5210,
                }
            ]
        }
    )

    doc_id: str = Field(description="The id `GET`/`DELETE /api/documents/{doc_id}` take.")
    title: str
    source: str = Field(description="Where it came from: a file name or `upload:<name>`, never a server path.")
    sha256: str = Field(description="Of the document's text: the same content is never indexed twice.")
    passages: int = Field(description="How many passages it was split into.")
    chars: int = Field(description="Length of its text in characters.")


class RemovedResponse(BaseModel):
    """A document was removed from the index."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"removed": _EXAMPLE_DOC_ID}]})

    removed: str = Field(description="The removed document's id.")


class DocumentDetail(BaseModel):
    """A document's whole text, to show a cited passage (`text[start:end]`) in its context."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "doc_id": _EXAMPLE_DOC_ID,
                    "title": _EXAMPLE_TITLE,
                    "source": "china-russia-no-limits-2025-02-26.md",
                    "text": "# China’s “no limits” partnership with Russia\n\nDuring a Feb. 24 telephone call …",
                }
            ]
        }
    )

    doc_id: str
    title: str
    source: str
    text: str


class IngestResponse(BaseModel):
    """What an upload changed."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"doc_id": "notes-5d41402a", "status": "added", "passages": 3}]}
    )

    doc_id: str
    status: Literal["added", "replaced", "unchanged"] = Field(
        description="`unchanged`: the same content was already indexed (answered with 200, not 201)."
    )
    passages: int = Field(description="Passages embedded by this upload (0 when unchanged).")


class HealthResponse(BaseModel):
    """The server is up; what it serves with."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "documents": 1,
                    "passages": 22,
                    "generator": "LlamaCppGenerator",
                    "model": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                    "embedder": "all-MiniLM-L6-v2 (openvino)",
                    "changes_allowed": False,
                    "replica": "host-1:4242",
                }
            ]
        }
    )

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
    """One message of an OpenAI chat request; text parts of a list content are joined."""

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text: the string content, or its text parts joined by spaces."""
        if isinstance(self.content, list):
            return " ".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(RequestBody):
    """An OpenAI chat-completions request: the last user message is the question, earlier ones the history."""

    model_config = ConfigDict(
        extra="allow",  # OpenAI clients send many optional fields
        json_schema_extra={
            "examples": [
                {"messages": [{"role": "user", "content": _EXAMPLE_QUESTION}]},
                {"messages": [{"role": "user", "content": _EXAMPLE_QUESTION}], "stream": True},
            ]
        },
    )

    model: str = "rag-chatbot"
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=100)
    stream: bool = False
    max_tokens: OptionalJsonInt = Field(None, ge=1, strict=False)
    temperature: float | None = None


class ChatMessageOut(BaseModel):
    """The assistant message of a completion."""

    role: Literal["assistant"]
    content: str = Field(description="The checked answer, or the abstention.")


class ChatChoice(BaseModel):
    """The one choice of a non-streamed completion."""

    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop"]


class ChatCompletion(BaseModel):
    """A non-streamed completion; `citations` and `rag` (the whole `Answer`) are extra fields beside `choices`."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    citations: list[Citation]
    rag: Answer


class ChunkDelta(BaseModel):
    """What one streamed chunk adds to the message."""

    role: Literal["assistant"] | None = None
    content: str | None = Field(None, description="Checked text only, sent once the checks have passed.")


class ChunkChoice(BaseModel):
    """The one choice of a streamed chunk."""

    index: int
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None


class ChatCompletionChunk(BaseModel):
    """One `data:` line of a streamed completion; the last chunk carries `citations` and `rag`."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    citations: list[Citation] | None = None
    rag: Answer | None = None
    rag_draft: str | None = Field(None, description='A piece of the unchecked draft, with `"rag_stream_drafts": true`.')


class OpenAIErrorDetail(BaseModel):
    """An error as OpenAI clients expect it: message and type."""

    message: str
    type: str


class OpenAIStreamError(BaseModel):
    """A failure inside a stream, in the shape the official client raises."""

    error: OpenAIErrorDetail


# ---- the `/api/ask/stream` events (`api.streaming.sse_event`) ---------------------------------------
class StatusData(BaseModel):
    """The `status` event: the answer moved to a new stage."""

    stage: Stage


class PassagesData(BaseModel):
    """The `passages` event: what the model will read, before it writes."""

    passages: list[Passage]
    standalone_question: str


class TokenData(BaseModel):
    """The `token` event: a piece of the unchecked draft."""

    text: str = Field(description="A piece of the unchecked draft: provisional, never the answer.")


class StreamErrorData(BaseModel):
    """The `error` event: the answer failed; the message says why."""

    message: str


ASK_STREAM = event_stream(
    "Server-Sent Events: `status`, `passages`, then `token`s of the unchecked draft, then `done` (the `Answer`, "
    "as `POST /api/ask` returns it) or `error`.",
    named_events(
        {
            "status": StatusData,
            "passages": PassagesData,
            "token": TokenData,
            "done": Answer,
            "error": StreamErrorData,
        }
    ),
)
CHAT_COMPLETION_STREAM: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                {"const": "[DONE]"},
                json_text({"anyOf": [inline_schema(ChatCompletionChunk), inline_schema(OpenAIStreamError)]}),
            ]
        }
    },
}
