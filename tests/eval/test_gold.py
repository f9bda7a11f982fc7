"""The gold sets are well formed, truthful to their corpus, and as hard as they claim to be.

Every evidence string must occur verbatim in the text the index loads; every "paraphrase" question must
share no content word with the sentence holding its evidence; every written calculation must compute
its answer from numbers quoted in the evidence. No model is involved: these tests read files.
"""

from __future__ import annotations

import ast
import operator
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from eval.gold import (
    ARTICLE_GOLD,
    LIBRARY_GOLD,
    GoldFormatError,
    GoldItem,
    corpus_for,
    gold_files,
    load_gold,
)
from index.loaders import load_documents
from rag.settings import PROJECT_ROOT
from tests.conftest import ARTICLE

GOLD_SETS = gold_files()
HARD_TYPES = ("arithmetic", "paraphrase", "why", "document", "unanswerable")

# ---- helpers: what "shares no content word" and "computes its answer" mean, stated once -------------

_STOPWORD_TEXT = """a an the and or but of in on at to for from by with without about into onto over under after before
between during since until than then as is are was were be been being do does did done has have had having what which
who whom whose when where why how whether if that this these those there here it its they them their he him his she
her we us our you your i me my one ones some any each every all both either neither such so not no nor too very can
could would should will shall may might must also just only own same other more most much many few less least
according article roughly exactly"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_ABBREVIATION_TEXT = "mr mrs ms dr st no jan feb mar apr jun jul aug sep sept oct nov dec u.s p.m a.m"
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
# A sentence ends at . ! or ? (and any closing quote) before a space and a capital, digit or opening quote.
_END = re.compile(r"[.!?][”\"’)]*(?=\s+[“\"(]?[A-Z0-9])")
_WORD_BEFORE_STOP = re.compile(r"([A-Za-z.]+)\.[”\"’)]*$")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`; a line break always ends one (headings, list items)."""
    spans = []
    for line in re.finditer(r"[^\n]+", text):
        body, base, start = line.group(0), line.start(), 0
        for end in _END.finditer(body):
            word = _WORD_BEFORE_STOP.search(body[: end.end()])
            is_abbreviation = word is not None and (
                word.group(1).lower() in _ABBREVIATIONS or re.fullmatch(r"[A-Z]", word.group(1)) is not None
            )
            if body[end.start()] == "." and is_abbreviation:
                continue
            spans.append((base + start, base + end.end()))
            start = end.end()
        spans.append((base + start, base + len(body)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def evidence_sentences(text: str, evidence: str) -> list[str]:
    at = text.index(evidence)
    return [text[s:e] for s, e in sentence_spans(text) if s < at + len(evidence) and e > at]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Stems of the words that carry meaning: not stopwords, three letters or more, or any number."""
    text = re.sub(r"['’]s\b", "", text.lower().replace("’", "'"))
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text) if (len(w) >= 3 or w.isdigit()) and w not in STOPWORDS}


def shared_words(question: str, sentence: str) -> set[str]:
    """Content words in both; a stem of four letters or more that begins the other counts ("month"/"monthly")."""
    ours, theirs = content_words(question), content_words(sentence)
    return {
        a for a in ours for b in theirs if a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))
    }


_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
# Numbers a calculation may use without quoting them: months in a year, percent, "one plus a rate".
UNIT_CONSTANTS = frozenset({1.0, 12.0, 100.0})


def evaluate(expression: str) -> tuple[float, list[float]]:
    """The value of + - * / arithmetic over number literals, and the literals; anything else is refused."""
    operands: list[float] = []

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            operands.append(float(node.value))
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"not plain arithmetic: {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval").body), operands


def numbers_in(text: str) -> set[float]:
    return {float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


def corpus_text(gold: Path) -> str:
    corpus = corpus_for(gold)
    assert corpus is not None, f"{gold.name} names no corpus"
    return "\n\n".join(document.text for document in load_documents(corpus))


# ---- every shipped gold set -------------------------------------------------------------------------------


def test_the_project_ships_the_article_and_the_library_gold_sets() -> None:
    assert {ARTICLE_GOLD, LIBRARY_GOLD} <= set(GOLD_SETS)
    assert corpus_for(ARTICLE_GOLD) == ARTICLE


@pytest.mark.parametrize("gold", GOLD_SETS, ids=lambda p: p.stem)
class TestEveryGoldSet:
    def test_evidence_is_verbatim_in_the_loaded_corpus(self, gold: Path) -> None:
        text = corpus_text(gold)
        missing = [(item.id, e) for item in load_gold(gold) for e in item.evidence if e not in text]
        assert missing == []

    def test_ids_continue_one_sequence(self, gold: Path) -> None:
        items = load_gold(gold)
        prefix = items[0].id.rsplit("-", 1)[0]
        assert [item.id for item in items] == [f"{prefix}-{n:03d}" for n in range(1, len(items) + 1)]

    def test_paraphrases_share_no_content_word_with_their_evidence_sentence(self, gold: Path) -> None:
        text = corpus_text(gold)
        overlaps = {}
        for item in load_gold(gold):
            if item.type == "paraphrase":
                sentences = " ".join(s for e in item.evidence for s in evidence_sentences(text, e))
                if shared := shared_words(item.question, sentences):
                    overlaps[item.id] = sorted(shared)
        assert overlaps == {}

    def test_calculations_compute_an_answer_from_quoted_numbers(self, gold: Path) -> None:
        for item in load_gold(gold):
            if item.calculation is None:
                continue
            assert item.type == "arithmetic", item.id
            left, _, right = item.calculation.partition("=")
            value, operands = evaluate(left)
            result = float(right)
            # The stated result is the exact value rounded to its own precision.
            decimals = len(right.strip().partition(".")[2])
            assert round(value, decimals) == pytest.approx(result), f"{item.id}: {item.calculation} is {value}"
            quoted = numbers_in(" ".join(item.evidence))
            unquoted = [n for n in operands if n not in quoted and n not in UNIT_CONSTANTS]
            assert unquoted == [], f"{item.id}: operands not in the evidence"
            assert any(result in numbers_in(answer) for answer in item.answers), f"{item.id}: result in no answer"

    def test_document_questions_are_answered_by_the_header_or_the_end_matter(self, gold: Path) -> None:
        blocks = [b for b in corpus_text(gold).split("\n\n") if b.strip()]
        about_document = blocks[:4] + [b for b in blocks if b.startswith(("•", "Copyright"))]
        for item in load_gold(gold):
            if item.type == "document":
                assert all(any(e in b for b in about_document) for e in item.evidence), item.id

    def test_answers_and_questions_are_unique(self, gold: Path) -> None:
        items = load_gold(gold)
        assert len({item.question.lower() for item in items}) == len(items)
        assert all(len(set(item.answers)) == len(item.answers) for item in items)


class TestArticleGold:
    def test_size_and_mix(self) -> None:
        items = load_gold(ARTICLE_GOLD)
        kinds: Counter[str] = Counter(item.type for item in items)
        assert len(items) >= 120
        assert {kind: kinds[kind] for kind in HARD_TYPES if kinds[kind] < 15} == {}
        assert {"fact", "date", "number", "entity", "multihop", "typo", "casual"} <= set(kinds)
        assert sum(1 for item in items if len(item.evidence) > 1) >= 10  # questions needing two passages
        assert sum(1 for item in items if item.calculation) >= 10

    def test_every_paragraph_is_covered(self) -> None:
        text = ARTICLE.read_text(encoding="utf-8")
        paragraphs = [p for p in text.split("\n\n") if len(p.split()) > 8 and "comment policy" not in p]
        evidence = [e for item in load_gold(ARTICLE_GOLD) for e in item.evidence]
        uncovered = [p[:60] for p in paragraphs if not any(e in p for e in evidence)]
        assert uncovered == []


class TestLibraryGold:
    def test_size_and_mix(self) -> None:
        items = load_gold(LIBRARY_GOLD)
        kinds = Counter(item.type for item in items)
        assert len(items) == 30
        assert kinds["unanswerable"] >= 5 and kinds["arithmetic"] >= 3 and kinds["document"] >= 3
        assert len(kinds) >= 8


# ---- the checks above can fail ------------------------------------------------------------------------------


class TestTheChecksThemselves:
    def test_a_question_reusing_a_word_of_its_sentence_is_caught(self) -> None:
        sentence = "China is buying crude oil and gas at a reasonable price, with trade reaching record highs."
        assert shared_words("What does Beijing purchase from Moscow for a fair sum?", sentence) == set()
        assert shared_words("What does Beijing buy at a reasonable cost?", sentence) == {"buy", "reasonable"}
        assert shared_words("What is traded monthly?", "They trade each month.") == {"trad", "month"}

    def test_sentences_do_not_end_at_abbreviations_or_initials(self) -> None:
        text = "On Dec. 25, 1991, Mr. Gorbachev met Joseph R. DeTrani in the U.S. capital. Then he left.\n- a list item"
        assert [text[s:e] for s, e in sentence_spans(text)] == [
            "On Dec. 25, 1991, Mr. Gorbachev met Joseph R. DeTrani in the U.S. capital.",
            " Then he left.",
            "- a list item",
        ]

    def test_the_evaluator_computes_arithmetic_and_refuses_anything_else(self) -> None:
        assert evaluate("240 / (1 + 64 / 100)") == (pytest.approx(146.34, abs=0.01), [240.0, 1.0, 64.0, 100.0])
        for expression in ("__import__('os')", "2 ** 8", "x - 1"):
            with pytest.raises(ValueError, match="not plain arithmetic"):
                evaluate(expression)

    def test_numbers_are_read_with_thousands_separators(self) -> None:
        assert numbers_in("$1,500 a month, 38 percent and $4.1 million") == {1500.0, 38.0, 4.1}


# ---- the file format and the corpus sidecar ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "question": "Why?", "answers": ["a"], "evidence": [], "type": "why"}', "both be empty"),
        ('{"id": "x", "question": "Why?", "answers": [], "evidence": [], "type": "poem"}', "Input should be"),
        ("{not json", "Invalid JSON"),
    ],
)
def test_malformed_items_are_rejected(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(GoldFormatError, match=message):
        load_gold(path)


def test_the_new_types_and_the_calculation_field_load(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text(
        '{"id": "g-001", "question": "How many?", "answers": ["2"], "evidence": ["1858", "1860"], '
        '"type": "arithmetic", "calculation": "1860 - 1858 = 2"}\n'
        '{"id": "g-002", "question": "Who wrote it?", "answers": ["Ann"], "evidence": ["By Ann"], "type": "document"}\n'
    )
    first, second = load_gold(path)
    assert first == GoldItem(
        id="g-001",
        question="How many?",
        answers=["2"],
        evidence=["1858", "1860"],
        type="arithmetic",
        calculation="1860 - 1858 = 2",
    )
    assert second.calculation is None and second.answerable


class TestCorpusFor:
    def test_no_sidecar_means_no_corpus(self, tmp_path: Path) -> None:
        assert corpus_for(tmp_path / "plain.jsonl") is None

    def test_a_relative_path_is_read_from_the_project_root(self, tmp_path: Path) -> None:
        (tmp_path / "set.corpus").write_text("# written against the built-in article\n\ncorpus\n")
        assert corpus_for(tmp_path / "set.jsonl") == PROJECT_ROOT / "corpus"

    def test_an_absolute_path_is_kept(self, tmp_path: Path) -> None:
        document = tmp_path / "doc.md"
        document.write_text("# A\n\ntext\n")
        (tmp_path / "set.corpus").write_text(f"{document}\n")
        assert corpus_for(tmp_path / "set.jsonl") == document

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("", "expected one corpus path, found 0"),
            ("a.md\nb.md\n", "found 2"),
            ("no/such/file.md\n", "does not exist"),
        ],
    )
    def test_a_sidecar_that_names_no_existing_path_is_an_error(
        self, tmp_path: Path, content: str, message: str
    ) -> None:
        (tmp_path / "set.corpus").write_text(content)
        with pytest.raises(GoldFormatError, match=message):
            corpus_for(tmp_path / "set.jsonl")
