"""Core data types of the index layer."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

# Where models packaged on PyPI are assembled or converted once (the GGUF, the embedder's OpenVINO form).
DEFAULT_MODEL_CACHE = Path.home() / ".cache" / "rag-chatbot"


class EmbedderBackend(StrEnum):
    """How all-MiniLM-L6-v2 is run: all produce the same rankings (vectors within cosine 0.999 of torch's)."""

    OPENVINO = "openvino"
    ONNX_INT8 = "onnx-int8"
    TORCH = "torch"


class ChunkUnit(StrEnum):
    """What chunk_size counts: embedder tokens (default) or characters (the common baseline)."""

    TOKENS = "tokens"
    CHARS = "chars"


class ApproximateIndex(StrEnum):
    """The FAISS index used above the exact-search threshold (index/vector_layout.py)."""

    HNSW = "hnsw"
    IVF = "ivf"


class StoreKind(StrEnum):
    """Where passages live: a FAISS directory (one machine) or Milvus (shared by many processes)."""

    FAISS = "faiss"
    MILVUS = "milvus"


@dataclass(frozen=True)
class Document:
    """A loaded document. The facts about it (author, date, publisher, URL) are parsed at load time;
    `header_end` is where its title/byline/date lines end in `text`, so a question about the document
    itself can be answered from, and cited to, that span."""

    doc_id: str
    title: str
    source: str
    text: str
    author: str | None = None
    published: str | None = None
    publisher: str | None = None
    url: str | None = None
    header_end: int = 0

    @property
    def sha256(self) -> str:
        """Hex digest of the text: the identity of a document's content (re-adding it changes nothing)."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """A passage: `document.text[start:end] == text` always holds."""

    chunk_id: str
    doc_id: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class IndexSpec:
    """Everything that decides what the index contains; recorded in the manifest."""

    embedder_model: str = "all-MiniLM-L6-v2"
    embedder_backend: EmbedderBackend = EmbedderBackend.OPENVINO
    chunk_size: int = 64
    chunk_overlap: int = 16
    chunk_unit: ChunkUnit = ChunkUnit.TOKENS
    embed_batch_size: int = 32
    embed_threads: int = 2
    # Where the OpenVINO embedder keeps its converted model (not part of what the index contains).
    model_cache_dir: Path = DEFAULT_MODEL_CACHE
    # How the FAISS store indexes vectors (index/vector_layout.py): exact up to this many passages, an approximate
    # index above (HNSW searching `hnsw_ef_search` candidates, or IVF probing `ivf_nprobe` clusters).
    exact_search_max: int = 50_000
    approximate_index: ApproximateIndex = ApproximateIndex.HNSW
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 128
    # Which store holds the index (not what it contains): index/service.py opens the one named here.
    store: StoreKind = StoreKind.FAISS
    milvus_uri: str = "var/milvus.db"
    milvus_collection: str = "rag"


def split_new(documents: Sequence[Document], known: Mapping[str, str]) -> tuple[list[str], list[Document]]:
    """Given sha256 → doc_id of content already stored, the doc_ids of the documents whose content is known
    (also an earlier document of the same batch) and, in order, the documents that are new."""
    seen = dict(known)
    unchanged: list[str] = []
    new: list[Document] = []
    for document in documents:
        if document.sha256 in seen:
            unchanged.append(seen[document.sha256])
        else:
            seen[document.sha256] = document.doc_id
            new.append(document)
    return unchanged, new


def slugify(value: str, max_length: int = 48) -> str:
    """Lower-case ASCII words joined by hyphens, at most `max_length` characters; "document" when none is left."""
    slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    return slug[:max_length].strip("-") or "document"


def make_doc_id(name: str, text: str) -> str:
    """Stable id: a slug of the title or file name plus a short content hash."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{slugify(name)}-{digest}"
