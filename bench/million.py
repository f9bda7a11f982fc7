"""Search at a million passages (issue 9, item 7): which FAISS index, measured.

`python -m bench.million [--quick]` prints one table and writes bench/million-results.json.

- **Real text:** sentences of the Python docstrings installed on this machine (the standard library and every
  package in the environment), 40-400 characters, de-duplicated, embedded with the configured embedder;
  100,000 of them are indexed and 1,000 others are the queries. The vectors are cached under var/bench-million/.
- **1M:** the 100,000 real vectors plus 900,000 synthetic ones, clustered like the real ones (each a real vector
  plus Gaussian noise of the real vectors' spread around their nearest cluster centre, normalised). Synthetic,
  so the 1M rows measure speed, memory and recall on realistic geometry, not retrieval quality.
- **Indexes:** exact (`IndexIDMap2(IndexFlatIP)`, the baseline and the ground truth), then IVF-Flat at several
  `nprobe` and HNSW at several `efSearch`, each built by `index.vector_layout.VectorLayout` exactly as the store
  builds it, and HNSW once more with just under `TOMBSTONE_SHARE` of its passages removed (tombstones skipped by
  the search; recall against the exact top 10 of the passages left).
- **Measured:** recall@10 against exact search, single-query latency on one thread as the store searches
  (median and p95 over the queries), build time, and memory per passage (the serialised index / passages).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import statistics
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
from rich.console import Console
from rich.table import Table

from bench import report
from index.embedders import make_embedder
from index.types import ApproximateIndex, IndexSpec
from index.vector_layout import HNSW_NEIGHBORS, TOMBSTONE_SHARE, VectorIndex, VectorLayout, lists_for
from rag.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "bench" / "million-results.json"
WORK = PROJECT_ROOT / "var" / "bench-million"
REAL = 100_000
QUERIES = 1_000
K = 10
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")

faiss.omp_set_num_threads(1)  # as index.store searches; builds below raise it


def docstring_sentences() -> Iterator[str]:
    """Sentences of every docstring under the standard library and site-packages, in a stable order."""
    roots = {Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])}
    for root in sorted(roots):
        for path in sorted(root.rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
            except (SyntaxError, ValueError, RecursionError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    docstring = ast.get_docstring(node)
                    if not docstring:
                        continue
                    for paragraph in re.split(r"\n\s*\n", docstring):
                        for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
                            if 40 <= len(sentence) <= 400 and sentence[0].isalpha():
                                yield sentence


def real_vectors(count: int) -> np.ndarray:
    """The first `count` unique docstring sentences, embedded (cached; a longer run extends a shorter one's cache, as
    the sentences come in a stable order)."""
    cached = sorted(WORK.glob("real-*.npy"), key=lambda path: int(path.stem.split("-")[1]))
    done = np.load(cached[-1]) if cached else np.zeros((0, 0), dtype=np.float32)
    if len(done) >= count:
        return done[:count]
    texts: list[str] = []
    seen: set[str] = set()
    for sentence in docstring_sentences():
        if sentence not in seen:
            seen.add(sentence)
            texts.append(sentence)
            if len(texts) == count:
                break
    if len(texts) < count:
        sys.exit(f"error: only {len(texts)} docstring sentences found, {count} needed")
    settings = Settings()
    embedder = make_embedder(settings.embedder_backend, settings.embed_threads, 64, settings.model_cache_dir)
    more = embedder.embed(texts[len(done) :], show_progress=True).astype(np.float32)
    vectors = np.vstack([done, more]) if len(done) else more
    WORK.mkdir(parents=True, exist_ok=True)
    np.save(WORK / f"real-{count}.npy", vectors)
    return vectors


def synthetic_like(real: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """`count` unit vectors clustered as `real` is: a real vector plus noise of the spread of real vectors around
    their k-means centre."""
    rng = np.random.default_rng(seed)
    faiss.omp_set_num_threads(2)
    kmeans = faiss.Kmeans(real.shape[1], 1000, niter=10, seed=seed, spherical=True)
    kmeans.train(real)
    _, assigned = kmeans.index.search(real, 1)
    centroids = np.asarray(kmeans.centroids)
    spread = float(np.std(real - centroids[assigned[:, 0]]))
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    for begin in range(0, count, 100_000):
        end = min(count, begin + 100_000)
        base = real[rng.integers(0, len(real), end - begin)]
        noisy = base + rng.normal(0.0, spread, base.shape).astype(np.float32)
        out[begin:end] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    faiss.omp_set_num_threads(1)
    return out


def latency_ms(index: VectorIndex, queries: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Median and p95 of one-query searches, and the ids found."""
    times: list[float] = []
    found = np.empty((len(queries), K), dtype=np.int64)
    for row, query in enumerate(queries):
        started = time.perf_counter()
        _, ids = index.search(query.reshape(1, -1), K)
        times.append((time.perf_counter() - started) * 1000)
        found[row] = ids[0]
    return statistics.median(times), float(np.percentile(times, 95)), found


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top-K found, averaged over queries."""
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def bytes_per_passage(index: VectorIndex) -> float:
    """The serialised index's size over its passages."""
    return len(faiss.serialize_index(index.index)) / index.count


