"""The article's gold set is well formed and its evidence is verbatim in the article."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from eval.gold import ARTICLE_GOLD, GoldFormatError, load_gold
from tests.conftest import ARTICLE


class TestArticleGold:
    def test_size_and_mix(self) -> None:
        items = load_gold(ARTICLE_GOLD)
        kinds = Counter(item.type for item in items)
        assert len(items) >= 60 and kinds["unanswerable"] >= 12
        assert {"fact", "date", "number", "entity", "why", "paraphrase", "multihop", "typo", "casual"} <= set(kinds)
        assert len({item.id for item in items}) == len(items)
        assert sum(1 for item in items if len(item.evidence) > 1) >= 4  # multi-passage questions

    def test_evidence_is_verbatim_in_the_article(self) -> None:
        text = ARTICLE.read_text(encoding="utf-8")
        for item in load_gold(ARTICLE_GOLD):
            for evidence in item.evidence:
                assert evidence in text, f"{item.id}: {evidence!r}"

    def test_every_paragraph_is_covered(self) -> None:
        text = ARTICLE.read_text(encoding="utf-8")
        paragraphs = [p for p in text.split("\n\n") if len(p.split()) > 8 and "comment policy" not in p]
        evidence = [e for item in load_gold(ARTICLE_GOLD) for e in item.evidence]
        uncovered = [p[:60] for p in paragraphs if not any(e in p for e in evidence)]
        assert uncovered == []

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ('{"id": "x", "question": "Why?", "answers": ["a"], "evidence": [], "type": "why"}', "both be empty"),
            ('{"id": "x", "question": "Why?", "answers": [], "evidence": [], "type": "poem"}', "Input should be"),
            ("{not json", "Invalid JSON"),
        ],
    )
    def test_malformed_items_are_rejected(self, tmp_path: Path, line: str, message: str) -> None:
        path = tmp_path / "bad.jsonl"
        path.write_text(line + "\n")
        with pytest.raises(GoldFormatError, match=message):
            load_gold(path)
