"""The evaluation's human-facing output: a terminal scorecard and a self-contained HTML report."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console
from rich.table import Table

from eval.runner import METRIC_ORDER, ItemResult, Scorecard

TERMINAL_METRICS = [
    "hit@1",
    "hit@3",
    "mrr",
    "ndcg@5",
    "contains_gold",
    "f1",
    "exact_match",
    "citation_precision",
    "citation_recall",
    "unanswerable_abstained",
    "false_abstention",
    "gate_auroc",
    "confidence_auroc",
]


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def print_scorecards(cards: Sequence[Scorecard], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="Scorecard (article gold set)" if cards else "Scorecard")
    table.add_column("metric")
    for card in cards:
        table.add_column(card.name, justify="right")
    for metric in TERMINAL_METRICS:
        if any(card.metrics.get(metric) is not None for card in cards):
            table.add_row(metric, *[_fmt(card.metrics.get(metric)) for card in cards])
    for card_field, names, unit in (
        ("latency_ms", ("total", "first_token_ms"), "ms"),
        ("prompt_tokens", ("answer_prompt", "answer_prefill"), "tokens"),
    ):
        for name in names:
            spreads = [getattr(card, card_field).get(name) for card in cards]
            if any(spreads):
                cells = [f"{s['median']:.0f}/{s['p95']:.0f}" if s else "—" for s in spreads]
                table.add_row(f"{name} p50/p95 {unit}", *cells)
    console.print(table)
    # The default configuration's headline comes last, so it is the final line of the output.
    for card in [*cards[1:], *cards[:1]]:
        console.print(card.headline(), highlight=False, soft_wrap=True)


def _png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _by_type_plot(card: Scorecard) -> str:
    kinds = list(card.by_type)
    keys = ["hit@3", "contains_gold", "citation_precision", "unanswerable_abstained"]
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
        axis.boxplot(data, tick_labels=labels, vert=False)
    axis.set_xlabel("milliseconds")
    axis.set_title("Latency per stage")
    return _png(figure)


def _failure_html(result: ItemResult) -> str:
    citations = (
        "".join(f"<li><b>[{c['n']}]</b> {html.escape(c['text'])}</li>" for c in result.citations)
        or "<li><i>none</i></li>"
    )
    evidence = "".join(f"<li>{html.escape(e)}</li>" for e in result.evidence) or "<li><i>(unanswerable)</i></li>"
    failed = ", ".join(f"{k}={v:.2f}" for k, v in result.scores.items() if v is not None and _is_failure(k, v))
    abstained = f"<i>(abstained: {html.escape(result.abstain_reason or '')})</i>" if result.abstained else ""
    return f"""<details class="failure"><summary><code>{html.escape(result.id)}</code> [{result.type}]
{html.escape(result.question)} <span class="bad">{html.escape(failed)}</span></summary>
<p><b>Answer:</b> {html.escape(result.answer or "")} {abstained}</p>
<p><b>Gold answers:</b> {html.escape(" | ".join(result.gold_answers) or "—")}</p>
<p><b>Citations:</b></p><ul>{citations}</ul><p><b>Gold evidence:</b></p><ul>{evidence}</ul></details>"""


def _is_failure(metric: str, value: float) -> bool:
    if metric == "false_abstention":
        return value > 0
    if metric in ("hit@1", "hit@5", "mrr", "ndcg@5", "exact_match", "f1", "supported"):
        return False
    return value < 1.0


def write_html_report(
    path: Path,
    cards: Sequence[Scorecard],
    results_by_run: dict[str, Sequence[ItemResult]],
    extra_sections: Sequence[str] = (),
) -> Path:
    rows = "".join(
        f"<tr><th>{m}</th>{''.join(f'<td>{_fmt(c.metrics.get(m))}</td>' for c in cards)}</tr>" for m in METRIC_ORDER
    )
    header = "".join(f"<th>{html.escape(c.name)}</th>" for c in cards)
    main = cards[0]
    failures = [
        r
        for r in results_by_run.get(main.name, [])
        if any(_is_failure(k, v) for k, v in r.scores.items() if v is not None)
    ]
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


def grid_section(rows: Sequence[tuple[str, Scorecard]], metrics: Sequence[str]) -> str:
    """A table and a plot of an ablation grid."""
    header = "".join(f"<th>{m}</th>" for m in metrics)
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>{''.join(f'<td>{_fmt(card.metrics.get(m))}</td>' for m in metrics)}</tr>"
        for label, card in rows
    )
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    for offset, metric in enumerate(metrics[:3]):
        axis.barh(
            [i + offset * 0.25 for i in range(len(rows))],
            [card.metrics.get(metric) or 0.0 for _, card in rows],
            0.25,
            label=metric,
        )
    axis.set_yticks([i + 0.25 for i in range(len(rows))], [label for label, _ in rows], fontsize=8)
    axis.set_xlim(0, 1.05)
    axis.legend(fontsize=8)
    axis.set_title("Ablation grid")
    return f"<h2>Ablation grid</h2><table><tr><th>setting</th>{header}</tr>{body}</table>{_png(figure)}"