@dataclass(frozen=True)
class Row:
    """One line of the table: an index over one corpus, measured."""

    corpus: str
    index: str
    build_s: float
    p50_ms: float
    p95_ms: float
    recall: float
    bytes: float
    removal: bool


def measure(corpus: str, name: str, index: VectorIndex, build_s: float, queries: np.ndarray, truth: np.ndarray) -> Row:
    """Latency and recall@10 (against `truth`, the exact top 10) of `index` over `queries`."""
    p50, p95, found = latency_ms(index, queries)
    return Row(corpus, name, build_s, p50, p95, recall_at_k(found, truth), bytes_per_passage(index), True)


def built(layout: VectorLayout, exact: VectorIndex, ids: np.ndarray) -> tuple[VectorIndex, float]:
    """The approximate index `layout` builds from `exact` when the count passes its threshold, and the seconds."""
    started = time.perf_counter()
    index = layout.fitted(exact, ids)
    return index, time.perf_counter() - started


def live_truth(exact: VectorIndex, queries: np.ndarray, removed: set[int]) -> np.ndarray:
    """The exact top K among the vectors not removed (from a deeper exact search, all cores)."""
    faiss.omp_set_num_threads(2)
    _, deep = exact.search(queries, 5 * K)
    faiss.omp_set_num_threads(1)
    return np.array([[i for i in row if i not in removed][:K] for row in deep], dtype=np.int64)


def main() -> None:
    """Measure exact, IVF and HNSW search at 100k real and 1M passages; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k real passages and 200k in all, 200 queries.")
    args = parser.parse_args()
    real_count, total, query_count = (20_000, 200_000, 200) if args.quick else (REAL, 1_000_000, QUERIES)
    pool = real_vectors(real_count + query_count)
    real, queries = pool[:real_count], pool[real_count:]
    dimension = real.shape[1]
    rows: list[Row] = []
    for label, vectors in (
        (f"{real_count // 1000}k real", real),
        (f"{total // 1000}k (real + synthetic)", np.vstack([real, synthetic_like(real, total - real_count)])),
    ):
        n = len(vectors)
        ids = np.arange(n, dtype=np.int64)
        started = time.perf_counter()
        exact = VectorLayout.empty(dimension)
        exact.add(vectors, ids)
        seconds = time.perf_counter() - started
        *_, truth = latency_ms(exact, queries)
        rows.append(measure(label, "exact (IDMap2 Flat)", exact, seconds, queries, truth))
        # The approximate indexes exactly as the store builds them when the count passes its threshold.
        ivf, seconds = built(VectorLayout(exact_max=0, approximate=ApproximateIndex.IVF), exact, ids)
        for nprobe in (16, 32, 64, 128):
            ivf.index.nprobe = nprobe
            rows.append(measure(label, f"IVF{lists_for(n)},Flat nprobe={nprobe}", ivf, seconds, queries, truth))
        del ivf
        hnsw, seconds = built(VectorLayout(exact_max=0, approximate=ApproximateIndex.HNSW), exact, ids)
        for ef in (32, 64, 128, 256):
            hnsw = VectorLayout(exact_max=0, hnsw_ef_search=ef).tuned(hnsw)
            rows.append(measure(label, f"HNSW{HNSW_NEIGHBORS} efSearch={ef}", hnsw, seconds, queries, truth))
        # Removed passages stay in the graph as tombstones until they pass TOMBSTONE_SHARE: measure just below it.
        gone = np.random.default_rng(1).choice(n, int(n * TOMBSTONE_SHARE * 0.99), replace=False)
        hnsw.remove(gone.tolist())
        hnsw = VectorLayout(exact_max=0).tuned(hnsw)
        name = f"HNSW{HNSW_NEIGHBORS} efSearch={IndexSpec.hnsw_ef_search}, {len(gone) / n:.0%} removed"
        rows.append(measure(label, name, hnsw, seconds, queries, live_truth(exact, queries, hnsw.removed)))
        del vectors, exact, hnsw
    table = Table(title=f"FAISS search, {query_count} queries, one thread ({time.strftime('%Y-%m-%d')}, 2 cores)")
    for column in ("passages", "index", "build s", "p50 ms", "p95 ms", "recall@10", "bytes/passage", "removal"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.corpus,
            row.index,
            f"{row.build_s:.1f}",
            f"{row.p50_ms:.2f}",
            f"{row.p95_ms:.2f}",
            f"{row.recall:.3f}",
            f"{row.bytes:.0f}",
            "yes" if row.removal else "no",
        )
    Console(width=200).print(table)
    report.save("million", [table], quick=args.quick)
    if not args.quick:
        RESULTS.write_text(json.dumps([asdict(row) for row in rows], indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
