"""The `onepane` command: serve, up, demo, trace, traces.

Errors become one line and an exit code here.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_hooks import cli as gatecli
from onepane import __version__, costcli, driftcli, httpbase, tokencli, tracecli
from onepane.errors import ConfigError, OnepaneError
from store.db import MEMORY_LIMIT

DEMO_DCGM_PORT = 9400  # dcgm-exporter's own default
DEMO_KUBE_PORT = 9401
DEMO_RELEASES_AFTER_S = 20.0  # traffic the gate sees before the demo's releases
DEMO_CONFIG = Path(__file__).with_name("demo.yaml")  # prices and catalog of the demo company

if TYPE_CHECKING:  # the heavy modules load only for the commands that use them
    from onepane.demo import DemoCompany
    from onepane.demo_cluster import DemoCluster
    from onepane.server import OnepaneServer, ServeConfig


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except OnepaneError as exc:
        print(f"onepane: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onepane",
        description="One observability and FinOps layer for apps, ML models and data pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"onepane {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server: OTLP receiver, store and API")
    _serve_flags(serve)
    serve.set_defaults(run=_run_serve)

    up = commands.add_parser(
        "up", help="start Onepane on this machine (with --demo: and a demo company)"
    )
    _serve_flags(up)
    up.add_argument("--demo", action="store_true", help="also run the simulated demo company")
    up.add_argument("--demo-rate", type=float, default=20.0, help="demo traces/s at peak (20)")
    up.add_argument("--dashboard-port", type=int, default=8501, help="the dashboards' port (8501)")
    up.add_argument("--no-dashboard", action="store_true", help="do not start the dashboards")
    up.set_defaults(run=_run_up)

    demo = commands.add_parser("demo", help="run the simulated company against a server")
    demo.add_argument(
        "--endpoint",
        default="http://127.0.0.1:4318",
        help="OTLP/HTTP base URL of the server (http://127.0.0.1:4318)",
    )
    demo.add_argument("--rate", type=float, default=20.0, help="traces/s at the daily peak (20)")
    demo.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable run")
    demo.add_argument(
        "--day-seconds",
        type=float,
        default=600.0,
        help="real seconds one simulated day lasts (600)",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until interrupted)",
    )
    demo.add_argument(
        "--api",
        default="http://127.0.0.1:8320",
        help="API base URL, for the trace links the demo prints",
    )
    demo.add_argument(
        "--dcgm-port",
        type=int,
        default=DEMO_DCGM_PORT,
        help=f"port of the demo GPU nodes' dcgm-exporter pages ({DEMO_DCGM_PORT})",
    )
    demo.add_argument(
        "--kube-port",
        type=int,
        default=DEMO_KUBE_PORT,
        help=f"port of the demo cluster's Kubernetes API ({DEMO_KUBE_PORT})",
    )
    demo.set_defaults(run=_run_demo)
    tracecli.add_commands(commands)
    costcli.add_commands(commands)
    driftcli.add_commands(commands)
    gatecli.add_commands(commands)
    tokencli.add_commands(commands)
    return parser


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(".onepane/onepane.duckdb"),
        help="DuckDB file (./.onepane/onepane.duckdb)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1; 0.0.0.0 for every interface)",
    )
    parser.add_argument("--otlp-http-port", type=int, default=4318, help="OTLP/HTTP port (4318)")
    parser.add_argument("--otlp-grpc-port", type=int, default=4317, help="OTLP/gRPC port (4317)")
    parser.add_argument("--api-port", type=int, default=8320, help="HTTP API port (8320)")
    parser.add_argument(
        "--decoders",
        type=int,
        default=None,
        help="decoder processes (default: one per core; 0 decodes in-process)",
    )
    parser.add_argument(
        "--queue-rows",
        "--queue-spans",
        dest="queue_rows",
        type=int,
        default=200_000,
        help="spans, metric points and log records the write queue holds before answering "
        "429 / RESOURCE_EXHAUSTED (200000)",
    )
    parser.add_argument(
        "--memory-limit",
        default=MEMORY_LIMIT,
        help=f"DuckDB buffer memory; beyond it DuckDB spills to disk ({MEMORY_LIMIT})",
    )
    parser.add_argument(
        "--db-threads",
        type=int,
        default=1,
        help="DuckDB threads (1: best ingest; more speeds up large analytical reads)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file (./onepane.yaml when it exists); flags win over it",
    )
    parser.add_argument(
        "--gpu-target",
        action="append",
        default=None,
        metavar="URL",
        help="dcgm-exporter /metrics to scrape (repeatable; replaces gpu.targets)",
    )
    parser.add_argument(
        "--scrape-interval", default=None, help="how often to scrape GPU targets (15s)"
    )
    parser.add_argument(
        "--kube-api",
        default=None,
        metavar="URL|in-cluster|kubeconfig",
        help="Kubernetes API to list and watch nodes and pods from (off by default)",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (~/.kube/config)")
    parser.add_argument(
        "--nvml", action="store_true", help="also sample this machine's GPUs with NVML"
    )
    parser.add_argument(
        "--tls-cert", type=Path, default=None, help="serve the API over HTTPS with this PEM cert"
    )
    parser.add_argument("--tls-key", type=Path, default=None, help="the --tls-cert's PEM key")
    parser.add_argument(
        "--checkpoint-wal-mb",
        type=int,
        default=64,
        help="checkpoint in the background once the WAL holds this many MiB (64)",
    )


def _config(args: argparse.Namespace) -> ServeConfig:
    from onepane.config import (
        DEFAULT_PATH,
        api_tls,
        collectors_config,
        cost_config,
        drift_config,
        gate_config,
        read_file,
        retention_config,
    )
    from onepane.server import ServeConfig

    if args.queue_rows < 1:
        raise ConfigError("--queue-rows must be at least 1")
    if args.checkpoint_wal_mb < 1:
        raise ConfigError("--checkpoint-wal-mb must be at least 1")
    if args.db_threads < 1:
        raise ConfigError("--db-threads must be at least 1")
    if args.decoders is not None and args.decoders < 0:
        raise ConfigError("--decoders must be 0 or more")
    demo = getattr(args, "demo", False) and args.config is None
    path = DEMO_CONFIG if demo else args.config
    document = read_file(path)
    if path is None and DEFAULT_PATH.exists():
        path = DEFAULT_PATH
    return ServeConfig(
        db=args.db,
        host=args.host,
        otlp_http_port=args.otlp_http_port,
        otlp_grpc_port=args.otlp_grpc_port,
        api_port=args.api_port,
        decoders=args.decoders,
        queue_rows=args.queue_rows,
        commit_rows=min(100_000, args.queue_rows),
        memory_limit=args.memory_limit,
        db_threads=args.db_threads,
        checkpoint_wal_bytes=args.checkpoint_wal_mb * 1024 * 1024,
        cost=cost_config(document, (args.config or DEFAULT_PATH).parent),
        gate=gate_config(document, path),
        drift=drift_config(document),
        retention=retention_config(document),
        api_tls=api_tls(document, path, args.tls_cert, args.tls_key),
        collectors=collectors_config(
            document,
            targets=args.gpu_target,
            scrape_interval=args.scrape_interval,
            kube_api=args.kube_api,
            kubeconfig=args.kubeconfig,
            nvml=args.nvml,
        ),
    )


def _until_stopped(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def _start_server(args: argparse.Namespace) -> OnepaneServer:
    from onepane.server import OnepaneServer

    server = OnepaneServer(_config(args))
    server.start()
    webhook = server.admission_url
    print(
        f"onepane: serving OTLP/HTTP on {server.otlp_http_url}, "
        f"OTLP/gRPC on {server.otlp_grpc_address}, API on {server.api_url}, "
        + (f"admission webhook on {webhook}, " if webhook else "")
        + f"store {args.db}",
        file=sys.stderr,
        flush=True,
    )
    return server


def _run_serve(args: argparse.Namespace) -> int:
    server = _start_server(args)
    try:
        _until_stopped(threading.Event())
    finally:
        server.stop()
    return 0


def _run_up(args: argparse.Namespace) -> int:
    children: list[subprocess.Popen[bytes]] = []
    server = None
    try:
        if args.demo:  # first, so its cluster answers when the server's collectors start
            children.append(_start_demo(args))
        server = _start_server(args)
        if not args.no_dashboard:
            children.insert(0, _start_dashboard(server.api_url, args))
        _until_stopped(threading.Event())
    finally:
        if server is not None:  # the demo cluster is about to vanish: stop watching it
            server.stop_collectors()
        for child in children:  # the demo flushes what it has to the still-running server
            child.terminate()
            child.wait(15)
        if server is not None:
            server.stop()
    return 0


def _start_dashboard(api_url: str, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    from onepane import dashboard

    child, url = dashboard.start(api_url, args.host, args.dashboard_port)
    print(f"onepane: dashboards on {url}", file=sys.stderr, flush=True)
    return child


def _start_demo(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """`onepane demo` in a child process, sending to the server this command starts."""
    dcgm_port, kube_port = _demo_collectors(args)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "onepane",
            "demo",
            "--endpoint",
            f"http://{host}:{args.otlp_http_port}",
            "--api",
            f"http://{host}:{args.api_port}",
            "--rate",
            str(args.demo_rate),
            "--dcgm-port",
            str(dcgm_port),
            "--kube-port",
            str(kube_port),
        ],
        start_new_session=True,  # Ctrl-C stops the server first, then this (see _run_up)
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and child.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", kube_port)) == 0:
                break
        time.sleep(0.1)
    return child


def _demo_collectors(args: argparse.Namespace) -> list[int]:
    """Ports for the demo's dcgm pages and Kubernetes API; point the server at them unless
    the command line already names GPU targets or a Kubernetes API."""
    from onepane.demo_cluster import GPU_NODES

    ports = httpbase.free_ports(2)
    base = f"http://127.0.0.1:{ports[0]}"
    if not args.gpu_target:
        args.gpu_target = [f"{base}/{node}/metrics" for node in GPU_NODES]
    if not args.kube_api:
        args.kube_api = f"http://127.0.0.1:{ports[1]}"
    return ports


def _run_demo(args: argparse.Namespace) -> int:
    from onepane.demo import DemoCompany, DemoConfig
    from onepane.demo_cluster import DemoCluster

    config = DemoConfig(
        endpoint=args.endpoint.rstrip("/"),
        rate=args.rate,
        seed=args.seed,
        day_seconds=args.day_seconds,
    )
    # `onepane up` starts the demo before the server listens: the exporters' retries of
    # their first exports are expected, not worth a warning each.
    exporters = logging.getLogger("opentelemetry.exporter.otlp.proto.http")
    exporters.setLevel(logging.ERROR)
    company = DemoCompany(config)
    stop = threading.Event()
    if args.duration is not None:
        threading.Timer(args.duration, stop.set).start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cluster = DemoCluster(company, config, seed=args.seed)
    try:
        cluster.serve(kube_port=args.kube_port, dcgm_port=args.dcgm_port)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve the demo cluster on ports {args.kube_port} and {args.dcgm_port}: "
            f"{exc.strerror or exc}; choose others with --kube-port / --dcgm-port"
        ) from exc
    print(
        f"onepane: demo company sending to {args.endpoint}; its Kubernetes API is "
        f"{cluster.sim.server.url if cluster.sim.server else '?'} and its GPU nodes serve "
        f"{' '.join(cluster.dcgm_targets)}",
        file=sys.stderr,
        flush=True,
    )
    threading.Thread(target=cluster.run, args=(stop,), daemon=True).start()
    _wait_for_endpoint(args.endpoint, stop)
    exporters.setLevel(logging.NOTSET)
    history = (cluster, args.api, args.seed, stop, args.endpoint)
    threading.Thread(target=_history, args=history, daemon=True).start()
    threading.Thread(target=_announce, args=(company, args.api, stop), daemon=True).start()
    try:
        company.run(stop)
    finally:
        company.shutdown()
        cluster.close()
    return 0


def _wait_for_endpoint(endpoint: str, stop: threading.Event, seconds: float = 30.0) -> None:
    """Give a server that is still starting (`onepane up --demo`) time to listen, so the
    first exports do not fail; after ``seconds`` the exporters' own retries take over."""
    parts = urllib.parse.urlsplit(endpoint)
    address = (parts.hostname or "127.0.0.1", parts.port or 4318)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        with socket.socket() as probe:
            if probe.connect_ex(address) == 0:
                return
        stop.wait(0.2)


