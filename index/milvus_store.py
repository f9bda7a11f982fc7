"""The passage index in Milvus: documents, passages and a change token in three collections, so any
number of processes can serve and ingest the same index (`RAG_STORE=milvus`).

    {prefix}_passages   chunk_id (primary), doc_id, text, start, end, dense vector, `terms` (the passage's
                        BM25 terms as the FAISS store's BM25 sees them, index.keywords, each spelt as one
                        word for Milvus's tokenizer: see `milvus_terms`), and a sparse BM25 vector computed
                        by Milvus from `terms` (its full-text search function)
    {prefix}_documents  a document's text in parts of at most PART_CHARS characters (a VARCHAR field
                        is limited to 64 KB); part 0 — the head — carries sha256, source and metadata
    {prefix}_meta       "spec": what the index was built with, and its SCHEMA_VERSION; "generation":
                        a token every write replaces

Milvus has no multi-collection transactions, so visibility follows write order instead: an add writes
its passages, then its text parts, then the head; a remove deletes the head first. Readers see a
document only when its head exists, and passages only of visible documents, so a writer killed halfway
leaves nothing half-visible (its leftover rows are replaced when the same content is added again).
Readers in other processes notice a write through the generation token, checked at most every
TOKEN_TTL_S seconds, which is what tells BM25 caches and document lists to reload.

The URI is either a `.db` path — Milvus Lite inside this process, one process per file — or a server:
`milvus-lite server --data-dir D --port P` here, a Milvus standalone or cluster in production.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from typing_extensions import override

from index.embedders import Embedder, Vectors
from index.keywords import bm25_terms
from index.store import (
    DocumentInfo,
    Embedded,
    IndexLockedError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexStoreError,
    IngestReport,
    PassageIndex,
    Snapshot,
    Splitter,
    embedding_key,
)
from index.types import Chunk, Document, IndexSpec, split_new

log = logging.getLogger(__name__)

PART_CHARS = 16_000  # 4 bytes per character at worst: stays under the 65,535-byte VARCHAR limit
TEXT_BYTES = 65_535
ID_BYTES = 512
TOKEN_TTL_S = 0.2
BATCH_ROWS = 256
SCAN_BATCH = 1000
MAX_TOP_K = 16_384  # Milvus's limit on limit
CONNECT_TIMEOUT_S = 10.0
STUB_DIMENSION = 2  # Milvus wants a vector field in every collection; documents and meta have no vectors
# bm25s's defaults; a Milvus server would otherwise use k1 = 1.2 (Milvus Lite uses 1.5).
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}
# The collections' layout, kept in the "spec" record. 1 (a record without "schema"): Milvus's BM25 read `text`
# through its own tokenizer; 2: it reads `terms`, the FAISS store's tokens. An index of another layout is
# rebuilt, not read: its BM25 vectors were computed from other tokens.
SCHEMA_VERSION = 2
# Milvus's standard tokenizer, no filters: the terms are lower-case already and hold no stop words (the
# product removed them), so a lowercase or stop filter would change nothing.
TERMS_ANALYZER: dict[str, Any] = {"tokenizer": "standard"}
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
ESCAPE = "ǂ"  # U+01C2 LATIN LETTER ALVEOLAR CLICK: a letter (Lo) with no case; see milvus_term


class MilvusUnavailableError(IndexLockedError):
    """The Milvus store cannot be reached or opened now (the API answers it with 503 and Retry-After)."""


def milvus_term(token: str) -> str:
    """`token` spelt as one word for Milvus's standard tokenizer, which splits it at every character that is not
    a letter or digit (Milvus Lite: the regex `\\w+`, so `_` too is kept; a Milvus server: Rust's
    `is_alphanumeric`, which splits at `_`): every character but a-z and 0-9 becomes ESCAPE, its code point in
    hex, ESCAPE — "china's" is `chinaǂ27ǂs`, "u.s" `uǂ2eǂs`, "1,000" `1ǂ2cǂ000`. ESCAPE is a caseless letter,
    so both tokenizers keep it inside the word and lowercasing leaves it alone; it is escaped itself, so no
    two tokens are spelt alike. Non-ASCII characters are escaped as well, since lowercasing could change
    them ("İ" lowers to two characters, the second not a letter)."""
    return "".join(ch if ch in _PLAIN else f"{ESCAPE}{ord(ch):x}{ESCAPE}" for ch in token)


def milvus_terms(text: str) -> str:
    """The `terms` value of a passage, or the BM25 query of a question: the terms the FAISS store's BM25
    ranks on (index.keywords.bm25_terms), each spelt by `milvus_term`, separated by spaces."""
    terms = " ".join(milvus_term(token) for token in bm25_terms(text))
    # Only a pathological passage (a 4,000-word chunk made of "a.b.c…", each "." six bytes here) could exceed
    # a VARCHAR; its last terms are dropped rather than the passage refused.
    if len(terms.encode()) <= TEXT_BYTES:
        return terms
    return terms.encode()[: TEXT_BYTES + 1].decode(errors="ignore").rsplit(" ", 1)[0]


def _quoted(value: str) -> str:
    """A string literal for a Milvus filter expression (JSON escaping is what its parser accepts)."""
    return json.dumps(value, ensure_ascii=False)


def is_local_file(uri: str) -> bool:
    """Whether `uri` names a Milvus Lite `.db` path (run inside the process that opens it) rather than a server."""
    return not uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:"))


def _check_local_file_free(path: Path) -> None:
    """A Milvus Lite `.db` directory serves one process (it holds an flock on its LOCK file): say so in one
    line, with the command that shares it, instead of pymilvus's 'Open local milvus failed'."""
    from milvus_lite.server_manager import server_manager_instance

    if str(path) in getattr(server_manager_instance, "_servers", {}):
        return  # this process serves it already
    lock = path / "LOCK"
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise MilvusUnavailableError(
            f"the Milvus Lite file {path} is open in another process; to share it, run a server "
            f"(`milvus-lite server --data-dir {path} --port 19530`) and set RAG_MILVUS_URI=http://127.0.0.1:19530"
        ) from None
    finally:
        os.close(fd)


