"""Gold question/answer sets: `eval/gold/*.jsonl`, one item a line.

A gold set names the documents it was written against in a sidecar file beside it:
`eval/gold/<name>.corpus` holds one path (a file or a folder), relative to the project root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from rag.errors import UserError
from rag.settings import PROJECT_ROOT

GOLD_DIR = Path(__file__).resolve().parent / "gold"
CORPORA_DIR = Path(__file__).resolve().parent / "corpora"
ARTICLE_GOLD = GOLD_DIR / "article.jsonl"
LIBRARY_GOLD = GOLD_DIR / "millbrook-library-2024.jsonl"
CORPUS_SUFFIX = ".corpus"

QuestionType = Literal[
    "fact",
    "date",
    "number",
    "entity",
    "why",
    "paraphrase",  # shares no content word with the sentence holding its evidence
    "multihop",
    "typo",
    "casual",
    "arithmetic",  # a count, sum or difference over numbers in one or two passages
    "document",  # about the document itself: title, author, date, publication, the author's past posts
    "unanswerable",
]


class GoldItem(BaseModel):
    """One question with every acceptable short answer and the verbatim evidence that supports it."""

    id: str
    question: str = Field(min_length=3)
    answers: list[str]
    evidence: list[str]
    type: QuestionType
    # For computed answers: the arithmetic over numbers quoted in `evidence`, e.g. "1989 - 1979 = 10",
    # so a grounded-arithmetic check can be scored against what a correct reply should compute.
    calculation: str | None = None

    @property
    def answerable(self) -> bool:
        """True when the item has gold answers (the documents hold the answer)."""
        return bool(self.answers)


class GoldFormatError(UserError, ValueError):
    """A gold file (or its corpus sidecar) that cannot be used; the message names the file and line."""


def load_gold(path: Path) -> list[GoldItem]:
    """Every item of a JSONL gold file, validated; raises GoldFormatError naming the bad line."""
    if not path.exists():
        raise GoldFormatError(f"no gold file at {path}")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = GoldItem.model_validate_json(line)
        except ValidationError as error:
            raise GoldFormatError(f"{path}:{number}: {error.errors()[0]['msg']}") from error
        if item.answerable != bool(item.evidence):
            raise GoldFormatError(f"{path}:{number}: answers and evidence must both be empty or both set")
        items.append(item)
    if not items:
        raise GoldFormatError(f"{path} holds no items")
    return items


def gold_files() -> list[Path]:
    """The gold sets shipped with the project, in name order."""
    return sorted(GOLD_DIR.glob("*.jsonl"))


def corpus_for(gold_path: Path) -> Path | None:
    """The documents a gold set was written against, from its `<name>.corpus` sidecar; None without one.

    The sidecar holds one path relative to the project root (or an absolute path); blank lines and
    lines starting with `#` are ignored. A sidecar naming nothing, or a path that does not exist,
    raises GoldFormatError: scoring questions against the wrong documents would fail silently.
    """
    sidecar = gold_path.with_suffix(CORPUS_SUFFIX)
    if not sidecar.exists():
        return None
    lines = [line.strip() for line in sidecar.read_text(encoding="utf-8").splitlines()]
    paths = [line for line in lines if line and not line.startswith("#")]
    if len(paths) != 1:
        raise GoldFormatError(f"{sidecar}: expected one corpus path, found {len(paths)}")
    corpus = Path(paths[0]).expanduser()
    corpus = corpus if corpus.is_absolute() else PROJECT_ROOT / corpus
    if not corpus.exists():
        raise GoldFormatError(
            f"{sidecar}: the corpus {corpus} does not exist; fix the path (relative to {PROJECT_ROOT})"
        )
    return corpus
