"""The answer types (see docs/architecture.md); pydantic models so the API returns them as they are."""

from __future__ import annotations

from typing import Literal, TypedDict

from pydantic import BaseModel, Field

from index.types import Chunk

# Request limits, one source for the API schemas and the settings that may lower them (the chat page, a static
# file, repeats the question limit in web/app.js).
MAX_QUESTION_CHARS = 2000
MAX_TURN_CHARS = 8000
MAX_HISTORY_TURNS = 40
MAX_TOP_K = 20

AbstainReason = Literal[
    "relevance_gate", "model", "unsupported", "calculation", "off_question", "unmentioned", "no_passages"
]


class ChatMessage(TypedDict):
    """One message of a prompt, in the OpenAI chat format every generator accepts."""

    role: str
    content: str


class Passage(BaseModel):
    """The one passage record every stage after the index passes on: the stored chunk (its document's
    `text[start:end] == text`), the document's title, and what retrieval said about it. A stage that changes
    a passage (re-scoring, the sentence window) makes a copy with `model_copy(update=...)`."""

    chunk_id: str
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    score: float = Field(description="The retriever's score: cosine (dense), BM25, or the fused RRF sum.")
    rank: int = Field(description="1-based position in the ranking that produced `score`.")
    retriever: str = Field(description="Which stage produced the score: dense, bm25, hybrid, rescore.")
    relevance: float | None = Field(None, description="Cosine similarity to the question, for the gate.")

    @classmethod
    def from_chunk(
        cls, chunk: Chunk, title: str, score: float, rank: int, retriever: str, relevance: float | None = None
    ) -> Passage:
        """The passage of a stored chunk as a retriever ranked it."""
        return cls(
            chunk_id=chunk.chunk_id,
            doc_id=chunk.doc_id,
            title=title,
            text=chunk.text,
            start=chunk.start,
            end=chunk.end,
            score=score,
            rank=rank,
            retriever=retriever,
            relevance=relevance,
        )


class Citation(Passage):
    """A passage the answer cites as `[n]`: the passage itself, its number, and the sentence inside it that
    supports the answer."""

    n: int
    support_start: int | None = Field(
        None, description="Document character offset where the supporting sentence starts (inside start..end)."
    )
    support_end: int | None = Field(None, description="Document character offset where the supporting sentence ends.")

    @classmethod
    def of(cls, n: int, passage: Passage) -> Citation:
        """Passage `passage` cited as `[n]`."""
        return cls(n=n, **passage.model_dump())


class Turn(BaseModel):
    """One earlier message of the conversation, for rewriting a follow-up."""

    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TURN_CHARS)


class ModelInfo(BaseModel):
    """What produced an answer: generator class, model, embedder (with backend), retriever, re-scoring."""

    generator: str
    model: str
    embedder: str
    retriever: str
    rescore: bool


class Answer(BaseModel):
    """The checked answer or the abstention, with its citations, the passages read, timings and prompt sizes."""

    answer: str
    abstained: bool
    abstain_reason: AbstainReason | None = None
    supported: bool = Field(True, description="False when a sentence could not be tied to a passage.")
    confidence: float = Field(
        0.0, description="Calibrated abstention score in [0, 1]: evidence, relevance and judge combined."
    )
    retracted: bool = Field(
        False, description="A draft answer was written but failed the evidence checks, so it is not shown."
    )
    citations: list[Citation]
    passages: list[Passage]
    standalone_question: str
    timings_ms: dict[str, float]
    prompt_tokens: dict[str, int] = Field(
        default_factory=dict,
        description="Prompt length per model call in tokens (`answer_prompt`), and the part the model had to "
        "decode because no earlier prompt shared it (`answer_prefill`); empty for a remote generator.",
    )
    model: ModelInfo
