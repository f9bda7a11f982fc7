"""The CI gate: the default configuration must meet eval/thresholds.json on the article's gold set,
and a deliberately broken configuration must fail it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest

from eval.gate import check_gate
from eval.gold import ARTICLE_GOLD, load_gold
from eval.report import write_html_report
from eval.runner import write_results
from eval.suite import PipelineFactory, evaluate_settings
from rag.generators import Generator
from rag.settings import PROJECT_ROOT, Settings
from tests.conftest import artifact_dir


class TestCIGate:
    # The whole gold set through the real model: ~19 min on two cores, over the suite's 900 s per-test limit.
    @pytest.mark.timeout(2400)
    def test_default_configuration_meets_the_thresholds(self, settings: Settings, generator: Generator) -> None:
        output = evaluate_settings(
            "default", settings, load_gold(ARTICLE_GOLD), PipelineFactory(settings, generator), retrieval_only=False
        )
        out = artifact_dir("eval")
        write_results(out, "default", output.results, output.card)
        write_html_report(out / "report.html", [output.card], {"default": output.results})
        print(output.card.headline())
        failures = check_gate(output.card)
        assert failures == [], "; ".join(map(str, failures)) + "\n" + json.dumps(asdict(output.card)["metrics"])

    def test_seeded_regression_fails_the_gate(self, settings: Settings, generator: Generator) -> None:
        # A relevance gate set far too high abstains on everything: the kind of slip a settings change makes.
        broken = settings.with_overrides(min_relevance=0.99)
        output = evaluate_settings(
            "broken", broken, load_gold(ARTICLE_GOLD), PipelineFactory(broken, generator), retrieval_only=False
        )
        failed = {failure.metric for failure in check_gate(output.card)}
        assert {"contains_gold", "false_abstention"} <= failed

    @pytest.mark.parametrize("retriever", ["bm25"])
    def test_cli_gate_exits_non_zero_on_a_regression(self, retriever: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "eval",
                "--no-baseline",
                "--gate",
                "--out",
                str(tmp_path),
                "--set",
                "min_relevance=0.99",
                "--set",
                f"retriever={retriever}",
            ],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            timeout=600,
        )
        assert result.returncode == 1
        assert "gate failed: contains_gold" in result.stderr
        assert "Traceback" not in result.stderr
        assert (tmp_path / "report.html").exists() and (tmp_path / "default.items.jsonl").exists()
        assert result.stdout.strip().splitlines()[-1].startswith("default: hit@3")
