"""A FAKE generator for fast, deterministic browser tests of the page's states.

It replies from a script instead of running a model, so a test can hold the draft on screen, let the
checks pass or fail, or keep writing until the client disconnects. Everything around it is real: the
uvicorn server, the FAISS index of the article, the embedder, retrieval, the relevance gate, the
citation checks and the browser. The real model is exercised by tests/web/test_chat_page.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rag.generators import Generator

ABSTAIN = "The documents don't say."


@dataclass(frozen=True)
class Script:
    """What the fake writes for one question, and what it answers when asked to check that draft."""

    draft: str
    verdict: str = "yes"
    endless: bool = False


class ScriptedGenerator(Generator):
    """FAKE: answers from `scripts` (keyed by a lower-case phrase of the question), never from a model.

    `hold_draft` and `hold_checks` are gates a test can close to freeze the page in the "draft written,
    not yet checked" state; they are open by default.
    """

    def __init__(self, scripts: dict[str, Script], token_delay_s: float = 0.03) -> None:
        self.scripts = {key.lower(): script for key, script in scripts.items()}
        self.token_delay_s = token_delay_s
        self.hold_draft = threading.Event()
        self.hold_checks = threading.Event()
        self.hold_draft.set()
        self.hold_checks.set()
        self.draft_written = threading.Event()
        self.closed_early = 0
        self.answers_started = 0
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return "scripted-fake"

    def release(self) -> None:
        """Open both gates."""
        self.hold_draft.set()
        self.hold_checks.set()

    def hold(self) -> None:
        """Close both gates: the next answer stops after its draft and again before its check verdict."""
        self.draft_written.clear()
        self.hold_draft.clear()
        self.hold_checks.clear()

    def _script_for(self, messages: list[Any]) -> Script | None:
        text = str(messages[-1]["content"]) if messages else ""
        # The question is quoted on "Question:" lines; matching only those keeps passage text out of it.
        lines = [line for line in text.splitlines() if line.lower().startswith("question:")]
        haystack = (lines[-1] if lines else text).lower()
        for key, script in self.scripts.items():
            if key in haystack:
                return script
        return None

    def stream(self, messages: list[Any], max_tokens: int, stop: list[str] | None = None) -> Iterator[str]:
        system = str(messages[0]["content"]).lower() if messages and messages[0]["role"] == "system" else ""
        # Which request this is, from its system prompt: a follow-up rewrite, a yes/no check, or an answer.
        if "rewrite" in system:
            yield str(messages[-1]["content"]).rsplit("Last question:", 1)[-1].strip()
            return
        if "yes or no" in system:
            self.hold_checks.wait(timeout=60)
            script = self._script_for(messages)
            yield script.verdict if script else "no"
            return
        script = self._script_for(messages) or Script(ABSTAIN)
        with self._lock:
            self.answers_started += 1
        finished = False
        try:
            if script.endless:
                for n in range(600):
                    time.sleep(0.1)
                    yield f" {script.draft} {n}"
            else:
                words = script.draft.split(" ")
                for n, word in enumerate(words):
                    time.sleep(self.token_delay_s)
                    yield word if n == 0 else f" {word}"
                self.draft_written.set()
                self.hold_draft.wait(timeout=60)
            finished = True
        finally:
            if not finished:
                with self._lock:
                    self.closed_early += 1
