"""The server's own Prometheus metrics (prometheus-client), one registry per server."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServerMetrics:
    """Ingest health: spans in, out and refused; the write queue; commit latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "onepane_otlp_requests",
            "OTLP export requests answered, by signal, transport and HTTP status.",
            ["signal", "transport", "code"],
            registry=r,
        )
        self.spans_received = Counter(
            "onepane_spans_received", "Spans received in decodable OTLP requests.", registry=r
        )
        self.spans_accepted = Counter(
            "onepane_spans_accepted", "Spans committed to the store.", registry=r
        )
        self.spans_rejected = Counter(
            "onepane_spans_rejected",
            "Spans refused: invalid (partial success) or not stored (429/503).",
            ["reason"],
            registry=r,
        )
        self.queue_spans = Gauge(
            "onepane_write_queue_spans", "Spans waiting for the writer.", registry=r
        )
        self.queue_capacity = Gauge(
            "onepane_write_queue_capacity_spans", "Size of the write queue.", registry=r
        )
        self.commit_seconds = Histogram(
            "onepane_commit_seconds",
            "Time to append and commit one group of requests.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "onepane_checkpoint_seconds",
            "Background checkpoints of the store (WAL written into the database file).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.commit_spans = Histogram(
            "onepane_commit_spans",
            "Spans per group commit.",
            buckets=(1, 10, 100, 1_000, 10_000, 50_000, 100_000),
            registry=r,
        )

    def watch_queue(self, depth: Callable[[], float], capacity: int) -> None:
        self.queue_spans.set_function(depth)
        self.queue_capacity.set(capacity)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
