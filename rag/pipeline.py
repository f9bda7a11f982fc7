"""The answer path as a short composition of stages:
rewrite → retrieve → [re-score] → expand → gate → generate → check and cite.

    >>> pipeline = Pipeline.from_settings(Settings())          # the index on disk and the local model
    >>> answer = pipeline.ask("What did Deng agree in 1979?")
    >>> answer.answer, [c.n for c in answer.citations], answer.confidence

`stream` yields the same answer as events (status, passages, draft tokens, done) for the page and the API.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Generator as EventStream
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Literal

from index.service import open_index
from index.store import PassageIndex
from rag.checking import AnswerChecker, CheckThresholds, SupportJudge, Verdict
from rag.citations import check_citations
from rag.context import ContextExpander
from rag.document_facts import DocumentFactSolver
from rag.fusion import make_fusion
from rag.generators import Generator, PromptSize, make_generator
from rag.premise import QuestionPremise
from rag.prompt import (
    ABSTAIN_TEXT,
    answer_messages,
    is_abstention,
    plain_answer_messages,
    rewrite_messages,
    support_messages,
)
from rag.rescorers import LLMJudgeRescorer, Rescorer
from rag.retrievers import Query, Retriever, make_retriever, with_relevance
from rag.settings import PromptStyle, RetrieverKind, Settings
from rag.types import AbstainReason, Answer, ChatMessage, ModelInfo, Passage, Turn
from rag.year_span import YearSpanSolver

Stage = Literal["searching", "writing", "checking"]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusEvent:
    """The answer moved to a new stage (for progress in the page and the CLI)."""

    stage: Stage


@dataclass(frozen=True)
class PassagesEvent:
    """The passages the model will read, before it writes."""

    passages: list[Passage]
    standalone_question: str


@dataclass(frozen=True)
class TokenEvent:
    """A piece of the model's unchecked draft: show it as provisional, never as the answer."""

    text: str


@dataclass(frozen=True)
class DoneEvent:
    """The checked answer (or the abstention)."""

    answer: Answer


Event = StatusEvent | PassagesEvent | TokenEvent | DoneEvent


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._last = self._t0

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(self.timings.get(stage, 0.0) + (now - self._last) * 1000, 2)
        self._last = now

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self._t0) * 1000, 2)

    def total(self) -> dict[str, float]:
        return {**self.timings, "total": round((time.perf_counter() - self._t0) * 1000, 2)}


_CITATION_MARK = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class Rewrite:
    """The standalone question, and the size of the prompt that wrote it (None when no model was asked, or the
    generator cannot tell)."""

    question: str
    prompt: PromptSize | None = None


