"""llama.cpp's prefill and decode knobs on this CPU (issue 9, item 1), measured on real answer prompts.

`python -m bench.knobs [--quick]` prints one table and saves it for the README (`bench.report`).

The prompts are the ones the pipeline sends for the article's gold questions (captured with a scripted
generator, so retrieval, the gate and the prompt are the real ones). Each configuration loads the model once,
decodes the answer prompt's fixed prefix (rules and worked examples) as `rag serve` does at start-up, and for
every question puts that state back, times the prefill of the question's part (to the first token) and then the
greedy answer. The first configuration is the default and the baseline: a configuration is only worth keeping if
it is faster and gives the same answers (greedy decoding over a quantised KV cache need not).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import report
from eval.gold import ARTICLE_GOLD, load_gold
from index.loaders import load_documents
from index.service import new_index
from rag.generators import LlamaCppGenerator, make_generator
from rag.pipeline import Pipeline
from rag.prompt import answer_messages
from rag.settings import Settings
from rag.testing import ScriptedGenerator
from rag.types import ChatMessage

GGML_TYPE_Q8_0 = 8  # ggml's type id; llama-cpp-python exposes it as llama_cpp.GGML_TYPE_Q8_0
ANSWER_TOKENS = 64
ROUNDS = 4


@dataclass(frozen=True)
class Knobs:
    """One configuration of the llama.cpp context (what `Llama(...)` is given beyond the model and context size)."""

    name: str
    threads: int = 2
    batch_threads: int = 2
    n_ubatch: int = 512
    flash_attn: bool = False
    kv_type: int | None = None  # None: f16, llama.cpp's default

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments for `llama_cpp.Llama`."""
        extra: dict[str, Any] = {"type_k": self.kv_type, "type_v": self.kv_type} if self.kv_type is not None else {}
        return {
            "n_threads": self.threads,
            "n_threads_batch": self.batch_threads,
            "n_batch": 512,
            "n_ubatch": self.n_ubatch,
            "flash_attn": self.flash_attn,
            **extra,
        }


CONFIGURATIONS = (
    Knobs("default (n_ubatch 512, f16 KV, no flash attention)"),
    Knobs("n_ubatch 128", n_ubatch=128),
    Knobs("flash attention", flash_attn=True),
    Knobs("flash attention + q8_0 KV cache", flash_attn=True, kv_type=GGML_TYPE_Q8_0),
    Knobs("decode on 1 thread, prefill on 2", threads=1),
)


@dataclass(frozen=True)
class Measured:
    """One question under one configuration."""

    new_tokens: int
    prefill_s: float
    answer_tokens: int
    decode_s: float
    answer: str


def answer_prompts(settings: Settings, count: int) -> list[list[ChatMessage]]:
    """The answer prompts the pipeline builds for the first `count` answerable gold questions that reach the model."""
    fixed = answer_messages([], "warm up")[0]["content"]
    scripted = ScriptedGenerator()
    index = new_index(settings.index_spec())
    index.add(load_documents(settings.corpus_path))
    pipeline = Pipeline(settings, index, scripted)
    prompts: list[list[ChatMessage]] = []
    for item in load_gold(ARTICLE_GOLD):
        if not item.answers or len(prompts) >= count:
            continue
        scripted.calls.clear()
        pipeline.ask(item.question)
        prompts += [call for call in scripted.calls if call[0]["content"] == fixed][:1]
    return prompts


