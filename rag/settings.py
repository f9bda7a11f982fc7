"""The one settings object: every knob, its default, and the `RAG_` environment variable that sets it."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.types import DEFAULT_MODEL_CACHE, ApproximateIndex, ChunkUnit, EmbedderBackend, IndexSpec, StoreKind
from rag.fusion import DEFAULT_DENSE_WEIGHT, FusionKind
from rag.types import MAX_QUESTION_CHARS, MAX_TOP_K

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class RetrieverKind(StrEnum):
    """How passages are found (RAG_RETRIEVER): dense vectors, BM25 keywords, or both fused."""

    DENSE = "dense"
    BM25 = "bm25"
    HYBRID = "hybrid"


class GeneratorKind(StrEnum):
    """What writes the answers (RAG_GENERATOR): the llama.cpp model in this process, or an OpenAI-compatible server
    at RAG_OPENAI_BASE_URL."""

    LLAMA_CPP = "llama-cpp"
    OPENAI = "openai"


class PromptStyle(StrEnum):
    """How the answer prompt is written (RAG_PROMPT_STYLE): this project's rules with worked examples, or the
    generic "use the context, say you don't know" prompt of a plain RAG chain (the eval's baseline row)."""

    RULES = "rules"
    PLAIN = "plain"


class Settings(BaseSettings):
    """Defaults work on the built-in article; CLI flags and request fields override per call."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # --- index ---------------------------------------------------------------------------------
    index_dir: Path = Field(Path("var/index"), description="Where the index lives on disk.")
    corpus_path: Path = Field(
        PROJECT_ROOT / "corpus", description="Documents indexed by `make run` when no index exists."
    )
    embedder_backend: EmbedderBackend = Field(
        EmbedderBackend.OPENVINO,
        description="openvino (fastest; bfloat16 where the CPU has it), onnx-int8 (no conversion step) or torch; "
        "all give the same rankings.",
    )
    chunk_size: int = Field(64, ge=8, le=4000, description="Passage length (in chunk_unit).")
    chunk_overlap: int = Field(16, ge=0, description="Length shared by neighbouring passages.")
    chunk_unit: ChunkUnit = Field(ChunkUnit.TOKENS, description="tokens (embedder's) or chars.")
    embed_batch_size: int = Field(32, ge=1, description="Passages embedded per batch.")
    embed_threads: int = Field(2, ge=1, description="CPU threads for embedding.")
    exact_search_max: int = Field(
        IndexSpec.exact_search_max,
        ge=1,
        description="Passages up to which the FAISS store searches exactly; above, approximate_index.",
    )
    approximate_index: ApproximateIndex = Field(
        IndexSpec.approximate_index,
        description="FAISS index above exact_search_max: hnsw (faster at the same recall) or ivf (less memory; "
        "removal frees space at once).",
    )
    hnsw_ef_search: int = Field(
        IndexSpec.hnsw_ef_search,
        ge=1,
        description="Candidates an HNSW search keeps (more: slower, higher recall).",
    )
    ivf_nprobe: int = Field(
        IndexSpec.ivf_nprobe, ge=1, description="Clusters an IVF search visits (more: slower, higher recall)."
    )
    store: StoreKind = Field(
        StoreKind.FAISS,
        description="faiss (index_dir on this machine) or milvus (milvus_uri, shared by every replica).",
    )
    milvus_uri: str = Field(
        "var/milvus.db",
        description="Milvus store: a .db path (Milvus Lite in this process only) or a server such as "
        "http://127.0.0.1:19530 (`milvus-lite server`, or a Milvus cluster).",
    )
    milvus_collection: str = Field(
        "rag", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,40}$", description="Prefix of the Milvus collections."
    )

    # --- retrieval -----------------------------------------------------------------------------
    retriever: RetrieverKind = Field(RetrieverKind.HYBRID, description="dense, bm25 or hybrid (both, fused).")
    top_k: int = Field(3, ge=1, le=MAX_TOP_K, description="Passages given to the generator.")
    candidates: int = Field(20, ge=1, le=200, description="Candidates per retriever before fusion.")
    fusion: FusionKind = Field(
        FusionKind.CONVEX, description="How hybrid merges the rankings: convex (weighted scores) or rrf (ranks)."
    )
    dense_weight: float = Field(
        DEFAULT_DENSE_WEIGHT, ge=0, le=1, description="Convex fusion: the cosine's weight (BM25 gets the rest)."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant (fusion=rrf).")
    rescore: bool = Field(False, description="Re-score the fused top candidates with the LLM judge.")
    rescore_top: int = Field(4, ge=1, le=10, description="Candidates the re-scorer judges.")
    verify_answers: bool = Field(
        True, description="Show an answer only when the evidence checks (and, if undecided, the judge) support it."
    )
    evidence_accept: float = Field(
        0.75, ge=0, le=1, description="Evidence score at which an answer is final without asking the judge."
    )
    evidence_reject: float = Field(0.35, ge=0, le=1, description="Evidence score below which an answer is withheld.")
    judge_threshold: float = Field(0.5, ge=0, le=1, description="Judge P(yes) needed when the evidence is undecided.")
    max_passage_chars: int = Field(
        1200, ge=200, le=8000, description="Longest reading passage when neighbouring hits are merged."
    )
    sentence_window: int = Field(
        0,
        ge=0,
        le=5,
        description="Neighbouring sentences each side of a hit that the model also reads (0: the hit's own sentences).",
    )
    min_relevance: float = Field(
        0.22, description="Relevance gate: abstain without generating below this cosine similarity."
    )

    # --- generation ----------------------------------------------------------------------------
    generator: GeneratorKind = Field(GeneratorKind.LLAMA_CPP, description="llama-cpp or openai.")
    model_path: Path | None = Field(None, description="A GGUF file to use instead of the packaged model.")
    model_cache_dir: Path = Field(
        DEFAULT_MODEL_CACHE,
        description="Where the packaged generator is assembled and the embedder converted, once each.",
    )
    llm_threads: int = Field(2, ge=1, description="CPU threads for the local model.")
    llm_context: int = Field(2048, ge=512, description="Context window of the local model (tokens).")
    max_tokens: int = Field(96, ge=8, le=1024, description="Longest answer (tokens).")
    prompt_style: PromptStyle = Field(
        PromptStyle.RULES,
        description="rules (cite passages, fixed abstention, worked examples) or plain (the eval's generic baseline).",
    )
    openai_base_url: str = Field("http://127.0.0.1:8080/v1", description="OpenAI-compatible server.")
    openai_api_key: str = Field("not-needed", description="API key for that server.")
    openai_model: str = Field("local", description="Model name sent to that server.")
    openai_timeout_s: float = Field(120.0, gt=0, description="Timeout per request to that server.")

    # --- serving -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `rag serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `rag serve` listens on.")
    workers: int = Field(
        1,
        ge=1,
        description="Processes `rag serve` runs on one port. Each loads its own pipeline: with the local model "
        "that is ~1.1 GB of RAM per worker and they share the cores, so use more with RAG_GENERATOR=openai.",
    )
    admin_token: str | None = Field(None, description="Bearer token for document upload/removal.")
    max_upload_bytes: int = Field(2_000_000, ge=1, description="Largest document upload.")
    max_body_bytes: int = Field(64_000, ge=1024, description="Largest JSON request body.")
    max_question_chars: int = Field(
        MAX_QUESTION_CHARS,
        ge=10,
        le=MAX_QUESTION_CHARS,
        description="Longest question accepted (at most 2000); every answer route, the OpenAI one included, "
        "answers 422 beyond it.",
    )
    max_concurrent_generations: int = Field(1, ge=1, description="Answers generated at once.")
    max_queued_generations: int = Field(8, ge=0, description="Answers waiting; beyond this: 503.")
    allowed_hosts: str = Field(
        "",
        description="Host names accepted in requests, comma-separated (* for any); empty: the bind address, "
        "localhost, 127.0.0.1 and [::1].",
    )
    admin_max_failures: int = Field(5, ge=1, description="Wrong admin tokens a client may send per window; then 429.")
    admin_failure_window_s: float = Field(60.0, gt=0, description="Window (s) over which wrong admin tokens count.")
    http_header_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's headers; then 408 and the connection closes."
    )
    http_body_timeout_s: float = Field(
        30.0, gt=0, description="Seconds a request body may pause between two pieces; then 408."
    )
    http_keep_alive_s: float = Field(5.0, gt=0, description="Seconds an idle keep-alive connection stays open.")
    http_max_connections: int = Field(
        500, ge=8, description="Open connections `rag serve` accepts; beyond this each request gets a 503."
    )
    feedback_path: Path = Field(
        Path("var/feedback.jsonl"), description="Where thumbs up/down from the chat page are appended (JSONL)."
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        return self

    def index_spec(self) -> IndexSpec:
        """The settings index/ needs (embedder, splitter, store), as its own IndexSpec: index/ cannot import rag/."""
        return IndexSpec(
            embedder_backend=self.embedder_backend,
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            chunk_unit=self.chunk_unit,
            embed_batch_size=self.embed_batch_size,
            embed_threads=self.embed_threads,
            model_cache_dir=self.model_cache_dir,
            exact_search_max=self.exact_search_max,
            approximate_index=self.approximate_index,
            hnsw_ef_search=self.hnsw_ef_search,
            ivf_nprobe=self.ivf_nprobe,
            store=self.store,
            milvus_uri=self.milvus_uri,
            milvus_collection=self.milvus_collection,
        )

    def as_environment(self) -> dict[str, str]:
        """The `RAG_*` variables under which `Settings()` in another process equals these settings (what
        `rag serve --workers N` hands its worker processes). Unset optional fields are left out."""
        values = self.model_dump(mode="json")
        # json.dumps writes booleans and numbers the way pydantic parses them back (true, 0.1), exactly.
        return {
            f"RAG_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
            for name, value in values.items()
            if value is not None
        }

    def with_overrides(self, **overrides: object) -> Settings:
        """A validated copy with some fields changed (for CLI flags, requests and eval grids)."""
        merged = self.model_dump()
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return Settings.model_validate(merged)


def settings_table() -> str:
    """The README's settings table, one row per field of `Settings` (a test keeps the README equal to it;
    `python -m rag.settings` prints it)."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, StrEnum):
            default = default.value
        elif isinstance(default, Path):  # as a reader's machine would show it, not this one's absolute path
            default = default.relative_to(PROJECT_ROOT) if default.is_relative_to(PROJECT_ROOT) else default
            default = str(default).replace(str(Path.home()), "~", 1)
        shown = "(empty)" if default == "" else f"`{default}`"
        rows.append(f"| `RAG_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
