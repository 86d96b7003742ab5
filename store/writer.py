"""The single writer: one thread owns every write to DuckDB.

Receivers ``submit`` Arrow tables of spans, metric points or log records and wait on the
returned future; the writer drains everything queued (group commit), appends it in one
transaction and only then resolves the futures, so an acknowledged row is a committed
row. The queue is bounded in rows: when it is full ``submit`` raises ``Overloaded`` at
once and the receiver answers 429 / RESOURCE_EXHAUSTED.
About once a second, and before it stops, the writer folds new spans into the trace
summaries (store/summary.py).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from onepane.errors import Overloaded, StoreError, Unavailable
from store import gpu, summary
from store.db import transaction

TABLES = {"traces": "spans", "metrics": "metric_points", "logs": "logs", "features": "features"}
_INSERT_RESOURCES = """
INSERT INTO resources
SELECT resource_id, any_value(attributes) FROM write_resources GROUP BY resource_id
ON CONFLICT (resource_id) DO NOTHING
"""


@dataclass(frozen=True)
class CommitStats:
    """What one group commit did, for metrics."""

    rows: int
    requests: int
    seconds: float


@dataclass(frozen=True)
class _Item:
    signal: str
    rows: pa.Table | None  # None for an ``apply`` item
    resources: pa.Table | None
    future: Future
    size: int  # rows it counts for in the queue
    apply: Callable[[duckdb.DuckDBPyConnection], Any] | None = None
    features: pa.Table | None = None  # model inputs of inference spans and log records


class Writer:
    """The one thread that appends spans, metric points and log records to the store."""

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        max_queue_rows: int = 200_000,
        max_commit_rows: int = 100_000,
        on_commit: Callable[[CommitStats], None] | None = None,
        fold_every_s: float = 1.0,
    ) -> None:
        self._conn = conn
        self._max_queue = max_queue_rows
        self._max_commit = max_commit_rows
        self._on_commit = on_commit
        self._fold_every = fold_every_s
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="onepane-writer", daemon=True)
        self._known_resources: set[int] = set()
        self._batch_no = summary.last_batch(conn)
        self.last_commit_seconds = 0.05
        self._failing = False  # the last write failed: its error was logged once

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def start(self) -> None:
        self._thread.start()

    def submit(
        self,
        signal: str,
        table: pa.Table,
        resources: pa.Table,
        features: pa.Table | None = None,
    ) -> Future:
        """Queue rows of ``signal`` (the resources they point at, and the model inputs they
        carry) for the next commit: all of them in the same transaction.

        The future resolves to the row count once they are durable.
        """
        return self._enqueue(
            _Item(signal, table, resources, Future(), table.num_rows, features=features)
        )

    def apply(self, write: Callable[[duckdb.DuckDBPyConnection], Any], rows: int) -> Future:
        """Queue ``write(conn)`` to run on the writer thread in a transaction of its own
        (inventory upserts, GPU samples, cost rollups); ``rows`` is what it counts for in
        the queue.

        The future resolves once committed, to what ``write`` returned (``rows`` when that
        is None), or to the error that rolled it back.
        """
        return self._enqueue(_Item("apply", None, None, Future(), rows, write))

    def _enqueue(self, item: _Item) -> Future:
        rows = item.size
        with self._cond:
            if self._closing:
                raise Unavailable("the server is shutting down; retry against the new process")
            if self._queue and self._queued_rows + rows > self._max_queue:
                raise Overloaded(
                    f"write queue is full ({self._queued_rows} rows waiting); retry later",
                    retry_after=self.retry_after(),
                )
            self._queue.append(item)
            self._queued_rows += rows
            self._cond.notify()
        return item.future

    def retry_after(self) -> int:
        """Seconds a refused client should wait: time to drain the queue, at least 1."""
        # A commit takes at least one whole request, so never more commits than requests.
        commits = max(1.0, min(len(self._queue), self._queued_rows / self._max_commit))
        return max(1, round(commits * self.last_commit_seconds + 0.5))

    def forget_resources(self, resource_ids: Iterable[int]) -> None:
        """Resources deleted from the store (retention): store them again when they return.
        Call on the writer thread, e.g. from an ``apply`` write."""
        self._known_resources.difference_update(resource_ids)

    def close(self, timeout: float = 60.0) -> None:
        """Stop taking writes, commit what is queued, fold, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _take(self, wait_s: float) -> list[_Item] | None:
        """The next group to commit; [] when nothing came in time; None once closed and empty."""
        with self._cond:
            if not self._queue and not self._closing:
                self._cond.wait(wait_s)
            if not self._queue:
                return None if self._closing else []
            group, rows = [], 0
            while self._queue and (not group or rows + self._queue[0].size <= self._max_commit):
                item = self._queue.popleft()
                group.append(item)
                rows += item.size
            self._queued_rows -= rows
            return group

    def _run(self) -> None:
        self._fold()  # whatever a crash or a bulk load left unfolded
        last_fold = time.monotonic()
        while (group := self._take(self._fold_every)) is not None:
            if group:
                self._commit_group(group)
            if time.monotonic() - last_fold >= self._fold_every:
                self._fold()
                last_fold = time.monotonic()
        self._fold()

    def _fold(self) -> None:
        try:
            summary.fold(self._conn, self._batch_no)
        except (StoreError, duckdb.Error) as exc:  # spans are safe; the next fold retries
            if not self._failing:  # a full disk is logged once, by the commit that hit it
                print(f"onepane: warning: {exc}; retrying in a second", file=sys.stderr, flush=True)

    def _commit_group(self, group: list[_Item]) -> None:
        appends = [item for item in group if item.apply is None]
        if appends:
            self._commit_appends(appends)
        for item in group:
            if item.apply is not None:
                self._commit_apply(item)

    def _commit_appends(self, group: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            self._commit(group)
        except duckdb.Error as exc:
            error = self._failed(exc)
            for item in group:
                item.future.set_exception(error)
            return
        self._recovered()
        elapsed = time.perf_counter() - started
        self.last_commit_seconds = elapsed
        for item in group:
            item.future.set_result(item.size)
        if self._on_commit:
            total = sum(item.size for item in group)
            self._on_commit(CommitStats(total, len(group), elapsed))

    def _commit_apply(self, item: _Item) -> None:
        """One ``apply`` item in its own transaction: its failure touches nothing else."""
        assert item.apply is not None
        try:
            with transaction(self._conn):
                result = item.apply(self._conn)
        except duckdb.Error as exc:
            item.future.set_exception(self._failed(exc))
        except Exception as exc:  # a bug in ``write``: report it, keep the writer alive
            item.future.set_exception(exc)
        else:
            self._recovered()
            item.future.set_result(item.size if result is None else result)

    def _failed(self, exc: duckdb.Error) -> StoreError:
        """The error to answer with; logged once until a write works again (a full disk
        fails every commit: one line, not one per request)."""
        error = store_error(exc)
        if not self._failing:
            self._failing = True
            print(
                f"onepane: error: {error}. Until then exports are answered 503 / UNAVAILABLE "
                f"and nothing is acknowledged. (DuckDB said: {exc})",
                file=sys.stderr,
                flush=True,
            )
        return error

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            print("onepane: the store takes writes again", file=sys.stderr, flush=True)

    def _commit(self, group: list[_Item]) -> None:
        """Append every queued table in one transaction: one insert per signal."""
        batch_no = self._batch_no + 1
        tables = {
            signal: pa.concat_tables([item.rows for item in group if item.signal == signal])
            for signal in dict.fromkeys(item.signal for item in group)
        }
        if "traces" in tables:
            spans = tables["traces"]
            tables["traces"] = spans.append_column(
                "batch_no", pa.repeat(pa.scalar(batch_no, pa.int64()), spans.num_rows)
            )
        features = [item.features for item in group if item.features is not None]
        if features:
            tables["features"] = pa.concat_tables(features)
        new_resources = self._unknown(
            pa.concat_tables([item.resources for item in group if item.resources is not None])
        )
        conn = self._conn
        conn.register("write_resources", new_resources)
        try:
            with transaction(conn):
                if new_resources.num_rows:
                    conn.execute(_INSERT_RESOURCES)
                for signal, table in tables.items():
                    conn.register("write_batch", table)
                    conn.execute(f"INSERT INTO {TABLES[signal]} BY NAME SELECT * FROM write_batch")
                    if signal == "metrics" and _has_gpu_metrics(table):
                        gpu.insert_from_metric_points(conn)
                    conn.unregister("write_batch")
        finally:
            conn.unregister("write_resources")
        if "traces" in tables:
            self._batch_no = batch_no
        self._known_resources.update(new_resources.column("resource_id").to_pylist())

    def _unknown(self, resources: pa.Table) -> pa.Table:
        """Only the resources this writer has not stored yet."""
        known = pa.array(list(self._known_resources), pa.int64())
        return resources.filter(pc.invert(pc.is_in(resources.column("resource_id"), known)))


def store_error(exc: duckdb.Error) -> StoreError:
    """What a failed write means for a client and an operator."""
    text = str(exc)
    full = "No space left on device" in text or "Disk quota exceeded" in text
    if "invalidated" in text or isinstance(exc, duckdb.FatalException):
        cause = "the disk holding the store is full" if full else "a fatal store error"
        return StoreError(
            f"the store stopped taking writes after {cause}: nothing of this request was "
            "stored; free disk space if needed, then restart `onepane serve` "
            "(acknowledged data is safe in the store and its WAL)"
        )
    if full:
        return StoreError(
            "the disk holding the store is full: nothing of this request was stored; "
            "free disk space (or shorten retention in onepane.yaml) and retry; "
            "writes resume by themselves once there is space"
        )
    return StoreError(f"could not write to the store: {exc}")


def _has_gpu_metrics(points: pa.Table) -> bool:
    """Whether a batch of metric points holds DCGM metrics that gpu_samples keeps."""
    names = pa.array(gpu.KEPT_METRICS)
    upper = pc.utf8_upper(points.column("metric_name"))  # SDKs lower-case instrument names
    return pc.any(pc.is_in(upper, names)).as_py() or False
