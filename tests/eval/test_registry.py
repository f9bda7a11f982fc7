"""The metric registry drives scoring, the scorecard, the report and the gate (no model: a scripted target)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from eval.gate import THRESHOLDS, ThresholdsError, check_gate, load_thresholds
from eval.gold import GoldItem, QuestionType
from eval.registry import METRICS, ItemMetric, MetricRegistry, RunMetric, Scope, View
from eval.report import grid_section, print_scorecards, write_html_report
from eval.runner import ItemResult, Scorecard, score_item, summarize
from eval.targets import Target
from rag.types import Answer, Citation, ModelInfo, Passage

EVIDENCE = "The treaty was signed in 1689 at Nerchinsk."
CITATION = Citation(
    n=1,
    chunk_id="c2",
    doc_id="d",
    title="t",
    text=EVIDENCE,
    start=0,
    end=len(EVIDENCE),
    score=1.0,
    rank=1,
    retriever="dense",
)


def _passage(text: str, rank: int, relevance: float = 0.5) -> Passage:
    return Passage(
        chunk_id=f"c{rank}",
        doc_id="d",
        title="t",
        text=text,
        start=0,
        end=len(text),
        score=1.0 / rank,
        rank=rank,
        retriever="hybrid",
        relevance=relevance,
    )


class ScriptedTarget(Target):
    """Retrieves the evidence passage second and answers (or abstains) as told."""

    def __init__(self, reply: str, abstain: bool = False, confidence: float = 0.8) -> None:
        self.name, self.reply, self.abstain, self.confidence = "scripted", reply, abstain, confidence

    def search(self, question: str, top_k: int) -> list[Passage]:
        return [_passage("Unrelated weather report.", 1), _passage(EVIDENCE, 2)]

    def ask(self, question: str) -> Answer:
        cited = [] if self.abstain else [CITATION]
        return Answer(
            answer="" if self.abstain else self.reply,
            abstained=self.abstain,
            confidence=self.confidence,
            citations=cited,
            passages=self.search(question, 2),
            standalone_question=question,
            timings_ms={"total": 1000.0},
            model=ModelInfo(generator="g", model="m", embedder="e", retriever="r", rescore=False),
        )


class DraftingTarget(ScriptedTarget):
    """Shows the model's draft beside the checked answer, as the in-process target does."""

    def __init__(self, reply: str, draft: str, abstain: bool = False) -> None:
        super().__init__(reply, abstain)
        self.draft = draft

    def ask_with_draft(self, question: str) -> tuple[Answer, str | None]:
        return self.ask(question), self.draft


def _item(answers: list[str], kind: QuestionType = "date") -> GoldItem:
    evidence = [EVIDENCE] if answers else []
    return GoldItem(
        id=f"q-{kind}",
        question="When was the treaty signed?",
        answers=answers,
        evidence=evidence,
        type="unanswerable" if not answers else kind,
    )


def _card(**metrics: float | None) -> Scorecard:
    return Scorecard("default", {}, 1, dict(metrics), {}, {})


def _thresholds(tmp_path: Path, body: dict[str, dict[str, float]]) -> Path:
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


class TestRegistry:
    def test_names_are_unique(self) -> None:
        assert len(set(METRICS.names)) == len(METRICS)
        twice = ItemMetric("x", lambda o: 1.0, Scope.RETRIEVAL)
        with pytest.raises(ValueError, match="unique"):
            MetricRegistry([twice, twice])

    def test_unknown_names_are_refused(self) -> None:
        with pytest.raises(KeyError, match="hit@3"):
            METRICS["hit@4"]

    def test_lower_is_better_only_where_a_smaller_figure_is_an_improvement(self) -> None:
        assert [metric.name for metric in METRICS if not metric.higher_is_better] == ["false_abstention"]

    def test_every_view_and_the_headline_show_registered_metrics_in_registry_order(self) -> None:
        for shown in [*(METRICS.shown_in(view) for view in View), METRICS.headline]:
            assert shown and [metric.name for metric in shown] == [m.name for m in METRICS if m in shown]


