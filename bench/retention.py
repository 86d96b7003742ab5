"""Retention: purge millions of old spans from a live server while OTLP keeps arriving.

A store of ``--spans`` spans from a week in November 2025 (bench/lookup_data.py; built
once into bench/out/ and copied for each run) is served with ``retention: {spans: 15d}``,
so every one of them is past its horizon. An OTLP/HTTP client exports ``--rate`` requests
of 100 fresh spans a second throughout. Retention's first run starts 30 s after the server;
the exports before it are the baseline. Latency counts from when an export was due, so a
stalled writer shows in full.

Prints, as the median of ``--runs`` runs: purge time, spans deleted per second, OTLP p50/p99
latency before and during the purge (and their ratio), non-200 answers, and the store size
on disk (db + WAL) before and after.

    .venv/bin/python -m bench.retention                 # 2M spans, 3 runs
    .venv/bin/python -m bench.retention --spans 10000000 --runs 1
"""

from __future__ import annotations

import argparse
import queue
import re
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from bench import lookup_data
from bench.workload import StampedExports
from onepane.testing import LiveServer, otlp_sender

OUT = Path(__file__).parent / "out"
CONFIG = "retention:\n  spans: 15d\n  interval: 1h\n  chunk_rows: {chunk}\n"
_DONE = re.compile(r"retention deleted ([\d,]+) spans.* in ([\d.]+) s")


def template(spans: int) -> Path:
    """The store to purge, built once."""
    path = OUT / f"retention-{spans}.duckdb"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        print(f"building {path} ({spans:,} spans) ...", flush=True)
        building = path.with_suffix(".building")
        building.unlink(missing_ok=True)
        lookup_data.load(building, spans)
        building.rename(path)
    return path


class Client:
    """Open-loop OTLP/HTTP exports: one is due every 1/rate s, whichever of ``workers``
    connections is free sends it; (due time, latency from due in s, code) per export."""

    def __init__(self, server: LiveServer, rate: float, workers: int = 8) -> None:
        self._server = server
        self._exports = StampedExports(spans_per_export=100)
        self._every = 1.0 / rate
        self._due: queue.Queue[tuple[float, int] | None] = queue.Queue()
        self._stop = threading.Event()
        self.results: list[tuple[float, float, str]] = []
        self._threads = [threading.Thread(target=self._schedule, daemon=True)]
        self._threads += [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def _schedule(self) -> None:
        due, key = time.time(), 0
        while not self._stop.is_set():
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            key += 1
            self._due.put((due, key))
            due += self._every
        for _ in self._threads[1:]:
            self._due.put(None)

    def _work(self) -> None:
        send = otlp_sender("http", self._server.otlp_url, self._server.grpc_address)
        while (item := self._due.get()) is not None:
            due, key = item
            answer = send(self._exports.stamp(key))
            self.results.append((due, time.time() - due, answer.code))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _space(db: Path) -> tuple[float, float]:
    """MB of the store file in use and free (blocks DuckDB reuses for new data)."""
    with duckdb.connect(str(db), read_only=True) as conn:
        size, used, free = conn.execute(
            "SELECT block_size, used_blocks, free_blocks FROM pragma_database_size()"
        ).fetchone()
    return used * size / 1e6, free * size / 1e6


def _store_bytes(server: LiveServer) -> int:
    samples = server.samples()
    return int(sum(v for (name, _), v in samples.items() if name == "onepane_store_bytes"))


def _deleted_spans(server: LiveServer) -> float:
    key = ("onepane_retention_deleted_rows_total", frozenset({("table", "spans")}))
    return server.samples().get(key, 0.0)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_once(source: Path, rate: float, chunk: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="onepane-bench-retention-"))
    try:
        db, config = folder / "bench.duckdb", folder / "onepane.yaml"
        shutil.copyfile(source, db)
        config.write_text(CONFIG.format(chunk=chunk))
        server = LiveServer(db, "--config", str(config))
        started = time.time()
        client = Client(server, rate)
        before_bytes = _store_bytes(server)
        match, first = None, None
        while match is None and time.time() - started < 900:
            time.sleep(0.25)
            if first is None and _deleted_spans(server) > 0:
                first = time.time() - 0.25  # the first step committed within the last poll
            match = _DONE.search("".join(server.output))
        last = time.time()  # logged after the purge and its checkpoint
        time.sleep(2)
        client.stop()
        after_bytes = _store_bytes(server)
        server.stop()
        used_mb, free_mb = _space(db)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if match is None or first is None:
        raise SystemExit("retention did not finish within 15 minutes")
    deleted, seconds = int(match.group(1).replace(",", "")), float(match.group(2))
    before = [lat for due, lat, _ in client.results if started + 5 <= due < first - 1]
    during = [lat for due, lat, _ in client.results if first <= due <= last]
    return {
        "deleted": deleted,
        "seconds": seconds,
        "rows_per_s": deleted / seconds,
        "p50_before_ms": _pct(before, 0.5) * 1e3,
        "p99_before_ms": _pct(before, 0.99) * 1e3,
        "p50_during_ms": _pct(during, 0.5) * 1e3,
        "p99_during_ms": _pct(during, 0.99) * 1e3,
        "max_during_ms": max(during, default=float("nan")) * 1e3,
        "exports_during": len(during),
        "not_200": sum(code != "200" for _, _, code in client.results),
        "mb_before": before_bytes / 1e6,
        "mb_after": after_bytes / 1e6,
        "mb_used_after": used_mb,
        "mb_free_after": free_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=10.0, help="exports per second")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args()
    source = template(args.spans)
    runs = []
    for number in range(args.runs):
        result = run_once(source, args.rate, args.chunk_rows)
        print(f"run {number + 1}: " + ", ".join(f"{k} {v:,.1f}" for k, v in result.items()))
        runs.append(result)
    m = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    lines = [
        f"retention purge of {m['deleted']:,.0f} spans (and their traces), chunk_rows "
        f"{args.chunk_rows:,}, {args.rate:g} exports/s of 100 spans, median of {args.runs} runs:",
        f"  purge time               {m['seconds']:.1f} s ({m['rows_per_s']:,.0f} spans/s)",
        f"  OTLP p50 before / during {m['p50_before_ms']:.1f} / {m['p50_during_ms']:.1f} ms "
        f"(x{m['p50_during_ms'] / m['p50_before_ms']:.2f})",
        f"  OTLP p99 before / during {m['p99_before_ms']:.1f} / {m['p99_during_ms']:.1f} ms "
        f"(x{m['p99_during_ms'] / m['p99_before_ms']:.2f})",
        f"  OTLP max during          {m['max_during_ms']:.1f} ms over {m['exports_during']:.0f} "
        f"exports; answers other than 200: {m['not_200']:.0f}",
        f"  store on disk (db + WAL) {m['mb_before']:.0f} MB before, {m['mb_after']:.0f} MB after; "
        f"after: {m['mb_used_after']:.0f} MB in use, {m['mb_free_after']:.0f} MB free for reuse",
    ]
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
