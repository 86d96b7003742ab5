"""Trace-by-id benchmark: GET /api/v1/traces/{id} with 10M spans stored.

Loads the spans straight into a store file (bypassing HTTP, as the issue allows), then
starts a live `onepane serve` on it and times trace lookups through the API, and the
same query in-process. Prints medians and p99s.

    python bench/lookup.py [--spans 10000000] [--spans-per-trace 10] [--lookups 200]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import live_server, median, percentile

from store import db, summary
from store.traces import get_trace

CHUNK = 1_000_000
BASE_NS = 1_763_900_000_000_000_000

# Spans shaped like instrumented services' spans: ~15 attributes, a role, a workload.
_LOAD = """
INSERT INTO spans BY NAME
WITH ids AS (
    SELECT i,
           i // $per_trace AS t,
           i % $per_trace AS k,
           md5('trace' || (i // $per_trace)::VARCHAR) AS trace_id
    FROM range($lo, $hi) r(i)
)
SELECT (CASE WHEN ('0x' || left(trace_id, 16))::UBIGINT >= 9223372036854775808
             THEN ('0x' || left(trace_id, 16))::UBIGINT::HUGEINT - 18446744073709551616
             ELSE ('0x' || left(trace_id, 16))::UBIGINT::HUGEINT END)::BIGINT AS trace_key,
       trace_id,
       left(md5('span' || i::VARCHAR), 16) AS span_id,
       CASE WHEN k = 0 THEN NULL ELSE left(md5('span' || (i - k)::VARCHAR), 16) END
           AS parent_span_id,
       ['GET /checkout', 'POST /api/checkout', 'predict fraud-model',
        'SELECT orders'][k % 4 + 1] AS name,
       CASE WHEN k < 2 THEN 2 ELSE 3 END AS kind,
       make_timestamp_ns($base + t * 1000000 + k * 1000) AS start_time,
       make_timestamp_ns($base + t * 1000000 + k * 1000 + 5000000 - k * 1000) AS end_time,
       5000000 - k * 1000 AS duration_ns,
       CASE WHEN t % 97 = 0 AND k = 3 THEN 2 ELSE 0 END AS status_code,
       ['web-frontend', 'checkout-api', 'fraud-model', 'checkout-api'][k % 4 + 1]
           AS service_name,
       '2.14.1' AS service_version,
       'prod' AS environment,
       ['shop/web-frontend', 'shop/checkout-api', 'ml/fraud-model',
        'shop/checkout-api'][k % 4 + 1] AS workload,
       CASE WHEN k = 0 THEN 'request' ELSE ['api', 'inference', 'db'][k % 3 + 1] END AS role,
       '/api/checkout' AS http_route,
       'POST' AS http_method,
       200 AS http_status_code,
       1 AS resource_id,
       '{"http.request.method":"POST","http.route":"/api/checkout","url.path":"/api/checkout",'
       || '"http.response.status_code":200,"server.address":"checkout-api","server.port":8080,'
       || '"user_agent.original":"Mozilla/5.0","client.address":"10.42.7.19","app.tenant":"acme",'
       || '"app.order.id":' || t::VARCHAR || ',"app.region":"eu-west-1","app.retry":0}'
           AS attributes,
       t // 1000 AS batch_no
FROM ids
"""


def load(path: Path, spans: int, per_trace: int) -> float:
    """Write ``spans`` spans into a fresh store file; returns seconds taken."""
    started = time.perf_counter()
    conn = db.connect(path, memory_limit="2GB")
    conn.execute(
        'INSERT INTO resources VALUES (1, \'{"service.name":"checkout-api"}\') '
        "ON CONFLICT DO NOTHING"
    )
    for lo in range(0, spans, CHUNK):
        conn.execute(
            _LOAD, {"lo": lo, "hi": min(spans, lo + CHUNK), "per_trace": per_trace, "base": BASE_NS}
        )
        print(f"  loaded {min(spans, lo + CHUNK):,} spans", flush=True)
    summary.fold(conn, summary.last_batch(conn))  # what the writer would have done
    conn.execute("CHECKPOINT")
    conn.close()
    return time.perf_counter() - started


def trace_ids(spans: int, per_trace: int, n: int) -> list[str]:
    import hashlib

    rng = random.Random(7)
    traces = spans // per_trace
    return [hashlib.md5(f"trace{rng.randrange(traces)}".encode()).hexdigest() for _ in range(n)]


def time_api(api_url: str, ids: list[str], expect: int) -> list[float]:
    times = []
    for trace_id in ids:
        started = time.perf_counter()
        with urllib.request.urlopen(f"{api_url}/api/v1/traces/{trace_id}") as response:
            body = response.read()
        times.append(time.perf_counter() - started)
        assert response.status == 200 and body.count(b'"span_id"') == expect, trace_id
    return times


def time_in_process(path: Path, ids: list[str], expect: int) -> list[float]:
    import duckdb

    conn = duckdb.connect(str(path), read_only=True, config={"memory_limit": db.MEMORY_LIMIT})
    times = []
    for trace_id in ids:
        started = time.perf_counter()
        trace = get_trace(conn, trace_id)
        times.append(time.perf_counter() - started)
        assert trace["span_count"] == expect
    conn.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--spans-per-trace", type=int, default=10)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument(
        "--db",
        type=Path,
        default=Path("bench/out/lookup.duckdb"),
        help="store file; reused if it already holds --spans spans",
    )
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    if not _has(args.db, args.spans):
        args.db.unlink(missing_ok=True)
        Path(f"{args.db}.wal").unlink(missing_ok=True)
        print(f"loading {args.spans:,} spans into {args.db} ...")
        print(f"loaded in {load(args.db, args.spans, args.spans_per_trace):.0f} s")
    ids = trace_ids(args.spans, args.spans_per_trace, args.lookups)
    in_process = time_in_process(args.db, ids, args.spans_per_trace)
    server = live_server(args.db)
    try:
        time_api(server.api_url, ids[:10], args.spans_per_trace)  # warm the cache
        api = time_api(server.api_url, ids, args.spans_per_trace)
    finally:
        server.stop()
    print(
        f"spans stored: {args.spans:,} ({args.spans // args.spans_per_trace:,} traces, "
        f"{args.db.stat().st_size / 2**20:.0f} MiB file)"
    )
    print(
        f"trace by id over HTTP (GET /api/v1/traces/{{id}}, {args.lookups} lookups): "
        f"median {median(api) * 1e3:.1f} ms, p99 {percentile(api, 0.99) * 1e3:.1f} ms"
    )
    print(
        f"trace by id in-process (store.traces.get_trace): "
        f"median {median(in_process) * 1e3:.1f} ms, p99 {percentile(in_process, 0.99) * 1e3:.1f} ms"
    )


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
