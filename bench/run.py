"""Benchmarks: one table of load, build, retrieval and answer figures, medians and ratios measured in the
same run. `python -m bench.run [--quick]`; `python -m bench.load` measures the HTTP server under load."""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import report
from eval.gold import ARTICLE_GOLD, load_gold
from index.embedders import make_embedder, minilm_folder
from index.loaders import load_documents
from index.openvino_export import converted_model
from index.service import new_index
from index.types import Document, EmbedderBackend
from rag.generators import make_generator
from rag.pipeline import DoneEvent, Pipeline, TokenEvent
from rag.settings import PROJECT_ROOT, RetrieverKind, Settings
from rag.types import Turn

RESULTS = PROJECT_ROOT / "bench" / "results.json"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def med_p95(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), float(np.percentile(values, 95))


def synthetic_corpus(article: Document, passages: int, seed: int = 7) -> list[Document]:
    """Passages of ~60 tokens made by shuffling the article's sentences (realistic vocabulary and length)."""
    sentences = [s.strip() for s in article.text.replace("\n", " ").split(". ") if len(s.split()) > 5]
    rng = random.Random(seed)
    texts = [". ".join(rng.sample(sentences, 3)) + "." for _ in range(passages)]
    # Each its own source: a document whose source is already indexed replaces it.
    return [Document(f"synthetic-{i}", f"Synthetic {i}", f"bench:{i}", t) for i, t in enumerate(texts)]


@dataclass(frozen=True)
class AnswerProfile:
    """Where one answer's time went: before the model, prefill (to the first token) and decoding."""

    total_ms: float
    first_token_ms: float
    before_model_ms: float
    generate_ms: float
    answer_tokens: int
    tokens_by_stage: dict[str, int]

    @property
    def prefill_tokens(self) -> int | None:
        """The answer prompt's tokens the model had to decode (None when the generator cannot tell)."""
        return self.tokens_by_stage.get("answer_prefill")


def profile_answer(pipeline: Pipeline, question: str) -> AnswerProfile:
    answer_tokens = 0  # llama.cpp streams one piece a token
    answer = None
    for event in pipeline.stream(question):
        if isinstance(event, TokenEvent):
            answer_tokens += 1
        elif isinstance(event, DoneEvent):
            answer = event.answer
    assert answer is not None
    timings = answer.timings_ms
    return AnswerProfile(
        total_ms=timings["total"],
        first_token_ms=timings.get("first_token_ms", 0.0),
        before_model_ms=sum(timings.get(s, 0.0) for s in ("rewrite_ms", "retrieve_ms", "rescore_ms", "expand_ms")),
        generate_ms=timings.get("generate_ms", 0.0),
        answer_tokens=answer_tokens,
        tokens_by_stage=answer.prompt_tokens,
    )


# Follow-ups, so that the rewrite stage's prompt is measured too.
FOLLOW_UP_HISTORY = (
    Turn(role="user", content="What did Deng Xiaoping agree with the United States in 1979?"),
    Turn(role="assistant", content="To share intelligence on the Soviet Union [1]."),
)
FOLLOW_UPS = ("And when did he visit the United States?", "Who was president then?", "What did the Soviets do after?")


