"""Prometheus metrics of one ingest app, and the ASGI middleware that times requests.

Each app has its own registry, so two apps in one process (tests, the
embedded runtime) never share counters.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Paths outside this set are counted as "other": a fuzzer or scanner must not
# create one time series per URL it tries.
KNOWN_PATHS = frozenset(
    {
        "/v1/events",
        "/v1/otlp/v1/traces",
        "/v1/otlp/v1/logs",
        "/v1/otlp/v1/metrics",
        "/healthz",
        "/readyz",
        "/metrics",
    }
)


class IngestMetrics:
    """Requests, latencies, events accepted / rejected by reason, bus errors, redactions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llmloop_ingest_requests",
            "HTTP requests by path and status",
            ["path", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "llmloop_ingest_request_seconds",
            "Time from request to response, by path",
            ["path"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.accepted = Counter(
            "llmloop_ingest_events_accepted",
            "Events acknowledged by the bus, by type",
            ["type"],
            registry=r,
        )
        self.rejected = Counter(
            "llmloop_ingest_events_rejected",
            "Events or requests refused, by reason (invalid, too_large, bad_body, "
            "unauthorized, bus_unavailable)",
            ["reason"],
            registry=r,
        )
        self.otlp_items = Counter(
            "llmloop_ingest_otlp_items",
            "OTLP spans, log records and metric points by signal and outcome: accepted "
            "(events published), invalid, content, context (agent, tool, embeddings ...), "
            "not_genai, duplicate, unjoinable, acknowledged",
            ["signal", "outcome"],
            registry=r,
        )
        self.bus_errors = Counter(
            "llmloop_ingest_bus_errors", "Publishes the bus did not acknowledge", registry=r
        )
        self.redacted = Counter(
            "llmloop_ingest_redactions",
            "PII replaced before publishing, by kind",
            ["kind"],
            registry=r,
        )


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: no per-request object overhead)."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)