class _NoSessionTimestampWarning(logging.Filter):
    """Milvus Lite has no MVCC timestamps; pymilvus's iterator warns and falls back to the client's clock,
    which is right here. The warning would appear on every document listing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "mvccTs" not in record.getMessage()


def connect(uri: str) -> Any:
    """A MilvusClient for `uri` (a `.db` path runs Milvus Lite in this process); one-line errors."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    iterator_log = logging.getLogger("pymilvus.client.iterator.query_iterator")
    if not any(isinstance(f, _NoSessionTimestampWarning) for f in iterator_log.filters):
        iterator_log.addFilter(_NoSessionTimestampWarning())

    if is_local_file(uri):
        path = Path(uri).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_local_file_free(path)
        uri = str(path)
    try:
        return MilvusClient(uri=uri, timeout=CONNECT_TIMEOUT_S)
    except MilvusException as error:
        raise MilvusUnavailableError(
            f"cannot open the Milvus store at {uri} ({error.message}): start the server it names, or set "
            "RAG_MILVUS_URI to a running one (`milvus-lite server --data-dir DIR --port 19530`)"
        ) from error


@dataclass
class _View:
    """What this process last read for one generation token; dropped when the token changes."""

    token: str
    doc_ids: set[str] | None = None
    documents: dict[str, Document] | None = None
    infos: list[DocumentInfo] | None = None
    chunks: list[Chunk] | None = None
    single: dict[str, Document | None] = field(default_factory=dict)