def measure(llama: Any, warmed: Any, messages: list[ChatMessage]) -> Measured:
    """Prefill of the question's part after the fixed prefix, then the greedy answer."""
    llama.load_state(warmed)
    held = llama.input_ids[: llama.n_tokens].tolist()
    started = time.perf_counter()
    first = llama.create_chat_completion(messages=messages, temperature=0.0, top_k=1, max_tokens=1)
    prefill_s = time.perf_counter() - started
    prompt = llama.input_ids[: first["usage"]["prompt_tokens"]].tolist()
    shared = next(
        (i for i, (a, b) in enumerate(zip(held, prompt, strict=False)) if a != b), min(len(held), len(prompt))
    )
    started = time.perf_counter()
    reply = llama.create_chat_completion(messages=messages, temperature=0.0, top_k=1, max_tokens=ANSWER_TOKENS)
    decode_s = time.perf_counter() - started
    return Measured(
        new_tokens=len(prompt) - shared,
        prefill_s=prefill_s,
        answer_tokens=reply["usage"]["completion_tokens"],
        decode_s=decode_s,
        answer=reply["choices"][0]["message"].get("content") or "",
    )


def prefill_rate(runs: list[Measured]) -> float:
    """Tokens per second over the questions' parts of the prompts."""
    return sum(r.new_tokens for r in runs) / sum(r.prefill_s for r in runs)


def decode_rate(runs: list[Measured]) -> float:
    """Reply tokens per second (the answer call re-decodes the prompt's last token, then decodes the reply)."""
    return sum(max(r.answer_tokens - 1, 0) for r in runs) / sum(r.decode_s for r in runs)


def main() -> None:
    """Measure every configuration on the same prompts; print and save one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 questions instead of 6, one round.")
    args = parser.parse_args()
    settings = Settings()
    prompts = answer_prompts(settings, 3 if args.quick else 6)
    generator = make_generator(settings)
    if not isinstance(generator, LlamaCppGenerator):
        raise SystemExit("error: bench.knobs measures the in-process llama.cpp generator (RAG_GENERATOR=llama)")
    generator.warm_up()
    model_path = generator.path
    del generator
    from llama_cpp import Llama

    table = Table(title=f"llama.cpp knobs, {len(prompts)} answer prompts ({time.strftime('%Y-%m-%d')}, 2 cores)")
    for column in (
        "configuration",
        "prefill tokens/s",
        "ratio",
        "decode tokens/s",
        "ratio",
        "answer p50 s",
        "same answers",
    ):
        table.add_column(column)
    measured: dict[Knobs, list[Measured]] = {knobs: [] for knobs in CONFIGURATIONS}
    # Rounds in alternating order, so a drift of the machine's speed (other load, the page cache, the clock) falls
    # on every configuration alike instead of on whichever ran first.
    for round_number in range(1 if args.quick else ROUNDS):
        order = CONFIGURATIONS if round_number % 2 == 0 else tuple(reversed(CONFIGURATIONS))
        for knobs in order:
            llama: Any = Llama(
                model_path=str(model_path), n_ctx=settings.llm_context, verbose=False, **knobs.arguments()
            )
            llama.create_chat_completion(messages=answer_messages([], "warm up"), temperature=0.0, max_tokens=1)
            warmed = llama.save_state()
            measured[knobs] += [measure(llama, warmed, messages) for messages in prompts]
            del llama, warmed
    baseline = measured[CONFIGURATIONS[0]]
    base_prefill, base_decode = prefill_rate(baseline), decode_rate(baseline)
    for knobs, runs in measured.items():
        same = sum(a.answer == b.answer for a, b in zip(runs, baseline, strict=True))
        table.add_row(
            knobs.name,
            f"{prefill_rate(runs):.0f}",
            f"{prefill_rate(runs) / base_prefill:.2f}×",
            f"{decode_rate(runs):.1f}",
            f"{decode_rate(runs) / base_decode:.2f}×",
            f"{statistics.median(r.prefill_s + r.decode_s for r in runs):.2f}",
            f"{same} of {len(runs)}",
        )
    new_tokens = [r.new_tokens for r in baseline]
    notes = [
        f"the question's part of the prompt: p50 {statistics.median(new_tokens):.0f} tokens prefilled after the "
        f"fixed prefix; answers greedy, at most {ANSWER_TOKENS} tokens"
    ]
    console = Console(width=200)
    console.print(table)
    for note in notes:
        console.print(note)
    report.save("knobs", [table], notes, quick=args.quick)


if __name__ == "__main__":
    main()
