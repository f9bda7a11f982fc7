"""Tables printed by a run, as Markdown, and the README's marked blocks regenerated from them.

A block is the text between `<!-- <kind>:<name> -->` and `<!-- /<kind>:<name> -->` in the README: `rag eval --readme`
fills `eval:<gold set>` blocks and `python -m bench.report` the `bench:<benchmark>` ones. The prose around the
markers, which reads the figures, stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table
from rich.text import Text

from rag.errors import UserError
from rag.settings import PROJECT_ROOT

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
    """The Markdown block of one run: its tables, then its notes as a list."""
    parts = [table_markdown(t) for t in tables]
    if notes:
        parts.append("\n".join(f"- {note}" for note in notes))
    return "\n\n".join(parts) + "\n"


class MissingMarkerError(UserError, ValueError):
    """The README has no place for a block."""


def splice(readme: str, name: str, block: str) -> str:
    """`readme` with the text between `<!-- name -->` and `<!-- /name -->` replaced by `block` (`name` is
    `kind:what`, e.g. `bench:load`)."""
    pattern = re.compile(rf"(<!-- {re.escape(name)} -->\n).*?(<!-- /{re.escape(name)} -->)", re.DOTALL)
    if not pattern.search(readme):
        raise MissingMarkerError(f"README has no <!-- {name} --> … <!-- /{name} --> block")
    return pattern.sub(lambda m: m.group(1) + block + m.group(2), readme, count=1)


def update_block(name: str, block: str, readme_path: Path | None = None) -> None:
    """Replace one marked block of the README file (the project's README unless told)."""
    path = readme_path or README
    path.write_text(splice(path.read_text(encoding="utf-8"), name, block), encoding="utf-8")
