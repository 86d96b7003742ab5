"""Gate benchmark: the whole `onepane gate check` process, start to exit.

Against a live `onepane serve` holding 30 days × 1,000 workloads of hourly cost rows
(720,000 pod-hours), a 10,000-pod inventory on 400 nodes, 7 days of hourly unit counts
and 2,000,000 spans, the CLI reads a Deployment + HPA manifest, sends it, the server
projects the release (rates of the nodes its nodeSelector picks, throughput over 7 days,
the current release) and records the decision; the CLI prints the Markdown report and
exits. Target: ≤ 1.0 s median of 5 (after one warm-up). Also printed: the same request
over HTTP alone (the server's share), and `onepane --version` (Python's own start-up) as
the floor a CLI process cannot go under.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]

from cost.allocation import HOUR_NS  # noqa: E402
from store import db  # noqa: E402

sys.path.append(str(_BENCH))
from common import live_server  # noqa: E402

RUNS = 5
SPANS = 2_000_000
WORKLOAD = "ns-1/app-1"
POLICY = """gate:
  policy:
    kinds:
      app: {max_unit_cost: 0.50 USD per 1k requests}
    all: {max_increase: 30%}
    teams:
      team-1: {max_monthly_cost: 2000 USD}
pricing:
  nodes:
    - instance_type: m6i.8xlarge
      on_demand: 1.536
"""
MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata: {name: app-1, namespace: ns-1, labels: {app.kubernetes.io/version: "2.0.0"}}
spec:
  replicas: 3
  template:
    spec:
      nodeSelector: {node.kubernetes.io/instance-type: m6i.8xlarge}
      containers:
        - name: app
          image: registry.example.com/app-1:2.0.0
          resources: {requests: {cpu: 750m, memory: 1536Mi}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: app-1, namespace: ns-1}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: app-1}
  minReplicas: 3
  maxReplicas: 12
"""


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", _BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_store(path: Path, end_ns: int) -> None:
    cost_bench = _load("cost")
    cost_bench.build_allocation_store(path, end_ns)
    cost_bench.build_rollup_store(path, end_ns - HOUR_NS)
    conn = db.connect(path, threads=2)
    week = 7 * 24
    conn.execute(
        f"""
        INSERT INTO workload_hour_counts
        SELECT make_timestamp_ns($end - (h + 1) * {HOUR_NS}), 'ns-' || (w % 40) || '/app-' || w,
               '1.0.0', 'ns-' || (w % 40), 'app-' || w || '-pod', 600, 500, 0, 0, NULL, NULL
        FROM range({week}) a(h), range(1000) b(w)
        """,
        {"end": end_ns},
    )
    conn.execute(
        f"""
        INSERT INTO spans (trace_key, trace_id, span_id, name, kind, start_time, end_time,
            duration_ns, status_code, service_name, service_version, workload, role,
            k8s_namespace, k8s_pod, resource_id, attributes, batch_no)
        SELECT i, printf('%032x', i), printf('%016x', i), 'GET /items', 2,
               make_timestamp_ns($end - {week * HOUR_NS} + i * ({week * HOUR_NS} // {SPANS})),
               make_timestamp_ns($end - {week * HOUR_NS} + i * ({week * HOUR_NS} // {SPANS})
                                 + 5000000),
               5000000, 0, 'app-' || (i % 1000), '1.0.0',
               'ns-' || (i % 1000 % 40) || '/app-' || (i % 1000), 'request',
               'ns-' || (i % 1000 % 40), 'app-' || (i % 1000) || '-pod', 1, '{{}}', 1
        FROM range({SPANS}) t(i)
        """,
        {"end": end_ns},
    )
    conn.close()


def _median(run) -> tuple[float, list[float]]:
    run()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), times


def main() -> None:
    end = time.time_ns() // HOUR_NS * HOUR_NS
    folder = Path(tempfile.mkdtemp(prefix="onepane-bench-gate-"))
    store, config, manifest = folder / "gate.duckdb", folder / "onepane.yaml", folder / "app.yaml"
    config.write_text(POLICY + "cost:\n  rollup_interval: 1h\n")
    manifest.write_text(MANIFEST)
    built = time.perf_counter()
    build_store(store, end)
    print(
        f"store: 720,000 pod-hours, 10,000 pods, 168,000 unit counts, {SPANS:,} spans "
        f"(built in {time.perf_counter() - built:.1f} s)"
    )
    server = live_server(store, "--config", str(config))
    onepane = [sys.executable, "-m", "onepane.cli"]
    env = {**os.environ, "ONEPANE_SERVER": server.api_url}
    check = [*onepane, "gate", "check", "--workload", WORKLOAD, "--manifest", str(manifest)]
    try:
        first = subprocess.run(check, capture_output=True, text=True, env=env, check=False)
        verdict = next((line for line in first.stdout.splitlines() if line.startswith("## ")), "")
        print(f"decision: exit {first.returncode}: {verdict.removeprefix('## ')}")
        if first.returncode not in (0, 1):
            print(first.stderr)
            return

        def whole() -> None:
            subprocess.run(check, capture_output=True, env=env, check=False)

        def version() -> None:
            subprocess.run([*onepane, "--version"], capture_output=True, env=env, check=False)

        body = subprocess.run(
            [
                sys.executable,
                "-c",
                "import orjson,sys; print(orjson.dumps({'workload': sys.argv[1],"
                " 'manifests': [{'source': 'app.yaml', 'text': open(sys.argv[2]).read()}],"
                " 'dry_run': True}).decode())",
                WORKLOAD,
                str(manifest),
            ],
            capture_output=True,
            check=True,
        ).stdout

        def request() -> None:
            req = urllib.request.Request(
                f"{server.api_url}/api/v1/gate/check",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=60) as response:
                response.read()

        for name, run, target in (
            ("onepane gate check, whole process", whole, "  (target ≤ 1000 ms)"),
            ("POST /api/v1/gate/check alone", request, ""),
            ("onepane --version (start-up floor)", version, ""),
        ):
            median, times = _median(run)
            print(
                f"  {name}: median {median:.0f} ms "
                f"(runs {', '.join(f'{t:.0f}' for t in times)}){target}"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
