"""Second-stage re-scoring. No cross-encoder installs offline (docs/models.md); the stand-in asks the
generator whether each of the top few passages answers the question."""

from __future__ import annotations

from abc import ABC, abstractmethod

from rag.generators import Generator
from rag.prompt import judge_messages
from rag.types import Passage


class Rescorer(ABC):
    """A second-stage re-ordering of the first stage's passages."""

    @abstractmethod
    def rescore(self, question: str, passages: list[Passage]) -> list[Passage]:
        """Return the passages re-ordered (new scores and ranks); inputs are not mutated."""


class LLMJudgeRescorer(Rescorer):
    """Passages the model judges relevant move ahead, keeping the fused order within each group."""

    def __init__(self, generator: Generator, top: int) -> None:
        self.generator = generator
        self.top = top

    def rescore(self, question: str, passages: list[Passage]) -> list[Passage]:
        """One yes/no judge call per passage in the top `top`; the rest keep their order after them."""
        head, tail = passages[: self.top], passages[self.top :]
        verdicts = []
        for passage in head:
            reply = self.generator.complete(judge_messages(passage.text, question), max_tokens=2)
            verdicts.append(reply.strip().lower().startswith("yes"))
        ordered = [p for p, ok in zip(head, verdicts, strict=True) if ok]
        ordered += [p for p, ok in zip(head, verdicts, strict=True) if not ok]
        ordered += tail
        return [
            p.model_copy(
                update={
                    "rank": rank,
                    "score": (1.0 if rank <= sum(verdicts) else 0.0) + p.score,
                    "retriever": "rescore",
                }
            )
            for rank, p in enumerate(ordered, start=1)
        ]
