"""Overload benchmark: twice the measured ingest capacity for a minute, and nothing lost.

Against a live `onepane serve` on a fresh store it first measures the ingest capacity
(bench/ingest.py's closed-loop clients, 512-span exports over OTLP/HTTP; median of
``--capacity-runs`` windows), then offers ``--factor`` times that many spans/s for
``--seconds``: open loop (each request leaves at its scheduled time, whatever the answers
before it), from several client processes sending raw OTLP protobuf over HTTP and one over
gRPC, every request with span ids of its own. Meanwhile a dashboard-like reader calls the
API routes the dashboards call, a CI job runs gate checks as `onepane gate check` sends
them, and the server's RSS is sampled every second. Afterwards the server is stopped with
SIGTERM and its DuckDB file read: every span of every acknowledged export must be there.

    python bench/overload.py [--seconds 60] [--factor 2] [--capacity SPANS_PER_S]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb
import ingest
import orjson
from common import (
    live_server,
    median,
    now,
    percentile,
    process_rss_bytes,
    remove_store,
    tree_rss_bytes,
)
from workload import StampedExports

from onepane import demo_gate
from onepane.testing import Answer, otlp_sender

SPANS = 512
CAPACITY_CLIENTS = 8
CAPACITY_KEY_BASE = 0xFF00 << 32  # keys of the capacity phase: not checked afterwards
READS = (  # what the dashboard pages ask for (dashboards/views/*)
    "/api/v1/stats?by=workload&since=1h",
    "/api/v1/stats?by=route&since=1h&workload=shop/checkout-api",
    "/api/v1/traces?since=1h&limit=10&sort=slowest&workload=shop/checkout-api",
    "/api/v1/traces?since=1h&limit=10&status=error",
    "/api/v1/workloads",
    "/api/v1/models",
    "/api/v1/allocation?window=1d&aggregate=workload&step=1h&idle=true",
    "/api/v1/unit-costs?window=1d&by=workload",
    "/api/v1/gate/decisions?limit=20",
)


@dataclass(frozen=True)
class Endpoint:
    """What a client process needs of the server (a LiveServer does not pickle)."""

    otlp_url: str
    grpc_address: str


@dataclass
class SenderLog:
    """One client process's requests: the keys acknowledged, answers by code, latencies."""

    acked: list[int] = field(default_factory=list)
    codes: Counter = field(default_factory=Counter)
    refused_without_retry: int = 0
    rejected_in_ok: int = 0  # spans refused inside a 200 / OK (partial success)
    ok_latency: list[float] = field(default_factory=list)
    refused_latency: list[float] = field(default_factory=list)
    late: int = 0  # requests sent more than 100 ms after their scheduled time
    first_sent: float = float("inf")  # time.monotonic(): the same clock in every process
    last_sent: float = 0.0


def open_loop_client(
    endpoint: Endpoint, transport: str, number: int, rate: float, seconds: float, threads: int, out
) -> None:
    """Send request i at ``start + i / rate`` for ``seconds``, from ``threads`` connections."""
    exports = StampedExports(SPANS)
    log, lock, counter = SenderLog(), threading.Lock(), itertools.count()
    start = time.monotonic() + 1.0  # the same start for every thread

    def run() -> None:
        send = otlp_sender(transport, endpoint.otlp_url, endpoint.grpc_address)
        while (i := next(counter)) < rate * seconds:
            due = start + i / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            key = (number << 32) | (i + 1)  # never 0: an all-zero span id is invalid
            body = exports.stamp(key)
            sent = time.monotonic()
            answer = send(body)
            _record(log, lock, key, answer, sent, sent - due > 0.1)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put((transport, log))


def _record(
    log: SenderLog, lock: threading.Lock, key: int, answer: Answer, sent: float, late: bool
):
    took = time.monotonic() - sent
    with lock:
        log.first_sent, log.last_sent = min(log.first_sent, sent), max(log.last_sent, sent)
        log.codes[answer.code] += 1
        log.late += late
        if answer.ok:
            log.acked.append(key)
            log.ok_latency.append(took)
            log.rejected_in_ok += answer.rejected
        elif answer.refused:
            log.refused_latency.append(took)
            log.refused_without_retry += answer.retry_after is None


