"""Starting a live `onepane serve` for a benchmark, and measuring its memory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_READY = re.compile(r"OTLP/HTTP on (http://\S+)/v1/traces, API on (http://\S+),")


class LiveServer:
    """`onepane serve` in a subprocess on free loopback ports, with a fresh store."""

    def __init__(self, *extra: str, db: Path | None = None) -> None:
        extra = (*extra, *os.environ.get("ONEPANE_BENCH_SERVER_ARGS", "").split())
        self.dir = tempfile.TemporaryDirectory(prefix="onepane-bench-")
        self.db = db or Path(self.dir.name) / "bench.duckdb"
        cmd = [
            sys.executable,
            "-m",
            "onepane",
            "serve",
            "--db",
            str(self.db),
            "--otlp-http-port",
            "0",
            "--api-port",
            "0",
            *extra,
        ]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        match = _READY.search(line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line}{self.proc.stderr.read()}")
        self.otlp_url, self.api_url = match.group(1), match.group(2)
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> None:
        self.stop_keep()
        self.dir.cleanup()

    def stop_keep(self) -> None:
        """Stop the server, keeping its store file."""
        self.proc.terminate()
        self.proc.wait(60)


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (the decoder workers)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


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
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


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
