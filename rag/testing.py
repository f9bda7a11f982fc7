"""Helpers for tests, demos and benchmarks: a scripted generator (no model, replies from a queue, as
simonw/llm's MockModel), and `rag serve` as a real process on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Generator as TextStream
from pathlib import Path
from typing import Self

import httpx
from typing_extensions import override

from rag.generators import Generator, PromptSize
from rag.types import ChatMessage


class ScriptedGenerator(Generator):
    """Replies in order from `replies`; each is a string or a function of the prompt's messages.

    `yes_probability` pops a reply too: a float is returned as it is, a string counts as yes/no.
    Every call's messages are kept in `calls` so a test can check what the model was asked.
    """

    def __init__(
        self, replies: Iterable[str | float | Callable[[list[ChatMessage]], str]] = (), default: str = ""
    ) -> None:
        self.replies: deque[str | float | Callable[[list[ChatMessage]], str]] = deque(replies)
        self.default = default
        self.calls: list[list[ChatMessage]] = []
        self.closed_early = 0
        self._lock = threading.Lock()

    @property
    @override
    def model_name(self) -> str:
        return "scripted"

    def _next(self, messages: list[ChatMessage]) -> str | float:
        with self._lock:
            self.calls.append(messages)
            reply = self.replies.popleft() if self.replies else self.default
        return reply(messages) if callable(reply) else reply

    def stream(
        self, messages: list[ChatMessage], max_tokens: int, stop: list[str] | None = None
    ) -> TextStream[str, None, None]:
        """The next reply, word by word (spaces kept); a stream closed before its last word is counted in
        `closed_early`."""
        reply = str(self._next(messages))
        words = reply.split(" ")
        finished = False
        try:
            for i, word in enumerate(words):
                yield word if i == 0 else f" {word}"
            finished = True
        finally:
            if not finished:
                self.closed_early += 1

    @override
    def prompt_size(self, messages: list[ChatMessage]) -> PromptSize | None:
        """Words stand in for tokens, and nothing is cached: every word is new."""
        words = sum(len(message["content"].split()) for message in messages)
        return PromptSize(words, words)

    @override
    def yes_probability(self, messages: list[ChatMessage]) -> float:
        reply = self._next(messages)
        if isinstance(reply, float):
            return reply
        return 1.0 if str(reply).strip().lower().startswith("yes") else 0.0


# ---- processes for tests and benchmarks ------------------------------------------------------------
def free_port() -> int:
    """A loopback port nobody is listening on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], bool], seconds: float, what: str, process: subprocess.Popen[bytes] | None = None
) -> float:
    """Poll `check` until it holds; seconds taken. RuntimeError after `seconds`, or at once if `process`
    (the thing being waited for) has exited."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with status {process.returncode}")
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"{what}: not within {seconds:g} s")
        time.sleep(0.05)


class _ServiceProcess:
    """A server process on a free loopback port, in its own process group: `start()` waits until `ready()`,
    `stop()` asks it to end (SIGTERM, then SIGKILL after 30 s), `kill()` ends it and its children at once."""

    what = "a service"

    def __init__(
        self,
        log: Path | None = None,
        start_timeout_s: float = 120,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.log = log
        self.start_timeout_s = start_timeout_s
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The argv that starts the service."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the service answers now; `start` polls it (an httpx.HTTPError counts as not yet)."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start it and wait until it is ready (RuntimeError, with the log's path, if it is not)."""
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        # Its own process group, so that kill() takes `--workers` children down with it, as a host crash would.
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.cwd,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        where = f" (log: {self.log})" if self.log else ""
        try:
            wait_until(self.ready, self.start_timeout_s, f"{self.what} on port {self.port}{where}", self.process)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL to the process and its children, as a crash would: nothing of their shutdown runs."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServeProcess(_ServiceProcess):
    """`rag serve` as a real process on a free loopback port (`with ServeProcess(env) as server:`).

    `env` is added to this process's environment (RAG_* settings); relative default paths (var/…) are
    under `cwd` (default: the project). The server's output goes to `log` (a file path) so a failing
    test can show it.
    """

    what = "rag serve"

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        args: Sequence[str] = (),
        log: Path | None = None,
        start_timeout_s: float = 180,
        cwd: Path | None = None,
    ) -> None:
        from rag.settings import PROJECT_ROOT

        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
        super().__init__(log, start_timeout_s, environment, cwd or PROJECT_ROOT)
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args]

    @override
    def command(self) -> list[str]:
        return self.args

    @override
    def ready(self) -> bool:
        return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200


class MilvusLiteServer(_ServiceProcess):
    """`milvus-lite server` — the stand-in for a Milvus standalone that several processes share."""

    what = "milvus-lite server"

    def __init__(self, data_dir: Path, log: Path | None = None) -> None:
        super().__init__(log, start_timeout_s=60)
        self.data_dir = data_dir
        self.uri = f"http://127.0.0.1:{self.port}"

    @override
    def command(self) -> list[str]:
        binary = str(Path(sys.executable).parent / "milvus-lite")
        return [binary, "server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port)]

    @override
    def ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True


class LlamaServer(_ServiceProcess):
    """llama.cpp's own OpenAI-compatible server (`python -m llama_cpp.server`) over a GGUF file — the
    stand-in for a vLLM host. Its model is called `local`; `base_url` ends in /v1."""

    what = "llama_cpp.server"

    def __init__(self, model_path: Path, n_ctx: int = 2048, log: Path | None = None) -> None:
        super().__init__(log, start_timeout_s=180)
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    @override
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(os.cpu_count() or 2),
        ]

    @override
    def ready(self) -> bool:
        return httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200
