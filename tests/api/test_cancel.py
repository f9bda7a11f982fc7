"""A client that goes away stops its answer: the generator is closed and the slot is free for the next question.
Real server and real index; the generator is a scripted fake that writes slowly, because a real model's timing
cannot be controlled precisely enough to disconnect mid-answer."""

from __future__ import annotations

import json
import time
from collections.abc import Generator as TextStream
from collections.abc import Iterator

import httpx
import pytest

from api.app import create_app
from index.store import PassageIndex
from rag.pipeline import Pipeline
from rag.settings import Settings
from rag.testing import ScriptedGenerator, wait_until
from rag.types import ChatMessage
from tests.conftest import LiveServer

ANSWER = "He agreed to expand cooperation in collecting and sharing intelligence on the Soviet Union [1]."


class SlowScripted(ScriptedGenerator):
    """Writes one word every 50 ms."""

    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None
    ) -> TextStream[str, None, None]:
        for piece in super().stream(messages, max_tokens, stop):
            time.sleep(0.05)
            yield piece


@pytest.fixture
def slow_server(settings: Settings, article_index: PassageIndex) -> Iterator[tuple[LiveServer, SlowScripted]]:
    generator = SlowScripted(default=" ".join([ANSWER] * 10))
    own = settings.with_overrides(max_concurrent_generations=1, max_queued_generations=0)
    with LiveServer(create_app(own, Pipeline(own, article_index, generator))) as server:
        yield server, generator


def test_closing_the_stream_stops_the_generation_and_frees_the_slot(
    slow_server: tuple[LiveServer, SlowScripted],
) -> None:
    server, generator = slow_server
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/api/ask/stream", json={"question": "What did Deng agree in 1979?"}) as response:
            for line in response.iter_lines():
                if line.startswith("event: token"):
                    break  # the user pressed Stop
        deadline = time.monotonic() + 10
        while generator.closed_early == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert generator.closed_early == 1
        # With one slot and no queue, a still-running answer would make this a 503.
        generator.default = ANSWER
        answer = client.post("/api/ask", json={"question": "What did Deng agree in 1979?"})
        assert answer.status_code == 200, answer.text
        assert not answer.json()["abstained"]


def test_a_disconnected_plain_ask_is_stopped(slow_server: tuple[LiveServer, SlowScripted]) -> None:
    server, generator = slow_server
    with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=server.url, timeout=0.5) as client:
        client.post("/api/ask", json={"question": "What did Deng agree in 1979?"})
    deadline = time.monotonic() + 10
    while generator.closed_early == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert generator.closed_early == 1


def test_openai_stream_sends_only_checked_text(slow_server: tuple[LiveServer, SlowScripted]) -> None:
    server, generator = slow_server
    generator.default = "The population of Vladivostok is 1,000,000 [1]."
    contents, final = [], None
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "What is the population of Vladivostok?"}], "stream": True},
        ) as response,
    ):
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            content = chunk["choices"][0]["delta"].get("content")
            if content:
                contents.append(content)
            if "rag" in chunk:
                final = chunk["rag"]
    assert final is not None and final["abstained"]
    assert "1,000,000" not in "".join(contents), "a draft that failed the checks never reaches content"
    assert "".join(contents) == "The documents don't say."


def test_metrics_time_a_stream_to_its_last_byte(slow_server: tuple[LiveServer, SlowScripted]) -> None:
    server, generator = slow_server
    generator.default = ANSWER  # 15 words at 50 ms: the stream lasts ≥ 0.75 s, its headers leave at once
    with httpx.Client(base_url=server.url, timeout=30) as client:
        started = time.monotonic()
        with client.stream("POST", "/api/ask/stream", json={"question": "What did Deng agree in 1979?"}) as response:
            lines = list(response.iter_lines())
        assert any(line.startswith("event: done") for line in lines), lines
        streamed = time.monotonic() - started

        def stream_seconds() -> float | None:
            return next(
                (
                    float(line.split()[-1])
                    for line in client.get("/metrics").text.splitlines()
                    if line.startswith('rag_request_seconds_sum{route="/api/ask/stream"}')
                ),
                None,
            )

        # The middleware records the request after its last byte has gone: the client can ask first.
        wait_until(lambda: stream_seconds() is not None, 2.0, "the stream's timing in /metrics")
        timed = stream_seconds()
    assert timed is not None and 0.6 <= timed <= streamed + 0.1
