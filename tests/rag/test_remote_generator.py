"""The OpenAI-compatible generator against a real server: llama-cpp-python's own, started on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from index.store import PassageIndex
from rag.generators import GeneratorError, OpenAICompatibleGenerator
from rag.pipeline import Pipeline
from rag.settings import GeneratorKind, Settings
from rag.testing import LlamaServer, free_port


@pytest.fixture(scope="module")
def llama_server(model_file: Path) -> Iterator[str]:
    with LlamaServer(model_file) as server:
        yield server.base_url


class TestOpenAICompatibleGenerator:
    def test_streams_a_reply_from_a_real_server(self, llama_server: str) -> None:
        remote = OpenAICompatibleGenerator(llama_server, "none", "local", 60)
        pieces = list(remote.stream([{"role": "user", "content": "Reply with the single word: hello"}], 8))
        assert len(pieces) >= 1 and "hello" in "".join(pieces).lower()

    def test_pipeline_answers_through_the_remote_server(
        self, llama_server: str, settings: Settings, article_index: PassageIndex
    ) -> None:
        remote_settings = settings.with_overrides(generator=GeneratorKind.OPENAI, openai_base_url=llama_server)
        pipeline = Pipeline(remote_settings, article_index, OpenAICompatibleGenerator(llama_server, "x", "local", 60))
        answer = pipeline.ask("what did Deng agree in 1979?")
        assert not answer.abstained and "intelligence" in answer.answer.lower()
        assert "Deng" in answer.citations[0].text

    def test_unreachable_server_is_a_clear_error(self) -> None:
        remote = OpenAICompatibleGenerator(f"http://127.0.0.1:{free_port()}/v1", "x", "m", 5)
        with pytest.raises(GeneratorError, match="cannot reach the generator"):
            remote.complete([{"role": "user", "content": "hi"}], 4)
