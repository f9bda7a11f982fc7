"""Load test of the real server on loopback: /api/search (each question new, then the gold questions
repeated) and /api/ask at concurrency 1, 8 and 64.

Starts `rag serve` on a free loopback port, sends a bounded number of requests, prints one table
(requests/s, p50/p95/p99, errors, 503s from the bounded queue, peak server RSS) and stops the server.
Then, with the server idle, measures the embedder alone on the same cores: the ceiling a search whose
question is new cannot pass, so the table's "each new" rows read as a share of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

from bench import report
from eval.gold import ARTICLE_GOLD, load_gold
from index.embedders import make_embedder
from rag.document_facts import asked_fact
from rag.settings import PROJECT_ROOT, Settings
from rag.testing import ServeProcess

SEARCH_REQUESTS = {1: 200, 8: 1000, 64: 2000}
ASK_REQUESTS = {1: 6, 8: 24, 64: 128}


@dataclass
class Outcome:
    """What one `hammer` run saw: latencies of the 200s, every status, transport errors, wall time."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    # Which client errors: a refused or reset connection is the server's doing, a pool timeout the client's.
    transport_kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def transport_error(self, error: Exception) -> None:
        """Count one request that got no HTTP answer, by the error's class."""
        self.transport_errors += 1
        kind = type(error).__name__
        self.transport_kinds[kind] = self.transport_kinds.get(kind, 0) + 1


async def hammer(
    url: str | Sequence[str], path: str, bodies: list[dict[str, object]], concurrency: int, total: int
) -> Outcome:
    """Send `total` POSTs of `bodies` (cycled) to `path`, `concurrency` at a time. Several URLs are served
    round-robin, request i to url i mod n, as a load balancer without session affinity would.

    The client is aiohttp: httpx's connection pool spends ~2.5 ms of CPU a request, so on these two cores it
    took a whole core at concurrency 64 and the server idled (a third of a core) while the table blamed it;
    aiohttp spends ~0.6 ms."""
    urls = [url] if isinstance(url, str) else list(url)
    outcome = Outcome()
    queue: asyncio.Queue[tuple[int, dict[str, object]]] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait((i, bodies[i % len(bodies)]))
    timeout = aiohttp.ClientTimeout(total=120)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(
                aiohttp.ClientSession(u, connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout)
            )
            for u in urls
        ]

        async def worker() -> None:
            while not queue.empty():
                i, body = queue.get_nowait()
                started = time.perf_counter()
                try:
                    async with sessions[i % len(sessions)].post(path, json=body) as response:
                        await response.read()
                    outcome.statuses[response.status] = outcome.statuses.get(response.status, 0) + 1
                    if response.status == 200:
                        outcome.latencies_ms.append((time.perf_counter() - started) * 1000)
                except (aiohttp.ClientError, TimeoutError) as error:
                    outcome.transport_error(error)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        outcome.seconds = time.perf_counter() - started
    return outcome


def embedder_ceiling(questions: Sequence[str], batch: int, seconds: float = 5.0) -> float:
    """Questions per second the configured embedder reaches alone, in batches of `batch` (as the server's
    `QueryBatcher` forms them under load), with the settings' thread count: what a search of a new question
    cannot beat on these cores, since it must embed the question."""
    settings = Settings()
    embedder = make_embedder(
        settings.embedder_backend, settings.embed_threads, settings.embed_batch_size, settings.model_cache_dir
    )
    embedder.warm_up()
    done, n = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        embedder.embed_batch([questions[(n + j) % len(questions)] for j in range(batch)])
        done += batch
        n += batch
    return done / (time.perf_counter() - started)


def timed_ask(url: str, body: dict[str, object]) -> float:
    """Seconds one /api/ask takes, end to end."""
    started = time.perf_counter()
    httpx.post(f"{url}/api/ask", json=body, timeout=300).raise_for_status()
    return time.perf_counter() - started


