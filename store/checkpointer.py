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

import shutil
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
        self._warned: str | None = None  # a failure is logged once, not every poll
        self._dead = False  # DuckDB invalidated the database: only a restart helps

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
        """Try one checkpoint now; False if a running transaction got in the way, or there
        is too little free disk space for one (see ``room``)."""
        if self._dead or not self._room():
            return False
        started = time.perf_counter()
        try:
            self._cursor.execute("CHECKPOINT")
        except duckdb.TransactionException:
            return False  # a commit was in flight; the next poll retries
        except duckdb.Error as exc:
            self._dead = isinstance(exc, duckdb.FatalException)  # DuckDB needs a restart
            self._warn(f"checkpoint failed: {exc}")
            return False
        self._warned = None
        self.checkpoints += 1
        if self._on_checkpoint:
            self._on_checkpoint(time.perf_counter() - started)
        return True

    def _room(self) -> bool:
        """Whether the disk has room for a checkpoint: twice the WAL, plus 1 MiB.

        A checkpoint that runs out of disk space is fatal to DuckDB (every later write
        fails until a restart), while a commit that cannot grow the WAL fails alone and
        the next one works once there is space. So with the disk nearly full the WAL
        keeps the data instead, until there is room again.
        """
        try:
            free = shutil.disk_usage(self._wal.parent).free
        except OSError:
            return True
        wal = self.wal_bytes()
        if free >= 2 * wal + (1 << 20):
            return True
        self._warn(
            f"checkpoint put off: {free >> 20} MiB free beside the store, the WAL holds "
            f"{wal >> 20} MiB; it is checkpointed once there is more space"
        )
        return False

    def _warn(self, message: str) -> None:
        """Log a failure once, not at every poll."""
        if message.split(":")[0] != (self._warned or "").split(":")[0]:
            print(f"onepane: warning: {message}", file=sys.stderr, flush=True)
        self._warned = message