class MilvusPassageIndex(PassageIndex):
    """The `PassageIndex` interface (what rag/ reads and `Library` writes) over Milvus collections.

    It subclasses PassageIndex for its interface and its splitting/embedding (`embed_documents`);
    none of the FAISS snapshot machinery is used: every write goes to Milvus at once (so `save` has
    nothing to do) and every read asks Milvus or a cache keyed by the generation token.
    """

    def __init__(self, spec: IndexSpec, embedder: Embedder, chunker: Splitter, uri: str, prefix: str = "rag") -> None:
        super().__init__(spec, embedder, chunker)
        # A rebuild splits as the settings say; adding to an existing index splits as it was built.
        self._requested = (spec, chunker)
        self.uri = uri
        self.prefix = prefix
        self.passages_name = f"{prefix}_passages"
        self.documents_name = f"{prefix}_documents"
        self.meta_name = f"{prefix}_meta"
        self.client = connect(uri)
        self._view_lock = threading.Lock()
        self._view = _View(token="")
        self.built_schema = SCHEMA_VERSION  # the layout of the collections opened (see SCHEMA_VERSION)
        self._unusable: str | None = None  # why only `rebuild` may touch the collections, when it is so
        self._version = 0
        self._checked_at = 0.0
        self._written_at = time.time()

    # ---- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, spec: IndexSpec, embedder: Embedder, chunker: Splitter, create: bool = False) -> MilvusPassageIndex:
        """The index in Milvus at `spec.milvus_uri`; with `create`, made empty if it does not exist yet.
        IndexNotFoundError / IndexMismatchError say how to fix."""
        index = cls(spec, embedder, chunker, spec.milvus_uri, spec.milvus_collection)
        try:
            index._check_or_create(create)
        except BaseException:
            index.close()
            raise
        index._refresh_token(force=True)
        return index

    def close(self) -> None:
        """Close the Milvus client; errors are ignored (it is called on the way out of a failed open, and at
        shutdown)."""
        with contextlib.suppress(Exception):
            self.client.close()

    def _spec_record(self) -> dict[str, Any]:
        return {
            "model": self.embedder.model_name,
            "dimension": self.embedder.dimension,
            "unit": self.spec.chunk_unit.value,
            "chunk_size": self.spec.chunk_size,
            "chunk_overlap": self.spec.chunk_overlap,
            "schema": SCHEMA_VERSION,
        }

    def _exists(self) -> bool:
        return all(self.client.has_collection(n) for n in (self.passages_name, self.documents_name, self.meta_name))

    def _check_or_create(self, create: bool) -> None:
        if not self._exists():
            if not create:
                raise IndexNotFoundError(
                    f"no index in Milvus at {self.uri} (collections {self.prefix}_*): "
                    "build one with `rag index build [PATH]`"
                )
            self._create()
            return
        # Collections written by another process (or before a restart) must be loaded to be read; loading a
        # loaded one does nothing.
        for name in (self.passages_name, self.documents_name, self.meta_name):
            self.client.load_collection(name)
        rows = self.client.get(self.meta_name, ids=["spec"], output_fields=["value"])
        if not rows:
            if not create:
                raise IndexNotFoundError(f"the index in Milvus at {self.uri} is incomplete: rebuild it")
            self._put_meta("spec", json.dumps(self._spec_record()))
            return
        built = json.loads(rows[0]["value"])
        self.built_schema = int(built.get("schema", 1))
        problem = self._mismatch(built)
        if problem:
            if not create:
                raise IndexMismatchError(problem)
            # Opened to be rebuilt (`rag index build`, a migration, new_index): `rebuild` recreates the
            # collections; anything else would read or write the old ones, and says this instead.
            self._unusable = problem
            return
        from index.service import built_spec, make_chunker  # service imports this module

        spec = built_spec(self.spec, built, f"Milvus at {self.uri}")
        if spec != self.spec:
            self.spec, self.chunker = spec, make_chunker(spec)

    def _mismatch(self, built: Mapping[str, Any]) -> str | None:
        """Why the collections described by the spec record `built` cannot be used as they are, if so."""
        if self.built_schema != SCHEMA_VERSION:
            return (
                f"the index in Milvus at {self.uri} (collections {self.prefix}_*) has schema version "
                f"{self.built_schema} but this version reads {SCHEMA_VERSION} (BM25 over the product's keyword "
                "tokens): rebuild it with `rag index build`, or copy a FAISS index into it with "
                "`python -m index.migrate`"
            )
        if built["model"] != self.embedder.model_name or built["dimension"] != self.embedder.dimension:
            return (
                f"the index in Milvus at {self.uri} was built with embedder {built['model']} "
                f"({built['dimension']} dimensions) but the settings use {self.embedder.model_name} "
                f"({self.embedder.dimension}): rebuild it with `rag index build`"
            )
        return None

    def _check_usable(self) -> None:
        if self._unusable is not None:
            raise IndexMismatchError(self._unusable)

    def _create(self) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        # Strong consistency: a search right after another process's write must see it (a cluster
        # defaults to bounded staleness).
        options = {"consistency_level": "Strong"}
        passages = MilvusClient.create_schema(auto_id=False)
        passages.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=ID_BYTES)
        passages.add_field("doc_id", DataType.VARCHAR, max_length=ID_BYTES)
        passages.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES)
        passages.add_field(
            "terms", DataType.VARCHAR, max_length=TEXT_BYTES, enable_analyzer=True, analyzer_params=TERMS_ANALYZER
        )
        passages.add_field("start", DataType.INT64)
        passages.add_field("end", DataType.INT64)
        passages.add_field("vector", DataType.FLOAT_VECTOR, dim=self.embedder.dimension)
        passages.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        passages.add_function(
            Function(
                name="terms_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["terms"],
                output_field_names=["sparse"],
            )
        )
        indexes = self.client.prepare_index_params()
        # Exact inner product on unit vectors, as the FAISS store; a cluster may use HNSW instead.
        indexes.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        indexes.add_index(
            field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS
        )
        self.client.create_collection(self.passages_name, schema=passages, index_params=indexes, **options)

        documents = MilvusClient.create_schema(auto_id=False)
        documents.add_field("part_id", DataType.VARCHAR, is_primary=True, max_length=ID_BYTES)
        documents.add_field("doc_id", DataType.VARCHAR, max_length=ID_BYTES)
        documents.add_field("part", DataType.INT64)
        documents.add_field("sha256", DataType.VARCHAR, max_length=64)
        documents.add_field("source", DataType.VARCHAR, max_length=TEXT_BYTES)
        documents.add_field("meta", DataType.VARCHAR, max_length=TEXT_BYTES)
        documents.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES)
        documents.add_field("stub", DataType.FLOAT_VECTOR, dim=STUB_DIMENSION)
        self.client.create_collection(self.documents_name, schema=documents, index_params=self._stub_index(), **options)

        meta = MilvusClient.create_schema(auto_id=False)
        meta.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
        meta.add_field("value", DataType.VARCHAR, max_length=TEXT_BYTES)
        meta.add_field("stub", DataType.FLOAT_VECTOR, dim=STUB_DIMENSION)
        self.client.create_collection(self.meta_name, schema=meta, index_params=self._stub_index(), **options)
        self._put_meta("spec", json.dumps(self._spec_record()))
        self.built_schema, self._unusable = SCHEMA_VERSION, None
        self._bump()

    def _stub_index(self) -> Any:
        params = self.client.prepare_index_params()
        params.add_index(field_name="stub", index_type="FLAT", metric_type="IP")
        return params

    def _drop(self) -> None:
        for name in (self.passages_name, self.documents_name, self.meta_name):
            if self.client.has_collection(name):
                self.client.drop_collection(name)

    # ---- the generation token -----------------------------------------------------------------------
    def _put_meta(self, key: str, value: str) -> None:
        self.client.upsert(self.meta_name, [{"key": key, "value": value, "stub": [1.0, 0.0]}])

    def _bump(self) -> None:
        """Tell every reader (this and other processes) that the index changed."""
        now = time.time()
        self._put_meta("generation", json.dumps({"token": uuid.uuid4().hex, "at": now}))
        self._written_at = now
        self._refresh_token(force=True)

    def _refresh_token(self, force: bool = False) -> bool:
        """Read the generation token (at most every TOKEN_TTL_S unless forced); True if it changed."""
        now = time.monotonic()
        if not force and now - self._checked_at < TOKEN_TTL_S:
            return False
        self._checked_at = now
        rows = self.client.get(self.meta_name, ids=["generation"], output_fields=["value"])
        record: dict[str, Any] = json.loads(rows[0]["value"]) if rows else {"token": "", "at": 0.0}
        with self._view_lock:
            if record["token"] == self._view.token:
                return False
            self._view = _View(token=record["token"])
            self._version += 1
            self._written_at = float(record.get("at") or self._written_at)
            return True

    def _current(self) -> _View:
        self._check_usable()
        self._refresh_token()
        return self._view

    # ---- reading ------------------------------------------------------------------------------------
    def _scan(self, collection: str, expression: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Every row matching `expression`, in batches (a single query is limited to 16,384 rows)."""
        iterator = self.client.query_iterator(
            collection, batch_size=SCAN_BATCH, filter=expression, output_fields=fields
        )
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    def _heads(self, expression: str) -> list[dict[str, Any]]:
        return list(
            self._scan(
                self.documents_name,
                f"part == 0 and ({expression})" if expression else "part == 0",
                ["doc_id", "sha256", "source", "meta"],
            )
        )

    def _load_documents(self, expression: str = "") -> dict[str, Document]:
        """Visible documents (head present and every text part there), assembled from their parts."""
        rows = list(self._scan(self.documents_name, expression, ["doc_id", "part", "meta", "text"]))
        parts: dict[str, dict[int, str]] = {}
        heads: dict[str, dict[str, Any]] = {}
        for row in rows:
            parts.setdefault(row["doc_id"], {})[int(row["part"])] = row["text"]
            if int(row["part"]) == 0:
                heads[row["doc_id"]] = json.loads(row["meta"])
        documents: dict[str, Document] = {}
        for doc_id, meta in sorted(heads.items(), key=lambda item: (item[1]["added"], item[0])):
            pieces = parts[doc_id]
            if len(pieces) != meta["parts"]:
                continue  # a writer is (or died) half-way through replacing it
            text = "".join(pieces[n] for n in range(meta["parts"]))
            documents[doc_id] = Document(doc_id=doc_id, text=text, **meta["document"])
        return documents

    def _visible_ids(self, view: _View) -> set[str]:
        if view.doc_ids is None:
            view.doc_ids = {row["doc_id"] for row in self._heads("")}
        return view.doc_ids

    def _filter_visible(self, view: _View, doc_ids: set[str]) -> set[str]:
        """The given documents that have a head, asking Milvus for those the cached view does not know
        (another process may have added them since the token was last read)."""
        known = self._visible_ids(view)
        unknown = doc_ids - known
        if unknown:
            listed = ", ".join(_quoted(d) for d in unknown)
            known = known | {row["doc_id"] for row in self._heads(f"doc_id in [{listed}]")}
        return doc_ids & known

    @property
    @override
    def documents(self) -> list[Document]:
        view = self._current()
        if view.documents is None:
            view.documents = self._load_documents()
        return list(view.documents.values())

    @override
    def document(self, doc_id: str) -> Document | None:
        view = self._current()
        if view.documents is not None and doc_id in view.documents:
            return view.documents[doc_id]
        if doc_id not in view.single:
            view.single[doc_id] = self._load_documents(f"doc_id == {_quoted(doc_id)}").get(doc_id)
        return view.single[doc_id]

    @override
    def document_infos(self) -> list[DocumentInfo]:
        view = self._current()
        if view.infos is None:
            heads = sorted(self._heads(""), key=lambda row: (json.loads(row["meta"])["added"], row["doc_id"]))
            infos = []
            for row in heads:
                meta = json.loads(row["meta"])
                document = meta["document"]
                infos.append(
                    DocumentInfo(row["doc_id"], document["title"], row["source"], row["sha256"], meta["chunks"])
                )
            view.infos = infos
        return list(view.infos)

    def chunks(self) -> list[Chunk]:
        """All passages of visible documents, in document order (used by the project's own BM25)."""
        view = self._current()
        if view.chunks is None:
            order = {info.doc_id: n for n, info in enumerate(self.document_infos())}
            rows = self._scan(self.passages_name, "", ["chunk_id", "doc_id", "text", "start", "end"])
            chunks = [self._chunk(row) for row in rows if row["doc_id"] in order]
            chunks.sort(key=lambda c: (order[c.doc_id], c.start, c.end))
            view.chunks = chunks
        return list(view.chunks)

    def __len__(self) -> int:
        """Passages of visible documents (rows a killed writer left behind are not counted)."""
        return sum(info.chunk_count for info in self.document_infos())

    @property
    def generation(self) -> int:
        """Moves whenever any process writes to the store (checked at most every TOKEN_TTL_S)."""
        self._refresh_token()
        return self._version

    @property
    def committed_generation(self) -> int | None:
        """The same counter as `generation`, never None: every write is committed when it returns."""
        return self._version

    @property
    def built_at(self) -> float:
        """When any process last wrote to the store (Unix seconds), as of the last token check; when this object was
        made if the store has never been written."""
        return self._written_at

    @property
    def directory(self) -> Path | None:
        """Always None: the store is in Milvus, not in a directory."""
        return None

    def snapshot(self) -> Snapshot:
        """Always raises TypeError: Milvus is read through the PassageIndex methods, with no in-memory snapshot."""
        raise TypeError("a Milvus store has no in-memory snapshot: read it through the PassageIndex methods")

    def reload_if_newer(self) -> bool:
        """Read the generation token now, whatever its TOKEN_TTL_S cache says; True if a write (by any process)
        happened since it was last read."""
        return self._refresh_token(force=True)

    @staticmethod
    def _chunk(row: dict[str, Any]) -> Chunk:
        return Chunk(row["chunk_id"], row["doc_id"], row["text"], int(row["start"]), int(row["end"]))

    def _hits(self, results: Any) -> list[tuple[Chunk, float]]:
        hits = [(self._chunk(hit["entity"]), float(hit["distance"])) for hit in results[0]]
        visible = self._filter_visible(self._current(), {chunk.doc_id for chunk, _ in hits})
        return [(chunk, score) for chunk, score in hits if chunk.doc_id in visible]

    _FIELDS: tuple[str, ...] = ("chunk_id", "doc_id", "text", "start", "end")

    def search(self, query_vector: Vectors, k: int) -> list[tuple[Chunk, float]]:
        """Dense search: exact inner product on unit vectors (cosine), best first."""
        self._check_usable()
        if k <= 0:
            return []
        results = self.client.search(
            self.passages_name,
            data=[np.asarray(query_vector, dtype=np.float32).reshape(-1).tolist()],
            anns_field="vector",
            limit=min(k, MAX_TOP_K),
            output_fields=list(self._FIELDS),
            search_params={"metric_type": "IP"},
        )
        return self._hits(results)

    def keyword_search(self, text: str, k: int) -> list[tuple[Chunk, float]]:
        """Milvus's BM25 full-text search over the passages' terms, best first: the FAISS store's BM25 ranking
        (the same terms, k1 and b, and Lucene's IDF on both)."""
        self._check_usable()
        if k <= 0:
            return []
        results = self.client.search(
            self.passages_name,
            data=[milvus_terms(text)],
            anns_field="sparse",
            limit=min(k, MAX_TOP_K),
            output_fields=list(self._FIELDS),
            search_params={"metric_type": "BM25"},
        )
        # Milvus Lite reports BM25 as a negative distance, a server as a positive score: rank is what counts.
        return [(chunk, abs(score)) for chunk, score in self._hits(results)]

    def vectors_for(self, chunk_ids: Sequence[str]) -> Vectors:
        """Stored vectors of the given passages; a passage removed meanwhile gets a zero vector (relevance 0)."""
        self._check_usable()
        out = np.zeros((len(chunk_ids), self.embedder.dimension), dtype=np.float32)
        if not chunk_ids:
            return out
        rows = self.client.get(self.passages_name, ids=list(dict.fromkeys(chunk_ids)), output_fields=["vector"])
        found = {row["chunk_id"]: row["vector"] for row in rows}
        for n, chunk_id in enumerate(chunk_ids):
            if chunk_id in found:
                out[n] = np.asarray(found[chunk_id], dtype=np.float32)
        return out

    def manifest(self) -> dict[str, Any]:
        """What `rag index info` shows for a Milvus store; the splitter is the one the index was built with."""
        infos = self.document_infos()
        rows = self.client.get(self.meta_name, ids=["spec"], output_fields=["value"])
        built = json.loads(rows[0]["value"]) if rows else self._spec_record()
        return {
            "store": "milvus",
            "uri": self.uri,
            "collections": [self.passages_name, self.documents_name, self.meta_name],
            "embedder": {
                "model": self.embedder.model_name,
                "backend": self.spec.embedder_backend.value,
                "dimension": self.embedder.dimension,
            },
            "splitter": {key: built[key] for key in ("unit", "chunk_size", "chunk_overlap")},
            "documents": [info.__dict__ for info in infos],
            "passages": sum(info.chunk_count for info in infos),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._written_at)),
        }

    # ---- writing ------------------------------------------------------------------------------------
    def _known_by_sha(self, documents: Sequence[Document]) -> dict[str, str]:
        """sha256 → doc_id of the given documents' content already in the store."""
        hashes = sorted({d.sha256 for d in documents})
        known: dict[str, str] = {}
        for start in range(0, len(hashes), 100):
            listed = ", ".join(_quoted(h) for h in hashes[start : start + 100])
            for row in self._heads(f"sha256 in [{listed}]"):
                known[row["sha256"]] = row["doc_id"]
        return known

    def add(
        self,
        documents: Sequence[Document],
        show_progress: bool = False,
        replace_same_source: bool = True,
        *,
        embedded: Mapping[tuple[str, str], Embedded] | None = None,
    ) -> IngestReport:
        """Add documents and commit them at once. Identical content (by sha256) is reported unchanged; a
        document replaces one with the same doc_id and, with `replace_same_source`, every one from its source.
        `embedded` supplies passages and vectors computed elsewhere (a migration from FAISS)."""
        self._check_usable()
        known = self._known_by_sha(documents)
        ready = dict(embedded or {})
        fresh: list[Document] = []
        seen = set(known)
        for document in documents:
            if document.sha256 not in seen:
                seen.add(document.sha256)
                if embedding_key(document) not in ready:
                    fresh.append(document)
        ready.update(self.embed_documents(fresh, show_progress))  # the slow part, before the write lock
        report = IngestReport()
        with self.write_lock:
            # Another process may have added some meanwhile.
            unchanged, additions = split_new(documents, self._known_by_sha(documents))
            report.unchanged.extend(unchanged)
            passages = 0
            for document in additions:
                old = {row["doc_id"] for row in self._heads(f"doc_id == {_quoted(document.doc_id)}")}
                if replace_same_source:
                    old |= {row["doc_id"] for row in self._heads(f"source == {_quoted(document.source)}")}
                for doc_id in old:
                    self._delete_document(doc_id)
                (report.replaced if old else report.added).append(document.doc_id)
                key = embedding_key(document)
                # Absent only if another process removed the document after the first sha256 check.
                item = ready[key] if key in ready else self.embed_documents([document])[key]
                passages += self._write_document(document, item)
            if additions:
                self._bump()
        return IngestReport(report.added, report.replaced, report.unchanged, passages)

    def _write_document(self, document: Document, item: Embedded) -> int:
        """Passages first, then text parts, then the head that makes them visible."""
        self.client.delete(self.passages_name, filter=f"doc_id == {_quoted(document.doc_id)}")
        rows = [
            {
                "chunk_id": chunk.chunk_id,
                "doc_id": chunk.doc_id,
                "text": chunk.text,
                "terms": milvus_terms(chunk.text),
                "start": chunk.start,
                "end": chunk.end,
                "vector": np.asarray(vector, dtype=np.float32).tolist(),
            }
            for chunk, vector in zip(item.chunks, item.vectors, strict=True)
        ]
        for start in range(0, len(rows), BATCH_ROWS):
            self.client.upsert(self.passages_name, rows[start : start + BATCH_ROWS])
        pieces = [document.text[i : i + PART_CHARS] for i in range(0, len(document.text), PART_CHARS)] or [""]
        meta = {
            "parts": len(pieces),
            "chunks": len(item.chunks),
            "added": time.time(),
            "document": {
                "title": document.title,
                "source": document.source,
                "author": document.author,
                "published": document.published,
                "publisher": document.publisher,
                "url": document.url,
                "header_end": document.header_end,
            },
        }

        def part(n: int) -> dict[str, Any]:
            return {
                "part_id": f"{document.doc_id}@{n}",
                "doc_id": document.doc_id,
                "part": n,
                "sha256": document.sha256 if n == 0 else "",
                "source": document.source if n == 0 else "",
                "meta": json.dumps(meta, ensure_ascii=False) if n == 0 else "{}",
                "text": pieces[n],
                "stub": [1.0, 0.0],
            }

        for start in range(1, len(pieces), BATCH_ROWS):
            batch = [part(n) for n in range(start, min(start + BATCH_ROWS, len(pieces)))]
            self.client.upsert(self.documents_name, batch)
        self.client.upsert(self.documents_name, [part(0)])
        return len(rows)

    def _delete_document(self, doc_id: str) -> None:
        """The head first (the document disappears at once), then its parts and passages."""
        self.client.delete(self.documents_name, ids=[f"{doc_id}@0"])
        self.client.delete(self.documents_name, filter=f"doc_id == {_quoted(doc_id)}")
        self.client.delete(self.passages_name, filter=f"doc_id == {_quoted(doc_id)}")

    def remove(self, doc_id: str) -> bool:
        """Remove a document; False if there is no such document."""
        self._check_usable()
        with self.write_lock:
            if not self._heads(f"doc_id == {_quoted(doc_id)}"):
                return False
            self._delete_document(doc_id)
            self._bump()
            return True

    def rebuild(
        self,
        documents: Sequence[Document],
        show_progress: bool = False,
        *,
        embedded: Mapping[tuple[str, str], Embedded] | None = None,
    ) -> IngestReport:
        """Replace the whole index with `documents` (readers see an empty index while it is rebuilt), in the
        current layout and with the settings' embedder and splitter, whatever the collections held before.
        `embedded` supplies passages and vectors computed elsewhere (a migration from FAISS)."""
        self.spec, self.chunker = self._requested
        ready = dict(embedded or {})
        fresh = Snapshot.empty(self.embedder.dimension).fresh(documents)
        ready.update(self.embed_documents([d for d in fresh if embedding_key(d) not in ready], show_progress))
        with self.write_lock:
            self._drop()
            self._create()
            return self._add_embedded(documents, ready)

    def _add_embedded(self, documents: Sequence[Document], embedded: dict[tuple[str, str], Embedded]) -> IngestReport:
        report = IngestReport()
        seen: dict[str, str] = {}
        passages = 0
        for document in documents:
            if document.sha256 in seen:
                report.unchanged.append(seen[document.sha256])
                continue
            seen[document.sha256] = document.doc_id
            item = embedded.get(embedding_key(document)) or self.embed_documents([document])[embedding_key(document)]
            passages += self._write_document(document, item)
            report.added.append(document.doc_id)
        self._bump()
        return IngestReport(report.added, report.replaced, report.unchanged, passages)

    def save(self, directory: Path) -> None:
        """Nothing to do: every write is in Milvus when `add` or `remove` returns."""

    def commit(self, state: Snapshot, directory: Path) -> Snapshot:
        """Always raises TypeError: every `add`, `remove` and `rebuild` commits as it returns."""
        raise TypeError("a Milvus store commits on every add/remove: use Library or add()/remove()")


def open_milvus(spec: IndexSpec, embedder: Embedder, chunker: Splitter, create: bool = False) -> MilvusPassageIndex:
    """Open (or, with `create`, create) the Milvus index named by `spec`; Milvus errors become one line."""
    from pymilvus.exceptions import MilvusException

    try:
        return MilvusPassageIndex.open(spec, embedder, chunker, create=create)
    except MilvusException as error:
        raise IndexStoreError(f"the Milvus store at {spec.milvus_uri} failed: {error.message}") from error
