"""Prometheus metrics and one structured log line per request."""

from __future__ import annotations

import json
import logging

from prometheus_client import CollectorRegistry, Counter, Histogram

logger = logging.getLogger("rag.api")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)


class Metrics:
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
        self.answers.labels(abstained=str(abstained).lower()).inc()
        if abstained:
            self.abstentions.labels(reason=reason or "unknown").inc()
        for stage, ms in timings_ms.items():
            self.stage_seconds.labels(stage=stage.removesuffix("_ms")).observe(ms / 1000)


def log_event(event: str, **fields: object) -> None:
    logger.info(json.dumps({"event": event, **fields}, ensure_ascii=False, default=str))
