"""The chatbot as an OpenAI model, driven by the official `openai` client against the running server."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import LiveServer

DENG = "what did Deng agree in 1979?"


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", timeout=120)


class TestOpenAICompatible:
    def test_models_lists_the_chatbot(self, client: openai.OpenAI) -> None:
        assert [m.id for m in client.models.list()] == ["rag-chatbot"]

    def test_non_stream_completion_carries_citations(self, client: openai.OpenAI) -> None:
        completion = client.chat.completions.create(model="rag-chatbot", messages=[{"role": "user", "content": DENG}])
        content = completion.choices[0].message.content or ""
        assert "intelligence" in content.lower() and "[1]" in content
        extra = completion.model_extra or {}
        assert extra["citations"][0]["n"] == 1 and "Deng" in extra["citations"][0]["text"]

    def test_stream_completion(self, client: openai.OpenAI) -> None:
        stream = client.chat.completions.create(
            model="rag-chatbot", messages=[{"role": "user", "content": DENG}], stream=True
        )
        pieces, last = [], None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            last = chunk
        assert last is not None and last.choices[0].finish_reason == "stop"
        rag = (last.model_extra or {})["rag"]
        # Only checked text reaches `content`: exactly the final answer, never a draft that was taken back.
        assert "".join(pieces) == rag["answer"]
        assert "intelligence" in rag["answer"].lower()
        assert (last.model_extra or {})["citations"], "the final chunk carries the citations"

    def test_stream_drafts_only_on_request_and_outside_content(self, client: openai.OpenAI) -> None:
        stream = client.chat.completions.create(
            model="rag-chatbot",
            messages=[{"role": "user", "content": "What is the population of Vladivostok?"}],
            stream=True,
            extra_body={"rag_stream_drafts": True},
        )
        content, drafts, last = [], [], None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                content.append(chunk.choices[0].delta.content)
            if (chunk.model_extra or {}).get("rag_draft"):
                drafts.append(chunk.model_extra["rag_draft"])  # type: ignore[index]
            last = chunk
        assert last is not None
        rag = (last.model_extra or {})["rag"]
        assert "".join(content) == rag["answer"]
        if rag["abstained"]:
            assert rag["answer"] == "The documents don't say."

    def test_conversation_history_is_used_for_follow_ups(self, client: openai.OpenAI) -> None:
        completion = client.chat.completions.create(
            model="rag-chatbot",
            messages=[
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "Who resigned as president of the Soviet Union in 1991?"},
                {"role": "assistant", "content": "Mikhail Gorbachev resigned on Dec. 25, 1991 [1]."},
                {"role": "user", "content": "and on what exact date did he do that?"},
            ],
        )
        rag = (completion.model_extra or {})["rag"]
        assert "gorbachev" in rag["standalone_question"].lower()
        assert "25" in (completion.choices[0].message.content or "")

    def test_last_message_must_be_the_user(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.UnprocessableEntityError):
            client.chat.completions.create(model="rag-chatbot", messages=[{"role": "assistant", "content": "hi"}])
