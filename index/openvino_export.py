"""all-MiniLM-L6-v2's float weights in OpenVINO's format, converted once per cache directory.

OpenVINO converts the model from its torch form, so the conversion imports torch and transformers; it runs in a child
process (`python -m index.openvino_export SOURCE TARGET`) so that a server embedding with OpenVINO never holds torch
(~0.4 GB). The result is a directory that appears whole or not at all: the child writes a staging directory and
renames it into place, and a stamp names the source weights it came from (a changed source is converted again)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from index.errors import UserError

WEIGHTS = "model.safetensors"
MODEL_FILE = "model.xml"  # with model.bin beside it
STAMP = "source.json"
EXPORT_TIMEOUT_S = 600


class ConversionError(UserError, RuntimeError):
    """The embedder could not be converted to OpenVINO's format; the message says why."""


def _source_stamp(source: Path) -> dict[str, object]:
    weights = (source / WEIGHTS).stat()
    return {"weights": str(source / WEIGHTS), "size": weights.st_size, "mtime_ns": weights.st_mtime_ns}


def _target_dir(cache_dir: Path) -> Path:
    import openvino

    # A new OpenVINO release may read an older file differently: one conversion per runtime version.
    return cache_dir / f"all-MiniLM-L6-v2-openvino-{openvino.__version__.split('-')[0]}"


def converted_model(source: Path, cache_dir: Path) -> Path:
    """The converted model's .xml file under `cache_dir`, converting `source` (the sentence-transformers folder)
    first when there is none or it came from other weights. ConversionError when the conversion fails."""
    target = _target_dir(cache_dir)
    stamp = target / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == _source_stamp(source):
        return target / MODEL_FILE
    cache_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "index.openvino_export", str(source), str(target)],
        capture_output=True,
        text=True,
        timeout=EXPORT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0 or not (target / MODEL_FILE).is_file():
        lines = (done.stderr or done.stdout).strip().splitlines()
        cause = lines[-1] if lines else f"exit status {done.returncode}"
        raise ConversionError(
            f"converting the embedder to OpenVINO failed: {cause} "
            "(RAG_EMBEDDER_BACKEND=onnx-int8 embeds without a conversion)"
        )
    return target / MODEL_FILE


def export(source: Path, target: Path) -> None:
    """Convert `source` into `target` (replacing what is there), through a staging directory renamed into place."""
    import openvino
    import torch
    from transformers import AutoModel

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = AutoModel.from_pretrained(str(source)).eval()
    example = {
        "input_ids": torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
        "token_type_ids": torch.zeros((2, 4), dtype=torch.int64),
    }
    with torch.no_grad():
        converted = openvino.convert_model(model, example_input=example)
    converted.outputs[0].get_tensor().set_names({"last_hidden_state"})
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # Full-precision weights on disk: on a CPU without bfloat16 the model then runs exactly in float32.
    openvino.save_model(converted, staging / MODEL_FILE, compress_to_fp16=False)
    (staging / STAMP).write_text(json.dumps(_source_stamp(source)))
    old = target.with_name(f".{target.name}.old.{os.getpid()}")
    if target.exists():
        target.rename(old)  # a concurrent reader keeps the files it opened
    try:
        staging.rename(target)
    except OSError:
        # Another process put its conversion in place first: the same weights, so use that one.
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    export(Path(sys.argv[1]), Path(sys.argv[2]))
