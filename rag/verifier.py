"""The second abstention gate after generation: the model, asked as a strict yes/no judge, must agree
that the cited passages state the answer. Catches answers copied from a nearby but wrong fact."""

from __future__ import annotations

from rag.generators import Generator
from rag.prompt import verify_messages


class AnswerVerifier:
    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    def supported(self, question: str, answer: str, cited_passages: list[str]) -> bool:
        if not cited_passages:
            return False
        verdict = self.generator.complete(verify_messages(cited_passages, question, answer), max_tokens=2, lane="check")
        return verdict.strip().lower().startswith("yes")
