"""Gold question/answer sets: `eval/gold/*.jsonl`, one item a line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

GOLD_DIR = Path(__file__).resolve().parent / "gold"
ARTICLE_GOLD = GOLD_DIR / "article.jsonl"

QuestionType = Literal[
    "fact", "date", "number", "entity", "why", "paraphrase", "multihop", "typo", "casual", "unanswerable"
]


class GoldItem(BaseModel):
    id: str
    question: str = Field(min_length=3)
    answers: list[str]
    evidence: list[str]
    type: QuestionType

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


class GoldFormatError(ValueError):
    pass


def load_gold(path: Path) -> list[GoldItem]:
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
