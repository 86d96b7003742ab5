"""Checkpoints off the commit path.

DuckDB checkpoints automatically inside whichever commit pushes the WAL past
``checkpoint_threshold``; that commit, and every export waiting on it, then stalls for
the whole checkpoint (about a second per 64 MB). Instead a background thread with its
own cursor checkpoints when the WAL passes ``threshold_bytes``, while the writer keeps
committing. A plain CHECKPOINT fails if a transaction is running at that instant; it is
simply retried a moment later. DuckDB's own automatic checkpoint stays as a safety net
at a much larger WAL size (see store.db).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb


class Checkpointer:
    """Checkpoints the store whenever its WAL grows past ``threshold_bytes``."""

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        wal: Path,
        threshold_bytes: int = 64 * 1024 * 1024,
        every_s: float = 0.25,
        on_checkpoint: Callable[[float], None] | None = None,
    ) -> None:
        self._cursor = conn.cursor()
        self._wal = wal
        self._threshold = threshold_bytes
        self._every = every_s
        self._on_checkpoint = on_checkpoint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="onepane-checkpoint", daemon=True)
        self.checkpoints = 0

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)
        self._cursor.close()

    def wal_bytes(self) -> int:
        try:
            return self._wal.stat().st_size
        except FileNotFoundError:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            if self.wal_bytes() >= self._threshold:
                self.checkpoint()

    def checkpoint(self) -> bool:
        """Try one checkpoint now; False if a running transaction got in the way."""
        started = time.perf_counter()
        try:
            self._cursor.execute("CHECKPOINT")
        except duckdb.TransactionException:
            return False  # a commit was in flight; the next poll retries
        except duckdb.Error as exc:
            print(f"onepane: warning: checkpoint failed: {exc}", file=sys.stderr, flush=True)
            return False
        self.checkpoints += 1
        if self._on_checkpoint:
            self._on_checkpoint(time.perf_counter() - started)
        return True
