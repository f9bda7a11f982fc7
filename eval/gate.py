"""The CI gate: a scorecard must meet the thresholds kept in `eval/thresholds.json`.

The file's format is `{"min": {metric: bound}, "max": {metric: bound}}`; each metric must be registered in
`eval.registry`, under "min" when higher is better and "max" when lower is better, so a typo or a bound on
the wrong side fails loudly instead of gating nothing (or everything).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from eval.registry import METRICS, Metric
from eval.runner import Scorecard
from rag.errors import UserError

THRESHOLDS = Path(__file__).resolve().parent / "thresholds.json"

BoundKind = Literal["min", "max"]


class ThresholdsError(UserError, ValueError):
    """A thresholds file naming an unregistered metric, or bounding one on the side where it improves."""


@dataclass(frozen=True)
class GateFailure:
    """One threshold a scorecard missed."""

    metric: str
    value: float | None
    bound: float
    kind: BoundKind

    def __str__(self) -> str:
        shown = "missing" if self.value is None else METRICS[self.metric].format(self.value)
        relation = "below the minimum" if self.kind == "min" else "above the maximum"
        return f"{self.metric} = {shown}, {relation} {self.bound}"


@dataclass(frozen=True)
class Threshold:
    """A bound on one registered metric: a minimum when higher is better, a maximum when lower is."""

    metric: Metric
    bound: float

    @property
    def kind(self) -> BoundKind:
        """`min` when higher is better, else `max`: the thresholds file's section the bound belongs in."""
        return "min" if self.metric.higher_is_better else "max"

    def check(self, card: Scorecard) -> GateFailure | None:
        """The failure if the scorecard misses this bound (a metric the run could not compute misses it), else None."""
        value = card.metrics.get(self.metric.name)
        if self.metric.meets(value, self.bound):
            return None
        return GateFailure(self.metric.name, value, self.bound, self.kind)


def load_thresholds(thresholds_file: Path = THRESHOLDS) -> list[Threshold]:
    """The file's bounds, minimums first, each checked against the registry."""
    sections = json.loads(thresholds_file.read_text(encoding="utf-8"))
    thresholds = []
    for kind in ("min", "max"):
        for name, bound in sections.get(kind, {}).items():
            if name not in METRICS:
                raise ThresholdsError(f"{thresholds_file}: {kind} bound on {name!r}, which is not a registered metric")
            threshold = Threshold(METRICS[name], bound)
            if threshold.kind != kind:
                raise ThresholdsError(
                    f"{thresholds_file}: {name!r} belongs under {threshold.kind!r} "
                    f"({'higher' if threshold.metric.higher_is_better else 'lower'} is better), not {kind!r}"
                )
            thresholds.append(threshold)
    return thresholds


def check_gate(card: Scorecard, thresholds_file: Path = THRESHOLDS) -> list[GateFailure]:
    """Every threshold the scorecard misses (a metric the run could not compute misses its bound)."""
    checked = (threshold.check(card) for threshold in load_thresholds(thresholds_file))
    return [failure for failure in checked if failure is not None]
