"""`bench.report`: a benchmark's printed table becomes Markdown, and the README's marked blocks are replaced by the
last full run's, leaving the prose around them alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.table import Table
from rich.text import Text

from bench import report
from eval import readme


def small_table() -> Table:
    table = Table(title="Load on loopback")
    for column in ("route", "req/s"):
        table.add_column(column)
    table.add_row("/api/search", "296.0")
    table.add_row(Text("/api/ask | stream"), "0.3")
    return table


def test_a_rich_table_renders_as_markdown_with_its_title() -> None:
    assert readme.table_markdown(small_table()) == (
        "*Load on loopback*\n\n| route | req/s |\n|---|---|\n| /api/search | 296.0 |\n| /api/ask \\| stream | 0.3 |"
    )


def test_notes_follow_the_tables_as_a_list() -> None:
    block = readme.render([small_table()], ["peak server RSS: 2340 MB"])
    assert block.endswith("| 0.3 |\n\n- peak server RSS: 2340 MB\n")


def test_splice_replaces_only_the_named_block() -> None:
    text = "intro\n<!-- bench:load -->\nold table\n<!-- /bench:load -->\nreading of it\n<!-- bench:run -->\nx\n<!-- /bench:run -->\n"
    spliced = readme.splice(text, "bench:load", "new table\n")
    assert spliced == text.replace("old table\n", "new table\n")


def test_a_block_without_its_markers_is_an_error_naming_it() -> None:
    with pytest.raises(readme.MissingMarkerError, match="bench:knobs"):
        readme.splice("no markers here\n", "bench:knobs", "table\n")


def test_update_readme_puts_every_saved_block_in_place(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "load.md").write_text("| a |\n|---|\n| 1 |\n")
    readme_file = tmp_path / "README.md"
    readme_file.write_text(
        "# Benchmarks\n<!-- bench:load -->\n| a |\n|---|\n| 0 |\n<!-- /bench:load -->\nprose stays\n"
    )
    assert report.update_readme(readme_file, results) == ["load"]
    assert (
        readme_file.read_text()
        == "# Benchmarks\n<!-- bench:load -->\n| a |\n|---|\n| 1 |\n<!-- /bench:load -->\nprose stays\n"
    )


def test_a_quick_run_saves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path / "results")
    assert report.save("load", [small_table()], quick=True) is None
    assert not (tmp_path / "results").exists()
    saved = report.save("load", [small_table()])
    assert saved is not None and saved.read_text().startswith("*Load on loopback*")
