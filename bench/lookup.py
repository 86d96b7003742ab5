"""Trace lookup benchmark: 10M spans (1M traces over a week) behind a live `onepane serve`.

Loads the spans straight into a store file (bypassing OTLP; see bench/lookup_data.py),
starts the server on it and times through the HTTP API, as a user would call it:

* trace by id (GET /api/v1/traces/{id}), random traces across the week;
* search by service + route + min duration over the last hour, slowest first;
* search by an arbitrary span attribute over the last 24 h: a unique value
  (``app.order.id``) and a common one (``app.tenant``, 1 trace in 50);
* a 10,001-span trace through the API, and printed by ``onepane trace`` (a new process
  each time, as on a terminal).

Prints the median and p99 of each.

    python bench/lookup.py [--spans 10000000] [--runs 50]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lookup_data as data
from common import live_server, median, percentile

HOUR_S = 3600


def get(api_url: str, path: str, params: dict[str, str] | None = None) -> tuple[float, bytes]:
    url = api_url + path + (f"?{urlencode(params)}" if params else "")
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - started, body


def timed(api_url: str, path: str, params: list[dict[str, str]], check: bytes) -> list[float]:
    """Time one GET per parameter set (after one warm-up call); ``check`` must be in each."""
    get(api_url, path, params[0])
    times = []
    for p in params:
        seconds, body = get(api_url, path, p)
        assert check in body, (path, p, body[:300])
        times.append(seconds)
    return times


def report(what: str, times: list[float], target_ms: float) -> None:
    mid = median(times) * 1e3
    verdict = "met" if mid <= target_ms else "NOT met"
    print(
        f"{what}: median {mid:.1f} ms, p99 {percentile(times, 0.99) * 1e3:.1f} ms "
        f"({len(times)} runs; target ≤ {target_ms:.0f} ms: {verdict})",
        flush=True,
    )


def bench(api_url: str, spans: int, runs: int) -> None:
    traces = spans // data.SPANS_PER_TRACE
    rng = random.Random(7)
    end_s = data.END_NS // 10**9
    ids = [data.trace_id(rng.randrange(traces)) for _ in range(max(runs, 200))]
    report(
        "trace by id (GET /api/v1/traces/{id})",
        _by_id(api_url, ids),
        20,
    )
    hour = {"start": str(end_s - HOUR_S), "end": str(end_s)}
    route = {"service": "checkout-api", "route": "/api/checkout", "min_duration_ms": "300"}
    report(
        "search service + route + min_duration_ms=300, last hour, slowest first",
        timed(api_url, "/api/v1/traces", [{**route, **hour, "sort": "slowest"}] * runs, b"GET"),
        50,
    )
    day = {"start": str(end_s - 24 * HOUR_S), "end": str(end_s)}
    last_day = range(traces - traces // 7, traces)  # trace numbers of the last 24 h
    orders = [{"attr": f"app.order.id={rng.choice(last_day)}", **day} for _ in range(runs)]
    report(
        "search attr=app.order.id=<one order>, last 24 h",
        timed(api_url, "/api/v1/traces", orders, b'"span_count":10'),
        200,
    )
    tenants = [{"attr": f"app.tenant=tenant-{rng.randrange(50)}", **day} for _ in range(runs)]
    report(
        "search attr=app.tenant=<1 of 50 tenants>, last 24 h, newest 20",
        timed(api_url, "/api/v1/traces", tenants, b'"span_count":10'),
        200,
    )
    big = f"/api/v1/traces/{data.BIG_TRACE_ID}"
    report(
        f"{data.BIG_TRACE_SPANS:,}-span trace through the API",
        timed(api_url, big, [{}] * max(5, runs // 5), b'"span_count":10001'),
        500,
    )
    report(f"{data.BIG_TRACE_SPANS:,}-span trace printed by `onepane trace`", _cli(api_url), 1000)


def _by_id(api_url: str, ids: list[str]) -> list[float]:
    get(api_url, f"/api/v1/traces/{ids[0]}")
    times = []
    for trace_id in ids:
        seconds, body = get(api_url, f"/api/v1/traces/{trace_id}")
        assert body.count(b'"span_id"') >= data.SPANS_PER_TRACE, trace_id
        times.append(seconds)
    return times


def _cli(api_url: str, runs: int = 5) -> list[float]:
    command = [sys.executable, "-m", "onepane", "trace", data.BIG_TRACE_ID[:12]]
    command += ["--server", api_url, "--width", "120"]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        times.append(time.perf_counter() - started)
        assert "× 3333 SELECT orders" in out, out[:2000]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=50, help="timed calls per search (50)")
    parser.add_argument(
        "--db",
        type=Path,
        default=Path("bench/out/lookup.duckdb"),
        help="store file; reused if it already holds --spans spans (+ the big trace)",
    )
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    if not _has(args.db, args.spans + data.BIG_TRACE_SPANS):
        args.db.unlink(missing_ok=True)
        Path(f"{args.db}.wal").unlink(missing_ok=True)
        print(f"loading {args.spans:,} spans into {args.db} ...", flush=True)
        print(f"loaded in {data.load(args.db, args.spans):.0f} s", flush=True)
    print(
        f"store: {args.spans:,} spans in {args.spans // data.SPANS_PER_TRACE:,} traces over "
        f"7 days, {args.db.stat().st_size / 2**20:.0f} MiB",
        flush=True,
    )
    server = live_server(args.db)
    try:
        bench(server.api_url, args.spans, args.runs)
    finally:
        server.stop()


def _has(path: Path, spans: int) -> bool:
    if not path.exists():
        return False
    import duckdb

    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute("SELECT count(*) FROM spans").fetchone()[0] == spans
    except duckdb.Error:
        return False


if __name__ == "__main__":
    main()
