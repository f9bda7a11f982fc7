"""Scale benchmarks (issue 12): the FAISS and Milvus stores side by side, then one `rag serve` replica against two.

`python -m bench.scale [--quick]` prints two tables and writes bench/scale-results.json:

1. Stores, FAISS the baseline and milvus/faiss the ratio: ingest throughput of the same synthetic corpus through
   `index.library.Library` (the one write path), in-process search latency of the default retriever over the gold
   questions, and hit@1/3/5 of the article's gold set (as `rag eval` scores them) with only the article indexed.
   Milvus is Milvus Lite over a `.db` (under var/bench-scale/), inside this process: a pure-Python engine, not a
   Milvus server, so its latency is Lite's.
2. Replicas: `/api/search` at concurrency 16 against one `rag serve` process and against two over one shared store
   (one FAISS directory; one `milvus-lite server` process). There is no load balancer: the client sends request i
   to replica i mod n. The servers use RAG_GENERATOR=openai pointed at a closed port, so no replica loads the 1 GB
   model (only /api/search is asked). The CPU each party used is measured too: on a small machine the client and
   the servers share the cores, and that, not the code, bounds what a second replica can add.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

from bench import report
from bench.load import Outcome, hammer
from bench.run import synthetic_corpus
from eval.gold import ARTICLE_GOLD, GoldItem, load_gold
from eval.runner import score_item
from eval.targets import InProcessTarget
from index.embedders import Embedder
from index.library import Library
from index.loaders import load_documents
from index.milvus_store import MilvusPassageIndex
from index.service import make_spec_embedder, new_index
from index.types import Document, IndexSpec, StoreKind
from rag.pipeline import Pipeline
from rag.retrievers import Query
from rag.settings import PROJECT_ROOT, Settings
from rag.testing import MilvusLiteServer, ScriptedGenerator, ServeProcess, free_port

RESULTS = PROJECT_ROOT / "bench" / "scale-results.json"
WORK = PROJECT_ROOT / "var" / "bench-scale"  # emptied at the start, kept afterwards: the servers' logs are there
STORES = ("faiss", "milvus")
HITS = ("hit@1", "hit@3", "hit@5")
CONCURRENCY = 16


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much of everything one run measures."""

    documents: int  # synthetic documents ingested (three sentences each: ~1.9 passages)
    queries: int  # in-process searches per store
    requests: int  # /api/search requests per round and replica count
    rounds: int  # rounds of (1 replica, 2 replicas), interleaved so drift in the machine's load hits both


FULL = Plan(documents=1000, queries=500, requests=1200, rounds=3)  # ~1,900 passages
QUICK = Plan(documents=250, queries=100, requests=300, rounds=2)  # ~475 passages


def p50_p99(values: Sequence[float]) -> tuple[float, float]:
    """Median and 99th percentile (nan for no values)."""
    if not values:
        return float("nan"), float("nan")
    return statistics.median(values), float(np.percentile(values, 99))


