"""Whether a short answer comes from the paragraph the question is about.

A 1.5B model asked "With which country did the author negotiate as a special envoy?" may answer "Russia", cited to a
sentence that names Russia but says nothing of envoys, while another passage's sentence ("… special envoy for
six-party negotiations with North Korea") matches the question far better and does not name Russia. Every word of
the answer is in its cited passage, so the evidence check passes it; the answer is still about something else. This
check compares shares of the question's words: of each paragraph stating the answer (a paragraph is about one
thing, so "The garden covers 45 hectares" answers for "the Jade River tea garden" two sentences earlier), and of each
sentence of the paragraphs that do not state it. When such a sentence is clearly closer to the question than every
paragraph stating the answer, the answer is withheld. It only withholds: which words of the closer
sentence answer the question is the model's job, and guessing them is not a computed check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from index.sentences import sentence_spans
from rag.answer_fit import CITATION_MARKS
from rag.grounding import is_instruction, terms
from rag.types import Passage

# A sentence from a paragraph without the answer must match this much larger a share of the question's words than the
# best paragraph stating it before the answer is taken to be about something else.
MIN_FOCUS_GAP = 0.45
# Longer answers carry their own context ("The Treaty of Aigun ceded …"); this check is for names and figures.
MAX_ANSWER_WORDS = 8


@dataclass(frozen=True)
class FocusResult:
    """The question's share of words in the best sentence stating the answer and in the best one not stating it."""

    answer_sentence: float
    other_sentence: float

    @property
    def off_focus(self) -> bool:
        """A sentence that does not state the answer is clearly what the question is about."""
        return self.other_sentence - self.answer_sentence >= MIN_FOCUS_GAP


class QuestionFocus:
    """Compares the sentences that state a short answer with those that do not, by the question's words."""

    def run(self, question: str, answer: str, passages: Sequence[Passage]) -> FocusResult | None:
        """The comparison for a short answer, or None when it does not apply (a long answer, one that adds nothing
        to the question, no sentence stating the answer)."""
        text = CITATION_MARKS.sub(" ", answer)
        if len(text.split()) > MAX_ANSWER_WORDS:
            return None
        question_words, question_numbers = terms(question)
        answer_words, answer_numbers = terms(text)
        new_terms = (answer_words - question_words) | (answer_numbers - question_numbers)
        if not question_words or not new_terms:
            return None
        stating = 0.0
        others: list[float] = []
        found = False
        for passage in passages:
            header = passage.retriever == "document"
            for paragraph in passage.text.split("\n\n"):
                sentences = [paragraph[s.start : s.end] for s in sentence_spans(paragraph)]
                sentence_terms = [set().union(*terms(sentence)) for sentence in sentences]
                states = any(new_terms & t for t in sentence_terms)
                if header:
                    # The document's own facts (title, author, date): given only for questions about the document,
                    # which they answer wherever they state the answer; they compete with no sentence.
                    if states:
                        found, stating = True, 1.0
                    continue
                if states:
                    # A paragraph is about one thing: "The garden covers 45 hectares" answers "How large is the Jade
                    # River tea garden?" because two sentences earlier the paragraph named it.
                    found = True
                    paragraph_terms = set().union(*sentence_terms)
                    stating = max(stating, len(question_words & paragraph_terms) / len(question_words))
                    continue
                others += [
                    len(question_words & words) / len(question_words)
                    for sentence, words in zip(sentences, sentence_terms, strict=True)
                    # An order planted in a document echoes the question's words; it is never the better source.
                    if not is_instruction(sentence)
                ]
        other = max(others, default=0.0)
        return FocusResult(stating, other) if found else None