def _history(
    cluster: DemoCluster, api: str, seed: int | None, stop: threading.Event, endpoint: str
) -> None:
    """The bill, the models' drift references and a week of GPU history first; then, after
    some traffic, the company's releases through the gate."""
    from onepane.demo_gpu_history import send_demo

    if not _import_bill(cluster, api):
        return
    _send_references(api, seed)
    send_demo(cluster, endpoint, api, seed)
    if not stop.wait(DEMO_RELEASES_AFTER_S):
        _send_releases(api)


def _send_references(api: str, seed: int | None) -> None:
    """Register the models' training data as their drift references, as `onepane drift
    reference add` would."""
    from onepane.demo_drift import send

    try:
        stored = send(api, seed)
    except OnepaneError as exc:
        print(f"onepane: demo drift references not added: {exc}", file=sys.stderr, flush=True)
        return
    models = ", ".join(f"{r['model']} {r['version']}: {r['rows']} rows" for r in stored)
    print(
        f"onepane: demo drift references added ({models}); the fraud model's amounts drift "
        f"after its first simulated day: see `onepane drift runs --server {api}`",
        file=sys.stderr,
        flush=True,
    )


def _send_releases(api: str) -> None:
    from onepane.demo_gate import send

    try:
        decisions = send(api)
    except OnepaneError as exc:
        print(f"onepane: demo releases not sent to the gate: {exc}", file=sys.stderr, flush=True)
        return
    verdicts = ", ".join(f"{d['workload']} {d['version']}: {d['verdict']}" for d in decisions)
    print(
        f"onepane: demo releases gated ({verdicts}); see `onepane gate decisions --server {api}`",
        file=sys.stderr,
        flush=True,
    )


