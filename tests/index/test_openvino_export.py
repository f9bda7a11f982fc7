"""The OpenVINO embedder's one-time conversion: done once per cache, in a child process, redone for other weights,
and a failure is a clear error (real conversions into a temporary cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index import openvino_export
from index.embedders import OpenVinoEmbedder, make_embedder, minilm_folder
from index.openvino_export import ConversionError, converted_model
from index.types import EmbedderBackend


def test_the_model_is_converted_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_file = converted_model(minilm_folder(), tmp_path)
    assert model_file.is_file() and model_file.with_suffix(".bin").stat().st_size > 80_000_000
    assert not list(tmp_path.glob(".*")), "no staging directory is left behind"

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("a converted model must be reused, not converted again")

    monkeypatch.setattr(openvino_export.subprocess, "run", no_child)
    assert converted_model(minilm_folder(), tmp_path) == model_file


def test_other_weights_are_converted_again(tmp_path: Path) -> None:
    source = tmp_path / "minilm"
    shutil.copytree(minilm_folder(), source)
    first = converted_model(source, tmp_path / "cache")
    stamp = json.loads((first.parent / openvino_export.STAMP).read_text())
    weights = source / openvino_export.WEIGHTS
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # as a reinstall would
    second = converted_model(source, tmp_path / "cache")
    assert second == first
    assert json.loads((second.parent / openvino_export.STAMP).read_text()) != stamp


def test_a_failed_conversion_names_the_cause_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "not-a-model"
    source.mkdir()
    (source / openvino_export.WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(ConversionError, match=r"converting the embedder to OpenVINO failed: .+"):
        converted_model(source, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any(p.suffix == ".xml" for p in (tmp_path / "cache").rglob("*"))


def test_embedding_with_openvino_never_imports_torch() -> None:
    script = (
        "import sys\n"
        "from index.embedders import make_embedder\n"
        "embedder = make_embedder('openvino')\n"
        "vectors = embedder.embed(['the Treaty of Aigun', 'Gorbachev resigned'])\n"
        "assert vectors.shape == (2, 384)\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_threads_embedding_at_once_get_the_vectors_one_thread_gets() -> None:
    import concurrent.futures

    embedder = make_embedder(EmbedderBackend.OPENVINO)
    assert isinstance(embedder, OpenVinoEmbedder)
    texts = [f"passage {n} about the border clash of 1969 on Zhenbao island" for n in range(16)]
    alone = [embedder.embed_batch([text])[0] for text in texts]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda text: embedder.embed_batch([text])[0], texts))
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(alone, together, strict=True))


def test_embedders_share_one_compiled_model() -> None:
    # Each compiled copy holds its own weights and thread pool, and an embedder is made per index (and per test).
    # With a copy per embedder, a test process that had run tests/rag/test_answer_path.py and test_pipeline.py
    # segfaulted at the SIGINT of tests/test_cli_prompt.py, every time; with one shared copy it does not.
    first, second = make_embedder(EmbedderBackend.OPENVINO), make_embedder(EmbedderBackend.OPENVINO)
    first.embed(["the Treaty of Aigun"])
    second.embed(["the Treaty of Aigun"])
    assert isinstance(first, OpenVinoEmbedder) and isinstance(second, OpenVinoEmbedder)
    assert first._model is second._model
