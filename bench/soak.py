"""Soak test of the real server on loopback: sustained load, then what it did to memory and errors.

Starts `rag serve` (the default real model) on a free loopback port with its own index, then runs two phases
one after the other: 64 clients on `/api/search` for 60 s, then 32 clients on `/api/ask` (the full answer
path) for 60 s. Each client sends its next request as soon as the last one is answered; a 503 is retried after
its `Retry-After`, as a well-behaved client would (a client that retried at once would measure how fast the
server refuses, not how it holds up). One untimed request per route warms the server up first. Its RSS (child
processes included) is sampled every second.

One table: per phase the requests, answers per second, latency, errors by class (5xx other than 503, 503,
other 4xx, transport), the requests cut off at the end, and RSS at the start, peak and end with its slope
(least squares over the phase's samples, and over their second half alone).
`python -m bench.soak [--quick]`: `--quick` runs 10 s of searches and 20 s of answers with fewer clients, to
check that it works.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import threading
import time
from dataclasses import dataclass, field

import aiohttp
import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

from bench import report
from bench.load import Outcome, build_index
from eval.gold import ARTICLE_GOLD, load_gold
from rag.settings import PROJECT_ROOT
from rag.testing import ServeProcess

SAMPLE_EVERY_S = 1.0
# After a phase's time is up, requests still running get this long to finish; then they are cut off (the
# client disconnects, which stops their generation) and counted apart. An answer queued behind 8 others can
# take minutes on two busy cores, and waiting for all of them would stretch a phase to several.
GRACE_S = 30.0
# A Retry-After beyond this is waited for only this long, so a long hint cannot idle a short phase.
MAX_BACKOFF_S = 5.0


@dataclass
class SoakOutcome(Outcome):
    """`bench.load.Outcome`, plus the requests still unanswered when the phase was cut off."""

    cut_off: int = 0


@dataclass(frozen=True)
class Phase:
    """One stretch of load: `clients` clients sending `bodies` (cycled) to `path` for `seconds`."""

    path: str
    clients: int
    seconds: float
    bodies: list[dict[str, object]]


@dataclass
class RssSampler:
    """Samples a process tree's resident memory every `every_s` seconds in a thread, until stopped."""

    pid: int
    every_s: float = SAMPLE_EVERY_S
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def rss(self) -> int:
        """Bytes resident in the process and its children now (0 once it has gone)."""
        try:
            process = psutil.Process(self.pid)
            tree = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for member in tree:
            # A worker that exited between listing and reading holds no memory.
            with contextlib.suppress(psutil.NoSuchProcess):
                total += member.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.rss()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def between(self, start: float, end: float) -> list[tuple[float, int]]:
        """The samples taken in [start, end]."""
        return [(at, rss) for at, rss in self.samples if start <= at <= end]


def slope_mb_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares growth of RSS in MB per minute (nan with fewer than 3 samples)."""
    if len(samples) < 3:
        return float("nan")
    minutes = np.array([at for at, _ in samples]) / 60
    megabytes = np.array([rss for _, rss in samples]) / 2**20
    return float(np.polyfit(minutes - minutes[0], megabytes, 1)[0])


def retry_after_s(response: aiohttp.ClientResponse) -> float:
    """The server's Retry-After in seconds (1 when absent or not a number), capped at MAX_BACKOFF_S."""
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


async def soak(url: str, phase: Phase) -> SoakOutcome:
    """Keep `phase.clients` requests in flight for `phase.seconds`; those still running `GRACE_S` later are cut off."""
    outcome = SoakOutcome()
    in_flight = 0
    started = time.perf_counter()
    deadline = started + phase.seconds
    connector = aiohttp.TCPConnector(limit=phase.clients)  # aiohttp, as bench.load explains
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as client:

        async def run_client(first: int) -> None:
            nonlocal in_flight
            i = first
            while time.perf_counter() < deadline:
                body = phase.bodies[i % len(phase.bodies)]
                i += phase.clients
                sent = time.perf_counter()
                in_flight += 1
                try:
                    async with client.post(phase.path, json=body) as response:
                        await response.read()
                except (aiohttp.ClientError, TimeoutError) as error:
                    outcome.transport_error(error)
                    continue
                finally:
                    in_flight -= 1
                outcome.statuses[response.status] = outcome.statuses.get(response.status, 0) + 1
                if response.status == 200:
                    outcome.latencies_ms.append((time.perf_counter() - sent) * 1000)
                elif response.status == 503:
                    await asyncio.sleep(min(retry_after_s(response), max(0.0, deadline - time.perf_counter())))

        tasks = [asyncio.create_task(run_client(i)) for i in range(phase.clients)]
        _, running = await asyncio.wait(tasks, timeout=phase.seconds + GRACE_S)
        outcome.cut_off = in_flight
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    outcome.seconds = time.perf_counter() - started
    return outcome


