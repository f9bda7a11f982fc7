"""The benchmarks' tables, saved for the README and put into it.

Each benchmark saves what it printed with `save(name, tables, notes)` to `bench/results/<name>.md` (a full run
only: a `--quick` run checks that a benchmark works and keeps the last full figures). `python -m bench.report`
(the last step of `make bench`) puts every saved block into the README between `<!-- bench:<name> -->` and
`<!-- /bench:<name> -->` (`eval.readme`), so the README's figures are the last run's, not copied by hand.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from eval.readme import README, MissingMarkerError, render, splice
from rag.settings import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def save(name: str, tables: Sequence[Table], notes: Sequence[str] = (), *, quick: bool = False) -> Path | None:
    """Save a full run's tables for the README (a quick run's figures are not the ones to report)."""
    if quick:
        return None
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(render(tables, notes), encoding="utf-8")
    return path


def update_readme(readme_path: Path = README, results_dir: Path = RESULTS_DIR) -> list[str]:
    """Put every saved block into the README; the names of the blocks updated."""
    text = readme_path.read_text(encoding="utf-8")
    updated = []
    for saved in sorted(results_dir.glob("*.md")):
        text = splice(text, f"bench:{saved.stem}", saved.read_text(encoding="utf-8"))
        updated.append(saved.stem)
    readme_path.write_text(text, encoding="utf-8")
    return updated


def main() -> None:
    """Regenerate the README's benchmark tables from bench/results/."""
    try:
        updated = update_readme()
    except MissingMarkerError as error:
        sys.exit(f"error: {error}")
    print(f"README benchmark blocks regenerated: {', '.join(updated) or 'none saved yet'}")


if __name__ == "__main__":
    main()
