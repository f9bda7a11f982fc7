"""`rag eval --squad` without a model: a small SQuAD-format file, the real embedder and index, a ScriptedGenerator.
What is checked: the plain baseline runs in the same call with its own prompt and settings, and the drafts are
scored as well as the checked answers (what a perfect gate over them would reach)."""

from __future__ import annotations

import json
from pathlib import Path

from eval.suite import PipelineFactory, run_squad_suite
from rag.prompt import PLAIN_SYSTEM, SYSTEM_PROMPT
from rag.settings import Settings
from rag.testing import ScriptedGenerator
from rag.types import ChatMessage

PARAGRAPHS = {
    "Elm Bridge": [
        "The Elm Bridge crosses the Tamar river at Kellow. It was built in 1901 by the county engineers. "
        "The bridge carries a single railway track and a footpath.",
        "In 1987 a flood damaged the Elm Bridge. Repairs took two years and cost 4 million pounds.",
    ],
    "Kellow Market": [
        "Kellow's covered market opened in 1862. It holds forty stalls that sell fish, bread and cloth every Saturday.",
    ],
}
QUESTIONS = [
    # (paragraph, question, gold answers: empty when unanswerable)
    (("Elm Bridge", 0), "When was the Elm Bridge built?", ["1901", "in 1901"]),
    (("Elm Bridge", 1), "How long did the repairs of the Elm Bridge take?", ["two years"]),
    (("Kellow Market", 0), "How many stalls does the Kellow market hold?", ["forty"]),
    (("Elm Bridge", 0), "Who painted the Elm Bridge in 1901?", []),
    (("Kellow Market", 0), "When did the Kellow market close?", []),
]


def write_squad(path: Path) -> Path:
    data = []
    for title, texts in PARAGRAPHS.items():
        paragraphs = []
        for number, text in enumerate(texts):
            qas = [
                {
                    "id": f"q{i}",
                    "question": question,
                    "is_impossible": not answers,
                    "answers": [{"text": a, "answer_start": text.find(a)} for a in answers],
                }
                for i, ((t, n), question, answers) in enumerate(QUESTIONS)
                if (t, n) == (title, number)
            ]
            paragraphs.append({"context": text, "qas": qas})
        data.append({"title": title, "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "v2.0", "data": data}))
    return path


def reply(messages: list[ChatMessage]) -> str:
    """A reader that answers the bridge's date and the stalls, and invents a painter; under the generic prompt it
    says it does not know about the repairs. The repairs' draft under the rules prompt names a cause no passage
    gives, so the checks withhold it although it holds the gold answer."""
    question = messages[-1]["content"].rsplit("Question:", 1)[-1]
    plain = messages[0]["content"] == PLAIN_SYSTEM
    if "built" in question:
        return "In 1901 [1]." if not plain else "It was built in 1901."
    if "repairs" in question:
        return "I don't know." if plain else "Two years, because the Tamar froze solid and the army refused [1]."
    if "stalls" in question:
        return "Forty stalls [1]." if not plain else "Forty stalls."
    if "painted" in question:
        return "The county engineers [1]." if not plain else "The county engineers painted it."
    return "The documents don't say." if not plain else "It closed in 1862."


def test_the_baseline_runs_beside_the_default_and_drafts_are_scored(settings: Settings, tmp_path: Path) -> None:
    squad = write_squad(tmp_path / "squad.json")
    generator = ScriptedGenerator([reply] * 40)
    runs = run_squad_suite(squad, settings, None, False, tmp_path / "out", factory=PipelineFactory(settings, generator))

    assert [run.name for run in runs] == ["default", "baseline"]
    default, baseline = runs
    assert baseline.config["prompt_style"] == "plain" and baseline.config["chunk_unit"] == "chars"
    assert baseline.config["verify_answers"] is False and default.config["verify_answers"] is True
    systems = {call[0]["content"] for call in generator.calls}
    assert PLAIN_SYSTEM in systems and SYSTEM_PROMPT in systems
    plain_prompts = [call for call in generator.calls if call[0]["content"] == PLAIN_SYSTEM]
    assert all(len(call) == 2 for call in plain_prompts), "the generic prompt has no worked examples"

    rows = {row.question: row for row in default.rows}
    repairs = rows["How long did the repairs of the Elm Bridge take?"]
    assert repairs.abstained == 1.0, repairs
    assert repairs.draft_contains_gold == 1.0 and repairs.contains_gold == 0.0
    assert default.summary["draft_contains_gold"] == 1.0
    # A perfect gate shows every answerable draft and withholds both unanswerable questions.
    expected_perfect_gate = (sum(r.draft_f1 or 0.0 for r in default.rows if r.answerable) + 2) / 5
    assert default.summary["perfect_gate_f1"] == expected_perfect_gate

    baseline_rows = {row.question: row for row in baseline.rows}
    assert baseline_rows["How long did the repairs of the Elm Bridge take?"].abstained == 1.0  # "I don't know."
    assert baseline_rows["Who painted the Elm Bridge in 1901?"].abstained == 0.0  # no gate withholds it
    assert baseline.summary["unanswerable_abstained"] == 0.0

    written = json.loads((tmp_path / "out" / "squad.json").read_text())
    assert [run["name"] for run in written["runs"]] == ["default", "baseline"]
    assert written["summary"] == default.summary and len(written["baseline_items"]) == len(QUESTIONS)