def measure_capacity(endpoint: Endpoint, runs: int, seconds: float) -> float:
    """Acknowledged spans/s of closed-loop OTLP/HTTP clients: the median of ``runs``."""
    exports = StampedExports(SPANS)
    rates, key = [], itertools.count(CAPACITY_KEY_BASE)
    for n in range(runs):
        scenario = ingest.Scenario("traces", "http", [], SPANS)
        out = multiprocessing.Queue()
        deadline = time.time() + seconds
        bodies = [[exports.stamp(next(key)) for _ in range(200)] for _ in range(CAPACITY_CLIENTS)]
        procs = [
            multiprocessing.Process(
                target=ingest.client, args=(endpoint, scenario, mine, deadline, 1 << 62, out)
            )
            for mine in bodies
        ]
        started = now()
        for proc in procs:
            proc.start()
        results = [out.get() for _ in procs]
        elapsed = now() - started
        for proc in procs:
            proc.join()
        rates.append(sum(r[0] for r in results) / elapsed)
        print(f"  capacity run {n + 1}: {rates[-1]:,.0f} spans/s acknowledged")
    return median(rates)


class Probe:
    """Calls ``request()`` back to back in a thread until stopped; latencies and errors."""

    def __init__(self, name: str, request) -> None:
        self.name, self.request = name, request
        self.latencies: list[float] = []
        self.errors: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i in itertools.count():
            if self._stop.is_set():
                return
            started = now()
            try:
                self.request(i)
            except urllib.error.HTTPError as exc:
                self.errors[f"HTTP {exc.code}"] += 1
            except OSError as exc:
                self.errors[type(exc).__name__] += 1
            else:
                self.latencies.append(now() - started)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)

    def line(self) -> str:
        lat = self.latencies
        return (
            f"{self.name}: {len(lat):,} answered, p50 {percentile(lat, 0.5) * 1e3:.0f} ms, "
            f"p99 {percentile(lat, 0.99) * 1e3:.0f} ms, max {max(lat, default=0) * 1e3:.0f} ms, "
            f"errors {sum(self.errors.values())}" + (f" {dict(self.errors)}" if self.errors else "")
        )


def dashboard_reader(api_url: str) -> Probe:
    def read(i: int) -> None:
        with urllib.request.urlopen(api_url + READS[i % len(READS)], timeout=60) as response:
            response.read()

    return Probe("dashboard reads (GET, 9 routes in turn)", read)


