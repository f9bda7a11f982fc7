from __future__ import annotations

import json
import logging
from pathlib import Path

import faiss
import pytest

from index.loaders import load_documents
from index.service import new_index, open_index
from index.store import IndexMismatchError, IndexNotFoundError, PassageIndex
from index.types import IndexSpec
from tests.conftest import ARTICLE

SPEC = IndexSpec()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class TestPassageIndex:
    def test_saved_index_reloads_with_the_same_search_results(self, article_index: PassageIndex, settings) -> None:  # type: ignore[no-untyped-def]
        reloaded = open_index(settings.index_dir, SPEC)
        query = article_index.embedder.embed_query("what did Deng agree in 1979?")
        assert [c.chunk_id for c, _ in reloaded.search(query, 3)] == [
            c.chunk_id for c, _ in article_index.search(query, 3)
        ]
        manifest = json.loads((settings.index_dir / "manifest.json").read_text())
        assert manifest["embedder"] == {
            "model": "all-MiniLM-L6-v2",
            "backend": "openvino",
            "dimension": 384,
            "normalized": True,
        }
        assert manifest["documents"][0]["sha256"] == article_index.documents[0].sha256
        assert manifest["documents"][0]["chunk_count"] == len(article_index)

    def test_every_passage_points_into_its_document(self, article_index: PassageIndex) -> None:
        for chunk in article_index.chunks():
            document = article_index.document(chunk.doc_id)
            assert document is not None and document.text[chunk.start : chunk.end] == chunk.text

    def test_incremental_add_change_and_remove(self, tmp_path: Path) -> None:
        corpus = tmp_path / "docs"
        corpus.mkdir()
        write(corpus / "a.txt", "Alpha the river flows north. " * 20)
        write(corpus / "b.txt", "Beta mountains are tall and cold. " * 20)
        index = new_index(SPEC)
        first = index.add(load_documents(corpus))
        assert len(first.added) == 2 and first.passages_embedded > 0

        again = index.add(load_documents(corpus))
        assert again.added == [] and again.replaced == [] and len(again.unchanged) == 2
        assert again.passages_embedded == 0

        before = {c.chunk_id for c in index.chunks() if "beta" in c.doc_id}
        write(corpus / "a.txt", "Alpha the river now flows south. " * 5)
        changed = index.add(load_documents(corpus))
        a_chunks = [c for c in index.chunks() if c.doc_id.startswith("a-")]
        assert len(changed.replaced) == 1 and len(changed.unchanged) == 1
        assert changed.passages_embedded == len(a_chunks)  # only the changed file was embedded
        assert {c.chunk_id for c in index.chunks() if "beta" in c.doc_id} == before
        assert len(index.documents) == 2
        assert all("south" in c.text or "Alpha" in c.text for c in a_chunks)

        b_id = next(d.doc_id for d in index.documents if d.doc_id.startswith("b-"))
        assert index.remove(b_id)
        assert not index.remove(b_id)
        assert all(not c.doc_id.startswith("b-") for c in index.chunks())
        hits = index.search(index.embedder.embed_query("tall cold mountains"), 10)
        assert hits and all(not c.doc_id.startswith("b-") for c, _ in hits)

        index.save(tmp_path / "idx")
        reloaded = open_index(tmp_path / "idx", SPEC)
        assert len(reloaded) == len(index) and len(reloaded.documents) == 1

    def test_a_failed_save_leaves_the_old_index_whole(self, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        target = tmp_path / "idx"
        index = new_index(SPEC)
        index.add(load_documents(ARTICLE))
        index.save(target)
        before = {p.name: p.read_bytes() for p in target.iterdir()}
        index.add([load_documents(write(tmp_path / "extra.txt", "Another document about ships."))[0]])

        # Failure injection: a crash while writing cannot be provoked reliably for real, so the FAISS
        # writer is made to fail mid-save.
        def crash(*args: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(faiss, "write_index", crash)
        with pytest.raises(OSError, match="disk full"):
            index.save(target)
        assert {p.name: p.read_bytes() for p in target.iterdir()} == before
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".idx")] == []
        assert len(open_index(target, SPEC).documents) == 1

    def test_interrupted_swap_is_recovered(self, tmp_path: Path) -> None:
        target = tmp_path / "idx"
        index = new_index(SPEC)
        index.add(load_documents(ARTICLE))
        index.save(target)
        target.rename(tmp_path / ".idx.old-deadbeef")  # the state between the two renames
        assert len(open_index(target, SPEC)) == len(index)

    def test_missing_index_says_how_to_build(self, tmp_path: Path) -> None:
        with pytest.raises(IndexNotFoundError, match="rag index build"):
            open_index(tmp_path / "none", SPEC)

    def test_mismatched_embedder_is_refused(self, tmp_path: Path) -> None:
        index = new_index(SPEC)
        index.add(load_documents(ARTICLE))
        index.save(tmp_path / "idx")
        manifest_path = tmp_path / "idx" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["embedder"].update(model="all-mpnet-base-v2", dimension=768)
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(IndexMismatchError, match=r"all-mpnet-base-v2.*rag index build"):
            PassageIndex.load(tmp_path / "idx", SPEC, index.embedder, index.chunker)


class TestSpecFromTheIndex:
    """An index keeps the splitter it was built with: settings changed later do not mix passage lengths."""

    def test_adding_to_an_index_splits_as_it_was_built(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        from dataclasses import replace

        from index.library import Library
        from index.loaders import document_from_bytes

        built = new_index(SPEC)
        built.add(load_documents(ARTICLE))
        built.save(tmp_path / "idx")
        longer = replace(SPEC, chunk_size=SPEC.chunk_size * 2)
        with caplog.at_level(logging.WARNING, logger="index.service"):
            library = Library.open(tmp_path / "idx", longer, built.embedder)
        assert library.index.spec.chunk_size == SPEC.chunk_size
        assert "rebuild it" in caplog.text and f"chunks of {SPEC.chunk_size} tokens" in caplog.text
        note = document_from_bytes("note.txt", (ARTICLE.read_text()[:3000]).encode(), source="upload:note.txt")
        library.add([note])
        manifest = PassageIndex.read_manifest(tmp_path / "idx")
        assert manifest["splitter"]["chunk_size"] == SPEC.chunk_size
        expected = len(built.chunker.split(note))
        assert next(d for d in manifest["documents"] if d["doc_id"] == note.doc_id)["chunk_count"] == expected
