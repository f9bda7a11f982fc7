"""The llama.cpp generator as a part of a multi-threaded program (real model, real load)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.settings import PROJECT_ROOT, Settings

# Loads the model on a thread while the main thread prints numbered lines to stdout (a pipe), as `rag chat` prints
# "Answer cancelled." and its prompt while the first question's model loads, and a server logs while it warms up.
_LOAD_WHILE_PRINTING = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from rag.generators import LlamaCppGenerator

    generator = LlamaCppGenerator(Path(sys.argv[1]), Path(sys.argv[2]), 2, 2048)
    loader = threading.Thread(target=generator.warm_up)
    loader.start()
    printed = 0
    while loader.is_alive() or printed < 20:
        printed += 1
        print(f"tick {printed}", flush=True)
        loader.join(0.01)
    print(f"printed {printed}", flush=True)
    """
)


@pytest.mark.slow
def test_what_other_threads_print_while_the_model_loads_is_not_lost(model_file: Path, settings: Settings) -> None:
    # llama-cpp-python's verbose=False pointed file descriptors 1 and 2 at /dev/null for the whole load: the ticks
    # printed meanwhile never arrived (and in `rag chat`, a Ctrl-C's "Answer cancelled." and the next prompt).
    run = subprocess.run(
        [sys.executable, "-c", _LOAD_WHILE_PRINTING, str(model_file), str(settings.model_cache_dir)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = run.stdout.splitlines()
    printed = int(lines[-1].removeprefix("printed "))
    assert printed > 20, "the load was too quick to overlap the printing"
    assert [line for line in lines if line.startswith("tick ")] == [f"tick {n}" for n in range(1, printed + 1)]