class TestScoringAndSummary:
    def test_an_answered_item_is_scored_by_its_scopes_only(self) -> None:
        answerable = score_item(_item(["1689"]), ScriptedTarget("It was signed in 1689 [1]."), retrieval_only=False)
        in_scope = [m.name for m in METRICS.item_metrics if m.applies_to in (Scope.RETRIEVAL, Scope.ANSWER)]
        assert list(answerable.scores) == in_scope
        assert answerable.scores["hit@1"] == 0.0 and answerable.scores["hit@3"] == 1.0
        assert answerable.scores["mrr"] == 0.5 and answerable.scores["contains_gold"] == 1.0
        assert answerable.scores["citation_precision"] == 1.0 and answerable.scores["false_abstention"] == 0.0

        unanswerable = score_item(_item([]), ScriptedTarget("", abstain=True), retrieval_only=False)
        assert unanswerable.scores == {"unanswerable_abstained": 1.0}

    def test_an_abstention_has_no_citation_figures(self) -> None:
        result = score_item(_item(["1689"]), ScriptedTarget("", abstain=True), retrieval_only=False)
        assert result.scores["false_abstention"] == 1.0 and result.scores["contains_gold"] == 0.0
        assert result.scores["citation_precision"] is None and result.scores["supported"] is None

    def test_the_draft_is_scored_beside_the_checked_answer(self) -> None:
        withheld = score_item(_item(["1689"]), DraftingTarget("", "In 1689 [1].", abstain=True), False)
        assert withheld.draft == "In 1689 [1]." and withheld.scores["draft_contains_gold"] == 1.0
        assert withheld.scores["contains_gold"] == 0.0
        declined = score_item(_item(["1689"]), DraftingTarget("", "The documents don't say.", abstain=True), False)
        assert declined.scores["draft_contains_gold"] == 0.0
        hidden = score_item(_item(["1689"]), ScriptedTarget("1689 [1]"), retrieval_only=False)
        assert hidden.draft is None and hidden.scores["draft_contains_gold"] is None
        assert summarize("d", {}, [withheld, declined, hidden]).metrics["draft_contains_gold"] == 0.5

    def test_retrieval_only_scores_retrieval_metrics_only(self) -> None:
        target = ScriptedTarget("never asked")
        answerable = score_item(_item(["1689"]), target, retrieval_only=True)
        assert list(answerable.scores) == [m.name for m in METRICS.item_metrics if m.applies_to is Scope.RETRIEVAL]
        assert score_item(_item([]), target, retrieval_only=True).scores == {}

    def test_the_summary_reports_every_registered_metric_and_nothing_else(self) -> None:
        results = [
            score_item(_item(["1689"]), ScriptedTarget("1689 [1]", confidence=0.9), retrieval_only=False),
            score_item(_item(["1689"], "fact"), ScriptedTarget("", abstain=True, confidence=0.1), False),
            score_item(_item([]), ScriptedTarget("", abstain=True, confidence=0.2), retrieval_only=False),
        ]
        card = summarize("default", {}, results)
        assert list(card.metrics) == METRICS.names
        assert card.metrics["contains_gold"] == 0.5 and card.metrics["false_abstention"] == 0.5
        assert card.metrics["unanswerable_abstained"] == 1.0
        # Confidence ranks the answered item above the unanswerable one, the abstained answerable one below.
        assert card.metrics["confidence_auroc"] == 0.5
        # One evidence string each: the all-evidence figure is over multi-evidence items only.
        assert card.metrics["all_evidence@5"] is None
        item_names = [m.name for m in METRICS.item_metrics]
        assert set(card.by_type) == {"date", "fact", "unanswerable"}
        assert all(list(figures) == item_names for figures in card.by_type.values())
        assert not any(isinstance(m, RunMetric) and m.name in card.by_type["date"] for m in METRICS)


