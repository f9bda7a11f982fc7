from __future__ import annotations

from pathlib import Path

import pytest

from index.loaders import DocumentLoadError, document_from_bytes, load_documents


class TestLoaders:
    def test_html_is_reduced_to_visible_text_with_title(self) -> None:
        html = (
            b"<html><head><title>Bridges</title><style>p{color:red}</style></head><body>"
            b"<h1>Old bridges</h1><script>alert('x')</script><p>The bridge opened in <b>1932</b>.</p></body></html>"
        )
        document = document_from_bytes("bridges.html", html)
        assert document.title == "Bridges"
        assert "The bridge opened in" in document.text and "1932" in document.text
        assert "alert" not in document.text and "color" not in document.text

    def test_markdown_title_is_the_first_heading(self) -> None:
        document = document_from_bytes("notes.md", b"Intro line\n\n# Real Title\n\nBody text.")
        assert document.title == "Real Title"

    def test_text_title_comes_from_the_file_name(self) -> None:
        document = document_from_bytes("annual-report_2024.txt", b"Revenue grew.")
        assert document.title == "Annual report 2024"

    def test_doc_id_is_a_slug_plus_content_hash(self) -> None:
        a = document_from_bytes("My File.txt", b"one")
        b = document_from_bytes("My File.txt", b"two")
        assert a.doc_id.startswith("my-file-") and a.doc_id != b.doc_id

    def test_folder_and_list(self, tmp_path: Path) -> None:
        (tmp_path / "a.txt").write_text("alpha")
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "b.md").write_text("# B\nbeta")
        (tmp_path / "skip.pdf").write_bytes(b"%PDF")
        assert sorted(d.title for d in load_documents(tmp_path)) == ["A", "B"]
        assert len(load_documents([tmp_path / "a.txt", tmp_path / "sub"])) == 2

    @pytest.mark.parametrize(
        ("name", "data", "message"),
        [
            ("x.pdf", b"%PDF", "unsupported file type"),
            ("x.txt", b"   \n ", "no text"),
            ("x.txt", b"\xff\xfe\xfa", "not UTF-8"),
        ],
    )
    def test_bad_files_have_clear_errors(self, name: str, data: bytes, message: str) -> None:
        with pytest.raises(DocumentLoadError, match=message):
            document_from_bytes(name, data)

    def test_missing_path(self, tmp_path: Path) -> None:
        with pytest.raises(DocumentLoadError, match="no such file"):
            load_documents(tmp_path / "nope.txt")