def _import_bill(cluster: DemoCluster, api: str) -> bool:
    """Send the company's month of FOCUS bill to the server, as `onepane cost import-bill`
    would."""
    from onepane.client import ApiClient
    from onepane.errors import ServerUnreachable

    deadline = time.monotonic() + 60  # `onepane up` opens its API last
    while True:
        try:
            result = ApiClient(api, timeout_s=120).post(
                "/api/v1/billing/imports", cluster.bill(), [("filename", "demo-focus-bill.csv")]
            )
            break
        except ServerUnreachable:
            if time.monotonic() > deadline:
                print("onepane: demo bill not imported: no API", file=sys.stderr, flush=True)
                return False
            time.sleep(0.5)
        except OnepaneError as exc:
            print(f"onepane: demo bill not imported: {exc}", file=sys.stderr, flush=True)
            return False
    print(
        f"onepane: demo bill imported: {result['rows']} FOCUS rows; compare with "
        f"`onepane cost reconcile --server {api}`",
        file=sys.stderr,
        flush=True,
    )
    return True


def _announce(company: DemoCompany, api: str, stop: threading.Event) -> None:
    """Print a link to one recent trace of each flow, first after 5 s, then every 30 s."""
    wait = 5.0
    while not stop.wait(wait):
        for flow, trace_id in sorted(company.last_traces.items()):
            print(
                f"onepane: demo {flow} trace: {api}/api/v1/traces/{trace_id}",
                file=sys.stderr,
                flush=True,
            )
        wait = 30.0


if __name__ == "__main__":
    sys.exit(main())