def directory_mb(path: Path) -> float:
    """Bytes under `path`, in MB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def empty_store(kind: str, spec: IndexSpec, embedder: Embedder, work: Path, name: str) -> Library:
    """An empty store of `kind` in `work` (a FAISS directory, or a collection prefix in a Milvus Lite `.db`),
    wrapped in the Library every writer uses."""
    if kind == "faiss":
        return Library(work / name, new_index(spec, embedder))
    milvus = dataclasses.replace(
        spec, store=StoreKind.MILVUS, milvus_uri=str(work / f"{name}.db"), milvus_collection=name
    )
    return Library(work / f"{name}-unused", new_index(milvus, embedder))


def close(library: Library) -> None:
    """Release a Milvus client (a FAISS index holds nothing to release)."""
    if isinstance(library.index, MilvusPassageIndex):
        library.index.close()


def timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def gold_hits(pipeline: Pipeline, items: Sequence[GoldItem]) -> dict[str, int]:
    """How many of `items` have gold evidence in the top 1/3/5, scored exactly as `rag eval` does."""
    target = InProcessTarget(pipeline)
    scores = [score_item(item, target, retrieval_only=True).scores for item in items]
    return {k: round(sum(s[k] or 0.0 for s in scores)) for k in HITS}


def measure_stores(
    plan: Plan, settings: Settings, embedder: Embedder, article: Document, work: Path
) -> dict[str, dict[str, Any]]:
    """Ingest, search latency and gold hit@k per store; every figure of one store next to the other's."""
    work.mkdir(parents=True, exist_ok=True)
    spec = settings.index_spec()
    corpus = synthetic_corpus(article, plan.documents)
    figures: dict[str, dict[str, Any]] = {kind: {} for kind in STORES}
    libraries: dict[str, Library] = {}
    for kind in STORES:
        library = libraries[kind] = empty_store(kind, spec, embedder, work, f"{kind}-corpus")
        started = time.perf_counter()
        report = library.add(corpus)
        seconds = time.perf_counter() - started
        on_disk = work / ("faiss-corpus" if kind == "faiss" else "milvus-corpus.db")
        figures[kind] |= {
            "ingest_s": seconds,
            "ingest_documents": len(report.added),
            "ingest_passages": report.passages_embedded,
            "ingest_documents_per_s": len(report.added) / seconds,
            "ingest_passages_per_s": report.passages_embedded / seconds,
            "disk_mb": directory_mb(on_disk),
        }

    # Latency: the stores take turns query by query, so a burst of load elsewhere on the machine hits both.
    questions = [item.question for item in load_gold(ARTICLE_GOLD)]
    asked = [questions[i % len(questions)] for i in range(plan.queries)]
    vectors = {q: embedder.embed_query(q) for q in questions}
    pipelines = {kind: Pipeline(settings, libraries[kind].index, ScriptedGenerator()) for kind in STORES}
    retrievers = {kind: pipelines[kind].retriever(settings.retriever) for kind in STORES}
    search_ms: dict[str, list[float]] = {kind: [] for kind in STORES}
    retrieve_ms: dict[str, list[float]] = {kind: [] for kind in STORES}
    for question in questions[:10]:  # builds bm25s over FAISS's passages and fills Milvus's caches
        for kind in STORES:
            pipelines[kind].search(question)
    for question in asked:
        for kind in STORES:
            # What /api/search runs (embed the question, retrieve, cosine relevance, titles) ...
            search_ms[kind].append(timed_ms(partial(pipelines[kind].search, question)))
            # ... and the store's part alone, the question's vector already computed.
            query = Query(question, vectors[question])
            retrieve_ms[kind].append(timed_ms(partial(retrievers[kind].retrieve, query, settings.top_k)))
    for kind in STORES:
        search_p50, search_p99 = p50_p99(search_ms[kind])
        retrieve_p50, retrieve_p99 = p50_p99(retrieve_ms[kind])
        figures[kind] |= {
            "queries": len(asked),
            "search_p50_ms": search_p50,
            "search_p99_ms": search_p99,
            "retrieve_p50_ms": retrieve_p50,
            "retrieve_p99_ms": retrieve_p99,
        }
        close(libraries[kind])

    items = [item for item in load_gold(ARTICLE_GOLD) if item.evidence]
    for kind in STORES:
        library = empty_store(kind, spec, embedder, work, f"{kind}-article")
        library.rebuild([article])
        figures[kind] |= {"gold_questions": len(items)}
        figures[kind] |= gold_hits(Pipeline(settings, library.index, ScriptedGenerator()), items)
        close(library)
    # A `.db` is served by a Milvus Lite server thread in this process until exit; stopped now, so that the
    # replica runs below count only the client's CPU against this process.
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_all()
    return figures


def ratio(milvus: float, faiss: float) -> str:
    return f"{milvus / faiss:.2f}×" if faiss else "—"


