"""The CI gate: a scorecard must meet the thresholds kept in `eval/thresholds.json`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eval.runner import Scorecard

THRESHOLDS = Path(__file__).resolve().parent / "thresholds.json"


@dataclass(frozen=True)
class GateFailure:
    metric: str
    value: float | None
    bound: float
    kind: str  # "min" or "max"

    def __str__(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.3f}"
        relation = "below the minimum" if self.kind == "min" else "above the maximum"
        return f"{self.metric} = {shown}, {relation} {self.bound}"


def check_gate(card: Scorecard, thresholds_file: Path = THRESHOLDS) -> list[GateFailure]:
    thresholds = json.loads(thresholds_file.read_text(encoding="utf-8"))
    failures = []
    for metric, bound in thresholds.get("min", {}).items():
        value = card.metrics.get(metric)
        if value is None or value < bound:
            failures.append(GateFailure(metric, value, bound, "min"))
    for metric, bound in thresholds.get("max", {}).items():
        value = card.metrics.get(metric)
        if value is None or value > bound:
            failures.append(GateFailure(metric, value, bound, "max"))
    return failures