class TestGate:
    def test_the_shipped_thresholds_bound_registered_metrics_on_their_better_side(self) -> None:
        thresholds = load_thresholds(THRESHOLDS)
        sections = json.loads(THRESHOLDS.read_text(encoding="utf-8"))
        assert [t.metric.name for t in thresholds] == [*sections["min"], *sections["max"]]
        for threshold in thresholds:
            assert threshold.metric.name in METRICS
            assert threshold.kind == ("min" if threshold.metric.higher_is_better else "max")

    def test_higher_is_better_fails_below_its_minimum(self, tmp_path: Path) -> None:
        path = _thresholds(tmp_path, {"min": {"contains_gold": 0.6}})
        assert check_gate(_card(contains_gold=0.6), path) == []
        [failure] = check_gate(_card(contains_gold=0.59), path)
        assert (failure.metric, failure.kind) == ("contains_gold", "min")
        assert str(failure) == "contains_gold = 0.590, below the minimum 0.6"

    def test_lower_is_better_fails_above_its_maximum(self, tmp_path: Path) -> None:
        path = _thresholds(tmp_path, {"max": {"false_abstention": 0.24}})
        assert check_gate(_card(false_abstention=0.24), path) == []
        [failure] = check_gate(_card(false_abstention=0.3), path)
        assert str(failure) == "false_abstention = 0.300, above the maximum 0.24"

    def test_a_metric_the_run_could_not_compute_fails(self, tmp_path: Path) -> None:
        path = _thresholds(tmp_path, {"min": {"citation_precision": 0.9}})
        assert [str(f) for f in check_gate(_card(citation_precision=None), path)] == [
            "citation_precision = missing, below the minimum 0.9"
        ]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"min": {"contains-gold": 0.6}}, "not a registered metric"),
            ({"max": {"contains_gold": 0.6}}, "belongs under 'min'"),
            ({"min": {"false_abstention": 0.2}}, "belongs under 'max'"),
        ],
    )
    def test_a_bad_thresholds_file_is_refused(
        self, tmp_path: Path, body: dict[str, dict[str, float]], message: str
    ) -> None:
        with pytest.raises(ThresholdsError, match=message):
            check_gate(_card(contains_gold=1.0, false_abstention=0.0), _thresholds(tmp_path, body))


class TestRendering:
    def test_terminal_table_and_headline_follow_the_registry(self) -> None:
        card = _card(**{m.name: 0.5 for m in METRICS})
        console = Console(record=True, width=200, file=io.StringIO())
        print_scorecards([card], console)
        text = console.export_text()
        rows = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
        assert rows == [m.name for m in METRICS.shown_in(View.TERMINAL)]
        labels = " | ".join(f"{m.headline} 0.500" for m in METRICS.headline)
        assert text.splitlines()[-1] == f"default: {labels} | p50 —"

    def test_report_lists_an_item_only_for_failure_flagging_metrics(self, tmp_path: Path) -> None:
        def result(item_id: str, **scores: float | None) -> ItemResult:
            return ItemResult(item_id, "fact", "q?", True, ["a"], ["e"], "a", False, None, 0.5, 0.5, [], [], scores)

        results = [
            result("ranked-low", **{"hit@1": 0.0, "mrr": 0.3, "f1": 0.5, "hit@3": 1.0}),
            result("abstained", **{"false_abstention": 1.0, "contains_gold": 0.0, "citation_precision": None}),
        ]
        card = summarize("default", {}, results)
        html = write_html_report(tmp_path / "report.html", [card], {"default": results}).read_text(encoding="utf-8")
        assert "Failures of default (1 of 2)" in html
        assert "contains_gold=0.00, false_abstention=1.00" in html and "ranked-low" not in html
        assert all(f"<tr><th>{m.name}</th>" in html for m in METRICS)
        assert all(f"<th>{m.name}</th>" in grid_section([("a", card)]) for m in METRICS.shown_in(View.GRID))


