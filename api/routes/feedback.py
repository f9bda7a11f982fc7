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
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas import ERROR_RESPONSES, NOT_BLANK, RequestBody, documented_error, require_text
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

    id: str = Field(description="Identifier of the stored feedback line.")
    stored: bool = Field(True, description="Always true: failures answer with an error status instead.")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line, creating the file and its folder on first use."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _APPEND_LOCK:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)


@router.post(
    "/api/feedback",
    response_model=FeedbackResponse,
    status_code=201,
    summary="Rate an answer (thumbs up/down, optional note)",
    responses={500: documented_error("The feedback file could not be written.")},
)
async def post_feedback(body: FeedbackRequest, request: Request) -> FeedbackResponse:
    """Append the rating to the JSONL file named by `RAG_FEEDBACK_PATH` (one line per rating)."""
    path: Path = request.app.state.rag.settings.feedback_path
    record = {
        "id": uuid.uuid4().hex,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        **body.model_dump(),
    }
    try:
        await to_thread.run_sync(append_jsonl, path, record)
    except OSError as error:
        raise HTTPException(500, f"the feedback could not be stored in {path}: {error.strerror or error}") from error
    return FeedbackResponse(id=record["id"])