def phases(quick: bool) -> list[Phase]:
    """Search, then full answers, over the article's gold questions."""
    items = load_gold(ARTICLE_GOLD)
    search_bodies: list[dict[str, object]] = [{"query": item.question} for item in items]
    ask_bodies: list[dict[str, object]] = [{"question": item.question} for item in items if item.answers]
    if quick:
        # Answers take 5-45 s on two busy cores: a 10 s phase would finish none of them.
        return [Phase("/api/search", 16, 10, search_bodies), Phase("/api/ask", 4, 20, ask_bodies)]
    return [Phase("/api/search", 64, 60, search_bodies), Phase("/api/ask", 32, 60, ask_bodies)]


def warm_up(url: str, phase_plan: list[Phase]) -> None:
    """One untimed request per phase. The server maps the model's file and decodes its fixed prompt in the
    background after start-up, which adds ~2 GB of (file-backed) RSS in the first seconds: measured from a
    cold start, that would read as growth under load."""
    with httpx.Client(base_url=url, timeout=600) as client:
        for phase in phase_plan:
            client.post(phase.path, json=phase.bodies[0]).raise_for_status()


def mb(value: float) -> str:
    return f"{value / 2**20:.0f}"


def main() -> None:
    """Run the phases against a fresh `rag serve` and print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~10 s per phase, fewer clients.")
    args = parser.parse_args()
    plan = phases(args.quick)
    index_dir = PROJECT_ROOT / "var" / "soak-index"
    build_index(index_dir)
    env = {"RAG_INDEX_DIR": str(index_dir)}
    log = PROJECT_ROOT / "var" / "soak-serve.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    columns = (
        "route",
        "clients",
        "s",
        "requests",
        "200/s",
        "p50 ms",
        "p95 ms",
        "5xx (not 503)",
        "503",
        "other 4xx",
        "transport",
        "cut off",
        "RSS start MB",
        "peak MB",
        "end MB",
        "MB/min",
        "MB/min 2nd half",
    )
    when = time.strftime("%Y-%m-%d %H:%M")
    table = Table(title=f"Soak on loopback ({when}, 1 server process, {psutil.cpu_count()} cores)")
    for column in columns:
        table.add_column(column, justify="left" if column == "route" else "right")
    transport_kinds: dict[str, dict[str, int]] = {}
    with ServeProcess(env, log=log) as server, RssSampler(server.pid) as sampler:
        warm_up(server.url, plan)
        for phase in plan:
            begun = time.monotonic()
            outcome = asyncio.run(soak(server.url, phase))
            ended = time.monotonic()
            samples = sampler.between(begun, ended) or [(ended, sampler.rss())]
            second_half = sampler.between(begun + (ended - begun) / 2, ended)
            statuses = outcome.statuses
            if outcome.transport_kinds:
                transport_kinds[phase.path] = outcome.transport_kinds
            latencies = outcome.latencies_ms or [float("nan")]
            table.add_row(
                phase.path,
                str(phase.clients),
                f"{outcome.seconds:.0f}",
                str(sum(statuses.values()) + outcome.transport_errors),
                f"{statuses.get(200, 0) / outcome.seconds:.1f}",
                f"{statistics.median(latencies):.0f}",
                f"{np.percentile(latencies, 95):.0f}",
                str(sum(n for status, n in statuses.items() if status >= 500 and status != 503)),
                str(statuses.get(503, 0)),
                str(sum(n for status, n in statuses.items() if 400 <= status < 500)),
                str(outcome.transport_errors),
                str(outcome.cut_off),
                mb(samples[0][1]),
                mb(max(rss for _, rss in samples)),
                mb(samples[-1][1]),
                f"{slope_mb_per_min(samples):+.1f}",
                f"{slope_mb_per_min(second_half):+.1f}",
            )
    console = Console(width=200)  # the whole table, also when the output is a file
    console.print(table)
    notes = [
        f"transport errors on {path}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        for path, kinds in transport_kinds.items()
    ]
    for note in notes:
        console.print(note)
    console.print(f"server log: {log}")
    report.save("soak", [table], notes, quick=args.quick)


if __name__ == "__main__":
    main()
