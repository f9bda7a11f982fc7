"""The benchmarks' tables as Markdown, and the README's benchmark tables regenerated from them.

Each benchmark saves what it printed with `save(name, tables, notes)` to `bench/results/<name>.md` (a full run
only: a `--quick` run checks that a benchmark works and keeps the last full figures). `python -m bench.report`
(the last step of `make bench`) puts every saved block into the README between `<!-- bench:<name> -->` and
`<!-- /bench:<name> -->`, so the README's figures are the last run's, not copied by hand. The prose around
the markers, which reads the figures, stays as written.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table
from rich.text import Text

from rag.settings import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
README = PROJECT_ROOT / "README.md"


def _cell(value: object) -> str:
    text = value.plain if isinstance(value, Text) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    """A rich table as a Markdown table, its title (if any) as a line above it."""
    columns = table.columns
    header = "| " + " | ".join(_cell(c.header) for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    cells = [list(c.cells) for c in columns]
    body = ["| " + " | ".join(_cell(column[i]) for column in cells) + " |" for i in range(table.row_count)]
    title = [f"*{_cell(table.title)}*", ""] if table.title else []
    return "\n".join([*title, header, rule, *body])


def render(tables: Sequence[Table], notes: Sequence[str] = ()) -> str:
    """The Markdown block of one benchmark: its tables, then its notes as a list."""
    parts = [table_markdown(t) for t in tables]
    if notes:
        parts.append("\n".join(f"- {note}" for note in notes))
    return "\n\n".join(parts) + "\n"


def save(name: str, tables: Sequence[Table], notes: Sequence[str] = (), *, quick: bool = False) -> Path | None:
    """Save a full run's tables for the README (a quick run's figures are not the ones to report)."""
    if quick:
        return None
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(render(tables, notes), encoding="utf-8")
    return path


class MissingMarkerError(ValueError):
    """The README has no place for a saved benchmark block."""


def splice(readme: str, name: str, block: str) -> str:
    """`readme` with the text between `<!-- bench:name -->` and `<!-- /bench:name -->` replaced by `block`."""
    pattern = re.compile(rf"(<!-- bench:{re.escape(name)} -->\n).*?(<!-- /bench:{re.escape(name)} -->)", re.DOTALL)
    if not pattern.search(readme):
        raise MissingMarkerError(f"README has no <!-- bench:{name} --> … <!-- /bench:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + block + m.group(2), readme, count=1)


def update_readme(readme_path: Path = README, results_dir: Path = RESULTS_DIR) -> list[str]:
    """Put every saved block into the README; the names of the blocks updated."""
    text = readme_path.read_text(encoding="utf-8")
    updated = []
    for saved in sorted(results_dir.glob("*.md")):
        text = splice(text, saved.stem, saved.read_text(encoding="utf-8"))
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