class QuestionRewriter:
    """Turns a follow-up ("and when did he resign?") into a standalone question, using the conversation."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    def run(self, question: str, history: Sequence[Turn]) -> Rewrite:
        """The standalone question (the question itself when there is no earlier user turn)."""
        if not any(turn.role == "user" for turn in history):
            return Rewrite(question)
        messages = rewrite_messages(history, question)
        prompt = self.generator.prompt_size(messages)
        rewritten = self.generator.complete(messages, max_tokens=48)
        rewritten = rewritten.strip().splitlines()[0].strip().strip('"') if rewritten.strip() else ""
        if not 3 <= len(rewritten) <= 400:
            return Rewrite(question, prompt)
        # The small model sometimes answers instead of rewriting ("Russia's largest trading partner is China
        # [1]."): searching for that answer, and checking the draft against it, loses the question.
        if _CITATION_MARK.search(rewritten) or (question.rstrip().endswith("?") and not rewritten.endswith("?")):
            return Rewrite(question, prompt)
        return Rewrite(rewritten, prompt)


class RelevanceGate:
    """Abstains before generating when no passage is close enough to the question."""

    def __init__(self, min_relevance: float) -> None:
        self.min_relevance = min_relevance

    def run(self, passages: Sequence[Passage]) -> AbstainReason | None:
        """The abstention reason, or None when the model should write."""
        if not passages:
            return "no_passages"
        if max(p.relevance or 0.0 for p in passages) < self.min_relevance:
            return "relevance_gate"
        return None


def _token_counts(**prompts: PromptSize | None) -> dict[str, int]:
    """`{stage}_prompt` and `{stage}_prefill` (the part the model had not decoded) for each stage that asked the
    model and whose generator can tell."""
    counts: dict[str, int] = {}
    for stage, size in prompts.items():
        if size is not None:
            counts |= {f"{stage}_prompt": size.tokens, f"{stage}_prefill": size.new_tokens}
    return counts


class Pipeline:
    """Holds the index, retrievers and generator; safe to share between threads."""

    def __init__(self, settings: Settings, index: PassageIndex, generator: Generator) -> None:
        self.settings = settings
        self.index = index
        self.generator = generator
        self._retrievers: dict[RetrieverKind, Retriever] = {}
        self._rescorer: Rescorer = LLMJudgeRescorer(generator, settings.rescore_top)
        self.rewriter = QuestionRewriter(generator)
        self.expander = ContextExpander(index, settings.sentence_window, settings.max_passage_chars)
        self.gate = RelevanceGate(settings.min_relevance)
        thresholds = CheckThresholds(settings.evidence_accept, settings.evidence_reject, settings.judge_threshold)
        self.document_facts = DocumentFactSolver(index.document)
        year_span = YearSpanSolver(self._document_text, index.document)
        premise = QuestionPremise(index.document)
        self.checker = AnswerChecker(SupportJudge(generator), thresholds, year_span, premise)

    def _document_text(self, doc_id: str) -> str | None:
        document = self.index.document(doc_id)
        return document.text if document else None

    @classmethod
    def from_settings(
        cls, settings: Settings, generator: Generator | None = None, index: PassageIndex | None = None
    ) -> Pipeline:
        """The pipeline over the index on disk (or `index`) with the configured generator (or `generator`)."""
        spec = settings.index_spec()
        if index is None:
            index = open_index(settings.index_dir, spec)
        return cls(settings, index, generator or make_generator(settings))

    def warm_up(self) -> None:
        """Load the embedder and the model and build the keyword index now, not on the first question."""
        self.index.embedder.warm_up()
        self.generator.warm_up()
        self.retriever(self.settings.retriever).retrieve(
            Query("warm up", self.index.embedder.embed_query("warm up")), 1
        )

    def warm_prompts(self) -> None:
        """Decode the fixed parts of the judge's and the answer's prompts (rules and worked examples, ~300 and ~500
        tokens: ~4 s and ~13 s on two cores) now, so that the first question, and the first answer the judge is
        asked about, are as fast as later ones. The answer's comes last, so it is the one the model holds; a
        generator that keeps one prefix at a time (a server's prompt cache) is warmed with the answer's only. Servers
        run this in the background after start-up: a question that arrives meanwhile waits for the model, as it would
        have had to decode the same prefix."""
        if self.settings.verify_answers and self.generator.keeps_prefixes:
            self.generator.warm_prefix(support_messages([], "warm up", "warm up"))
        self.generator.warm_prefix(self._answer_messages([], "warm up"))

    def _answer_messages(self, passages: Sequence[Passage], question: str) -> list[ChatMessage]:
        if self.settings.prompt_style is PromptStyle.PLAIN:
            return plain_answer_messages(passages, question)
        return answer_messages(passages, question)

    def warm_prompts_in_background(self) -> threading.Thread:
        """`warm_prompts` on a daemon thread; a failure is logged (the first question reports it to the user)."""

        def warm() -> None:
            try:
                self.warm_prompts()
            except Exception as error:
                logger.warning("could not warm the answer prompt: %s", error)

        thread = threading.Thread(target=warm, name="warm-prompts", daemon=True)
        thread.start()
        return thread

    def retriever(self, kind: RetrieverKind) -> Retriever:
        """The retriever of that kind, made once and reused."""
        if kind not in self._retrievers:
            # Hybrid reuses the dense and keyword retrievers so the BM25 index is built once.
            fusion = make_fusion(self.settings.fusion, self.settings.dense_weight, self.settings.rrf_k)
            self._retrievers[kind] = make_retriever(kind, self.index, self.settings.candidates, fusion)
        return self._retrievers[kind]

    def model_info(self, retriever: RetrieverKind, rescore: bool) -> ModelInfo:
        """Which generator, model, embedder and retrieval produced an answer (shown with it and in /api/health)."""
        embedder = self.index.embedder
        return ModelInfo(
            generator=type(self.generator).__name__,
            model=self.generator.model_name,
            embedder=f"{embedder.model_name} ({embedder.backend.value})",
            retriever=retriever.value,
            rescore=rescore,
        )

    # ---- stages ----------------------------------------------------------------------------------
    def standalone_question(self, question: str, history: Sequence[Turn]) -> str:
        """The follow-up rewritten into a standalone question."""
        return self.rewriter.run(question, history).question

    def search(
        self,
        question: str,
        top_k: int | None = None,
        retriever: RetrieverKind | None = None,
        rescore: bool | None = None,
    ) -> list[Passage]:
        """Ranked passages for a question, each with its cosine relevance to it."""
        k = top_k or self.settings.top_k
        use_rescore = self.settings.rescore if rescore is None else rescore
        candidates = self._candidates(question, max(k, self.settings.rescore_top) if use_rescore else k, retriever)
        if use_rescore:
            candidates = self._rescorer.rescore(question, candidates)
        return candidates[:k]

    def _candidates(self, question: str, k: int, retriever: RetrieverKind | None) -> list[Passage]:
        if not question.strip():
            raise ValueError("the question is empty: ask something about the documents")
        kind = retriever or self.settings.retriever
        query = Query(question, self.index.embedder.embed_query(question))
        return with_relevance(self.index, query, self.retriever(kind).retrieve(query, k))

    # ---- answering -------------------------------------------------------------------------------
    def stream(
        self,
        question: str,
        history: Sequence[Turn] = (),
        top_k: int | None = None,
        retriever: RetrieverKind | None = None,
        rescore: bool | None = None,
    ) -> EventStream[Event, None, None]:
        """Events in order: status, passages, status, draft tokens, status, done (the Answer `ask` returns); a fact
        read from the document header skips the draft.

        Closing the iterator early (a client went away) stops the generation and frees the model."""
        kind = retriever or self.settings.retriever
        use_rescore = self.settings.rescore if rescore is None else rescore
        if not question.strip():
            raise ValueError("the question is empty: ask something about the documents")
        clock = _Stopwatch()
        yield StatusEvent("searching")
        rewrite = self.rewriter.run(question, history)
        standalone = rewrite.question
        clock.lap("rewrite_ms")
        k = top_k or self.settings.top_k
        passages = self._candidates(standalone, max(k, self.settings.rescore_top) if use_rescore else k, kind)
        clock.lap("retrieve_ms")
        if use_rescore and passages:
            passages = self._rescorer.rescore(standalone, passages)
            clock.lap("rescore_ms")
        passages = self.expander.run(standalone, passages[:k])
        clock.lap("expand_ms")
        yield PassagesEvent(passages, standalone)

        info = self.model_info(kind, use_rescore)
        # A fact the document's loader parsed (its author, date…) needs neither the model nor the relevance gate:
        # "what day of the week was it published" is far from every passage in meaning, yet its header says.
        # It stands in for the draft and goes through the same checks.
        fact = self.document_facts.run(standalone, passages) if self.settings.verify_answers else None
        gate_reason = None if fact else self.gate.run(passages)
        if gate_reason is not None:
            best = max((p.relevance or 0.0 for p in passages), default=0.0)
            confidence = 0.25 * min(1.0, max(0.0, best) / max(self.settings.min_relevance, 1e-6))
            tokens = _token_counts(rewrite=rewrite.prompt)
            yield DoneEvent(
                self._abstain(gate_reason, passages, standalone, clock, info, confidence=confidence, tokens=tokens)
            )
            return

        pieces: list[str] = []
        first_token_ms: float | None = None
        prompt_size: PromptSize | None = None
        if fact is None:
            yield StatusEvent("writing")
            messages = self._answer_messages(passages, standalone)
            prompt_size = self.generator.prompt_size(messages)
            with closing(self.generator.stream(messages, self.settings.max_tokens)) as draft:
                for piece in draft:
                    if first_token_ms is None:
                        first_token_ms = clock.elapsed_ms()
                    pieces.append(piece)
                    yield TokenEvent(piece)
            clock.lap("generate_ms")
        yield StatusEvent("checking")
        verdict = self._check(fact or "".join(pieces).strip(), standalone, passages)
        clock.lap("check_ms")
        tokens = _token_counts(rewrite=rewrite.prompt, answer=prompt_size, judge=verdict.judge_prompt)
        if verdict.abstained:
            retracted = verdict.abstain_reason != "model"
            yield DoneEvent(
                self._abstain(
                    verdict.abstain_reason or "unsupported",
                    passages,
                    standalone,
                    clock,
                    info,
                    first_token_ms,
                    verdict.confidence,
                    retracted,
                    tokens,
                )
            )
            return
        timings = clock.total()
        if first_token_ms is not None:
            timings["first_token_ms"] = first_token_ms
        yield DoneEvent(
            Answer(
                answer=verdict.text,
                abstained=False,
                supported=verdict.supported,
                confidence=verdict.confidence,
                citations=verdict.citations,
                passages=passages,
                standalone_question=standalone,
                timings_ms=timings,
                prompt_tokens=tokens,
                model=info,
            )
        )

    def _check(self, reply: str, question: str, passages: list[Passage]) -> Verdict:
        if self.settings.verify_answers:
            return self.checker.run(reply, question, passages)
        # Without the gate (the plain baseline) only the model's own abstention and the citation repair apply.
        if is_abstention(reply):
            return Verdict(ABSTAIN_TEXT, [], True, 0.1, "model")
        checked = check_citations(reply, passages)
        return Verdict(checked.text, checked.citations, checked.supported, 0.5, None)

    def _abstain(
        self,
        reason: AbstainReason,
        passages: list[Passage],
        standalone: str,
        clock: _Stopwatch,
        info: ModelInfo,
        first_token_ms: float | None = None,
        confidence: float = 0.0,
        retracted: bool = False,
        tokens: dict[str, int] | None = None,
    ) -> Answer:
        timings = clock.total()
        if first_token_ms is not None:
            timings["first_token_ms"] = first_token_ms
        return Answer(
            answer=ABSTAIN_TEXT,
            abstained=True,
            abstain_reason=reason,
            supported=True,
            confidence=round(confidence, 4),
            retracted=retracted,
            citations=[],
            passages=passages,
            standalone_question=standalone,
            timings_ms=timings,
            prompt_tokens=tokens or {},
            model=info,
        )

    def ask(
        self,
        question: str,
        history: Sequence[Turn] = (),
        top_k: int | None = None,
        retriever: RetrieverKind | None = None,
        rescore: bool | None = None,
    ) -> Answer:
        """The checked answer (or abstention): the `done` event of `stream`."""
        for event in self.stream(question, history, top_k, retriever, rescore):
            if isinstance(event, DoneEvent):
                return event.answer
        raise RuntimeError("the pipeline ended without an answer")
