"""`rag eval --feedback` end to end: ratings posted through the real `POST /api/feedback` (as the chat page posts
them, for a real answer from `POST /api/ask`), then the `rag` command in a subprocess, then the gold loader.

The server's generator is `rag.testing.ScriptedGenerator`, a FAKE that writes one cited sentence the article
supports; retrieval, the answer checks and the feedback route are real. The command itself must load no model
and no index: it runs with an index directory that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from eval.gold import load_gold
from index.store import PassageIndex
from rag.pipeline import Pipeline
from rag.settings import Settings
from rag.testing import ScriptedGenerator
from tests.conftest import LiveServer
from tests.test_cli import rag

DENG = "What did Deng agree in 1979?"
ANSWER = "He agreed to expand cooperation in collecting and sharing intelligence on the Soviet Union [1]."
VLADIVOSTOK = "What is the population of Vladivostok?"


@pytest.fixture(scope="module")
def feedback_file(
    settings: Settings, article_index: PassageIndex, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A feedback file written by the real route: a real answer rated up, then down, then up again; another
    question rated down; and a last line torn as a crash mid-append would leave it."""
    path = tmp_path_factory.mktemp("feedback") / "feedback.jsonl"
    own = settings.with_overrides(feedback_path=path)
    app = create_app(own, Pipeline(own, article_index, ScriptedGenerator(default=ANSWER)))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.post("/api/ask", json={"question": DENG}).json()
        assert not answer["abstained"] and answer["citations"], answer

        def rate(question: str, shown: dict[str, Any], rating: str, note: str | None = None) -> None:
            # The body the chat page sends (web/app.js, openFeedback).
            body: dict[str, Any] = {
                "question": question,
                "answer": shown["answer"],
                "rating": rating,
                "abstained": shown["abstained"],
                "citations": [{"doc_id": c["doc_id"], "chunk_id": c["chunk_id"]} for c in shown["citations"]],
            }
            if note:
                body["note"] = note
            response = http.post("/api/feedback", json=body)
            assert response.status_code == 201, response.text

        rate(DENG, answer, "down", "too long")
        rate(VLADIVOSTOK, {"answer": "It has 600,000 people [1].", "abstained": False, "citations": []}, "down")
        rate(DENG.lower(), answer, "up", "exactly right")
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "torn", "question": "When did')
    yield path


def test_rated_answers_become_candidates_the_gold_loader_reads(feedback_file: Path, tmp_path: Path) -> None:
    stored = [json.loads(line) for line in feedback_file.read_text().splitlines()[:3]]
    # The route kept each cited passage's text, which becomes the candidate's evidence.
    assert stored[0]["citations"] and all(c.get("text") for c in stored[0]["citations"])

    out = tmp_path / "review" / "candidates.jsonl"
    result = rag("eval", "--feedback", str(feedback_file), "--out", str(out), index_dir=tmp_path / "no-index")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("2 candidates: 1 up, 1 down, 1 skipped line (from 3 ratings; 1 repeat(s) collapsed")
    assert str(out) in lines[0]
    assert not (tmp_path / "no-index").exists(), "no index was opened or built"

    deng, vladivostok = load_gold(out)
    assert deng.question == DENG.lower() and vladivostok.question == VLADIVOSTOK
    assert deng.answers == [ANSWER.replace(" [1]", "")]
    assert deng.evidence == list(dict.fromkeys(c["text"].strip() for c in stored[-1]["citations"]))
    assert "sharing intelligence on the Soviet Union" in deng.evidence[0]
    assert vladivostok.answers == [] and vladivostok.evidence == []
    reviews = [json.loads(line)["review"] for line in out.read_text().splitlines()]
    assert [r["status"] for r in reviews] == ["approved-answer", "needs-answer"]
    assert reviews[0]["note"] == "exactly right" and (reviews[0]["ups"], reviews[0]["downs"]) == (1, 1)


def test_the_default_path_comes_from_the_settings_and_writes_beside_it(feedback_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / "var" / "feedback.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(feedback_file.read_bytes())
    result = rag("eval", "--feedback", index_dir=None, RAG_FEEDBACK_PATH=str(copy))
    assert result.returncode == 0, result.stderr
    assert len(load_gold(tmp_path / "var" / "feedback-candidates.jsonl")) == 2


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("eval", "--feedback", "{missing}"), "error: no feedback file at {missing}: rate answers on the chat page"),
        (("eval", "--feedback", "{empty}"), "error: no feedback yet: {empty} holds no rating"),
        (("eval", "{empty}"), "error: {empty} is read only with --feedback"),
        (("eval", "--feedback", "{empty}", "--gate"), "error: --feedback takes only FEEDBACK_FILE and --out"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], line: str) -> None:
    names = {"missing": str(tmp_path / "missing.jsonl"), "empty": str(tmp_path / "empty.jsonl")}
    (tmp_path / "empty.jsonl").write_text("\n")
    result = rag(*(arg.format(**names) for arg in args), index_dir=tmp_path / "no-index", timeout=60)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(line.format(**names)), (
        result.stderr
    )
    assert "Traceback" not in result.stderr and result.stdout == ""