def build_index(directory: Path) -> None:
    """A fresh index of the built-in corpus at `directory`: `rag serve` builds only its default directory and
    refuses any other that is missing."""
    subprocess.run(
        [sys.executable, "-m", "cli.main", "index", "build", "--index-dir", str(directory)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Fewer requests.")
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0
    notes: list[str] = []
    index_dir = PROJECT_ROOT / "var" / "bench-index"
    build_index(index_dir)
    launched = time.perf_counter()
    with ServeProcess({"RAG_INDEX_DIR": str(index_dir)}) as server:
        ready_s = time.perf_counter() - launched
        url = server.url
        process = psutil.Process(server.pid)
        # Cold start: the first answer, asked the moment the health check passes. The server loads the answer
        # prompt's decoded prefix from the model cache (or decodes it, ~5 s, on a machine's first start), and the
        # question waits for that; the same question again is the warm figure.
        cold_question: dict[str, object] = {"question": "What did Deng agree in 1979?"}
        first_answer_s = timed_ask(url, cold_question)
        again_s = timed_ask(url, cold_question)
        console = Console(width=200)  # the whole table, also when the output is a file
        notes.append(
            f"cold start: rag serve → /api/health ready {ready_s:.1f} s; first answer {first_answer_s:.2f} s, the same "
            f"question again {again_s:.2f} s (the index and model files in the page cache; the model assembled)"
        )
        console.print(notes[-1])
        items = load_gold(ARTICLE_GOLD)
        search_bodies: list[dict[str, object]] = [{"query": i.question} for i in items]
        # Every question asked once: the server's query-vector cache cannot help, so this row shows the cost of
        # embedding each one (batched across concurrent requests).
        new_bodies: list[dict[str, object]] = [
            {"query": f"{items[n % len(items)].question} ({n})"} for n in range(max(SEARCH_REQUESTS.values()))
        ]
        # Questions about the document itself (who wrote it…) are read from its header in ~15 ms without the model;
        # these rows measure the model's answer path.
        ask_bodies: list[dict[str, object]] = [
            {"question": i.question} for i in items if i.answers and asked_fact(i.question) is None
        ]
        table = Table(title=f"Load on loopback ({time.strftime('%Y-%m-%d')}, 1 server process, 2 cores)")
        for column in (
            "route",
            "questions",
            "conc.",
            "requests",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "5xx (not 503)",
            "503",
            "errors",
        ):
            table.add_column(column)
        peak_rss = process.memory_info().rss
        search_rows: dict[tuple[str, int], float] = {}
        for path, questions, plan, bodies in (
            ("/api/search", "each new", SEARCH_REQUESTS, new_bodies),
            ("/api/search", f"{len(search_bodies)} repeated", SEARCH_REQUESTS, search_bodies),
            ("/api/ask", f"{len(ask_bodies)} repeated", ASK_REQUESTS, ask_bodies),
        ):
            if questions.endswith("repeated") and path == "/api/search":
                # Untimed pass: "repeated" means the steady state in which the vector cache holds every question;
                # with --quick the timed requests would otherwise be mostly first sightings.
                asyncio.run(hammer(url, path, bodies, 8, len(bodies)))
            for concurrency, total in plan.items():
                count = max(concurrency, int(total * scale))
                outcome = asyncio.run(hammer(url, path, bodies, concurrency, count))
                peak_rss = max(peak_rss, process.memory_info().rss)
                ok = outcome.statuses.get(200, 0)
                lat = outcome.latencies_ms or [float("nan")]
                server_errors = sum(n for s, n in outcome.statuses.items() if s >= 500 and s != 503)
                if path == "/api/search":
                    search_rows[(questions, concurrency)] = ok / outcome.seconds
                table.add_row(
                    path,
                    questions,
                    str(concurrency),
                    str(count),
                    f"{ok / outcome.seconds:.1f}",
                    f"{statistics.median(lat):.0f}",
                    f"{np.percentile(lat, 95):.0f}",
                    f"{np.percentile(lat, 99):.0f}",
                    str(server_errors),
                    str(outcome.statuses.get(503, 0)),
                    str(outcome.transport_errors + sum(n for s, n in outcome.statuses.items() if 400 <= s < 500)),
                )
        console.print(table)
        notes.append(f"peak server RSS: {peak_rss / 2**20:.0f} MB")
        console.print(notes[-1])
    # After the server has stopped, so the embedder has the cores to itself.
    new_questions = [str(b["query"]) for b in new_bodies]
    for batch in (1, 8, Settings().embed_batch_size):  # the last is the most the server batches
        ceiling = embedder_ceiling(new_questions, batch)
        shares = ", ".join(
            f"c={c} {rate / ceiling:.0%}" for (kind, c), rate in search_rows.items() if kind == "each new"
        )
        notes.append(f"embedder alone, batches of {batch}: {ceiling:.0f} questions/s; search each new: {shares}")
        console.print(notes[-1])
    report.save("load", [table], notes, quick=args.quick)


if __name__ == "__main__":
    main()
