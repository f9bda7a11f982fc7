"""`POST /api/feedback`: thumbs up/down (with an optional note) from the chat page, appended to a JSONL
file so rated questions can later be reviewed and turned into gold items."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from anyio import to_thread
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.observability import log_event
from api.schemas import ERROR_RESPONSES, NOT_BLANK, RequestBody, documented_error, require_text
from api.state import State
from index.store import PassageIndex
from rag.types import MAX_QUESTION_CHARS, MAX_TURN_CHARS

router = APIRouter(tags=["feedback"], responses=ERROR_RESPONSES)

# One process appends at a time so two lines never interleave; readers only ever see whole lines.
_APPEND_LOCK = threading.Lock()


class FeedbackCitation(RequestBody):
    """Which passage an answer cited, so a reviewer can check the evidence."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str = Field(max_length=200, description="The cited document's id.")
    chunk_id: str = Field(max_length=200, description="The cited passage's id.")


class FeedbackRequest(RequestBody):
    """A rating of one answer, as shown to the user."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "question": "What did Deng agree in 1979?",
                    "answer": "He agreed to expand cooperation in sharing intelligence on the Soviet Union [1].",
                    "rating": "up",
                    "note": "exactly right",
                }
            ]
        },
    )

    question: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        json_schema_extra=NOT_BLANK,
        description="The question as the user typed it.",
    )
    answer: str = Field(
        min_length=1,
        max_length=MAX_TURN_CHARS,
        json_schema_extra=NOT_BLANK,
        description="The answer text the user rated.",
    )
    rating: Literal["up", "down"] = Field(description="`up`: a good answer; `down`: a bad one.")
    note: str | None = Field(None, max_length=2000, description="What was good or wrong, in the user's words.")
    abstained: bool | None = Field(None, description="Whether the rated answer was an abstention.")
    citations: list[FeedbackCitation] = Field(
        default_factory=list, max_length=20, description="The passages the rated answer cited."
    )

    _not_blank = field_validator("question", "answer")(require_text)


class FeedbackResponse(BaseModel):
    """The stored record's id."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "3f2c9a7d0b1e4c58a6d2e9f0b7c41a23", "stored": True}]}
    )

    id: str = Field(description="Identifier of the stored feedback line.")
    stored: bool = Field(True, description="Always true: failures answer with an error status instead.")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line, creating the file and its folder on first use."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _APPEND_LOCK:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)


def cited_passages(index: PassageIndex, citations: list[FeedbackCitation]) -> list[dict[str, Any]]:
    """The citations as stored: each with the cited passage's `text` when the index still holds that passage.

    The page sends only ids; the text is looked up here, at rating time, because it is the evidence the rated
    answer stood on (`rag eval --feedback` makes it a candidate gold item's evidence) and the index may change
    before anyone reviews the rating. An id the index does not know is stored as it came, without `text`.
    """
    stored = [citation.model_dump() for citation in citations]
    if not stored:
        return stored
    try:
        texts = {(chunk.doc_id, chunk.chunk_id): chunk.text for chunk in index.chunks()}
    # Whatever the store raises (a Milvus server gone, a disk error while reloading): the rating matters more than
    # its evidence, so it is stored without the text rather than refused.
    except Exception as error:
        log_event("feedback_evidence_unavailable", error=f"{type(error).__name__}: {error}")
        return stored
    for citation in stored:
        text = texts.get((citation["doc_id"], citation["chunk_id"]))
        if text is not None:
            citation["text"] = text
    return stored


def store_feedback(path: Path, index: PassageIndex, body: FeedbackRequest) -> dict[str, Any]:
    """Build the record (an id, the time, the rating, the cited passages' text) and append it; return it."""
    record = {
        "id": uuid.uuid4().hex,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        **body.model_dump(),
        "citations": cited_passages(index, body.citations),
    }
    append_jsonl(path, record)
    return record


@router.post(
    "/api/feedback",
    response_model=FeedbackResponse,
    status_code=201,
    summary="Rate an answer (thumbs up/down, optional note)",
    responses={500: documented_error("The feedback file could not be written.")},
)
async def post_feedback(body: FeedbackRequest, rag_state: State) -> FeedbackResponse:
    """Append the rating to the JSONL file named by `RAG_FEEDBACK_PATH` (one line per rating), each cited
    passage with its text; `rag eval --feedback` turns these lines into candidate gold items for review."""
    path = rag_state.settings.feedback_path
    try:
        record = await to_thread.run_sync(store_feedback, path, rag_state.pipeline.index, body)
    except OSError as error:
        raise HTTPException(500, f"the feedback could not be stored in {path}: {error.strerror or error}") from error
    return FeedbackResponse(id=record["id"])
