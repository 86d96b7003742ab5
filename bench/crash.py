"""Crash benchmark: kill -9 under load, again and again, on the same store; nothing lost.

Each round starts `onepane serve` on the same DuckDB file (the restart time is from the
process start until it listens), lets OTLP/HTTP and OTLP/gRPC clients export 512-span
requests back to back, SIGKILLs the server at a random moment while their requests are
in flight, and then opens the store itself: every span of every export answered 200 / OK
in any round so far must be there exactly once, and the schema must be current. After the
last round the server starts once more and stops cleanly; the store must then pass a
CHECKPOINT and hold one trace summary per trace with the span count of its spans.

    python bench/crash.py [--rounds 10] [--http-clients 3] [--grpc-clients 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb
from common import live_server, median, now
from overload import SPANS, Endpoint, stored_by_key
from workload import StampedExports

from onepane.testing import otlp_sender, wait_for

MIGRATIONS = len(list((Path(__file__).resolve().parents[1] / "store/migrations").glob("*.sql")))


def until_killed(endpoint: Endpoint, transport: str, first_key: int, stop, out) -> None:
    """Export distinct requests back to back until the server goes away (or ``stop``)."""
    exports = StampedExports(SPANS)
    send = otlp_sender(transport, endpoint.otlp_url, endpoint.grpc_address)
    acked, codes, key = [], Counter(), first_key
    while not stop.is_set():
        answer = send(exports.stamp(key))
        codes[answer.code] += 1
        if answer.ok and answer.rejected == 0:
            acked.append(key)
        elif answer.code == "connection":
            break
        elif answer.refused:
            time.sleep((answer.retry_after or 1.0) / 10)
        key += 1
    out.put((acked, codes))


def one_round(db: Path, number: int, args: argparse.Namespace, rng: random.Random) -> dict:
    """Start, load, kill -9; what the clients had acknowledged and how long the start took."""
    started = now()
    server = live_server(db)
    restart_s = now() - started
    endpoint = Endpoint(server.otlp_url, server.grpc_address)
    spawn = multiprocessing.get_context("spawn")
    stop, out = spawn.Event(), spawn.Queue()
    transports = ["http"] * args.http_clients + ["grpc"] * args.grpc_clients
    clients = [
        spawn.Process(
            target=until_killed,
            args=(endpoint, transport, (number << 40) | (n << 32) | 1, stop, out),
        )
        for n, transport in enumerate(transports)
    ]
    for client in clients:
        client.start()
    wait_for(
        "a first acknowledged export",
        lambda: server.metric("onepane_spans_accepted_total"),
        bool,
        seconds=120,
    )
    wait_s = rng.uniform(args.min_s, args.max_s)
    time.sleep(wait_s)
    queued = server.metric("onepane_write_queue_rows")
    server.kill()
    stop.set()
    results = [out.get(timeout=120) for _ in clients]
    for client in clients:
        client.join(30)
    codes = sum((r[1] for r in results), Counter())
    return {
        "acked": [key for r in results for key in r[0]],
        "codes": codes,
        "restart_s": restart_s,
        "killed_after_s": wait_s,
        "queued_at_kill": queued,
    }


def check_store(db: Path, acked: list[int]) -> tuple[int, int, int]:
    """(acknowledged spans present, lost, stored more than once); the schema must be current."""
    stored = stored_by_key(db)
    counts = [stored.get(StampedExports.key_hex(key), 0) for key in acked]
    with duckdb.connect(str(db), read_only=True) as conn:
        version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT span_id) FROM spans"
        ).fetchone()
    assert version == MIGRATIONS, f"schema version {version}, expected {MIGRATIONS}"
    present = sum(min(count, SPANS) for count in counts)
    return present, len(acked) * SPANS - present, rows - distinct


def final_check(db: Path, acked_spans: int) -> None:
    """Start once more, stop cleanly, then CHECKPOINT and compare summaries with spans."""
    started = now()
    server = live_server(db)
    restart_s = now() - started
    status, health = server.get_json("/healthz")
    stop_started = now()
    code = server.stop()
    stop_s = now() - stop_started
    with duckdb.connect(str(db)) as conn:
        conn.execute("CHECKPOINT")
        mismatched = conn.execute(
            """
            SELECT count(*) FROM traces t
            FULL JOIN (SELECT trace_id, count(*) AS n FROM spans GROUP BY trace_id) s
              USING (trace_id)
            WHERE t.span_count IS DISTINCT FROM s.n
            """
        ).fetchone()[0]
        spans, traces = conn.execute(
            "SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM traces)"
        ).fetchone()
    print(
        f"final start: {restart_s:.1f} s, /healthz {status} {health.get('status')}; clean stop "
        f"{stop_s:.1f} s, exit code {code}; CHECKPOINT ok; {spans:,} spans in {traces:,} traces; "
        f"trace summaries disagreeing with their spans: {mismatched}; spans stored without "
        f"an acknowledgement (committed, then killed before answering): {spans - acked_spans:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--http-clients", type=int, default=3)
    parser.add_argument("--grpc-clients", type=int, default=1)
    parser.add_argument("--min-s", type=float, default=1.0, help="earliest kill after the 1st ack")
    parser.add_argument("--max-s", type=float, default=5.0, help="latest kill after the 1st ack")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="onepane-bench-crash-"))
    db = folder / "crash.duckdb"
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print(
        f"crash: {args.rounds} rounds of kill -9 on {db}, {args.http_clients} HTTP + "
        f"{args.grpc_clients} gRPC clients exporting {SPANS}-span requests back to back"
    )
    acked: list[int] = []
    restarts, lost_total = [], 0
    try:
        for number in range(1, args.rounds + 1):
            result = one_round(db, number, args, rng)
            acked += result["acked"]
            restarts.append(result["restart_s"])
            present, lost, doubled = check_store(db, acked)
            lost_total = lost  # over every round so far
            print(
                f"round {number:>2}: start {result['restart_s']:.1f} s, killed after "
                f"{result['killed_after_s']:.1f} s of load, "
                f"{result['queued_at_kill']:,.0f} rows queued; answers {dict(result['codes'])}; "
                f"acknowledged so far "
                f"{len(acked) * SPANS:,} spans, present {present:,}, lost {lost}, "
                f"stored twice {doubled}"
            )
        final_check(db, len(acked) * SPANS)
        print(
            f"summary: {args.rounds} kills, {len(acked) * SPANS:,} acknowledged spans, lost "
            f"{lost_total}; restart median {median(restarts):.1f} s, max {max(restarts):.1f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