def stores_table(figures: dict[str, dict[str, Any]], settings: Settings) -> Table:
    faiss, milvus = figures["faiss"], figures["milvus"]
    table = Table(
        title=f"Stores ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores): FAISS directory vs Milvus Lite .db, "
        f"default retriever ({settings.retriever.value}, {settings.candidates} candidates, "
        f"{settings.fusion.value} fusion)"
    )
    for column in ("what", "faiss (baseline)", "milvus", "milvus/faiss", "note"):
        table.add_column(column)
    per_doc = faiss["ingest_passages"] / max(1, faiss["ingest_documents"])
    table.add_row(
        "ingest through Library: passages/s",
        f"{faiss['ingest_passages_per_s']:.0f}",
        f"{milvus['ingest_passages_per_s']:.0f}",
        ratio(milvus["ingest_passages_per_s"], faiss["ingest_passages_per_s"]),
        f"{faiss['ingest_passages']} passages in one add (one run); embedding included",
    )
    table.add_row(
        "ingest through Library: documents/s",
        f"{faiss['ingest_documents_per_s']:.0f}",
        f"{milvus['ingest_documents_per_s']:.0f}",
        ratio(milvus["ingest_documents_per_s"], faiss["ingest_documents_per_s"]),
        f"{faiss['ingest_documents']} synthetic documents, {per_doc:.1f} passages each",
    )
    table.add_row(
        "on disk after the ingest",
        f"{faiss['disk_mb']:.1f} MB",
        f"{milvus['disk_mb']:.1f} MB",
        ratio(milvus["disk_mb"], faiss["disk_mb"]),
        "FAISS directory / Milvus Lite .db directory",
    )
    for name, key, note in (
        ("search p50 (Pipeline.search)", "search_p50_ms", "embed + retrieve + relevance + titles, as /api/search"),
        ("search p99", "search_p99_ms", f"{faiss['queries']} gold questions (cycled), stores alternating"),
        ("retrieve p50 (retriever alone)", "retrieve_p50_ms", "the question's vector computed beforehand"),
        ("retrieve p99", "retrieve_p99_ms", f"over the {faiss['ingest_passages']} ingested passages"),
    ):
        table.add_row(name, f"{faiss[key]:.1f} ms", f"{milvus[key]:.1f} ms", ratio(milvus[key], faiss[key]), note)
    total = faiss["gold_questions"]
    for k in HITS:
        table.add_row(
            f"gold {k}",
            f"{faiss[k]} / {total} ({faiss[k] / total:.2f})",
            f"{milvus[k]} / {total} ({milvus[k] / total:.2f})",
            f"{milvus[k] - faiss[k]:+d} items",
            "only the article indexed; scored as rag eval does",
        )
    return table


