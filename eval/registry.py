"""The metric registry: every figure `rag eval` reports, declared once in `METRICS`.

The one table drives per-item scoring (`eval.runner.score_item`), the scorecard (`summarize`), the terminal
and HTML tables and the headline (`eval.report`), and the CI gate (`eval.gate`). Adding a metric is one row
here (plus its function in `eval.metrics`); its row order is its order everywhere it is shown. Like
Haystack's evaluator components, an item metric scores each item and the run's figure aggregates them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING

from typing_extensions import override

from eval import metrics as m
from eval.gold import GoldItem
from rag.types import Answer

if TYPE_CHECKING:
    # Only for annotations: eval.runner imports this module to score items.
    from eval.runner import ItemResult

MISSING = "—"


def format_value(value: float | None, spec: str = ".3f") -> str:
    """A figure as every eval table shows it; a metric that could not be computed is a dash."""
    return MISSING if value is None else format(value, spec)


class Scope(StrEnum):
    """Which items an item metric scores, and from what (a `RunMetric` looks at the whole run instead)."""

    RETRIEVAL = "retrieval"  # answerable items, from the retrieved passages (also with --retrieval-only)
    ANSWER = "answer"  # answerable items, from the answer
    UNANSWERABLE = "unanswerable"  # unanswerable items, from the answer


class View(Enum):
    """Summaries that show a chosen few metrics (the HTML scorecard and the JSON files hold all of them)."""

    TERMINAL = "terminal scorecard"
    GRID = "ablation grid"
    BY_TYPE_PLOT = "by-question-type plot"


@dataclass(frozen=True)
class Observation:
    """What one gold item produced: the retrieved passages, whether each holds gold evidence, and the
    answer (None for a retrieval-only run)."""

    item: GoldItem
    passages: Sequence[str]
    relevant: Sequence[bool]
    answer: Answer | None = None
    draft: str | None = None  # the model's reply before the checks, where the target shows it

    @property
    def answered(self) -> Answer:
        """The answer; only answer-scoped metrics read it, and they are scored only when there is one."""
        if self.answer is None:
            raise ValueError(f"{self.item.id}: no answer to score (retrieval-only run)")
        return self.answer

    @property
    def reply(self) -> str:
        """The text scored against the gold answers: an abstention replies nothing."""
        return "" if self.answered.abstained else self.answered.answer

    @property
    def cited(self) -> list[str]:
        """The text of each cited passage, in citation order; ValueError on a retrieval-only run, as `answered`."""
        return [citation.text for citation in self.answered.citations]


@dataclass(frozen=True)
class Metric(ABC):
    """One reported figure: its name, which way is better, how it is printed and where it is shown."""

    name: str
    _: KW_ONLY
    higher_is_better: bool = True
    fmt: str = ".3f"
    headline: str | None = None  # its short name in the one-line headline; None keeps it out
    views: frozenset[View] = frozenset()
    # An item scoring short of the best value (1, or 0 when lower is better) is listed among the HTML
    # report's failures; rank-sensitive and partial-credit metrics would list nearly every item.
    flags_failures: bool = False

    def format(self, value: float | None) -> str:
        """`value` as every table shows this metric (`fmt`); a dash for None."""
        return format_value(value, self.fmt)

    def meets(self, value: float | None, bound: float) -> bool:
        """Whether a run's value satisfies a gate bound: at least it, or at most it when lower is better."""
        if value is None:
            return False
        return value >= bound if self.higher_is_better else value <= bound

    def fails_item(self, value: float) -> bool:
        """Whether one item's score marks it as a failure in the report."""
        if not self.flags_failures:
            return False
        return value < 1.0 if self.higher_is_better else value > 0.0

    @abstractmethod
    def summarize(self, results: Sequence[ItemResult]) -> float | None:
        """The run's figure."""


def _every(result: ItemResult) -> bool:
    return True


def _several_evidence(result: ItemResult) -> bool:
    return len(result.evidence) > 1


