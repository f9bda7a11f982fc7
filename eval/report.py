"""The evaluation's human-facing output: terminal tables (scorecard, ablation grid, SQuAD) and a self-contained
HTML report. Which metrics each shows, in what order and how they are printed comes from `eval.registry`."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console
from rich.table import Table

from eval.registry import METRICS, MISSING, View, format_value
from eval.runner import ItemResult, Scorecard


def print_scorecards(cards: Sequence[Scorecard], console: Console | None = None, gold_name: str = "article") -> Table:
    """The terminal scorecard (the registry's terminal metrics, latency and prompt sizes), then each headline;
    the table printed."""
    console = console or Console()
    table = Table(title=f"Scorecard ({gold_name} gold set)")
    table.add_column("metric")
    for card in cards:
        table.add_column(card.name, justify="right")
    for metric in METRICS.shown_in(View.TERMINAL):
        values = [card.metrics.get(metric.name) for card in cards]
        if any(value is not None for value in values):
            table.add_row(metric.name, *map(metric.format, values))
    for card_field, names, unit in (
        ("latency_ms", ("total", "first_token_ms"), "ms"),
        (
            "prompt_tokens",
            ("rewrite_prompt", "answer_prompt", "answer_prefill", "judge_prompt", "judge_prefill"),
            "tokens",
        ),
    ):
        for name in names:
            spreads = [getattr(card, card_field).get(name) for card in cards]
            if any(spreads):
                cells = [f"{s['median']:.0f}/{s['p95']:.0f}" if s else MISSING for s in spreads]
                table.add_row(f"{name} p50/p95 {unit}", *cells)
    console.print(table)
    # The default configuration's headline comes last, so it is the final line of the output.
    for card in [*cards[1:], *cards[:1]]:
        console.print(card.headline(), highlight=False, soft_wrap=True)
    return table


def _png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _by_type_plot(card: Scorecard) -> str:
    kinds = list(card.by_type)
    keys = [metric.name for metric in METRICS.shown_in(View.BY_TYPE_PLOT)]
    figure, axis = plt.subplots(figsize=(9, 3.6))
    width = 0.2
    for offset, key in enumerate(keys):
        values = [card.by_type[k].get(key) or 0.0 for k in kinds]
        axis.bar([i + offset * width for i in range(len(kinds))], values, width, label=key)
    axis.set_xticks([i + 1.5 * width for i in range(len(kinds))], kinds, rotation=30, ha="right")
    axis.set_ylim(0, 1.05)
    axis.set_title(f"{card.name}: metrics by question type")
    axis.legend(fontsize=8, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.08))
    return _png(figure)


def _latency_plot(results_by_run: dict[str, Sequence[ItemResult]]) -> str:
    figure, axis = plt.subplots(figsize=(9, 3.2))
    labels, data = [], []
    for name, results in results_by_run.items():
        for stage in ("retrieve_ms", "generate_ms", "total"):
            values = [r.timings_ms[stage] for r in results if stage in r.timings_ms]
            if values:
                labels.append(f"{name}\n{stage}")
                data.append(values)
    if data:
        axis.boxplot(data, tick_labels=labels, orientation="horizontal")
    axis.set_xlabel("milliseconds")
    axis.set_title("Latency per stage")
    return _png(figure)


def _failure_html(result: ItemResult) -> str:
    citations = (
        "".join(f"<li><b>[{c.n}]</b> {html.escape(c.text)}</li>" for c in result.citations) or "<li><i>none</i></li>"
    )
    evidence = "".join(f"<li>{html.escape(e)}</li>" for e in result.evidence) or "<li><i>(unanswerable)</i></li>"
    failed = ", ".join(f"{name}={value:.2f}" for name, value in _failed_scores(result))
    abstained = f"<i>(abstained: {html.escape(result.abstain_reason or '')})</i>" if result.abstained else ""
    return f"""<details class="failure"><summary><code>{html.escape(result.id)}</code> [{result.type}]
{html.escape(result.question)} <span class="bad">{html.escape(failed)}</span></summary>
<p><b>Answer:</b> {html.escape(result.answer or "")} {abstained}</p>
<p><b>Gold answers:</b> {html.escape(" | ".join(result.gold_answers) or MISSING)}</p>
<p><b>Citations:</b></p><ul>{citations}</ul><p><b>Gold evidence:</b></p><ul>{evidence}</ul></details>"""


def _failed_scores(result: ItemResult) -> list[tuple[str, float]]:
    """The item's scores that its metrics count as a failure, in registry order."""
    return [
        (metric.name, value)
        for metric in METRICS.item_metrics
        if (value := result.scores.get(metric.name)) is not None and metric.fails_item(value)
    ]


def write_html_report(
    path: Path,
    cards: Sequence[Scorecard],
    results_by_run: dict[str, Sequence[ItemResult]],
    extra_sections: Sequence[str] = (),
) -> Path:
    """The self-contained HTML report: every registered metric, plots, extra sections, the main run's failures."""
    rows = "".join(
        f"<tr><th>{metric.name}</th>{''.join(f'<td>{metric.format(c.metrics.get(metric.name))}</td>' for c in cards)}"
        "</tr>"
        for metric in METRICS
    )
    header = "".join(f"<th>{html.escape(c.name)}</th>" for c in cards)
    main = cards[0]
    failures = [r for r in results_by_run.get(main.name, []) if _failed_scores(r)]
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Evaluation report</title>
<style>body{{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#1b1f24}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccd;padding:.25rem .6rem;text-align:right}}
th:first-child{{text-align:left}}.bad{{color:#b00020;font-size:.85em}}details{{margin:.4rem 0;padding:.4rem;
border:1px solid #e3e3ea;border-radius:6px}}img{{max-width:100%}}code{{background:#f2f2f6}}</style></head><body>
<h1>Evaluation report</h1>
<p>Citation metrics are judged by <b>evidence overlap</b> (a cited passage supports the answer when it holds a gold
evidence string): no NLI model installs offline here (see docs/models.md).</p>
<h2>Scorecard</h2><table><tr><th>metric</th>{header}</tr>{rows}</table>
<h2>By question type ({html.escape(main.name)})</h2>{_by_type_plot(main)}
<h2>Latency</h2>{_latency_plot(results_by_run)}
{"".join(extra_sections)}
<h2>Failures of {html.escape(main.name)} ({len(failures)} of {main.items})</h2>
{"".join(_failure_html(r) for r in failures) or "<p>None.</p>"}
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def grid_section(rows: Sequence[tuple[str, Scorecard]]) -> str:
    """A table and a plot of an ablation grid (the registry's grid metrics; the plot shows the first three)."""
    metrics = METRICS.shown_in(View.GRID)
    header = "".join(f"<th>{metric.name}</th>" for metric in metrics)
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        f"{''.join(f'<td>{metric.format(card.metrics.get(metric.name))}</td>' for metric in metrics)}</tr>"
        for label, card in rows
    )
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    for offset, metric in enumerate(metrics[:3]):
        axis.barh(
            [i + offset * 0.25 for i in range(len(rows))],
            [card.metrics.get(metric.name) or 0.0 for _, card in rows],
            0.25,
            label=metric.name,
        )
    axis.set_yticks([i + 0.25 for i in range(len(rows))], [label for label, _ in rows], fontsize=8)
    axis.set_xlim(0, 1.05)
    axis.legend(fontsize=8)
    axis.set_title("Ablation grid")
    return f"<h2>Ablation grid</h2><table><tr><th>setting</th>{header}</tr>{body}</table>{_png(figure)}"


def grid_table(rows: Sequence[tuple[str, Scorecard]]) -> Table:
    """The ablation grid for the terminal: the registry's grid metrics and the median answer time."""
    metrics = METRICS.shown_in(View.GRID)
    table = Table("setting", *[metric.name for metric in metrics], "p50 ms", title="Ablation grid")
    for label, card in rows:
        table.add_row(
            label,
            *[metric.format(card.metrics.get(metric.name)) for metric in metrics],
            f"{card.latency_ms.get('total', {}).get('median', float('nan')):.0f}",
        )
    return table


def squad_table(summaries: Mapping[str, Mapping[str, float | None]], source: str) -> Table:
    """The SQuAD benchmark's figures (SQuAD v2 definitions) for the terminal: a column per run of the same sample
    (the default settings first, then the plain baseline)."""
    first = next(iter(summaries.values()))
    table = Table("metric", *summaries, title=f"SQuAD 2.0 ({source}, {int(first['questions'] or 0)} q)")
    for key in first:
        table.add_row(key, *(format_value(summary.get(key)) for summary in summaries.values()))
    return table
