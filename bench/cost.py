"""Cost engine benchmark: the allocation query and the hourly rollup, at scale.

1. **Allocation query**: 30 days × 1,000 workloads of hourly cost rows (720,000 pod-hours,
   50 teams, 100 nodes), `GET /api/v1/allocation?window=30d&aggregate=team` against a live
   `onepane serve` (HTTP, JSON and all), plus the same with idle shared out and by
   workload with daily steps. Target: ≤ 300 ms.
2. **Hourly rollup of 10,000 pods**: 10,000 running pods on 400 nodes (500 holding GPUs),
   one CPU and one memory usage point per pod per minute (1.2M points), GPU samples every
   15 s, 200,000 spans in the hour; `cost.rollup.step` recomputes that hour in one
   transaction, as the server's rollup does. Target: ≤ 2 s.

Medians of 5 runs (after one warm-up); the store runs with the server's one DuckDB thread.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
# This script is bench/cost.py: its folder must not hide the `cost` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]

from cost import pricing, rollup  # noqa: E402
from cost.allocation import HOUR_NS  # noqa: E402
from store import db  # noqa: E402

sys.path.append(str(_BENCH))
from common import live_server  # noqa: E402

RUNS = 5
DAYS, WORKLOADS, TEAMS, NODES = 30, 1_000, 50, 100
PODS, POD_NODES, GPU_PODS, SPANS = 10_000, 400, 500, 200_000


def _median_ms(run, runs: int = RUNS) -> tuple[float, list[float]]:
    run()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), times


def build_allocation_store(path: Path, end_ns: int) -> None:
    """30 days × 1,000 workloads of cost rows, written straight into the tables."""
    conn = db.connect(path, threads=2)
    start = end_ns - DAYS * 24 * HOUR_NS
    params = {"start": start, "hours": DAYS * 24, "hour": HOUR_NS}
    conn.execute(
        f"""
        INSERT INTO workloads
        SELECT 'ns-' || (w % 40) || '/app-' || w, 'ns-' || (w % 40), 'team-' || (w % {TEAMS}),
               ['app', 'model', 'pipeline'][(w % 3) + 1], NULL,
               make_timestamp_ns($start), make_timestamp_ns($start + $hours * $hour)
        FROM range({WORKLOADS}) t(w)
        """,
        params,
    )
    conn.execute(
        f"""
        INSERT INTO cost_pod_hours
        SELECT make_timestamp_ns($start + h * $hour), 'uid-' || w, 'ns-' || (w % 40),
               'app-' || w || '-pod', 'ns-' || (w % 40) || '/app-' || w, 'Deployment',
               'node-' || (w % {NODES}), 1.0, 0.5, 0.3, 0.5, 1073741824.0, 805306368.0,
               1073741824.0, CASE WHEN w % 20 = 0 THEN 1.0 ELSE 0.0 END,
               CASE WHEN w % 20 = 0 THEN 0.4 END,
               0.5 * 0.0316, 0.00424, CASE WHEN w % 20 = 0 THEN 0.95 ELSE 0 END,
               CASE WHEN w % 20 = 0 THEN 0.57 ELSE 0 END,
               0.5 * 0.0316 + 0.00424 + CASE WHEN w % 20 = 0 THEN 0.95 ELSE 0 END,
               1, 'onepane.yaml pricing.nodes[' || (w % 3) || ']',
               '{{"app": "app-' || w || '", "tier": "t' || (w % 4) || '"}}'
        FROM range($hours) a(h), range({WORKLOADS}) b(w)
        """,
        params,
    )
    conn.execute(
        f"""
        INSERT INTO cost_node_hours
        SELECT make_timestamp_ns($start + h * $hour), 'node-' || n, 'm6i.2xlarge', 'on-demand',
               NULL, 1.0, 8, 34359738368.0, 0, 0.428, 0.3, 0.128, 0, 0.2, 0.1, 0, 0.1, 0.028,
               0, 0.128, 1, 'onepane.yaml pricing.nodes[0]'
        FROM range($hours) a(h), range({NODES}) b(n)
        """,
        params,
    )
    conn.close()


def allocation_bench() -> None:
    end = time.time_ns() // HOUR_NS * HOUR_NS + HOUR_NS
    folder = Path(tempfile.mkdtemp(prefix="onepane-bench-cost-"))
    store = folder / "cost.duckdb"
    built = time.perf_counter()
    build_allocation_store(store, end)
    print(
        f"allocation store: {DAYS * 24 * WORKLOADS:,} pod-hours, {WORKLOADS:,} workloads, "
        f"{TEAMS} teams, {DAYS * 24 * NODES:,} node-hours (built in "
        f"{time.perf_counter() - built:.1f} s)"
    )
    server = live_server(store)
    try:
        queries = {
            "by team": "window=30d&aggregate=team",
            "by team, idle shared": "window=30d&aggregate=team&shareIdle=weighted",
            "by workload, daily steps": "window=30d&aggregate=workload&step=1d",
            "by label:tier, idle": "window=30d&aggregate=label:tier&idle=true",
        }
        for name, query in queries.items():
            url = f"{server.api_url}/api/v1/allocation?{query}"

            def get(url: str = url) -> None:
                with urllib.request.urlopen(url, timeout=120) as response:
                    response.read()

            median, times = _median_ms(get)
            target = "  (target ≤ 300 ms)" if name == "by team" else ""
            print(
                f"  GET /api/v1/allocation {name}: median {median:.0f} ms "
                f"(runs {', '.join(f'{t:.0f}' for t in times)}){target}"
            )
    finally:
        server.stop()


def build_rollup_store(path: Path, hour: int) -> None:
    """10,000 running pods, their usage points, GPU samples and spans for one hour."""
    conn = db.connect(path, threads=2)
    started, p = hour - 3 * HOUR_NS, {"hour": hour, "h": HOUR_NS}
    conn.execute(
        f"""
        INSERT INTO k8s_nodes (uid, name, created, instance_type, region, zone, capacity_type,
            gpu_product, gpu_replicas, cpu_capacity, memory_capacity, gpu_capacity,
            cpu_allocatable, memory_allocatable, gpu_allocatable, labels, updated, provider_id)
        SELECT 'node-uid-' || n, 'node-' || n, make_timestamp_ns({started}),
               CASE WHEN n < 50 THEN 'g5.2xlarge' ELSE 'm6i.8xlarge' END, 'eu-west-1',
               'eu-west-1a', CASE WHEN n % 5 = 0 THEN 'spot' ELSE 'on-demand' END,
               CASE WHEN n < 50 THEN 'NVIDIA-A10G' END, NULL, 32, 137438953472.0,
               CASE WHEN n < 50 THEN 10 ELSE 0 END, 31.9, 130000000000.0,
               CASE WHEN n < 50 THEN 10 ELSE 0 END, '{{}}', make_timestamp_ns({started}),
               'aws:///eu-west-1a/i-' || n
        FROM range({POD_NODES}) t(n)
        """
    )
    conn.execute(
        f"""
        INSERT INTO k8s_pods
        SELECT 'pod-uid-' || i, 'ns-' || (i % 40), 'pod-' || i,
               CASE WHEN i < {GPU_PODS} THEN 'node-' || (i % 50)
                    ELSE 'node-' || (50 + i % {POD_NODES - 50}) END,
               'Running', 'Burstable', 'ns-' || (i % 40) || '/app-' || (i % 1000),
               'Deployment', 'app-' || (i % 1000), 'team-' || (i % 50), NULL,
               make_timestamp_ns({started}), make_timestamp_ns({started}), NULL, NULL,
               0.5, 1.0, 1073741824.0, 2147483648.0,
               CASE WHEN i < {GPU_PODS} THEN 1 ELSE 0 END, NULL,
               CASE WHEN i < {GPU_PODS} THEN 'nvidia.com/gpu' END,
               '{{"app": "app-' || (i % 1000) || '"}}', make_timestamp_ns({started})
        FROM range({PODS}) t(i)
        """
    )
    conn.execute(
        """
        INSERT INTO resources VALUES (1, '{"service.name": "bench"}')
        """
    )
    conn.execute(
        f"""
        INSERT INTO metric_points (metric_name, metric_type, time, value, service_name,
            workload, k8s_namespace, k8s_pod, resource_id, flags, attributes)
        SELECT m, 'gauge', make_timestamp_ns($hour + minute * 60000000000),
               CASE WHEN m = 'k8s.pod.cpu.usage' THEN 0.3 + (i % 7) * 0.1
                    ELSE 900000000.0 + (i % 5) * 300000000.0 END,
               'app-' || (i % 1000), 'ns-' || (i % 40) || '/app-' || (i % 1000),
               'ns-' || (i % 40), 'pod-' || i, 1, 0, '{{}}'
        FROM range({PODS}) a(i), range(60) b(minute),
             (VALUES ('k8s.pod.cpu.usage'), ('k8s.pod.memory.working_set')) c(m)
        """,
        {"hour": hour},
    )
    conn.execute(
        f"""
        INSERT INTO gpu_samples (time, source, target, hostname, gpu, uuid, namespace, pod,
            workload, utilization)
        SELECT make_timestamp_ns($hour + s * 15000000000), 'dcgm', 'bench', 'node-' || (i % 50),
               i % 10, 'GPU-' || i, 'ns-' || (i % 40), 'pod-' || i,
               'ns-' || (i % 40) || '/app-' || (i % 1000), ((i * 7 + s) % 100) / 100.0
        FROM range({GPU_PODS}) a(i), range(240) b(s)
        """,
        {"hour": hour},
    )
    conn.execute(
        f"""
        INSERT INTO spans (trace_key, trace_id, span_id, name, kind, start_time, end_time,
            duration_ns, status_code, service_name, service_version, workload, role,
            k8s_namespace, k8s_pod, resource_id, attributes, batch_no)
        SELECT i, printf('%032x', i), printf('%016x', i), 'GET /', 2,
               make_timestamp_ns($hour + (i * 17987) % $h),
               make_timestamp_ns($hour + (i * 17987) % $h + 5000000), 5000000, 0,
               'app-' || (i % 1000), '1.' || (i % 3), 'ns-' || (i % 40) || '/app-' || (i % 1000),
               CASE WHEN i % 10 = 0 THEN 'inference' ELSE 'request' END, 'ns-' || (i % 40),
               'pod-' || (i % {PODS}), 1, '{{}}', 1
        FROM range({SPANS}) t(i)
        """,
        p,
    )
    pricing.record(conn, pricing.price_set(None), 0)
    conn.close()


def rollup_bench() -> None:
    hour = time.time_ns() // HOUR_NS * HOUR_NS - 2 * HOUR_NS
    folder = Path(tempfile.mkdtemp(prefix="onepane-bench-rollup-"))
    store = folder / "rollup.duckdb"
    built = time.perf_counter()
    build_rollup_store(store, hour)
    print(
        f"rollup store: {PODS:,} pods on {POD_NODES} nodes ({GPU_PODS} with GPUs), "
        f"{PODS * 120:,} usage points, {GPU_PODS * 240:,} GPU samples, {SPANS:,} spans in the "
        f"hour (built in {time.perf_counter() - built:.1f} s)"
    )
    conn = db.connect(store)  # the server's settings: one DuckDB thread
    now = hour + 3 * HOUR_NS

    def run() -> None:
        with db.transaction(conn):
            rolled = rollup.step(conn, hour, hour + HOUR_NS, now, hour)
        assert rolled.pod_hours == PODS, rolled

    median, times = _median_ms(run)
    print(
        f"  hourly rollup of {PODS:,} pods: median {median:.0f} ms "
        f"(runs {', '.join(f'{t:.0f}' for t in times)})  (target ≤ 2000 ms)"
    )
    (node_hours,) = conn.execute("SELECT count(*) FROM cost_node_hours").fetchone()
    print(f"  wrote {PODS:,} pod-hours and {node_hours} node-hours per run")
    conn.close()


if __name__ == "__main__":
    parts = set(sys.argv[1:]) or {"allocation", "rollup"}
    if "allocation" in parts:
        allocation_bench()
    if "rollup" in parts:
        rollup_bench()
