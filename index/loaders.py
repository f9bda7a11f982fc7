"""Read .txt, .md and .html files into Documents."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from bs4 import BeautifulSoup

from index.errors import UserError
from index.types import Document, make_doc_id

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")


class DocumentLoadError(UserError, ValueError):
    """A file that cannot become a Document; the message says what to fix."""


def html_to_text(html: str) -> tuple[str, str | None, dict[str, str]]:
    """Visible text of an HTML page (blocks on their own lines), its <title> and its <meta> fields."""
    soup = BeautifulSoup(html, "html.parser")
    meta = _html_meta(soup)
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
    return collapsed, title, meta


_BYLINE = re.compile(r"^[*_\s]*by\s+(?P<author>[^,*_\n]+?)(?:\s*,\s*(?P<publisher>[^*_\n]+?))?[*_\s]*$", re.I)
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_DATE = re.compile(
    rf"\b(?:(?:{_MONTHS})\.?\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}\s+(?:{_MONTHS})\s+\d{{4}}|\d{{4}}-\d{{2}}-\d{{2}})\b",
    re.I,
)
_FRONT_MATTER = re.compile(r"\A---\n(?P<body>.*?)\n---\n", re.S)
_HEADER_LINES = 8


@dataclass(frozen=True)
class DocumentFacts:
    """What a document says about itself: byline, date, publisher, URL, and where its header ends."""

    author: str | None = None
    published: str | None = None
    publisher: str | None = None
    url: str | None = None
    header_end: int = 0


def header_facts(text: str) -> DocumentFacts:
    """Byline ("By Name, Publication"), a date and a URL among the first lines of a text or Markdown file."""
    author = published = publisher = url = None
    header_end = 0
    offset = 0
    for number, line in enumerate(text.split("\n")):
        if number >= _HEADER_LINES:
            break
        stripped = line.strip()
        byline = _BYLINE.match(stripped) if author is None else None
        date = _DATE.search(stripped) if published is None and len(stripped) < 80 else None
        link = re.search(r"https?://\S+", stripped) if url is None and len(stripped) < 200 else None
        if byline:
            author = byline.group("author").strip()
            publisher = (byline.group("publisher") or "").strip() or None
        if date:
            published = date.group(0)
        if link:
            url = link.group(0).rstrip(").,>")
        if byline or date or link or (number == 0 and stripped.startswith("#")):
            header_end = offset + len(line)
        offset += len(line) + 1
    return DocumentFacts(author, published, publisher, url, header_end)


def _front_matter(raw: str) -> tuple[dict[str, str], str]:
    """`key: value` lines between `---` fences at the top of a Markdown file, and the text after them."""
    match = _FRONT_MATTER.match(raw)
    if not match:
        return {}, raw
    fields = {}
    for line in match.group("body").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip().strip("\"'")
    return fields, raw[match.end() :]


def _html_meta(soup: BeautifulSoup) -> dict[str, str]:
    found: dict[str, str] = {}
    for tag in soup.find_all("meta"):
        key = str(tag.get("name") or tag.get("property") or "").lower()
        content = str(tag.get("content") or "").strip()
        if key and content:
            found.setdefault(key, content)
    return found


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
    declared: dict[str, str] = {}
    if suffix in (".html", ".htm"):
        text, title, meta = html_to_text(raw)
        declared = {
            "author": meta.get("author") or meta.get("article:author") or "",
            "date": meta.get("article:published_time") or meta.get("date") or meta.get("pubdate") or "",
            "publisher": meta.get("og:site_name") or "",
            "url": meta.get("og:url") or "",
        }
    elif suffix in (".md", ".markdown"):
        declared, body = _front_matter(raw)
        text, title = body.strip(), declared.get("title") or _markdown_title(body)
    else:
        text, title = raw.strip(), None
    if not text.strip() or not any(ch.isalnum() for ch in text):
        raise DocumentLoadError(f"{name}: the document has no text (only whitespace or control characters)")
    title = title or _title_from_name(name)
    facts = header_facts(text)
    facts = replace(
        facts,
        author=declared.get("author") or facts.author,
        published=declared.get("date") or facts.published,
        publisher=declared.get("publisher") or facts.publisher,
        url=declared.get("url") or facts.url,
    )
    return Document(
        doc_id=make_doc_id(Path(name).stem, text),
        title=title,
        source=source or name,
        text=text,
        author=facts.author,
        published=facts.published,
        publisher=facts.publisher,
        url=facts.url,
        header_end=facts.header_end,
    )


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


@dataclass(frozen=True)
class LoadReport:
    """The documents that loaded, and every file skipped with its reason (never silently)."""

    documents: list[Document]
    skipped: list[tuple[Path, str]]


def load_documents_reporting(paths: Path | Iterable[Path]) -> LoadReport:
    """Load every readable file of a file, folder (recursively) or list of them; report the rest."""
    path_list = [paths] if isinstance(paths, Path) else list(paths)
    files = _expand(path_list)
    if not files:
        raise DocumentLoadError(f"no {', '.join(SUPPORTED_SUFFIXES)} files found in {', '.join(map(str, path_list))}")
    documents: list[Document] = []
    skipped: list[tuple[Path, str]] = []
    for file in files:
        try:
            documents.append(document_from_bytes(file.name, file.read_bytes(), source=str(file.resolve())))
        except (DocumentLoadError, OSError) as error:
            skipped.append((file, str(error)))
    return LoadReport(documents, skipped)


def load_documents(paths: Path | Iterable[Path]) -> list[Document]:
    """Load a file, a folder (recursively) or a list of them; the first unreadable file is an error."""
    report = load_documents_reporting(paths)
    if report.skipped:
        raise DocumentLoadError(report.skipped[0][1])
    return report.documents