def stage_token_rows(counts: list[dict[str, int]], figures: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Prompt tokens per stage that asked the model (whole prompt / the part prefilled), p50 over the answers that
    asked it."""
    rows = []
    for stage in ("rewrite", "answer", "judge"):
        asked = [c for c in counts if f"{stage}_prompt" in c]
        if not asked:
            rows.append((f"{stage} prompt tokens", "not asked", "", f"0 of {len(counts)} answers"))
            continue
        whole = statistics.median(c[f"{stage}_prompt"] for c in asked)
        prefilled = statistics.median(c[f"{stage}_prefill"] for c in asked)
        figures |= {f"{stage}_prompt_tokens_median": whole, f"{stage}_prefill_tokens_median": prefilled}
        rows.append(
            (
                f"{stage} prompt tokens (whole / prefilled)",
                f"{whole:.0f} / {prefilled:.0f}",
                "",
                f"p50 over the {len(asked)} of {len(counts)} answers that asked it",
            )
        )
    return rows


def generation_floor(profiles: list[AnswerProfile], figures: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The hardware floor of an answer: prefill tokens ÷ the measured prefill rate + answer tokens ÷ the decode
    rate, against the measured answer time (the rest is retrieval, checks and Python)."""
    if not profiles:
        return []
    prefill_s = sum(p.first_token_ms - p.before_model_ms for p in profiles) / 1000
    decode_s = sum(p.generate_ms - (p.first_token_ms - p.before_model_ms) for p in profiles) / 1000
    prefill_rate = sum(p.prefill_tokens or 0 for p in profiles) / prefill_s
    decode_rate = sum(max(0, p.answer_tokens - 1) for p in profiles) / decode_s
    prefill = statistics.median(p.prefill_tokens or 0 for p in profiles)
    answer_tokens = statistics.median(p.answer_tokens for p in profiles)
    floor_s = prefill / prefill_rate + answer_tokens / decode_rate
    measured_s = statistics.median(p.total_ms for p in profiles) / 1000
    figures |= {
        "prefill_tokens_per_s": prefill_rate,
        "decode_tokens_per_s": decode_rate,
        "answer_floor_s": floor_s,
    }
    return [
        ("prefill rate (measured in the answers)", f"{prefill_rate:.0f} tokens/s", "", "first token − retrieval"),
        ("decode rate (measured in the answers)", f"{decode_rate:.1f} tokens/s", "", f"p50 {answer_tokens:.0f} tokens"),
        (
            "answer floor: prefill ÷ rate + tokens ÷ rate",
            f"{floor_s:.2f} s",
            f"{measured_s / floor_s:.2f}× measured/floor",
            "what these 2 cores allow for this prompt",
        ),
    ]


def against_torch(
    what: str,
    values: dict[EmbedderBackend, float],
    default: EmbedderBackend,
    figure: str,
    notes: dict[EmbedderBackend, str],
) -> list[tuple[str, str, str, str]]:
    """One table row per embedder backend, its value as a ratio to torch's (the baseline, measured in the same run)."""
    rows = []
    for backend, value in values.items():
        baseline = backend is EmbedderBackend.TORCH
        rows.append(
            (
                f"{what} {backend.value}" + (" (default)" if backend is default else ""),
                figure.format(value),
                "1.00×" if baseline else f"{value / values[EmbedderBackend.TORCH]:.2f}× torch",
                "; ".join(part for part in ("baseline" if baseline else "", notes.get(backend, "")) if part),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Smaller corpus and fewer questions.")
    args = parser.parse_args()
    synthetic_size = 2000 if args.quick else 10_000
    answer_questions = 6 if args.quick else 15

    settings = Settings()
    rows: list[tuple[str, str, str, str]] = []  # what, figure, ratio, note
    figures: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "synthetic_passages": synthetic_size}
    article = load_documents(settings.corpus_path)[0]

    # ---- model load ----------------------------------------------------------------------------------
    # The default backend, the other fast one and the reference (torch), each loaded and timed; the OpenVINO one's
    # one-time conversion is done before timing, as the generator's assembly is.
    backends = [settings.embedder_backend] + [
        b
        for b in (EmbedderBackend.OPENVINO, EmbedderBackend.ONNX_INT8, EmbedderBackend.TORCH)
        if b is not settings.embedder_backend
    ]
    # The one-time conversion, outside the timed load (as the generator's one-time assembly is).
    converted_model(minilm_folder(), settings.model_cache_dir)
    embedders = {
        b: make_embedder(b, settings.embed_threads, settings.embed_batch_size, settings.model_cache_dir)
        for b in backends
    }
    loads = {b: timed(e.warm_up) for b, e in embedders.items()}
    default_embedder = embedders[settings.embedder_backend]
    torch_embedder = embedders[EmbedderBackend.TORCH]
    generator = make_generator(settings)
    load_llm = timed(generator.warm_up)
    rows += against_torch(
        "load: embedder", loads, settings.embedder_backend, "{:.2f} s", {EmbedderBackend.TORCH: "sentence-transformers"}
    )
    figures |= {f"load_{backend.value}_s": seconds for backend, seconds in loads.items()}
    rows.append(("load: generator Qwen2.5-Coder-1.5B Q4_K_M", f"{load_llm:.2f} s", "", "after the one-time assembly"))
    figures["load_llm_s"] = load_llm

    # ---- index build (split + embed + FAISS) per embedder backend, on the same documents ------------------
    for label, documents in (
        ("article", [article]),
        (f"synthetic {synthetic_size}", synthetic_corpus(article, synthetic_size)),
    ):
        rates: dict[EmbedderBackend, float] = {}
        passages = 0
        for backend, embedder in embedders.items():
            if len(documents) == 1:  # a first call of each input shape sets up kernels: not a throughput figure
                new_index(settings.index_spec(), embedder).add(documents)
            index = new_index(settings.index_spec(), embedder)
            build_seconds = timed(partial(index.add, documents))
            passages = len(index.chunks())
            rates[backend] = passages / build_seconds
        rows += against_torch(
            f"build {label}:",
            rates,
            settings.embedder_backend,
            "{:.0f} passages/s",
            {
                b: f"{passages} passages" if b is EmbedderBackend.TORCH else f"{passages / r:.1f} s"
                for b, r in rates.items()
            },
        )
        figures |= {f"build_{label.split()[0]}_{b.value}_passages_per_s": rate for b, rate in rates.items()}

    # ---- retrieval latency ------------------------------------------------------------------------------
    items = load_gold(ARTICLE_GOLD)
    questions = [item.question for item in items]
    pipeline = Pipeline(settings, new_index(settings.index_spec(), default_embedder), generator)
    pipeline.index.add([article])
    import faiss

    # The plain dense path most stacks use (LangChain's FAISS store): torch encode + exact FAISS search.
    vectors = torch_embedder.embed([c.text for c in pipeline.index.chunks()])
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)

    def plain_dense(question: str) -> None:
        flat.search(torch_embedder.embed_query(question).reshape(1, -1), settings.top_k)

    # Every timed search embeds its question: with the query-vector cache the second and third retriever of a
    # question would time a dictionary lookup (a repeated question does cost that little; see bench.load).
    default_embedder._query_cache.capacity = 0
    latency: dict[str, list[float]] = {"plain dense (torch + FAISS)": []}
    for kind in RetrieverKind:
        latency[kind.value] = []
    latency["hybrid + re-scoring"] = []
    for _ in range(2):  # warm
        for question in questions[:5]:
            plain_dense(question)
            pipeline.search(question)
    for question in questions:
        latency["plain dense (torch + FAISS)"].append(timed(partial(plain_dense, question)) * 1000)
        for kind in RetrieverKind:
            search = partial(pipeline.search, question, retriever=kind, rescore=False)
            latency[kind.value].append(timed(search) * 1000)
    for question in questions[:answer_questions]:
        latency["hybrid + re-scoring"].append(timed(partial(pipeline.search, question, rescore=True)) * 1000)
    base_median = med_p95(latency["plain dense (torch + FAISS)"])[0]
    for name, values in latency.items():
        median, p95 = med_p95(values)
        rows.append(
            (
                f"retrieve: {name}",
                f"{median:.1f} ms (p95 {p95:.1f})",
                f"{median / base_median:.2f}× plain",
                f"{len(values)} queries",
            )
        )
        figures[f"retrieve_{name}_median_ms"] = median

    # ---- answers -----------------------------------------------------------------------------------------
    # Disjoint questions for the two configurations: a repeated prompt would find its prefix decoded.
    answerable = [item.question for item in items if item.answers][: 2 * answer_questions]
    pipeline.warm_prompts()  # as `rag serve` does after start-up
    profiles = [profile_answer(pipeline, question) for question in answerable[0::2]]
    no_verify = Pipeline(settings.with_overrides(verify_answers=False), pipeline.index, generator)
    unverified_totals = [no_verify.ask(question).timings_ms["total"] for question in answerable[1::2]]
    generated = [p for p in profiles if p.prefill_tokens is not None]
    for name, values in (
        ("answer (default, with verification)", [p.total_ms for p in profiles]),
        ("answer without verification", unverified_totals),
        ("time to first token", [p.first_token_ms for p in generated]),
    ):
        median, p95 = med_p95(values)
        rows.append((name, f"{median / 1000:.2f} s (p95 {p95 / 1000:.2f})", "", f"{len(values)} questions"))
        figures[f"{name}_median_ms"] = median
    rows += generation_floor(generated, figures)
    follow_ups = [pipeline.ask(question, history=FOLLOW_UP_HISTORY).prompt_tokens for question in FOLLOW_UPS]
    rows += stage_token_rows([p.tokens_by_stage for p in profiles] + follow_ups, figures)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS (this process)", f"{peak_rss_mb:.0f} MB", "", "every embedder + generator loaded"))
    figures["peak_rss_mb"] = peak_rss_mb

    table = Table(title=f"Benchmarks ({figures['date']}, {settings.embed_threads} threads)")
    for column in ("what", "figure", "ratio", "note"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if not args.quick:
        RESULTS.write_text(json.dumps(figures, indent=2))
    report.save("run", [table], quick=args.quick)


if __name__ == "__main__":
    main()
