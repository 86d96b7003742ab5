"""Starting a live `onepane serve` for a benchmark, and measuring its memory."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from onepane.testing import LiveServer


def live_server(db: Path | None = None, *extra: str) -> LiveServer:
    """`onepane serve` on free loopback ports; a fresh store in a temporary folder unless
    ``db`` is given. Extra flags from $ONEPANE_BENCH_SERVER_ARGS are passed on."""
    extra = (*extra, *os.environ.get("ONEPANE_BENCH_SERVER_ARGS", "").split())
    if db is None:
        folder = tempfile.mkdtemp(prefix="onepane-bench-")
        db = Path(folder) / "bench.duckdb"
    return LiveServer(db, *extra)


def remove_store(server: LiveServer) -> None:
    """Delete a benchmark's temporary store folder."""
    shutil.rmtree(server.db.parent, ignore_errors=True)


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (the decoder workers)."""
    return sum(_rss(p) for p in [pid, *_children(pid)])


def process_rss_bytes(pid: int) -> int:
    """Resident memory of one process, without its children."""
    return _rss(pid)


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in found]


class PeakRss:
    """Samples a process tree's RSS in the background; ``peak`` and ``peak_main`` in bytes."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        self.pid, self.every = pid, every_s
        self.peak = self.peak_main = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            self.peak_main = max(self.peak_main, _rss(self.pid))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return int(line.split()[1]) * 1024 if line else 0


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_count() -> int:
    return os.cpu_count() or 1


def now() -> float:
    return time.perf_counter()
