"""Applying retention on a schedule: soon after the server starts, then every interval.

Each run plans its deletions on a read cursor and hands them to the single writer one
bounded step at a time (store/retention.py), waiting for each to commit before the next,
so OTLP exports queued meanwhile are committed between steps. A full write queue makes
retention wait, never ingest. After deleting, drift reports of deleted runs are removed
and the store is checkpointed so DuckDB can reuse the freed blocks.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import duckdb

from onepane.errors import Overloaded, Unavailable
from store import db, retention
from store.retention import RetentionConfig

FIRST_RUN_S = 30.0  # the first run waits this long (or one interval, if shorter)
CHECKPOINT_TRIES = 40
_Apply = Callable[[Callable[[duckdb.DuckDBPyConnection], Any], int], Future]


class _Stopped(Exception):
    """The server is stopping: the run ends between two steps."""


class Retainer:
    """Deletes what is past its horizon, in the background, through the writer."""

    def __init__(
        self,
        config: RetentionConfig,
        cursor: Callable[[], duckdb.DuckDBPyConnection],
        apply: _Apply,
        forget_resources: Callable[[Iterable[int]], None],
        checkpoint: Callable[[], bool],
        reports: Path,
        on_deleted: Callable[[str, int], None] = lambda table, rows: None,
        on_run: Callable[[float], None] = lambda unix_s: None,
    ) -> None:
        self.config = config
        self._cursor = cursor
        self._apply = apply
        self._forget = forget_resources
        self._checkpoint = checkpoint
        self._reports = reports
        self._on_deleted = on_deleted
        self._on_run = on_run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="onepane-retention", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        if self.config.enabled:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)

    def _loop(self) -> None:
        wait = min(FIRST_RUN_S, self.config.interval_s)
        while not self._stop.wait(wait):
            try:
                self.run_once()
            except _Stopped:
                return
            except Exception as exc:  # e.g. a full disk: the next run retries
                if str(exc) != self.last_error:
                    print(f"onepane: retention failed: {exc}", file=sys.stderr, flush=True)
                self.last_error = str(exc)
            wait = self.config.interval_s

    def run_once(self, now_ns: int | None = None) -> dict[str, int]:
        """Delete everything past its horizon now; rows deleted per table."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        started = time.monotonic()
        deleted: dict[str, int] = {}
        reports: set[int] = set()
        for group in retention.GROUPS:
            cutoff = self.config.cutoff_ns(group, now_ns)
            if cutoff is None:
                continue
            if group == "drift":
                reports = self._read(lambda c, cut=cutoff: retention.drift_run_ids_before(c, cut))
            steps = self._read(
                lambda c, g=group, cut=cutoff: retention.plan(c, g, cut, self.config.chunk_rows)
            )
            for step in steps:
                self._add(deleted, self._write(lambda conn, s=step: retention.delete_step(conn, s)))
        if any(deleted.get(table) for table in retention.RESOURCE_TABLES):
            self._add(
                deleted,
                self._write(lambda conn: retention.delete_unused_resources(conn, self._forget)),
            )
        self._remove_reports(reports, self.config.cutoff_ns("drift", now_ns))
        if deleted:
            self._checkpoint_soon()
            rows = ", ".join(f"{rows:,} {table}" for table, rows in deleted.items())
            seconds = time.monotonic() - started
            print(
                f"onepane: retention deleted {rows} in {seconds:.1f} s", file=sys.stderr, flush=True
            )
        self.last_error = None
        self._on_run(time.time())
        return deleted

    def _read(self, query: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        return db.read_with(self._cursor, query)

    def _write(self, write: Callable[[duckdb.DuckDBPyConnection], dict[str, int]]) -> dict:
        """One step on the writer; waits (never refuses ingest) while the queue is full."""
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                return self._apply(write, 1).result()
            except Overloaded as exc:
                self._stop.wait(exc.retry_after)
            except Unavailable as exc:  # shutting down
                raise _Stopped from exc

    def _add(self, total: dict[str, int], step: dict[str, int]) -> None:
        for table, rows in step.items():
            if rows:
                total[table] = total.get(table, 0) + rows
                self._on_deleted(table, rows)

    def _remove_reports(self, run_ids: set[int], cutoff_ns: int | None) -> None:
        """HTML reports of deleted drift runs, and any report file older than the horizon."""
        if cutoff_ns is None or not self._reports.is_dir():
            return
        for report in self._reports.glob("*.html"):
            try:
                old = report.stat().st_mtime_ns < cutoff_ns
                if old or (report.stem.isdigit() and int(report.stem) in run_ids):
                    report.unlink()
            except FileNotFoundError:
                continue

    def _checkpoint_soon(self) -> None:
        """Checkpoint so the deleted rows' blocks can be reused; a checkpoint fails while a
        commit is in flight, so try for a few seconds."""
        for _ in range(CHECKPOINT_TRIES):
            if self._checkpoint() or self._stop.wait(0.25):
                return
