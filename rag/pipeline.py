"""One question-answering pipeline: rewrite → retrieve → re-score → gate → generate → cite."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Literal

from index.service import make_spec_embedder, new_index, open_index
from index.store import PassageIndex
from rag.citations import check_citations, is_abstention
from rag.generators import Generator, make_generator
from rag.prompt import ABSTAIN_TEXT, answer_messages, rewrite_messages
from rag.rescorers import LLMJudgeRescorer, Rescorer
from rag.retrievers import Query, Retriever, cosine_relevance, make_retriever
from rag.settings import RetrieverKind, Settings
from rag.types import AbstainReason, Answer, ModelInfo, Passage, Turn
from rag.verifier import AnswerVerifier


@dataclass(frozen=True)
class PassagesEvent:
    passages: list[Passage]
    standalone_question: str
    kind: Literal["passages"] = "passages"


@dataclass(frozen=True)
class TokenEvent:
    text: str
    kind: Literal["token"] = "token"


@dataclass(frozen=True)
class DoneEvent:
    answer: Answer
    kind: Literal["done"] = "done"


Event = PassagesEvent | TokenEvent | DoneEvent


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


class Pipeline:
    """Holds the index, retrievers and generator; safe to share between threads."""

    def __init__(self, settings: Settings, index: PassageIndex, generator: Generator) -> None:
        self.settings = settings
        self.index = index
        self.generator = generator
        self._retrievers: dict[RetrieverKind, Retriever] = {}
        self._rescorer: Rescorer = LLMJudgeRescorer(generator, settings.rescore_top)
        self._verifier = AnswerVerifier(generator)

    @classmethod
    def from_settings(
        cls, settings: Settings, generator: Generator | None = None, index: PassageIndex | None = None
    ) -> Pipeline:
        spec = settings.index_spec()
        if index is None:
            index = open_index(settings.index_dir, spec)
        return cls(settings, index, generator or make_generator(settings))

    @staticmethod
    def empty_index(settings: Settings) -> PassageIndex:
        return new_index(settings.index_spec(), make_spec_embedder(settings.index_spec()))

    def warm_up(self) -> None:
        self.index.embedder.warm_up()
        self.generator.warm_up()
        self.retriever(self.settings.retriever).retrieve(
            Query("warm up", self.index.embedder.embed_query("warm up")), 1
        )

    def retriever(self, kind: RetrieverKind) -> Retriever:
        if kind not in self._retrievers:
            # Hybrid reuses the dense and keyword retrievers so the BM25 index is built once.
            self._retrievers[kind] = make_retriever(kind, self.index, self.settings.candidates, self.settings.rrf_k)
        return self._retrievers[kind]

    def model_info(self, retriever: RetrieverKind, rescore: bool) -> ModelInfo:
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
        if not any(turn.role == "user" for turn in history):
            return question
        rewritten = self.generator.complete(rewrite_messages(history, question), max_tokens=48, lane="check")
        rewritten = rewritten.strip().splitlines()[0].strip().strip('"') if rewritten.strip() else ""
        return rewritten if 3 <= len(rewritten) <= 400 else question

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
        hits = self.retriever(kind).retrieve(query, k)
        relevance = cosine_relevance(self.index, query, [h.chunk for h in hits])
        passages = []
        for rank, (hit, rel) in enumerate(zip(hits, relevance, strict=True), start=1):
            document = self.index.document(hit.chunk.doc_id)
            passage = Passage.from_chunk(hit.chunk, document.title if document else "", hit.score, rank, kind.value)
            passages.append(passage.model_copy(update={"relevance": round(rel, 4)}))
        return passages

    # ---- answering -------------------------------------------------------------------------------
    def stream(
        self,
        question: str,
        history: Sequence[Turn] = (),
        top_k: int | None = None,
        retriever: RetrieverKind | None = None,
        rescore: bool | None = None,
    ) -> Iterator[Event]:
        """Events in order: passages, tokens, done (the same Answer `ask` returns)."""
        kind = retriever or self.settings.retriever
        use_rescore = self.settings.rescore if rescore is None else rescore
        if not question.strip():
            raise ValueError("the question is empty: ask something about the documents")
        clock = _Stopwatch()
        standalone = self.standalone_question(question, history)
        clock.lap("rewrite_ms")
        k = top_k or self.settings.top_k
        passages = self._candidates(standalone, max(k, self.settings.rescore_top) if use_rescore else k, kind)
        clock.lap("retrieve_ms")
        if use_rescore and passages:
            passages = self._rescorer.rescore(standalone, passages)
            clock.lap("rescore_ms")
        passages = passages[:k]
        yield PassagesEvent(passages, standalone)

        best_relevance = max((p.relevance or 0.0 for p in passages), default=0.0)
        info = self.model_info(kind, use_rescore)
        if not passages or best_relevance < self.settings.min_relevance:
            reason: Literal["relevance_gate", "no_passages"] = "no_passages" if not passages else "relevance_gate"
            yield TokenEvent(ABSTAIN_TEXT)
            yield DoneEvent(self._abstain(reason, passages, standalone, clock, info))
            return

        pieces: list[str] = []
        first_token_ms: float | None = None
        stream = self.generator.stream(answer_messages(passages, standalone), self.settings.max_tokens)
        with closing(stream):
            for piece in stream:
                if first_token_ms is None:
                    first_token_ms = clock.elapsed_ms()
                pieces.append(piece)
                yield TokenEvent(piece)
        clock.lap("generate_ms")
        reply = "".join(pieces).strip()
        if is_abstention(reply):
            yield DoneEvent(self._abstain("model", passages, standalone, clock, info, first_token_ms))
            return
        checked = check_citations(reply, passages)
        clock.lap("cite_ms")
        if self.settings.verify_answers and not self._verifier.supported(
            standalone, checked.text, [c.text for c in checked.citations]
        ):
            clock.lap("verify_ms")
            yield DoneEvent(self._abstain("unverified", passages, standalone, clock, info, first_token_ms))
            return
        if self.settings.verify_answers:
            clock.lap("verify_ms")
        timings = clock.total()
        if first_token_ms is not None:
            timings["first_token_ms"] = first_token_ms
        yield DoneEvent(
            Answer(
                answer=checked.text,
                abstained=False,
                supported=checked.supported,
                citations=checked.citations,
                passages=passages,
                standalone_question=standalone,
                timings_ms=timings,
                model=info,
            )
        )

    def _abstain(
        self,
        reason: AbstainReason,
        passages: list[Passage],
        standalone: str,
        clock: _Stopwatch,
        info: ModelInfo,
        first_token_ms: float | None = None,
    ) -> Answer:
        timings = clock.total()
        if first_token_ms is not None:
            timings["first_token_ms"] = first_token_ms
        return Answer(
            answer=ABSTAIN_TEXT,
            abstained=True,
            abstain_reason=reason,
            supported=True,
            citations=[],
            passages=passages,
            standalone_question=standalone,
            timings_ms=timings,
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
        for event in self.stream(question, history, top_k, retriever, rescore):
            if isinstance(event, DoneEvent):
                return event.answer
        raise RuntimeError("the pipeline ended without an answer")
