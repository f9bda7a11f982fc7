"""Text generators behind one interface: the in-process llama.cpp model, or any OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Generator as TextStream
from pathlib import Path
from typing import Any, TypedDict

import httpx

from rag.models import QWEN_15B, assemble, check_metadata
from rag.settings import GeneratorKind, Settings


class ChatMessage(TypedDict):
    role: str
    content: str


class GeneratorError(RuntimeError):
    """The generator could not produce an answer (server down, model missing)."""


class Generator(ABC):
    """Streams the assistant's reply to a list of chat messages, greedily (temperature 0)."""

    @property
    @abstractmethod
    def model_name(self) -> str: ...

    def warm_up(self) -> None:  # noqa: B027 - optional hook; remote generators have nothing to load
        """Load weights now rather than on the first question."""

    @abstractmethod
    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None, lane: str = "answer"
    ) -> TextStream[str, None, None]:
        """Yield the reply's text piece by piece. `lane` separates answers from checks (see below)."""

    def complete(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None, lane: str = "answer"
    ) -> str:
        return "".join(self.stream(messages, max_tokens, stop, lane))


class LlamaCppGenerator(Generator):
    """One llama.cpp model in this process, with one context per lane; calls are serialised.

    llama-cpp-python keeps a context's previous prompt and re-evaluates only what differs, so each
    lane's fixed system prompt and worked examples are decoded once, not per request. Answers and
    checks (verification, question rewriting, re-scoring) have different prefixes, so they get
    separate contexts; the weights are memory-mapped once and shared by both.
    """

    def __init__(self, model_path: Path | None, cache_dir: Path, threads: int, context: int) -> None:
        self._explicit_path = model_path
        self._cache_dir = cache_dir
        self._threads = threads
        self._context = context
        self._contexts: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        # Two contexts compete for the same cores: one decodes at a time.
        self._decode_lock = threading.Lock()
        self.path: Path | None = model_path

    @property
    def model_name(self) -> str:
        return self.path.name if self.path else QWEN_15B.file_name

    def warm_up(self) -> None:
        self._context_for("answer")

    def _resolve_path(self) -> Path:
        if self._explicit_path is not None:
            if not self._explicit_path.is_file():
                raise GeneratorError(f"RAG_MODEL_PATH={self._explicit_path} is not a file")
            return self._explicit_path
        return assemble(QWEN_15B, self._cache_dir)

    def _context_for(self, lane: str) -> Any:
        with self._load_lock:
            if lane in self._contexts:
                return self._contexts[lane]
            from llama_cpp import Llama

            path = self.path if self._contexts and self.path else self._resolve_path()
            llama = Llama(
                model_path=str(path),
                n_ctx=self._context,
                n_threads=self._threads,
                n_threads_batch=self._threads,
                n_batch=512,
                use_mmap=True,
                verbose=False,
            )
            if self._explicit_path is None and not self._contexts:
                check_metadata(llama.metadata, QWEN_15B, path)
            self.path = path
            self._contexts[lane] = llama
            return llama

    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None, lane: str = "answer"
    ) -> TextStream[str, None, None]:
        llama = self._context_for(lane)
        with self._decode_lock:
            chunks = llama.create_chat_completion(
                messages=messages,
                temperature=0.0,
                top_k=1,
                max_tokens=max_tokens,
                stop=stop or [],
                stream=True,
            )
            for chunk in chunks:
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    yield text


class OpenAICompatibleGenerator(Generator):
    """Any server speaking the OpenAI chat-completions API (vLLM, llama.cpp's server, Ollama, this one)."""

    def __init__(self, base_url: str, api_key: str, model: str, timeout_s: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            headers={"Authorization": f"Bearer {api_key}"},
        )

    @property
    def model_name(self) -> str:
        return self._model

    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None, lane: str = "answer"
    ) -> TextStream[str, None, None]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": max_tokens,
            "stream": True,
        }
        if stop:
            body["stop"] = stop
        url = f"{self._base_url}/chat/completions"
        try:
            with self._client.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise GeneratorError(f"{url} answered {response.status_code}: {response.text[:300]}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[len("data:") :].strip()
                    if payload == "[DONE]":
                        break
                    choices = json.loads(payload).get("choices") or []
                    text = choices[0].get("delta", {}).get("content") if choices else None
                    if text:
                        yield text
        except httpx.HTTPError as error:
            raise GeneratorError(f"cannot reach the generator at {url}: {error}") from error


def make_generator(settings: Settings) -> Generator:
    if settings.generator is GeneratorKind.OPENAI:
        return OpenAICompatibleGenerator(
            settings.openai_base_url,
            settings.openai_api_key,
            settings.openai_model,
            settings.openai_timeout_s,
        )
    return LlamaCppGenerator(
        settings.model_path,
        settings.model_cache_dir,
        settings.llm_threads,
        settings.llm_context,
    )