class TestEvalCommand:
    """`rag eval` only renders what `eval.suite.run_gold_suite` returns (the pipelines replaced by a script)."""

    def test_grid_gate_and_headline(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import cli.main
        import eval.suite

        gold = tmp_path / "gold.jsonl"
        rows = [_item(["1689"]), _item([])]
        gold.write_text("".join(item.model_dump_json() + "\n" for item in rows), encoding="utf-8")
        # Every configuration answers the same, abstaining on nothing: the unanswerable bound must fail.
        monkeypatch.setattr(eval.suite.PipelineFactory, "pipeline", lambda self, settings, documents=None: None)
        monkeypatch.setattr(eval.suite, "InProcessTarget", lambda pipeline: ScriptedTarget("1689 [1]"))
        monkeypatch.setattr(cli.main, "console", Console(width=200))
        monkeypatch.setattr(cli.main, "err", Console(width=200, stderr=True))
        out = tmp_path / "out"
        args = ["eval", "--gold", str(gold), "--out", str(out), "--gate", "--grid", "top_k=3,4"]

        result = CliRunner().invoke(cli.main.app, args)

        assert result.exit_code == 1, result.output
        assert "gate failed: unanswerable_abstained = 0.000, below the minimum" in result.stderr
        assert "gate failed: contains_gold" not in result.stderr
        lines = result.stdout.splitlines()
        grid_header = next(line for line in lines if "setting" in line)
        assert [name for name in grid_header.strip("┃ ").split() if name != "┃"] == [
            "setting",
            *[m.name for m in METRICS.shown_in(View.GRID)],
            "p50",
            "ms",
        ]
        assert lines[-2].startswith("baseline: hit@3 1.000 | MRR 0.500 | contains-gold 1.000")
        assert lines[-1].startswith("default: hit@3 1.000 | MRR 0.500 | contains-gold 1.000")
        written = {path.name for path in out.iterdir()}
        assert {"default.items.jsonl", "baseline.scorecard.json", "grid-top_k-4.items.jsonl", "report.html"} <= written
        assert "Ablation grid" in (out / "report.html").read_text(encoding="utf-8")

    def test_readme_block_is_regenerated_from_the_run(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import cli.main
        import eval.readme
        import eval.suite

        gold = tmp_path / "tiny.jsonl"
        gold.write_text("".join(item.model_dump_json() + "\n" for item in [_item(["1689"]), _item([])]))
        readme = tmp_path / "README.md"
        readme.write_text("## Evaluation\n<!-- eval:tiny -->\nold figures\n<!-- /eval:tiny -->\nreading stays\n")
        monkeypatch.setattr(eval.readme, "README", readme)
        monkeypatch.setattr(eval.suite.PipelineFactory, "pipeline", lambda self, settings, documents=None: None)
        monkeypatch.setattr(eval.suite, "InProcessTarget", lambda pipeline: ScriptedTarget("1689 [1]"))
        args = ["eval", "--gold", str(gold), "--out", str(tmp_path / "out"), "--readme"]

        result = CliRunner().invoke(cli.main.app, args)

        assert result.exit_code == 0, result.output
        text = readme.read_text()
        assert "old figures" not in text and text.endswith("<!-- /eval:tiny -->\nreading stays\n")
        assert "*Scorecard (tiny gold set)*\n\n| metric | default | baseline |\n" in text
        assert "| contains_gold | 1.000 | 1.000 |" in text

    def test_readme_without_the_block_is_a_one_line_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import cli.main
        import eval.readme
        import eval.suite

        gold = tmp_path / "tiny.jsonl"
        gold.write_text(_item(["1689"]).model_dump_json() + "\n")
        readme = tmp_path / "README.md"
        readme.write_text("## Evaluation\n")
        monkeypatch.setattr(eval.readme, "README", readme)
        monkeypatch.setattr(eval.suite.PipelineFactory, "pipeline", lambda self, settings, documents=None: None)
        monkeypatch.setattr(eval.suite, "InProcessTarget", lambda pipeline: ScriptedTarget("1689 [1]"))
        args = ["eval", "--gold", str(gold), "--out", str(tmp_path / "out"), "--readme", "--no-baseline"]

        result = CliRunner().invoke(cli.main.app, args)

        assert result.exit_code != 0
        assert "README has no <!-- eval:tiny --> … <!-- /eval:tiny --> block" in result.output
        assert readme.read_text() == "## Evaluation\n"
