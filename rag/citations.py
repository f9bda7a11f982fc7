"""Make the answer's `[n]` markers honest: drop invalid ones, add missing ones, renumber 1..k."""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.sentences import ABBREVIATIONS
from rag.prompt import CITATION_MARKER as _MARKER
from rag.stopwords import FUNCTION_WORDS as _IGNORED_WORDS
from rag.types import Citation, Passage

# "[1]", "[1, 2]", "[1][2]", "[Passage 2]"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])")
_WORD = re.compile(r"[a-z0-9]+")
SUPPORT_THRESHOLD = 0.5


def content_words(text: str) -> set[str]:
    """The text's lower-cased words other than stopwords."""
    return {w for w in _WORD.findall(text.lower()) if w not in _IGNORED_WORDS}


def support(sentence: str, passage: str) -> float:
    """Share of the sentence's content words found in the passage."""
    words = content_words(sentence)
    if not words:
        return 0.0
    return len(words & content_words(passage)) / len(words)


@dataclass(frozen=True)
class CheckedAnswer:
    """The answer with honest markers; `claims` are its sentences with the 0-based passages each cites."""

    text: str
    citations: list[Citation]
    supported: bool
    claims: list[tuple[str, list[int]]]
    passage_for_number: dict[int, int]  # citation n -> 0-based passage index


def split_sentences(text: str) -> list[str]:
    """The answer's sentences, each with its trailing citation marks (abbreviations do not end a sentence)."""
    sentences: list[str] = []
    start = 0
    text = text.strip()
    for boundary in _SENTENCE_END.finditer(text):
        words = text[start : boundary.start()].split()
        last_word = words[-1].rstrip(".").lower() if words else ""
        if last_word in ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        sentences.append(text[start : boundary.start()])
        start = boundary.end()
    sentences.append(text[start:])
    return [s for s in sentences if s.strip()]


def _numbers(marker_body: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", marker_body)]


def check_citations(reply: str, passages: list[Passage]) -> CheckedAnswer:
    """Validate, complete and renumber citations so that `[n]` in the text matches `n` in the list."""
    valid = range(1, len(passages) + 1)
    supported = True
    sentences: list[tuple[str, list[int]]] = []  # text without markers, cited passage numbers
    for sentence in split_sentences(reply):
        cited = [n for m in _MARKER.finditer(sentence) for n in _numbers(m.group(1)) if n in valid]
        bare = _MARKER.sub("", sentence).strip()
        if not bare:
            if sentences:  # a marker that trailed the previous sentence's full stop
                sentences[-1] = (sentences[-1][0], sentences[-1][1] + cited)
            continue
        if not cited and content_words(bare):
            scores = [support(bare, p.text) for p in passages]
            best = max(range(len(scores)), key=scores.__getitem__, default=None)
            if best is not None and scores[best] >= SUPPORT_THRESHOLD:
                cited = [best + 1]
            else:
                supported = False
        sentences.append((bare, cited))

    order: list[int] = []
    for _, cited in sentences:
        for n in cited:
            if n not in order:
                order.append(n)
    renumber = {old: new for new, old in enumerate(order, start=1)}
    parts = []
    for bare, cited in sentences:
        markers = "".join(f"[{renumber[n]}]" for n in dict.fromkeys(cited))
        if markers and bare[-1:] in ".!?":
            parts.append(f"{bare[:-1]} {markers}{bare[-1]}")
        elif markers:
            parts.append(f"{bare} {markers}")
        else:
            parts.append(bare)
    citations = [Citation.of(renumber[old], passages[old - 1]) for old in order]
    claims = [(bare, [n - 1 for n in dict.fromkeys(cited)]) for bare, cited in sentences]
    return CheckedAnswer(
        " ".join(parts),
        citations,
        supported and bool(citations),
        claims,
        {renumber[old]: old - 1 for old in order},
    )