def gate_checker(api_url: str) -> Probe:
    release = demo_gate.RELEASES[1]
    body = {
        "workload": release.workload,
        "version": release.version,
        "manifests": [{"source": "deploy/checkout-api.yaml", "text": release.manifest}],
        "actor": "ci (overload bench)",
        "dry_run": False,
    }

    def check(i: int) -> None:
        request = urllib.request.Request(
            api_url + "/api/v1/gate/check",
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    return Probe("gate checks (POST /api/v1/gate/check, recorded)", check)


class RssEverySecond:
    """The server's RSS (with its decoder processes, and alone) sampled every second."""

    def __init__(self, pid: int) -> None:
        self.pid, self.tree, self.main = pid, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.tree.append(tree_rss_bytes(self.pid))
            self.main.append(process_rss_bytes(self.pid))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def overload(endpoint: Endpoint, args: argparse.Namespace, rate_spans: float) -> list[tuple]:
    """Run the open-loop clients; their (transport, SenderLog) results."""
    procs_per = [("http", n) for n in range(args.http_procs)]
    procs_per += [("grpc", args.http_procs + n) for n in range(args.grpc_procs)]
    per_proc = rate_spans / SPANS / len(procs_per)
    # Spawned, not forked: the probes' threads may hold an import lock at the fork.
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    procs = [
        spawn.Process(
            target=open_loop_client,
            args=(endpoint, transport, number, per_proc, args.seconds, args.threads, out),
        )
        for transport, number in procs_per
    ]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    return results


def stored_by_key(db: Path) -> Counter:
    """Spans in the store per request key (the first 12 hex digits of the span id)."""
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT left(span_id, 12), count(*) FROM spans GROUP BY ALL").fetchall()
    return Counter(dict(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--factor", type=float, default=2.0, help="offered / measured capacity")
    parser.add_argument("--capacity", type=float, default=None, help="spans/s; skip measuring")
    parser.add_argument("--capacity-runs", type=int, default=3)
    parser.add_argument("--capacity-seconds", type=float, default=8.0)
    parser.add_argument("--http-procs", type=int, default=3)
    parser.add_argument("--grpc-procs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=48, help="connections per client process")
    args = parser.parse_args()

    server = live_server()
    endpoint = Endpoint(server.otlp_url, server.grpc_address)
    print(f"overload: {SPANS}-span exports, server pid {server.proc.pid}, store {server.db}")
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    try:
        capacity = args.capacity or measure_capacity(
            endpoint, args.capacity_runs, args.capacity_seconds
        )
        offered = args.factor * capacity
        print(
            f"capacity (median of {args.capacity_runs}): {capacity:,.0f} spans/s; offering "
            f"{offered:,.0f} spans/s ({offered / SPANS:.0f} exports/s) for {args.seconds:.0f} s "
            f"from {args.http_procs} HTTP + {args.grpc_procs} gRPC processes"
        )
        rss = RssEverySecond(server.proc.pid)
        probes = [dashboard_reader(server.api_url), gate_checker(server.api_url)]
        results = overload(endpoint, args, offered)
        for probe in probes:
            probe.stop()
        rss.stop()
        stop_started = now()
        code = server.stop()
        stop_s = now() - stop_started
        report(results, probes, rss, stored_by_key(server.db))
        print(f"server stopped with SIGTERM in {stop_s:.1f} s, exit code {code}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()
        remove_store(server)


def report(results, probes, rss, stored: Counter) -> None:
    codes, by_transport = Counter(), Counter()
    acked = [key for _, log in results for key in log.acked]
    for transport, log in results:
        codes.update(log.codes)
        by_transport[transport] += sum(log.codes.values())
    sent = sum(codes.values())
    # from the first request sent to the last, over every client process
    elapsed = max(log.last_sent for _, log in results) - min(log.first_sent for _, log in results)
    refused = codes["429"] + codes["RESOURCE_EXHAUSTED"]
    print(
        f"offered {sent:,} exports ({sent * SPANS:,} spans) in {elapsed:.1f} s = "
        f"{sent * SPANS / elapsed:,.0f} spans/s; late by > 100 ms: "
        f"{sum(log.late for _, log in results):,}; by transport {dict(by_transport)}"
    )
    print(f"answers: {dict(codes)}")
    print(
        f"acknowledged {len(acked):,} exports = {len(acked) * SPANS / elapsed:,.0f} spans/s; "
        f"refused {refused:,} ({refused / max(sent, 1):.1%}), "
        f"without Retry-After/RetryInfo: {sum(log.refused_without_retry for _, log in results)}; "
        f"spans rejected in a partial success: {sum(log.rejected_in_ok for _, log in results)}"
    )
    ok = [lat for _, log in results for lat in log.ok_latency]
    no = [lat for _, log in results for lat in log.refused_latency]
    print(
        f"latency: acknowledged p50 {percentile(ok, 0.5) * 1e3:.0f} ms p99 "
        f"{percentile(ok, 0.99) * 1e3:.0f} ms; refused p50 {percentile(no, 0.5) * 1e3:.0f} ms "
        f"p99 {percentile(no, 0.99) * 1e3:.0f} ms"
    )
    mib = 2**20
    print(
        f"server RSS with decoders: max {max(rss.tree) / mib:.0f} MiB, last "
        f"{rss.tree[-1] / mib:.0f} MiB (server process alone: max {max(rss.main) / mib:.0f}, "
        f"last {rss.main[-1] / mib:.0f}); per 10 s: "
        + " ".join(f"{value / mib:.0f}" for value in rss.tree[::10])
    )
    for probe in probes:
        print(probe.line())
    counts = [stored.get(StampedExports.key_hex(key), 0) for key in acked]
    lost = sum(max(0, SPANS - count) for count in counts)
    doubled = sum(max(0, count - SPANS) for count in counts)
    acked_hex = {StampedExports.key_hex(key) for key in acked}
    cap_prefix = StampedExports.key_hex(CAPACITY_KEY_BASE)[:4]
    unacked_stored = sum(
        count for key, count in stored.items() if key not in acked_hex and key[:4] != cap_prefix
    )
    print(
        f"store: {sum(stored.values()):,} spans; acknowledged spans lost: {lost:,}, stored "
        f"twice: {doubled:,}; spans of refused or "
        f"unanswered exports stored: {unacked_stored:,}; spans the clients should retry: "
        f"{(sent - len(acked)) * SPANS:,}"
    )


if __name__ == "__main__":
    main()
