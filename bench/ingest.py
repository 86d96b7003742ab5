"""Ingest benchmark: concurrent OTLP protobuf clients against a live `onepane serve`.

For each scenario (spans over HTTP and over gRPC, metric points over HTTP and over gRPC)
prints acknowledged items/s (median of the runs), p99 request latency and peak server
RSS; then, measured in the same process, plain protobuf parsing of the same payloads (the
ceiling) with the ratio between the two.

    python bench/ingest.py [--runs 3] [--seconds 10] [--clients 8] [--total-spans N]
                           [--only traces/http,traces/grpc,metrics/http,metrics/grpc]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PeakRss, live_server, median, now, percentile, remove_store
from workload import make_exports, make_metric_exports

from onepane.testing import otlp_sender

SPANS_PER_EXPORT = 512


@dataclass(frozen=True)
class Scenario:
    signal: str  # traces | metrics
    transport: str  # http | grpc
    exports: list[bytes]
    per_export: int  # spans or points in each export

    @property
    def name(self) -> str:
        return f"{self.signal}/{self.transport}"

    @property
    def unit(self) -> str:
        return "spans" if self.signal == "traces" else "points"


def client(server, scenario: Scenario, exports, deadline: float, budget: int, out) -> None:
    """Send exports in a loop until the deadline or the budget; report what was acked."""
    send = otlp_sender(scenario.transport, server.otlp_url, server.grpc_address, scenario.signal)
    acked, refused, latencies, i = 0, 0, [], 0
    while time.time() < deadline and acked < budget:
        started = now()
        answer = send(exports[i % len(exports)])
        if answer.ok:
            latencies.append(now() - started)
            acked += scenario.per_export
            i += 1
        elif answer.refused:
            refused += 1
            time.sleep((answer.retry_after or 1.0) / 10)
        else:
            raise RuntimeError(f"unexpected answer {answer.code} from {scenario.name}")
    out.put((acked, refused, latencies))


def run_once(scenario: Scenario, clients: int, seconds: float, total: int | None) -> dict:
    server = live_server()
    rss = PeakRss(server.proc.pid)
    try:
        budget = (total // clients) if total else 1 << 62
        deadline = time.time() + (seconds if not total else 24 * 3600)
        out = multiprocessing.Queue()
        exports = scenario.exports
        share = len(exports) // clients
        procs = [
            multiprocessing.Process(
                target=client,
                args=(
                    _Endpoint(server.otlp_url, server.grpc_address),
                    scenario,
                    exports[i * share : (i + 1) * share],
                    deadline,
                    budget,
                    out,
                ),
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
        "per_s": acked / elapsed,
        "items": acked,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "refused": sum(r[1] for r in results),
        "peak_rss": rss.peak,
        "peak_rss_main": rss.peak_main,
    }


@dataclass(frozen=True)
class _Endpoint:
    """What a client process needs of the server (a LiveServer does not pickle)."""

    otlp_url: str
    grpc_address: str


def parse_ceiling(scenario: Scenario, runs: int = 5) -> float:
    """Items/s of plain protobuf parsing of the same payloads, in this process."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = (
        ExportTraceServiceRequest if scenario.signal == "traces" else ExportMetricsServiceRequest
    )
    rates = []
    for _ in range(runs):
        started = now()
        for body in scenario.exports:
            message.FromString(body)
        rates.append(len(scenario.exports) * scenario.per_export / (now() - started))
    return median(rates)


def measure(scenario: Scenario, args: argparse.Namespace) -> float:
    """Run one scenario ``--runs`` times, print each run and the summary; the median rate."""
    size = len(scenario.exports[0]) / 1024
    print(f"{scenario.name}: {scenario.per_export} {scenario.unit}/export, {size:.0f} KiB")
    runs = []
    for n in range(args.runs):
        total = args.total_spans if scenario.signal == "traces" else None
        result = run_once(scenario, args.clients, args.seconds, total)
        runs.append(result)
        print(
            f"  run {n + 1}: {result['per_s']:>10,.0f} {scenario.unit}/s acknowledged  "
            f"({result['items']:,})  p99 {result['p99_ms']:.1f} ms  "
            f"refused {result['refused']}  peak RSS {result['peak_rss'] / 2**20:.0f} MiB "
            f"(main process {result['peak_rss_main'] / 2**20:.0f} MiB)"
        )
    acked = median([r["per_s"] for r in runs])
    ceiling = parse_ceiling(scenario)
    print(f"  acknowledged {scenario.unit}/s (median of {args.runs}): {acked:,.0f}")
    print(f"  p99 request latency (median of runs): {median([r['p99_ms'] for r in runs]):.1f} ms")
    print(f"  peak server RSS (max of runs): {max(r['peak_rss'] for r in runs) / 2**20:.0f} MiB")
    print(
        f"  protobuf parse ceiling (same payloads, this process): {ceiling:,.0f} {scenario.unit}/s"
    )
    print(f"  ratio acknowledged / parse ceiling: {acked / ceiling:.3f}")
    return acked


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
    parser.add_argument(
        "--only",
        default="traces/http,traces/grpc,metrics/http,metrics/grpc",
        help="comma-separated scenarios to run",
    )
    args = parser.parse_args()
    wanted = args.only.split(",")
    spans = make_exports(args.exports, SPANS_PER_EXPORT)
    metrics, points = make_metric_exports(args.exports // 4)
    scenarios = [
        Scenario("traces", "http", spans, SPANS_PER_EXPORT),
        Scenario("traces", "grpc", spans, SPANS_PER_EXPORT),
        Scenario("metrics", "http", metrics, points),
        Scenario("metrics", "grpc", metrics, points),
    ]
    print(f"{args.clients} clients, {args.runs} runs of {args.seconds:.0f} s per scenario")
    results = {s.name: measure(s, args) for s in scenarios if s.name in wanted}
    print("summary (median acknowledged per second):")
    for name, rate in results.items():
        unit = "spans" if name.startswith("traces") else "points"
        print(f"  {name:<13} {rate:>10,.0f} {unit}/s")


if __name__ == "__main__":
    main()
