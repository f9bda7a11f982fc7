"""Prometheus metrics and one structured log line per request."""

from __future__ import annotations

import json
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("rag.api")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)


class Metrics:
    """The app's Prometheus counters and histograms, in a registry of its own rather than the process-global one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rag_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "rag_request_seconds",
            "Request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "rag_stage_seconds",
            "Pipeline stage latency",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter("rag_answers_total", "Answers given", ["abstained"], registry=self.registry)
        self.abstentions = Counter("rag_abstentions_total", "Abstentions", ["reason"], registry=self.registry)
        self.errors = Counter("rag_errors_total", "Errors", ["kind"], registry=self.registry)
        self.saturated = Counter("rag_saturated_total", "Requests refused with 503", registry=self.registry)

    def observe_answer(self, abstained: bool, reason: str | None, timings_ms: dict[str, float]) -> None:
        """Count one answer (and the reason, if it abstained) and record each stage's time: `timings_ms` maps stage
        names, with or without an `_ms` suffix, to milliseconds."""
        self.answers.labels(abstained=str(abstained).lower()).inc()
        if abstained:
            self.abstentions.labels(reason=reason or "unknown").inc()
        for stage, ms in timings_ms.items():
            self.stage_seconds.labels(stage=stage.removesuffix("_ms")).observe(ms / 1000)


def log_event(event: str, **fields: object) -> None:
    """One JSON log line `{"event": event, **fields}` on the `rag.api` logger at INFO; values JSON cannot hold are
    written as str()."""
    logger.info(json.dumps({"event": event, **fields}, ensure_ascii=False, default=str))


class RequestLogMiddleware:
    """Counts and times every request by route, and writes one log line for it. Pure ASGI, so a streamed answer
    is timed to its last byte, not to its headers (an SSE answer is seconds long; the headers leave at once)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan and websocket scopes pass through uncounted. A request is counted under its route's path template
        (`unmatched` when none matched), as 500 if the app failed before responding."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it starts a response

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            elapsed = time.perf_counter() - started
            # The router writes the matched route into this same scope.
            route_path = getattr(scope.get("route"), "path", "unmatched")
            state = getattr(scope.get("app"), "state", None)
            if state is not None and hasattr(state, "rag"):
                metrics = state.rag.metrics
                metrics.requests.labels(route=route_path, method=scope["method"], status=str(status)).inc()
                metrics.request_seconds.labels(route=route_path).observe(elapsed)
            log_event("request", method=scope["method"], path=scope["path"], status=status, ms=round(elapsed * 1000, 1))