# ---- replicas ------------------------------------------------------------------------------------------------
def cpu_seconds(pids: Sequence[int], children: bool = True) -> float:
    """User + system CPU seconds these processes (and, with `children`, theirs) have used so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            for each in (process, *(process.children(recursive=True) if children else ())):
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = each.cpu_times()
                    total += times.user + times.system
    return total


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (guest time is inside user time already)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0))


@dataclasses.dataclass
class ReplicaRun:
    """Every round with one replica count: throughputs, latencies and the cores each party kept busy."""

    rates: list[float] = dataclasses.field(default_factory=list)
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    requests: int = 0
    errors: int = 0
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    cpu: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(("client", "servers", "milvus", "others"), 0.0)
    )

    def add(self, outcome: Outcome, requests: int, cpu: dict[str, float]) -> None:
        ok = outcome.statuses.get(200, 0)
        self.rates.append(ok / outcome.seconds)
        self.latencies_ms += outcome.latencies_ms
        self.requests += requests
        self.errors += outcome.transport_errors + sum(n for s, n in outcome.statuses.items() if s != 200)
        for status, n in outcome.statuses.items():
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + n
        if outcome.transport_errors:
            self.statuses["transport"] = self.statuses.get("transport", 0) + outcome.transport_errors
        self.seconds += outcome.seconds
        for party, seconds in cpu.items():
            self.cpu[party] += seconds

    def cores(self, party: str) -> float:
        """Cores `party` kept busy on average while requests ran."""
        return self.cpu[party] / self.seconds if self.seconds else 0.0

    def cpu_ms_per_request(self) -> float:
        """CPU of the client, the replicas and Milvus per answered request (not the machine's other load)."""
        ours = sum(v for party, v in self.cpu.items() if party != "others")
        return ours / max(1, self.requests - self.errors) * 1000


def measure_replicas(
    kind: str, plan: Plan, settings: Settings, embedder: Embedder, article: Document, work: Path
) -> dict[int, ReplicaRun]:
    """/api/search at CONCURRENCY against one replica and against two over one shared store of `kind`."""
    work.mkdir(parents=True, exist_ok=True)
    env = {
        "RAG_GENERATOR": "openai",
        "RAG_OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens: no model anywhere
        "RAG_FEEDBACK_PATH": str(work / "feedback.jsonl"),
    }
    with contextlib.ExitStack() as stack:
        milvus_pid: list[int] = []
        if kind == "faiss":
            index_dir = work / "shared-faiss"
            Library(index_dir, new_index(settings.index_spec(), embedder)).rebuild([article])
            env |= {"RAG_STORE": "faiss", "RAG_INDEX_DIR": str(index_dir)}
        else:
            data = work / "milvus-server"
            data.mkdir()
            milvus = stack.enter_context(MilvusLiteServer(data, log=work / "milvus-server.log"))
            assert milvus.process is not None
            milvus_pid.append(milvus.process.pid)
            uri = milvus.uri
            spec = dataclasses.replace(
                settings.index_spec(), store=StoreKind.MILVUS, milvus_uri=uri, milvus_collection="scale"
            )
            library = Library(work / "unused", new_index(spec, embedder))
            library.rebuild([article])
            close(library)
            env |= {
                "RAG_STORE": "milvus",
                "RAG_MILVUS_URI": uri,
                "RAG_MILVUS_COLLECTION": "scale",
                "RAG_INDEX_DIR": str(work / "unused"),
            }
        servers = [
            stack.enter_context(ServeProcess(env, log=work / f"serve-{kind}-{n}.log")) for n in (1, 2)
        ]  # both up from the start: an idle replica polls nothing, so it costs the other's run nothing
        urls = [server.url for server in servers]
        bodies: list[dict[str, object]] = [{"query": item.question} for item in load_gold(ARTICLE_GOLD)]
        for url in urls:  # embedder warm, BM25 built, caches filled
            asyncio.run(hammer(url, "/api/search", bodies, CONCURRENCY, 2 * CONCURRENCY))
        pids = {"client": [os.getpid()], "servers": [s.pid for s in servers], "milvus": milvus_pid}
        runs = {1: ReplicaRun(), 2: ReplicaRun()}
        for _ in range(plan.rounds):
            for replicas in (1, 2):
                # The replicas and the Milvus server are this process's children: the client is this process alone.
                before = {party: cpu_seconds(p, children=party != "client") for party, p in pids.items()}
                busy_before = machine_busy_seconds()
                outcome = asyncio.run(hammer(urls[:replicas], "/api/search", bodies, CONCURRENCY, plan.requests))
                cpu = {party: cpu_seconds(p, children=party != "client") - before[party] for party, p in pids.items()}
                cpu["others"] = max(0.0, machine_busy_seconds() - busy_before - sum(cpu.values()))
                runs[replicas].add(outcome, plan.requests, cpu)
    return runs


def replicas_table(runs: dict[str, dict[int, ReplicaRun]]) -> tuple[Table, list[str], dict[str, Any]]:
    cores = os.cpu_count() or 1
    table = Table(
        title=f"Replicas ({time.strftime('%Y-%m-%d')}, {cores} cores): /api/search at concurrency {CONCURRENCY}, "
        "one shared store, no load balancer (the client sends request i to replica i mod n)"
    )
    for column in (
        "store",
        "replicas",
        "requests",
        "req/s",
        "2/1",
        "p50 ms",
        "p99 ms",
        "errors",
        "cores: client",
        "cores: replicas",
        "cores: milvus",
        "cores: others",
    ):
        table.add_column(column)
    notes: list[str] = []
    figures: dict[str, Any] = {}
    for kind, by_count in runs.items():
        one = statistics.median(by_count[1].rates)
        store: dict[str, Any] = {}
        for replicas, run in by_count.items():
            rate = statistics.median(run.rates)
            p50, p99 = p50_p99(run.latencies_ms)
            table.add_row(
                kind,
                str(replicas),
                f"{run.requests} in {len(run.rates)} rounds",
                f"{rate:.1f}",
                "1.00× (baseline)" if replicas == 1 else f"{rate / one:.2f}×",
                f"{p50:.0f}",
                f"{p99:.0f}",
                str(run.errors),
                f"{run.cores('client'):.2f}",
                f"{run.cores('servers'):.2f}",
                f"{run.cores('milvus'):.2f}" if kind == "milvus" else "—",
                f"{run.cores('others'):.2f}",
            )
            store[str(replicas)] = {
                "requests": run.requests,
                "requests_per_s_median": rate,
                "requests_per_s_rounds": run.rates,
                "p50_ms": p50,
                "p99_ms": p99,
                "errors": run.errors,
                "statuses": run.statuses,
                "cpu_ms_per_request": run.cpu_ms_per_request(),
                "cores": {party: run.cores(party) for party in run.cpu},
            }
        two = statistics.median(by_count[2].rates)
        # However many replicas there are, the cores cannot serve faster than cores ÷ the cheapest CPU cost of a
        # request seen (client + replicas + Milvus; two replicas on two cores usually cost more each).
        cheapest_ms = min(run.cpu_ms_per_request() for run in by_count.values())
        ceiling = cores / (cheapest_ms / 1000)
        store |= {
            "ratio_2_over_1": two / one,
            "cpu_ceiling_requests_per_s": ceiling,
            "cpu_ceiling_ratio": ceiling / one,
        }
        figures[kind] = store
        single = by_count[1]
        ours = sum(single.cores(party) for party in ("client", "servers", "milvus"))
        busy = ours + single.cores("others")
        parties = "client + replicas" + (" + milvus-lite server" if kind == "milvus" else "")
        notes.append(
            f"{kind}: 2 replicas {two / one:.2f}× one (the issue's target: ≥ 1.7× if the cores allow). With one "
            f"replica the {cores} cores were {busy:.2f} busy ({ours:.2f} this benchmark, {single.cores('others'):.2f} "
            f"other processes){': no core was left for a second replica' if busy > 0.9 * cores else ''}. A request "
            f"costs at least {cheapest_ms:.1f} ms of CPU ({parties}), so {cores} cores serve at most "
            f"{ceiling:.0f} req/s = {ceiling / one:.2f}× the one-replica rate measured here, and only if nothing "
            "else runs."
        )
    return table, notes, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Smaller corpus, fewer queries and requests.")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    settings = Settings()
    # Not a terminal (make, a pipe): rich would wrap the tables at 80 columns.
    console = Console() if Console().is_terminal else Console(width=170)
    article = load_documents(settings.corpus_path)[0]
    embedder = make_spec_embedder(settings.index_spec())
    embedder.warm_up()  # the model load is nobody's ingest time
    figures: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "quick": args.quick,
        "cores": os.cpu_count(),
        "retriever": settings.retriever.value,
        "concurrency": CONCURRENCY,
    }
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    stores = measure_stores(plan, settings, embedder, article, WORK / "stores")
    stores_summary = stores_table(stores, settings)
    console.print(stores_summary)
    figures["stores"] = stores
    runs = {kind: measure_replicas(kind, plan, settings, embedder, article, WORK / kind) for kind in STORES}
    table, notes, figures["replicas"] = replicas_table(runs)
    console.print(table)
    for note in notes:
        console.print(note)
    if any(run.errors for by_count in runs.values() for run in by_count.values()):
        console.print(f"Some requests failed: the statuses are in {RESULTS.name}, the servers' logs in {WORK}.")
    report.save("scale", [stores_summary, table], notes, quick=args.quick)
    if not args.quick:
        RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
