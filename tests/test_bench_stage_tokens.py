"""The bench's per-stage prompt-token rows (`bench.run.stage_token_rows`): medians over the answers that asked each
stage, and a stage nobody asked is said so."""

from __future__ import annotations

from typing import Any

from bench.run import stage_token_rows


def test_each_stage_is_counted_over_the_answers_that_asked_it() -> None:
    counts = [
        {"answer_prompt": 600, "answer_prefill": 170},
        {"answer_prompt": 640, "answer_prefill": 190, "judge_prompt": 300, "judge_prefill": 120},
        {"rewrite_prompt": 200, "rewrite_prefill": 80, "answer_prompt": 620, "answer_prefill": 180},
    ]
    figures: dict[str, Any] = {}
    rows = {row[0]: row for row in stage_token_rows(counts, figures)}
    assert rows["answer prompt tokens (whole / prefilled)"][1] == "620 / 180"
    assert rows["judge prompt tokens (whole / prefilled)"][1] == "300 / 120"
    assert "1 of 3 answers" in rows["judge prompt tokens (whole / prefilled)"][3]
    assert rows["rewrite prompt tokens (whole / prefilled)"][1] == "200 / 80"
    assert figures["answer_prefill_tokens_median"] == 180 and figures["judge_prompt_tokens_median"] == 300


def test_a_stage_no_answer_asked_is_reported_as_such() -> None:
    rows = stage_token_rows([{"answer_prompt": 600, "answer_prefill": 170}], {})
    assert ("judge prompt tokens", "not asked", "", "0 of 1 answers") in rows
