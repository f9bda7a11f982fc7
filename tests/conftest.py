"""Shared fixtures: real models, a real FAISS index of the built-in article, built once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from index.loaders import load_documents
from index.store import PassageIndex
from rag.generators import Generator, LlamaCppGenerator
from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT, Settings

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
ARTICLE = PROJECT_ROOT / "corpus" / "china-russia-no-limits-2025-02-26.md"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Default settings, with the index in a temporary directory."""
    return Settings().with_overrides(index_dir=tmp_path_factory.mktemp("index") / "index")


@pytest.fixture(scope="session")
def article_index(settings: Settings) -> PassageIndex:
    index = Pipeline.empty_index(settings)
    index.add(load_documents(ARTICLE))
    index.save(settings.index_dir)
    return index


@pytest.fixture(scope="session")
def generator(settings: Settings) -> Iterator[Generator]:
    """The real default model (Qwen2.5-Coder-1.5B Q4_K_M), loaded once for the whole session."""
    model = LlamaCppGenerator(None, settings.model_cache_dir, settings.llm_threads, settings.llm_context)
    model.warm_up()
    yield model


@pytest.fixture(scope="session")
def pipeline(settings: Settings, article_index: PassageIndex, generator: Generator) -> Pipeline:
    return Pipeline(settings, article_index, generator)


@pytest.fixture(scope="session")
def article_text() -> str:
    return load_documents(ARTICLE)[0].text


def artifact_dir(name: str) -> Path:
    path = ARTIFACTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path
