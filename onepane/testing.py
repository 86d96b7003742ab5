"""A live `onepane serve` for integration tests and benchmarks.

Starts the real server in a subprocess on free loopback ports with its own DuckDB file,
waits until it is listening, and offers the few calls a test needs. Use it to test your
own exporters against Onepane::

    server = LiveServer(Path("/tmp/test.duckdb"))
    ...  # export to server.otlp_url, read server.api_url
    server.stop()
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from onepane.httpbase import free_ports

__all__ = [
    "Answer",
    "LiveServer",
    "demo_cluster_flags",
    "free_ports",
    "otlp_sender",
    "run_onepane",
    "serve_once",
    "wait_for",
]

_READY = re.compile(r"OTLP/HTTP on (http://\S+), OTLP/gRPC on (\S+), API on (https?://\S+),")


class LiveServer:
    """`python -m onepane serve` on free loopback ports; the output is kept for assertions."""

    def __init__(self, db: Path, *args: str) -> None:
        self.db = db
        cmd = [
            sys.executable,
            "-m",
            "onepane",
            "serve",
            "--db",
            str(db),
            "--otlp-http-port",
            "0",
            "--otlp-grpc-port",
            "0",
            "--api-port",
            "0",
            *args,
        ]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.output: list[str] = []
        match = None
        while match is None:  # collectors may warn (a target not up yet) before the banner
            line = self.proc.stderr.readline()
            self.output.append(line)
            match = _READY.search(line)
            if not line:
                self.proc.kill()
                raise RuntimeError(f"onepane serve did not start: {''.join(self.output)}")
        self.otlp_url, self.grpc_address, self.api_url = match.groups()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.output.append(line)

    def get_json(self, path: str) -> tuple[int, dict]:
        """GET an API path; returns (status, parsed JSON body)."""
        try:
            with urllib.request.urlopen(self.api_url + path, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def trace(self, trace_id: str) -> dict:
        status, body = self.get_json(f"/api/v1/traces/{trace_id}")
        assert status == 200, body
        return body

    def metric(self, name: str) -> float:
        """The value of one unlabelled (or summed labelled) sample in /metrics."""
        with urllib.request.urlopen(self.api_url + "/metrics", timeout=30) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample in /metrics by (name, labels), read with prometheus-client's parser."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.api_url + "/metrics", timeout=30) as response:
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)


def demo_cluster_flags(scrape_interval: str) -> tuple[int, int, list[str]]:
    """Free ports for the demo's dcgm pages and Kubernetes API, and the `onepane serve`
    flags that point the server at them, as `onepane up --demo` wires it."""
    from onepane.demo_cluster import GPU_NODES

    dcgm_port, kube_port = free_ports(2)
    flags = [
        arg
        for node in GPU_NODES
        for arg in ("--gpu-target", f"http://127.0.0.1:{dcgm_port}/{node}/metrics")
    ]
    flags += ["--scrape-interval", scrape_interval, "--kube-api", f"http://127.0.0.1:{kube_port}"]
    return dcgm_port, kube_port, flags


def run_onepane(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m onepane ARGS` to completion, output captured (for exit codes and messages)."""
    return subprocess.run(
        [sys.executable, "-m", "onepane", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def serve_once(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`onepane serve` on free ports with ``args``: for flags that must stop it at once."""
    return run_onepane(
        "serve", "--db", str(db), "--otlp-http-port", "0", "--otlp-grpc-port", "0",
        "--api-port", "0", *args,
    )  # fmt: skip


def wait_for(
    what: str, read: Callable[[], Any], ok: Callable[[Any], Any], seconds: float = 30.0
) -> Any:
    """``read()`` again until ``ok`` of it holds; its value. Fails naming ``what`` and the
    last value seen after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {seconds:.0f} s; last seen: {value!r}")
        time.sleep(0.1)


@dataclass(frozen=True)
class Answer:
    """How the server answered one OTLP export: ``code`` is the HTTP status ("200", "429")
    or the gRPC status name ("OK", "RESOURCE_EXHAUSTED"); "connection" when no answer came.
    ``retry_after`` is the Retry-After header or RetryInfo delay in seconds, when given."""

    code: str
    retry_after: float | None = None
    rejected: int = 0  # items the server refused in a partial success

    @property
    def ok(self) -> bool:
        return self.code in ("200", "OK")

    @property
    def refused(self) -> bool:
        return self.code in ("429", "RESOURCE_EXHAUSTED")


_GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}


def otlp_sender(
    transport: str, otlp_url: str, grpc_address: str, signal: str = "traces"
) -> Callable[[bytes], Answer]:
    """A function that exports one serialized OTLP protobuf request over ``transport``
    ("http" or "grpc") on one kept-alive connection and returns the server's ``Answer``.
    A dropped connection answers "connection"; the next call connects again."""
    if transport == "grpc":
        return _grpc_sender(grpc_address, signal)
    return _http_sender(otlp_url, signal)


def _http_sender(otlp_url: str, signal: str) -> Callable[[bytes], Answer]:
    parts = urlsplit(otlp_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    headers = {"Content-Type": "application/x-protobuf"}

    def send(body: bytes) -> Answer:
        try:
            conn.request("POST", f"/v1/{signal}", body, headers)
            response = conn.getresponse()
            reply = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            return Answer("connection")
        retry = response.getheader("Retry-After")
        rejected = _rejected(signal, reply) if response.status == 200 else 0
        return Answer(str(response.status), float(retry) if retry else None, rejected)

    return send


def _grpc_sender(grpc_address: str, signal: str) -> Callable[[bytes], Answer]:
    import grpc
    from google.rpc import error_details_pb2

    channel = grpc.insecure_channel(
        grpc_address, options=[("grpc.max_send_message_length", 64 << 20)]
    )
    export = channel.unary_unary(_GRPC_METHODS[signal])

    def send(body: bytes) -> Answer:
        try:
            reply = export(body, timeout=120)
        except grpc.RpcError as exc:
            code, trailers = exc.code(), dict(exc.trailing_metadata() or ())
            if code == grpc.StatusCode.UNAVAILABLE and "grpc-status-details-bin" not in trailers:
                return Answer("connection")  # gRPC's own: the server is gone
            info = trailers.get("google.rpc.retryinfo-bin")
            delay = error_details_pb2.RetryInfo.FromString(info).retry_delay if info else None
            return Answer(code.name, delay.seconds + delay.nanos / 1e9 if delay else None)
        return Answer("OK", rejected=_rejected(signal, reply))

    return send


def _rejected(signal: str, reply: bytes) -> int:
    """The rejected count of an OTLP Export response's partial success."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    response = {
        "traces": trace_service_pb2.ExportTraceServiceResponse,
        "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
        "logs": logs_service_pb2.ExportLogsServiceResponse,
    }[signal].FromString(reply)
    counts = {field.number: value for field, value in response.partial_success.ListFields()}
    return counts.get(1, 0)  # rejected_spans, rejected_data_points, rejected_log_records
