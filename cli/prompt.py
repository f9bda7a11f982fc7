"""Ctrl-C in the terminal: at the chat prompt (never lost) and while an answer is made (never mid-display)."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TextIO

from rich.console import Console


class PromptReader:
    """Prints the prompt and reads one line; a Ctrl-C at the prompt always raises `KeyboardInterrupt`.

    Python's `input()` blocks in a `read()` and only looks at signals when that read is interrupted. A Ctrl-C
    that lands after the interpreter's last signal check but before the read starts (the prompt has just been
    printed) interrupts nothing and is ignored until the next Enter: under load `rag chat` hung this way. So on
    a terminal the reader first waits, in `select`, for either a keystroke or a byte on the signal wake-up
    pipe (`signal.set_wakeup_fd`), which the C-level handler writes however early the signal came; Python's own
    handler then raises `KeyboardInterrupt` as soon as the wait returns. Use it as a context manager: the
    wake-up pipe is installed on entry and the previous one restored on exit.
    """

    def __init__(self, console: Console, stdin: TextIO | None = None) -> None:
        self.console = console
        self.stdin = stdin if stdin is not None else sys.stdin
        self._wake_read: int | None = None
        self._wake_write: int | None = None
        self._previous_wakeup_fd = -1

    def __enter__(self) -> PromptReader:
        # Only the main thread can own the wake-up fd, and only a terminal is read unbuffered (a pipe's lines
        # may sit in Python's buffer where select cannot see them, and there nobody presses Ctrl-C anyway).
        if threading.current_thread() is threading.main_thread() and self.stdin.isatty():
            self._wake_read, self._wake_write = os.pipe()
            os.set_blocking(self._wake_read, False)
            os.set_blocking(self._wake_write, False)
            self._previous_wakeup_fd = signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._wake_read is not None and self._wake_write is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            os.close(self._wake_read)
            os.close(self._wake_write)
            self._wake_read = self._wake_write = None

    def read(self, prompt: str) -> str:
        """Print `prompt` (rich markup) and return the line typed, without its newline.

        Raises `EOFError` on Ctrl-D and `KeyboardInterrupt` on Ctrl-C, whenever during the prompt it comes.
        """
        if self._wake_read is None:
            return self.console.input(prompt)
        self._drain()  # signals from before the prompt were already handled where they arrived
        self.console.print(prompt, end="")
        stdin_fd = self.stdin.fileno()
        while True:
            # A pending SIGINT makes the wake-up pipe readable; Python runs its handler (which raises
            # KeyboardInterrupt) when this call returns. Other signals (a window resize) just loop.
            readable, _, _ = select.select([stdin_fd, self._wake_read], [], [])
            if stdin_fd in readable:
                return input()
            self._drain()

    def _drain(self) -> None:
        assert self._wake_read is not None
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass


class DeferredInterrupt:
    """While active, Ctrl-C only marks `pressed`; the code polls it and stops where it is safe to.

    A `KeyboardInterrupt` raised at an arbitrary point of the terminal's thread can land inside rich's live
    display while it holds its lock, and the display's refresh thread then waits on that lock for ever (a
    cancelled answer hung this way under load). Outside the main thread it does nothing: only the main thread
    receives Python's signal handlers.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Callable[[int, FrameType | None], object] | int | None = None
        self._installed = False

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._press)
            self._installed = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _press(self, number: int, frame: FrameType | None) -> None:
        # Only a flag: the handler runs between any two bytecodes of the main thread, locks held or not.
        self.pressed = True
