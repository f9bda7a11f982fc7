"""Shared fixtures: real models, a real FAISS index of the built-in article, built once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.service import new_index

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from index.loaders import load_documents
from index.store import PassageIndex
from rag.generators import Generator, LlamaCppGenerator
from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT, Settings
from rag.testing import free_port, wait_until
from rag.types import Passage

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
ARTICLE = PROJECT_ROOT / "corpus" / "china-russia-no-limits-2025-02-26.md"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Default settings, with the index in a temporary directory."""
    return Settings().with_overrides(index_dir=tmp_path_factory.mktemp("index") / "index")


@pytest.fixture(scope="session")
def article_index(settings: Settings) -> PassageIndex:
    index = new_index(settings.index_spec())
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
def model_file(settings: Settings) -> Path:
    """The default model's GGUF file (assembled from its PyPI parts once per machine), not loaded."""
    from rag.model_files import QWEN_15B, assemble

    return assemble(QWEN_15B, settings.model_cache_dir)


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


# ---- a real HTTP server on loopback ---------------------------------------------------------------
class LiveServer:
    """uvicorn serving the real app in a background thread, on a free loopback port."""

    def __init__(self, app: object) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", loop="asyncio")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import httpx

        self.thread.start()
        wait_until(lambda: httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200, 30, "the test server")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def server_pipeline(settings: Settings, generator: Generator, index_dir: Path) -> tuple[Settings, Pipeline]:
    """A pipeline over its own copy of the article index (so ingest tests change nothing shared)."""
    own = settings.with_overrides(index_dir=index_dir)
    index = new_index(own.index_spec())
    index.add(load_documents(ARTICLE))
    index.save(index_dir)
    return own, Pipeline(own, index, generator)


@pytest.fixture(scope="session")
def live_server(
    settings: Settings, generator: Generator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    from api.app import create_app

    own, pipeline = server_pipeline(settings, generator, tmp_path_factory.mktemp("server") / "index")
    own = own.with_overrides(admin_token="test-token", max_upload_bytes=200_000)
    with LiveServer(create_app(own, pipeline)) as server:
        yield server


def passage_of(text: str, n: int = 0, doc_id: str = "d", retriever: str = "hybrid") -> Passage:
    """A whole text as passage number `n` of document `doc_id`, for checks that need no index."""
    return Passage(
        chunk_id=f"{doc_id}#{n}",
        doc_id=doc_id,
        title="t",
        text=text,
        start=0,
        end=len(text),
        score=1.0,
        rank=n + 1,
        retriever=retriever,  # type: ignore[arg-type]
    )


def article_passage(first: str, last: str) -> Passage:
    """The article's text from `first` to the end of the next `last` after it, as a single passage."""
    text = ARTICLE.read_text(encoding="utf-8")
    start = text.index(first)
    excerpt = passage_of(text[start : text.index(last, start) + len(last)])
    # Document offsets, as the index gives them: checks that compare where two passages sit rely on them.
    return excerpt.model_copy(update={"start": start, "end": start + len(excerpt.text)})
