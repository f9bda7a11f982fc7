"""A restarted server loads the answer prompt's decoded prefix from the cache instead of decoding it again, with the
same answers; a damaged saved state is decoded again, never used (the real model, two or three loads of it)."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest

from index.store import PassageIndex
from rag.generators import LlamaCppGenerator
from rag.pipeline import Pipeline
from rag.prompt import answer_messages
from rag.settings import Settings

QUESTION = "When did Mikhail Gorbachev resign?"
WARM = answer_messages([], "warm up")

pytestmark = pytest.mark.slow


def load(settings: Settings, model_file: Path, cache: Path) -> LlamaCppGenerator:
    return LlamaCppGenerator(model_file, cache, settings.llm_threads, settings.llm_context)


def must_not_decode(*args: object, **kwargs: object) -> str:
    raise AssertionError("the prefix was decoded instead of loaded")


def test_a_restart_loads_the_saved_prefix_and_answers_the_same(
    settings: Settings, article_index: PassageIndex, model_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = load(settings, model_file, tmp_path)
    messages = answer_messages(Pipeline(settings, article_index, first).search(QUESTION), QUESTION)
    first.warm_prefix(WARM)
    (saved,) = tmp_path.glob("prefix-*.npz")
    answer = first.complete(messages, max_tokens=48)
    del first
    gc.collect()

    restarted = load(settings, model_file, tmp_path)
    restarted.complete = must_not_decode  # type: ignore[method-assign]
    restarted.warm_prefix(WARM)
    del restarted.complete
    size = restarted.prompt_size(messages)
    assert size is not None and size.new_tokens < size.tokens - 300, "the rules and examples are held already"
    assert restarted.complete(messages, max_tokens=48) == answer
    del restarted
    gc.collect()

    saved.write_bytes(b"not a saved state")
    damaged = load(settings, model_file, tmp_path)
    with caplog.at_level(logging.WARNING, logger="rag.generators"):
        damaged.warm_prefix(WARM)
    assert "did not load" in caplog.text
    assert saved.stat().st_size > 1_000_000, "decoded again and saved again"
    assert damaged.complete(messages, max_tokens=48) == answer