@dataclass(frozen=True)
class ItemMetric(Metric):
    """A metric scored on each item in its scope; the run's figure is the mean of the scores present."""

    fn: Callable[[Observation], float | None]
    applies_to: Scope
    _: KW_ONLY
    # Which items the run's figure averages (by-type figures average every scored item of the type).
    run_over: Callable[[ItemResult], bool] = _every

    def applies(self, observation: Observation) -> bool:
        """Whether this metric scores the item: its scope covers the item and what the scope reads exists."""
        answerable, answered = observation.item.answerable, observation.answer is not None
        if self.applies_to is Scope.RETRIEVAL:
            return answerable
        if self.applies_to is Scope.ANSWER:
            return answerable and answered
        return not answerable and answered

    def score(self, observation: Observation) -> float | None:
        """This item's score, or None when there is nothing to score (no citations, say); ask `applies` first."""
        return self.fn(observation)

    def mean(self, results: Sequence[ItemResult]) -> float | None:
        """The mean over the items that have this score (None scores, e.g. no citations, are skipped)."""
        return m.mean([r.scores.get(self.name) for r in results if self.name in r.scores])

    @override
    def summarize(self, results: Sequence[ItemResult]) -> float | None:
        return self.mean([r for r in results if self.run_over(r)])


@dataclass(frozen=True)
class RunMetric(Metric):
    """A metric computed over the whole run at once (a ranking quality, not an average)."""

    fn: Callable[[Sequence[ItemResult]], float | None]

    @override
    def summarize(self, results: Sequence[ItemResult]) -> float | None:
        return self.fn(results)


def _auroc_of(score: Callable[[ItemResult], float | None]) -> Callable[[Sequence[ItemResult]], float | None]:
    """How well a per-answer score separates answerable from unanswerable questions, over the asked items."""

    def auroc(results: Sequence[ItemResult]) -> float | None:
        asked = [r for r in results if r.gate_score is not None]
        return m.auroc([score(r) or 0.0 for r in asked], [r.answerable for r in asked])

    return auroc


def _unless_abstained(fn: Callable[[Observation], float | None]) -> Callable[[Observation], float | None]:
    """Citation and support figures say nothing about an abstention: None, skipped by the mean."""
    return lambda o: None if o.answered.abstained else fn(o)


class MetricRegistry:
    """The metrics in their display order, looked up by name."""

    def __init__(self, metrics: Sequence[Metric]) -> None:
        self._metrics = tuple(metrics)
        self._by_name: Mapping[str, Metric] = {metric.name: metric for metric in self._metrics}
        if len(self._by_name) != len(self._metrics):
            raise ValueError("metric names must be unique")

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Metric:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown metric {name!r}; the registered ones are {', '.join(self.names)}") from None

    @property
    def names(self) -> list[str]:
        """Every metric's name, in display order."""
        return [metric.name for metric in self._metrics]

    @property
    def item_metrics(self) -> list[ItemMetric]:
        """The metrics scored per item, in display order (what `score` runs)."""
        return [metric for metric in self._metrics if isinstance(metric, ItemMetric)]

    @property
    def headline(self) -> list[Metric]:
        """The metrics the one-line headline shows (those with a `headline` name), in display order."""
        return [metric for metric in self._metrics if metric.headline is not None]

    def shown_in(self, view: View) -> list[Metric]:
        """The metrics `view` shows, in display order."""
        return [metric for metric in self._metrics if view in metric.views]

    def score(self, observation: Observation) -> dict[str, float | None]:
        """One item's scores: every item metric whose scope covers it."""
        return {metric.name: metric.score(observation) for metric in self.item_metrics if metric.applies(observation)}

    def summarize(self, results: Sequence[ItemResult]) -> dict[str, float | None]:
        """The run's figures, every metric in order."""
        return {metric.name: metric.summarize(results) for metric in self._metrics}

    def by_type(self, results: Sequence[ItemResult]) -> dict[str, dict[str, float | None]]:
        """Item-metric means for each question type."""
        return {
            kind: {metric.name: metric.mean([r for r in results if r.type == kind]) for metric in self.item_metrics}
            for kind in sorted({r.type for r in results})
        }


