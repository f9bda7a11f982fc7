"""Read .txt, .md and .html files into Documents."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from bs4 import BeautifulSoup

from index.types import Document, make_doc_id

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")


class DocumentLoadError(ValueError):
    """A file that cannot become a Document; the message says what to fix."""


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text of an HTML page (blocks on their own lines) and its <title>."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title_tag = soup.find("title")
    title = title_tag.get_text(strip=True) if title_tag else None
    if soup.head:
        soup.head.decompose()
    text = soup.get_text("\n")
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    collapsed = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if title is None:
        heading = soup.find(["h1", "h2"])
        title = heading.get_text(strip=True) if heading else None
    return collapsed, title


def _markdown_title(text: str) -> str | None:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def _title_from_name(name: str) -> str:
    stem = Path(name).stem
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or "Untitled"


def document_from_bytes(name: str, data: bytes, source: str | None = None) -> Document:
    """Build a Document from a file's name and bytes (used for uploads and files alike)."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentLoadError(
            f"{name}: unsupported file type {suffix or '(none)'}; use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentLoadError(f"{name}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    title: str | None
    if suffix in (".html", ".htm"):
        text, title = html_to_text(raw)
    elif suffix in (".md", ".markdown"):
        text, title = raw.strip(), _markdown_title(raw)
    else:
        text, title = raw.strip(), None
    if not text.strip():
        raise DocumentLoadError(f"{name}: the document has no text")
    title = title or _title_from_name(name)
    return Document(doc_id=make_doc_id(Path(name).stem, text), title=title, source=source or name, text=text)


def _expand(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise DocumentLoadError(f"{path}: no such file or folder")
    return files


def load_documents(paths: Path | Iterable[Path]) -> list[Document]:
    """Load a file, a folder (recursively) or a list of them."""
    path_list = [paths] if isinstance(paths, Path) else list(paths)
    files = _expand(path_list)
    if not files:
        raise DocumentLoadError(f"no {', '.join(SUPPORTED_SUFFIXES)} files found in {', '.join(map(str, path_list))}")
    return [document_from_bytes(f.name, f.read_bytes(), source=str(f.resolve())) for f in files]
