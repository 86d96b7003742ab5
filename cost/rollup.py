"""Running the hourly rollup: which hours to compute, when they become final, the thread.

Hours are computed as soon as they start and recomputed on every run until they are
final, ``final_after`` (1 h) after they end: by then late spans, GPU samples and pod ends
have arrived. A final hour is never computed again, so neither a price change nor a
restart rewrites it. On first start the rollup goes back ``backfill`` (30 d) at most,
to the oldest node or pod the inventory knows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import duckdb

from cost import allocation, pricing
from cost.allocation import HOUR_NS, Rolled

log = logging.getLogger(__name__)

DAY_NS = 24 * HOUR_NS
CHUNK_NS = DAY_NS  # one transaction per simulated day of backfill: ingest goes on between


@dataclass(frozen=True)
class RollupConfig:
    interval_s: float = 60.0
    backfill_ns: int = 30 * DAY_NS
    final_after_ns: int = HOUR_NS


def floor_hour(ns: int) -> int:
    return ns // HOUR_NS * HOUR_NS


_EARLIEST = """
SELECT least(
    (SELECT min(epoch_ns(created)) FROM k8s_nodes),
    (SELECT min(epoch_ns(start_time)) FROM k8s_pods),
    (SELECT min(epoch_ns(start_time)) FROM spans))
"""


def pending(
    cursor: duckdb.DuckDBPyConnection, now_ns: int, config: RollupConfig
) -> tuple[int, int] | None:
    """The hours [start, end) the next run computes, or None when there is nothing."""
    final = cursor.execute(
        "SELECT epoch_ns(final_through) FROM cost_rollup_state WHERE id = 1"
    ).fetchone()
    end = floor_hour(now_ns) + HOUR_NS
    if final and final[0] is not None:
        start = final[0]
    else:
        earliest = cursor.execute(_EARLIEST).fetchone()
        if not earliest or earliest[0] is None:
            return None
        start = max(floor_hour(earliest[0]), floor_hour(now_ns - config.backfill_ns))
    return (start, end) if start < end else None


def step(
    conn: duckdb.DuckDBPyConnection, start_ns: int, end_ns: int, now_ns: int, final_ns: int
) -> Rolled:
    """Compute [start_ns, end_ns) and mark what is final; in the writer's transaction."""
    rolled = allocation.rollup_hours(conn, pricing.versions(conn), start_ns, end_ns, now_ns)
    through = min(end_ns, final_ns)
    if through > start_ns:
        conn.execute(
            "UPDATE cost_rollup_state SET final_through = make_timestamp_ns($t) "
            "WHERE id = 1 AND (final_through IS NULL OR final_through < make_timestamp_ns($t))",
            {"t": through},
        )
    return rolled


Apply = Callable[[Callable[[duckdb.DuckDBPyConnection], Any], int], Future]


class Roller:
    """Runs the rollup every ``interval_s`` through the writer, and on request."""

    def __init__(
        self,
        config: RollupConfig,
        cursor: Callable[[], duckdb.DuckDBPyConnection],
        apply: Apply,
        ready: Callable[[], bool] = lambda: True,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self._cursor = cursor
        self._apply = apply
        self._clock = clock
        self._ready = ready
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="onepane-cost", daemon=True)
        self.last_run: dict[str, Any] = {}
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def run_once(self) -> dict[str, Any]:
        """Compute every pending hour now; what was done."""
        with self._lock:
            now = self._clock()
            cursor = self._cursor()
            try:
                span = pending(cursor, now, self.config)
            finally:
                cursor.close()
            started = time.perf_counter()
            pods = nodes = 0
            if span is not None:
                final = floor_hour(now - self.config.final_after_ns)
                for chunk in range(span[0], span[1], CHUNK_NS):
                    chunk_end = min(chunk + CHUNK_NS, span[1])
                    rolled = self._apply(
                        lambda conn, s=chunk, e=chunk_end: step(conn, s, e, now, final), 1
                    ).result(600)
                    pods, nodes = pods + rolled.pod_hours, nodes + rolled.node_hours
            self.last_run = {
                "at_ns": now,
                "start_ns": span[0] if span else None,
                "end_ns": span[1] if span else None,
                "pod_hours": pods,
                "node_hours": nodes,
                "seconds": round(time.perf_counter() - started, 3),
            }
            self.last_error = None
            return self.last_run

    def _loop(self) -> None:
        """Roll up every interval; early on, every few seconds until there is something
        to roll up (and never before the inventory has listed: hours computed without
        their pods would become final with nothing allocated)."""
        while not self._stop.is_set():
            wait = self.config.interval_s
            try:
                if not self._ready():
                    wait = min(wait, 2.0)
                elif self.run_once()["start_ns"] is None:
                    wait = min(wait, 5.0)
            except Exception as exc:  # keep rolling up; the next run may succeed
                if str(exc) != self.last_error:
                    log.warning("cost rollup failed: %s", exc)
                self.last_error = str(exc)
            self._stop.wait(wait)