_EVERYWHERE = frozenset({View.TERMINAL, View.GRID, View.BY_TYPE_PLOT})
_TERMINAL = frozenset({View.TERMINAL})
_TERMINAL_AND_GRID = frozenset({View.TERMINAL, View.GRID})
RETRIEVAL, ANSWER, UNANSWERABLE = Scope.RETRIEVAL, Scope.ANSWER, Scope.UNANSWERABLE

METRICS = MetricRegistry(
    [
        # ---- retrieval (the top RETRIEVAL_DEPTH passages, judged by gold evidence) ----
        ItemMetric("hit@1", lambda o: m.hit_at_k(o.relevant, 1), RETRIEVAL, views=_TERMINAL),
        ItemMetric(
            "hit@3",
            lambda o: m.hit_at_k(o.relevant, 3),
            RETRIEVAL,
            headline="hit@3",
            views=_EVERYWHERE,
            flags_failures=True,
        ),
        ItemMetric("hit@5", lambda o: m.hit_at_k(o.relevant, 5), RETRIEVAL),
        ItemMetric("mrr", lambda o: m.reciprocal_rank(o.relevant), RETRIEVAL, headline="MRR", views=_TERMINAL_AND_GRID),
        ItemMetric(
            "ndcg@5", lambda o: m.ndcg_at_k(o.relevant, 5, max(1, len(o.item.evidence))), RETRIEVAL, views=_TERMINAL
        ),
        ItemMetric(
            "all_evidence@5",
            lambda o: m.all_evidence_retrieved(o.passages[:5], o.item.evidence),
            RETRIEVAL,
            # Trivially equal to hit@5 for one evidence string, so the run's figure is over the others.
            run_over=_several_evidence,
            flags_failures=True,
        ),
        # ---- answers (SQuAD definitions; an abstention replies "") ----
        ItemMetric(
            "contains_gold",
            lambda o: m.contains_gold(o.reply, o.item.answers),
            ANSWER,
            headline="contains-gold",
            views=_EVERYWHERE,
            flags_failures=True,
        ),
        ItemMetric("f1", lambda o: m.token_f1(o.reply, o.item.answers), ANSWER, headline="F1", views=_TERMINAL),
        # The reader without the checks: whether the model's draft held a gold answer (an abstention before the
        # model wrote anything counts as a miss). Against contains_gold it says what the checks cost or add.
        ItemMetric(
            "draft_contains_gold",
            lambda o: None if o.draft is None else m.contains_gold(m.draft_prediction(o.draft), o.item.answers),
            ANSWER,
            views=_TERMINAL,
        ),
        ItemMetric("exact_match", lambda o: m.exact_match(o.reply, o.item.answers), ANSWER, views=_TERMINAL),
        # ---- citations (evidence overlap) ----
        ItemMetric(
            "citation_precision",
            _unless_abstained(lambda o: m.citation_precision(o.cited, o.item.evidence)),
            ANSWER,
            headline="cite-P",
            views=_EVERYWHERE,
            flags_failures=True,
        ),
        ItemMetric(
            "citation_recall",
            _unless_abstained(lambda o: m.citation_recall(o.cited, o.item.evidence)),
            ANSWER,
            headline="cite-R",
            views=_TERMINAL,
            flags_failures=True,
        ),
        ItemMetric("supported", _unless_abstained(lambda o: float(o.answered.supported)), ANSWER),
        # ---- abstention ----
        ItemMetric(
            "unanswerable_abstained",
            lambda o: float(o.answered.abstained),
            UNANSWERABLE,
            headline="abstain(unans)",
            views=_EVERYWHERE,
            flags_failures=True,
        ),
        ItemMetric(
            "false_abstention",
            lambda o: float(o.answered.abstained),
            ANSWER,
            higher_is_better=False,
            headline="false-abstain",
            views=_TERMINAL_AND_GRID,
            flags_failures=True,
        ),
        RunMetric("gate_auroc", _auroc_of(lambda r: r.gate_score), headline="gate AUROC", views=_TERMINAL),
        RunMetric("confidence_auroc", _auroc_of(lambda r: r.confidence), headline="confidence AUROC", views=_TERMINAL),
    ]
)
