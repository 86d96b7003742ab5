"""The server's own Prometheus metrics (prometheus-client), one registry per server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


_COUNTED_AS = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}


class SignalCounters:
    """Items of one signal received, committed and refused (by reason)."""

    def __init__(self, noun: str, registry: CollectorRegistry) -> None:
        words = noun.replace("_", " ").capitalize()
        self.received = Counter(
            f"onepane_{noun}_received",
            f"{words} received in decodable OTLP requests.",
            registry=registry,
        )
        self.accepted = Counter(
            f"onepane_{noun}_accepted", f"{words} committed to the store.", registry=registry
        )
        self.rejected = Counter(
            f"onepane_{noun}_rejected",
            f"{words} refused: invalid (partial success) or not stored (429/503).",
            ["reason"],
            registry=registry,
        )


class ServerMetrics:
    """Ingest health: spans, points and log records in, out and refused; the write queue;
    commit latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "onepane_otlp_requests",
            "OTLP export requests answered, by signal, transport and HTTP status.",
            ["signal", "transport", "code"],
            registry=r,
        )
        self.signals = {signal: SignalCounters(noun, r) for signal, noun in _COUNTED_AS.items()}
        self.queue_rows = Gauge(
            "onepane_write_queue_rows",
            "Rows (spans, metric points, log records) waiting for the writer.",
            registry=r,
        )
        self.queue_capacity = Gauge(
            "onepane_write_queue_capacity_rows", "Size of the write queue, in rows.", registry=r
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
        self.commit_rows = Histogram(
            "onepane_commit_rows",
            "Rows (spans, metric points, log records) per group commit.",
            buckets=(1, 10, 100, 1_000, 10_000, 50_000, 100_000),
            registry=r,
        )

        self.retention_deleted = Counter(
            "onepane_retention_deleted_rows",
            "Rows deleted by retention (onepane.yaml retention), by table.",
            ["table"],
            registry=r,
        )
        self.retention_last_run = Gauge(
            "onepane_retention_last_run_timestamp_seconds",
            "When retention last finished a run (Unix seconds); 0 before the first.",
            registry=r,
        )

    def watch_queue(self, depth: Callable[[], float], capacity: int) -> None:
        self.queue_rows.set_function(depth)
        self.queue_capacity.set(capacity)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def store_bytes(db: Path) -> dict[str, int]:
    """Size on disk of the DuckDB file and its write-ahead log (0 when absent)."""
    sizes = {}
    for name, path in (("db", db), ("wal", Path(f"{db}.wal"))):
        try:
            sizes[name] = path.stat().st_size
        except OSError:
            sizes[name] = 0
    return sizes


class StoreSize:
    """``onepane_store_bytes{file="db|wal"}``, read from the file system on scrape."""

    def __init__(self, db: Path) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "onepane_store_bytes",
            "Size on disk of the store: the DuckDB file (db) and its write-ahead log (wal).",
            labels=["file"],
        )
        for name, value in store_bytes(self._db).items():
            size.add_metric([name], value)
        yield size


class CollectorStatus:
    """Prometheus view of the GPU scrape targets and the Kubernetes sync, read on scrape."""

    def __init__(
        self,
        gpu_targets: Callable[[], list[dict[str, Any]]],
        kubernetes: Callable[[], dict[str, dict[str, Any]]],
    ) -> None:
        self._gpu_targets = gpu_targets
        self._kubernetes = kubernetes

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "onepane_gpu_target_up",
            "1 if the last scrape of a dcgm target worked.",
            labels=["target"],
        )
        gpus = GaugeMetricFamily(
            "onepane_gpu_target_gpus", "GPUs in a target's last good scrape.", labels=["target"]
        )
        blanks = CounterMetricFamily(
            "onepane_gpu_blank_values",
            "DCGM blank sentinel values read as missing data.",
            labels=["target"],
        )
        for status in self._gpu_targets():
            up.add_metric([status["target"]], 1.0 if status["up"] else 0.0)
            gpus.add_metric([status["target"]], status["gpus"])
            blanks.add_metric([status["target"]], status["blank_values"])
        synced = GaugeMetricFamily(
            "onepane_k8s_synced", "1 once a resource has been listed.", labels=["resource"]
        )
        relists = CounterMetricFamily(
            "onepane_k8s_relists_after_gone",
            "Fresh lists after a watch answered 410 Gone.",
            labels=["resource"],
        )
        events = CounterMetricFamily(
            "onepane_k8s_watch_events", "Watch events applied.", labels=["resource"]
        )
        for kind, state in self._kubernetes().items():
            synced.add_metric([kind], 1.0 if state["synced"] else 0.0)
            relists.add_metric([kind], state["relists_after_410"])
            events.add_metric([kind], state["events"])
        yield from (up, gpus, blanks, synced, relists, events)


class CostGauges:
    """Unit cost and GPU idle share per workload over the last 24 h, read on scrape (at
    most every ``max_age_s``: the hourly rollup changes them no faster)."""

    def __init__(
        self, read: Callable[[], dict[str, list[tuple[Any, ...]]]], max_age_s: float = 30.0
    ) -> None:
        self._read = read
        self._max_age_s = max_age_s
        self._cached: dict[str, list[tuple[Any, ...]]] = {}
        self._at = float("-inf")
        self._lock = threading.Lock()

    def _figures(self) -> dict[str, list[tuple[Any, ...]]]:
        with self._lock:
            if time.monotonic() - self._at > self._max_age_s:
                try:
                    self._cached = self._read()
                except Exception:  # a scrape must not fail because a query did
                    self._cached = {}
                self._at = time.monotonic()
            return self._cached

    def collect(self) -> Iterator[Metric]:
        figures = self._figures()
        unit_cost = GaugeMetricFamily(
            "onepane_unit_cost",
            "Cost of one unit of a workload's work over the last 24 h (per 1k requests, "
            "1k predictions, 1M tokens or run), in the pricing currency.",
            labels=["workload", "kind", "unit"],
        )
        for workload, kind, unit, value in figures.get("unit_cost", []):
            unit_cost.add_metric([workload, kind, unit], value)
        idle = GaugeMetricFamily(
            "onepane_gpu_idle_share",
            "Share of a workload's GPU cost that paid for idle GPU time, last 24 h (0..1).",
            labels=["workload"],
        )
        for workload, share in figures.get("gpu_idle_share", []):
            idle.add_metric([workload], share)
        yield from (unit_cost, idle)


class DriftGauges:
    """The newest drift run's share of drifted columns per model and version, read on
    scrape."""

    def __init__(self, read: Callable[[], list[tuple[str, str, float]]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        share = GaugeMetricFamily(
            "onepane_drift_share",
            "Share of a model's input columns that drifted in its newest drift run (0..1); "
            "the dataset drifts at drift.drift_share (0.5 unless configured).",
            labels=["model", "version"],
        )
        try:
            figures = self._read()
        except Exception:  # a scrape must not fail because a query did
            figures = []
        for model, version, value in figures:
            share.add_metric([model, version], value)
        yield share
