"""The single writer: one thread owns every write to DuckDB.

Receivers ``submit`` Arrow tables and wait on the returned future; the writer drains
everything queued (group commit), appends it in one transaction, merges the trace
summaries, commits, and only then resolves the futures. The queue is bounded in spans:
when it is full ``submit`` raises ``Overloaded`` at once so the receiver can answer 429.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from onepane.errors import Overloaded, StoreError, Unavailable

_INSERT_RESOURCES = """
INSERT INTO resources
SELECT resource_id, any_value(attributes) FROM write_resources GROUP BY resource_id
ON CONFLICT (resource_id) DO NOTHING
"""

_MERGE_TRACES = """
INSERT INTO traces
SELECT trace_id,
       min(start_time),
       max(end_time),
       epoch_ns(max(end_time)) - epoch_ns(min(start_time)),
       arg_min(span_id, start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL),
       arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL),
       count(*),
       count(*) FILTER (WHERE status_code = 2),
       array_to_string(list_sort(list_distinct(list(role))), ','),
       array_to_string(list_sort(list_distinct(list(service_name))), ',')
FROM write_batch
GROUP BY trace_id
ON CONFLICT (trace_id) DO UPDATE SET
    start_time   = least(start_time, excluded.start_time),
    end_time     = greatest(end_time, excluded.end_time),
    duration_ns  = epoch_ns(greatest(end_time, excluded.end_time))
                   - epoch_ns(least(start_time, excluded.start_time)),
    root_span_id = coalesce(root_span_id, excluded.root_span_id),
    root_service = coalesce(root_service, excluded.root_service),
    root_name    = coalesce(root_name, excluded.root_name),
    span_count   = span_count + excluded.span_count,
    error_count  = error_count + excluded.error_count,
    roles        = merge_names(roles, excluded.roles),
    services     = merge_names(services, excluded.services)
"""


@dataclass(frozen=True)
class CommitStats:
    """What one group commit did, for metrics."""

    spans: int
    requests: int
    seconds: float


class SpanWriter:
    """The one thread that appends spans to the store."""

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        max_queue_spans: int = 200_000,
        max_commit_spans: int = 100_000,
        on_commit: Callable[[CommitStats], None] | None = None,
    ) -> None:
        self._conn = conn
        self._max_queue = max_queue_spans
        self._max_commit = max_commit_spans
        self._on_commit = on_commit
        self._queue: deque[tuple[pa.Table, pa.Table, Future[int]]] = deque()
        self._queued_spans = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="onepane-writer", daemon=True)
        self.last_commit_seconds = 0.05

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    def start(self) -> None:
        self._thread.start()

    def submit(self, table: pa.Table, resources: pa.Table) -> Future[int]:
        """Queue spans (and the resources they point at) for the next commit.

        The future resolves to the span count once they are durable.
        """
        future: Future[int] = Future()
        rows = table.num_rows
        with self._cond:
            if self._closing:
                raise Unavailable("the server is shutting down; retry against the new process")
            if self._queue and self._queued_spans + rows > self._max_queue:
                raise Overloaded(
                    f"write queue is full ({self._queued_spans} spans waiting); retry later",
                    retry_after=self.retry_after(),
                )
            self._queue.append((table, resources, future))
            self._queued_spans += rows
            self._cond.notify()
        return future

    def retry_after(self) -> int:
        """Seconds a refused client should wait: time to drain the queue, at least 1."""
        commits = max(1.0, self._queued_spans / self._max_commit)
        return max(1, round(commits * self.last_commit_seconds + 0.5))

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking writes, commit what is queued, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _take(self) -> list[tuple[pa.Table, pa.Table, Future[int]]] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            group, rows = [], 0
            while self._queue and (
                not group or rows + self._queue[0][0].num_rows <= self._max_commit
            ):
                item = self._queue.popleft()
                group.append(item)
                rows += item[0].num_rows
            self._queued_spans -= rows
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            started = time.perf_counter()
            try:
                self._commit(
                    pa.concat_tables([spans for spans, _, _ in group]),
                    pa.concat_tables([resources for _, resources, _ in group]),
                )
            except duckdb.Error as exc:
                error = StoreError(f"could not write spans to the store: {exc}")
                for _, _, future in group:
                    future.set_exception(error)
                continue
            elapsed = time.perf_counter() - started
            self.last_commit_seconds = elapsed
            for spans, _, future in group:
                future.set_result(spans.num_rows)
            if self._on_commit:
                spans = sum(item[0].num_rows for item in group)
                self._on_commit(CommitStats(spans, len(group), elapsed))

    def _commit(self, batch: pa.Table, resources: pa.Table) -> None:
        conn = self._conn
        conn.register("write_batch", batch)
        conn.register("write_resources", resources)
        try:
            conn.execute("BEGIN")
            try:
                conn.execute(_INSERT_RESOURCES)
                conn.execute("INSERT INTO spans BY NAME SELECT * FROM write_batch")
                conn.execute(_MERGE_TRACES)
                conn.execute("COMMIT")
            except duckdb.Error:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.unregister("write_batch")
            conn.unregister("write_resources")
