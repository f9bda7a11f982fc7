"""The README states what the code does: its settings table is the one `Settings` generates."""

from __future__ import annotations

from rag.settings import PROJECT_ROOT, settings_table


def test_readme_settings_table_is_generated_from_the_settings() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("| variable | default | what it does |")
    table = readme[start : readme.index("\n\n", start) + 1]
    assert table == settings_table(), "regenerate it: python -m rag.settings (and paste it into the README)"
