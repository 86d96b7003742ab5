"""Ingest benchmark: concurrent OTLP/HTTP protobuf clients against a live `onepane serve`.

Prints acknowledged spans/s (median of the runs), p99 request latency, peak server RSS,
and, measured in the same process, plain protobuf parsing of the same payloads (the
ceiling) with the ratio between the two.

    python bench/ingest.py [--runs 3] [--seconds 10] [--clients 4] [--total-spans N]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PeakRss, live_server, median, now, percentile, remove_store
from workload import make_exports

SPANS_PER_EXPORT = 512


def client(url: str, exports: list[bytes], deadline: float, budget: int, out) -> None:
    """Send exports in a loop until the deadline or the span budget; report what was acked."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    headers = {"Content-Type": "application/x-protobuf"}
    acked, refused, latencies, i = 0, 0, [], 0
    while time.time() < deadline and acked < budget:
        body = exports[i % len(exports)]
        started = now()
        conn.request("POST", "/v1/traces", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            latencies.append(now() - started)
            acked += SPANS_PER_EXPORT
            i += 1
        elif response.status == 429:
            refused += 1
            time.sleep(float(response.getheader("Retry-After", "1")) / 10)
        else:
            raise RuntimeError(f"unexpected HTTP {response.status}: {response.read()[:200]!r}")
    out.put((acked, refused, latencies))


def run_once(exports: list[bytes], clients: int, seconds: float, total: int | None) -> dict:
    server = live_server()
    rss = PeakRss(server.proc.pid)
    try:
        budget = (total // clients) if total else 1 << 62
        deadline = time.time() + (seconds if not total else 24 * 3600)
        out = multiprocessing.Queue()
        share = len(exports) // clients
        procs = [
            multiprocessing.Process(
                target=client,
                args=(server.otlp_url, exports[i * share : (i + 1) * share], deadline, budget, out),
            )
            for i in range(clients)
        ]
        started = now()
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        elapsed = now() - started
        for p in procs:
            p.join()
    finally:
        rss.stop()
        server.stop()
        remove_store(server)
    acked = sum(r[0] for r in results)
    latencies = [lat for r in results for lat in r[2]]
    return {
        "spans_per_s": acked / elapsed,
        "spans": acked,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "refused": sum(r[1] for r in results),
        "peak_rss": rss.peak,
        "peak_rss_main": rss.peak_main,
    }


def parse_ceiling(exports: list[bytes], runs: int = 5) -> float:
    """Spans/s of plain protobuf parsing of the same payloads, in this process."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    rates = []
    for _ in range(runs):
        started = now()
        for body in exports:
            ExportTraceServiceRequest.FromString(body)
        rates.append(len(exports) * SPANS_PER_EXPORT / (now() - started))
    return median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--exports", type=int, default=400, help="distinct payloads generated")
    parser.add_argument(
        "--total-spans",
        type=int,
        default=None,
        help="send this many spans per run instead of running for --seconds",
    )
    args = parser.parse_args()
    exports = make_exports(args.exports, SPANS_PER_EXPORT)
    print(
        f"payload: {SPANS_PER_EXPORT} spans/export, {len(exports[0]) / 1024:.0f} KiB, "
        f"{args.clients} clients, {args.runs} runs"
    )
    runs = []
    for n in range(args.runs):
        result = run_once(exports, args.clients, args.seconds, args.total_spans)
        runs.append(result)
        print(
            f"  run {n + 1}: {result['spans_per_s']:>10,.0f} spans/s acknowledged  "
            f"({result['spans']:,} spans)  p99 {result['p99_ms']:.1f} ms  "
            f"429s {result['refused']}  peak RSS {result['peak_rss'] / 2**20:.0f} MiB "
            f"(main process {result['peak_rss_main'] / 2**20:.0f} MiB)"
        )
    ceiling = parse_ceiling(exports)
    acked = median([r["spans_per_s"] for r in runs])
    print(f"acknowledged spans/s (median of {args.runs}): {acked:,.0f}")
    print(f"p99 request latency (median of runs): {median([r['p99_ms'] for r in runs]):.1f} ms")
    print(
        f"peak server RSS (max of runs, with decoders): "
        f"{max(r['peak_rss'] for r in runs) / 2**20:.0f} MiB"
    )
    print(f"protobuf parse ceiling (same payloads, this process): {ceiling:,.0f} spans/s")
    print(f"ratio acknowledged / parse ceiling: {acked / ceiling:.3f}")


if __name__ == "__main__":
    main()
