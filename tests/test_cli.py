"""The `rag` command as a person uses it: real subprocesses, real models, a real index on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.settings import PROJECT_ROOT


def rag(*args: str, index_dir: Path, timeout: int = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=timeout,
        env={**os.environ, "RAG_INDEX_DIR": str(index_dir), "COLUMNS": "200", **env},
    )


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "index"
    result = rag("index", "build", index_dir=directory)
    assert result.returncode == 0, result.stderr
    assert "Indexed 1 document(s)" in result.stdout
    return directory


class TestIndexCommands:
    def test_info(self, index_dir: Path) -> None:
        result = rag("index", "info", index_dir=index_dir)
        assert result.returncode == 0
        assert "all-MiniLM-L6-v2 (onnx-int8" in result.stdout and "China" in result.stdout

    def test_add_unchanged_changed_and_rm(self, index_dir: Path, tmp_path: Path) -> None:
        note = tmp_path / "note.txt"
        note.write_text("The lighthouse keeper is Ada.")
        assert "added 1" in rag("index", "add", str(note), index_dir=index_dir).stdout
        assert "unchanged 1" in rag("index", "add", str(note), index_dir=index_dir).stdout
        note.write_text("The lighthouse keeper is Bea.")
        assert "replaced 1" in rag("index", "add", str(note), index_dir=index_dir).stdout
        manifest = json.loads((index_dir / "manifest.json").read_text())
        doc_id = next(d["doc_id"] for d in manifest["documents"] if d["title"] == "Note")
        assert rag("index", "rm", doc_id, index_dir=index_dir).returncode == 0
        assert doc_id not in (index_dir / "manifest.json").read_text()


class TestAsk:
    def test_ask_deng_as_json(self, index_dir: Path) -> None:
        result = rag("ask", "what did Deng agree in 1979?", "--json", index_dir=index_dir)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert not answer["abstained"] and "intelligence" in answer["answer"].lower()
        assert "Deng Xiaoping" in answer["citations"][0]["text"]

    def test_ask_prints_the_cited_passage_with_title_and_offsets(self, index_dir: Path) -> None:
        result = rag("ask", "When did the last Soviet aircraft leave Bagram Airfield?", index_dir=index_dir)
        assert result.returncode == 0
        assert "1989" in result.stdout
        assert "[1] China’s “no limits” partnership with Russia · chars" in result.stdout


class TestErrors:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("ask", "   "), "the question is empty"),
            (("index", "rm", "no-such-doc"), "no document 'no-such-doc'"),
            (("index", "add", "/nonexistent/file.txt"), "no such file"),
        ],
    )
    def test_user_errors_are_one_line_without_traceback(
        self, index_dir: Path, args: tuple[str, ...], message: str
    ) -> None:
        result = rag(*args, index_dir=index_dir)
        assert result.returncode == 1
        assert message in result.stderr and "Traceback" not in result.stderr

    def test_missing_index(self, tmp_path: Path) -> None:
        result = rag("index", "info", index_dir=tmp_path / "none")
        assert result.returncode == 1 and "rag index build" in result.stderr and "Traceback" not in result.stderr

    def test_mismatched_embedder(self, index_dir: Path, tmp_path: Path) -> None:
        import shutil

        copy = tmp_path / "index"
        shutil.copytree(index_dir, copy)
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["embedder"]["model"] = "all-mpnet-base-v2"
        (copy / "manifest.json").write_text(json.dumps(manifest))
        result = rag("ask", "what did Deng agree?", index_dir=copy)
        assert result.returncode == 1
        assert "all-mpnet-base-v2" in result.stderr and "rebuild" in result.stderr and "Traceback" not in result.stderr

    def test_invalid_setting(self, index_dir: Path) -> None:
        result = rag("ask", "hi", index_dir=index_dir, RAG_RETRIEVER="magic")
        assert result.returncode == 1 and "retriever" in result.stderr and "Traceback" not in result.stderr
