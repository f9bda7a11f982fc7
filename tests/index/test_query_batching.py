"""Query embeddings from concurrent callers are batched and cached (fast: a scripted embedding function)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from index.embedders import QueryBatcher, VectorCache, Vectors
from tests.index.fakes import HashEmbedder


class RecordingEmbedding:
    """An embedding function that records each batch it is given and can be made slow or failing."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[list[str]] = []
        self.fail_on: str | None = None
        self.reference = HashEmbedder()

    def __call__(self, texts: Sequence[str]) -> Vectors:
        self.batches.append(list(texts))
        time.sleep(self.delay)
        if self.fail_on in texts:
            raise RuntimeError("model crashed")
        return self.reference.embed_batch(texts)


def ask_together(batcher: QueryBatcher, texts: list[str]) -> dict[str, Vectors | BaseException]:
    results: dict[str, Vectors | BaseException] = {}

    def ask(text: str) -> None:
        try:
            results[text] = batcher.embed(text)
        except BaseException as error:
            results[text] = error

    threads = [threading.Thread(target=ask, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
        time.sleep(0.005)  # all but the first arrive while the first batch is running
    for thread in threads:
        thread.join(10)
    return results


def test_a_lone_question_is_embedded_at_once_by_itself() -> None:
    embedding = RecordingEmbedding()
    batcher = QueryBatcher(embedding, max_batch=32)
    started = time.perf_counter()
    vector = batcher.embed("what did Deng agree in 1979?")
    assert time.perf_counter() - started < 0.5
    assert embedding.batches == [["what did Deng agree in 1979?"]]
    assert np.array_equal(vector, embedding.reference.embed_batch(["what did Deng agree in 1979?"])[0])


def test_questions_arriving_during_a_batch_share_the_next_one() -> None:
    embedding = RecordingEmbedding(delay=0.3)
    batcher = QueryBatcher(embedding, max_batch=32)
    texts = [f"question {n}" for n in range(8)]
    results = ask_together(batcher, texts)
    # The first question runs alone; the seven that queued meanwhile go as one batch.
    assert [len(batch) for batch in embedding.batches] == [1, 7]
    for text in texts:
        assert np.array_equal(results[text], embedding.reference.embed_batch([text])[0]), text


def test_batches_never_exceed_max_batch() -> None:
    embedding = RecordingEmbedding(delay=0.2)
    batcher = QueryBatcher(embedding, max_batch=3)
    texts = [f"q{n}" for n in range(8)]
    results = ask_together(batcher, texts)
    assert max(len(batch) for batch in embedding.batches) <= 3
    assert sorted(text for batch in embedding.batches for text in batch) == sorted(texts)
    assert all(isinstance(results[text], np.ndarray) for text in texts)


def test_a_failed_batch_fails_its_callers_and_the_next_batch_works() -> None:
    embedding = RecordingEmbedding(delay=0.2)
    embedding.fail_on = "poison"
    batcher = QueryBatcher(embedding, max_batch=32)
    results = ask_together(batcher, ["first", "poison", "neighbour"])
    assert isinstance(results["first"], np.ndarray)
    assert isinstance(results["poison"], RuntimeError) and isinstance(results["neighbour"], RuntimeError)
    embedding.fail_on = None
    assert isinstance(batcher.embed("after"), np.ndarray)


def test_repeated_questions_come_from_the_cache_and_cannot_be_changed() -> None:
    embedder = HashEmbedder()
    calls: list[Sequence[str]] = []
    original = embedder.embed_batch

    def counting(texts: Sequence[str]) -> Vectors:
        calls.append(texts)
        return original(texts)

    embedder._batcher = QueryBatcher(counting, max_batch=32)
    first = embedder.embed_query("who wrote the article?")
    second = embedder.embed_query("who wrote the article?")
    assert len(calls) == 1 and np.array_equal(first, second)
    with pytest.raises(ValueError):
        second[0] = 1.0


def test_the_cache_forgets_the_least_recently_used() -> None:
    cache = VectorCache(2)
    vectors = HashEmbedder().embed_batch(["a", "b", "c"])
    cache.put("a", vectors[0])
    cache.put("b", vectors[1])
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", vectors[2])
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
