"""Nothing acknowledged is lost: not under backpressure, not when the server is killed.

Clients send raw OTLP protobuf ``ExportTraceServiceRequest`` bodies over http.client (and
gRPC) to a live server; the DuckDB file is read only after that server has stopped or died.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import random
import signal
import socket
import struct
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from onepane.testing import LiveServer, otlp_sender
from store import db as store_db

PROTOBUF = {"Content-Type": "application/x-protobuf"}
BASE_NS = 1_767_225_600 * 1_000_000_000
_span_ids = itertools.count(1)
_span_ids_lock = threading.Lock()


def new_span_ids(count: int) -> list[bytes]:
    """Span ids unique across the whole test session."""
    with _span_ids_lock:
        return [next(_span_ids).to_bytes(8, "big") for _ in range(count)]


def export_body(trace_id: bytes, span_ids: list[bytes], service: str) -> bytes:
    """One export: a root SERVER span and its INTERNAL children, all in one trace."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attr = resource_spans.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", service
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "durability-test"
    for i, span_id in enumerate(span_ids):
        span = scope_spans.spans.add()
        span.trace_id = trace_id
        span.span_id = span_id
        span.name = f"step {i}" if i else "GET /work"
        span.kind = Span.SPAN_KIND_INTERNAL if i else Span.SPAN_KIND_SERVER
        if i:
            span.parent_span_id = span_ids[0]
        span.start_time_unix_nano = BASE_NS + i * 1000
        span.end_time_unix_nano = BASE_NS + i * 1000 + 500
    return request.SerializeToString()


def connect(otlp_url: str) -> http.client.HTTPConnection:
    address = urlsplit(otlp_url)
    return http.client.HTTPConnection(address.hostname, address.port, timeout=60)


def post(conn: http.client.HTTPConnection, body: bytes) -> http.client.HTTPResponse:
    """POST /v1/traces; the response's body is read and kept on ``response.data``."""
    conn.request("POST", "/v1/traces", body, PROTOBUF)
    response = conn.getresponse()
    response.data = response.read()
    return response


def metric_samples(api_url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample in /metrics, parsed with prometheus-client's own parser."""
    with urllib.request.urlopen(api_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def spans_by_trace(db: Path) -> dict[str, tuple[int, int]]:
    """trace_id -> (rows, distinct span ids) in the stored `spans` table."""
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            "SELECT trace_id, count(*), count(DISTINCT span_id) FROM spans GROUP BY trace_id"
        ).fetchall()
    return {trace_id: (count, distinct) for trace_id, count, distinct in rows}


# --- backpressure ------------------------------------------------------------------------

CLIENTS = 12
EXPORTS_PER_CLIENT = 15
SPANS_PER_EXPORT = 200


@dataclass
class ClientLog:
    sent_traces: list[str] = field(default_factory=list)
    refused: int = 0
    retry_after: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def backpressure_client(otlp_url: str, number: int, log: ClientLog) -> None:
    """Send every export until it is acknowledged, backing off briefly on each 429."""
    conn = connect(otlp_url)
    rng = random.Random(number)
    deadline = time.monotonic() + 60
    try:
        for _ in range(EXPORTS_PER_CLIENT):
            trace_id = uuid.uuid4().bytes
            body = export_body(trace_id, new_span_ids(SPANS_PER_EXPORT), f"client-{number}")
            while True:
                response = post(conn, body)
                if response.status == 200:
                    reply = ExportTraceServiceResponse.FromString(response.data)
                    if reply.partial_success.rejected_spans:
                        log.errors.append(f"partial success: {reply.partial_success}")
                    log.sent_traces.append(trace_id.hex())
                    break
                if response.status != 429:
                    log.errors.append(f"HTTP {response.status}: {response.data[:200]!r}")
                    return
                log.refused += 1
                log.retry_after.append(response.getheader("Retry-After"))
                status = status_pb2.Status.FromString(response.data)
                if status.code != code_pb2.RESOURCE_EXHAUSTED or not status.message:
                    log.errors.append(f"429 with Status {status}")
                    return
                if time.monotonic() > deadline:
                    log.errors.append("still refused after 60 s")
                    return
                time.sleep(rng.uniform(0.02, 0.08))
    except Exception as exc:  # the test thread reports it; a lost reply could double-store
        log.errors.append(repr(exc))
    finally:
        conn.close()


def test_backpressure_refuses_with_429_and_loses_nothing(start_server: Callable) -> None:
    server = start_server("--queue-rows", "1")
    logs = [ClientLog() for _ in range(CLIENTS)]
    threads = [
        threading.Thread(target=backpressure_client, args=(server.otlp_url, n, log))
        for n, log in enumerate(logs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not any(thread.is_alive() for thread in threads)
    assert [error for log in logs for error in log.errors] == []

    sent = [trace_id for log in logs for trace_id in log.sent_traces]
    refused = sum(log.refused for log in logs)
    exports = CLIENTS * EXPORTS_PER_CLIENT
    assert len(sent) == len(set(sent)) == exports
    assert refused > 0, "a one-span queue never pushed back"
    retry_after = [value for log in logs for value in log.retry_after]
    assert all(value is not None and value.isdigit() for value in retry_after), retry_after
    # The queue holds one 200-span request that commits in milliseconds: wait about a second.
    assert {int(value) for value in retry_after} <= set(range(1, 6)), sorted(set(retry_after))

    samples = metric_samples(server.api_url)

    def requests(code: str) -> float:
        labels = frozenset({"signal": "traces", "transport": "http", "code": code}.items())
        return samples.get(("onepane_otlp_requests_total", labels), 0.0)

    assert requests("200") == exports
    assert requests("429") == refused
    assert samples[("onepane_spans_accepted_total", frozenset())] == exports * SPANS_PER_EXPORT
    overloaded = frozenset({"reason": "overloaded"}.items())
    assert samples[("onepane_spans_rejected_total", overloaded)] == refused * SPANS_PER_EXPORT
    assert samples[("onepane_write_queue_rows", frozenset())] == 0

    assert server.stop() == 0
    stored = spans_by_trace(server.db)
    assert set(stored) == set(sent)
    assert all(counts == (SPANS_PER_EXPORT, SPANS_PER_EXPORT) for counts in stored.values())


# --- kill -9 -----------------------------------------------------------------------------

KILL_CLIENTS = 4
KILL_SPANS_PER_EXPORT = 50


@dataclass
class AckLog:
    acked_spans: set[str] = field(default_factory=set)
    acked_traces: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def until_failure_client(
    server: LiveServer, transport: str, number: int, stop: threading.Event, log: AckLog
) -> None:
    """Export new traces back to back; stop at the first dropped connection (the kill)."""
    send = otlp_sender(transport, server.otlp_url, server.grpc_address)
    while not stop.is_set():
        trace_id = uuid.uuid4().bytes
        span_ids = new_span_ids(KILL_SPANS_PER_EXPORT)
        answer = send(export_body(trace_id, span_ids, f"crash-client-{number}"))
        if answer.code == "connection":
            return  # the server died under this request: neither acked nor refused
        if not answer.ok or answer.rejected:
            log.failures.append(f"{transport}: {answer}")
            return
        log.acked_spans.update(span_id.hex() for span_id in span_ids)
        log.acked_traces.append(trace_id.hex())


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the server's decoder workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def test_kill_9_loses_no_acknowledged_span(start_server: Callable, tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    server = start_server(db=db)
    helpers = child_pids(server.proc.pid)
    stop = threading.Event()
    logs = [AckLog() for _ in range(KILL_CLIENTS)]
    transports = ["http"] * (KILL_CLIENTS - 1) + ["grpc"]
    threads = [
        threading.Thread(target=until_failure_client, args=(server, transport, n, stop, log))
        for n, (transport, log) in enumerate(zip(transports, logs, strict=True))
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        assert all(thread.is_alive() for thread in threads), "clients stopped before the kill"
        server.kill()
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
    assert not any(thread.is_alive() for thread in threads)
    # Decoder workers notice their server is gone and exit on their own.
    assert _wait_gone(helpers, timeout_s=10) == [], "decoder workers outlived the server"
    assert [failure for log in logs for failure in log.failures] == []

    acked_spans = set().union(*(log.acked_spans for log in logs))
    acked_traces = [trace_id for log in logs for trace_id in log.acked_traces]
    assert len(acked_traces) >= 10, "too few exports acknowledged to mean anything"
    assert len(acked_spans) == len(acked_traces) * KILL_SPANS_PER_EXPORT

    with duckdb.connect(str(db), read_only=True) as conn:
        stored = {row[0] for row in conn.execute("SELECT span_id FROM spans").fetchall()}
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT span_id) FROM spans"
        ).fetchone()
    assert acked_spans - stored == set(), "acknowledged spans missing after kill -9"
    assert rows == distinct  # each span stored once

    restarted = start_server(db=db)
    status, health = restarted.get_json("/healthz")
    assert (status, health["status"]) == (200, "ok")
    last_acked = [log.acked_traces[-1] for log in logs if log.acked_traces]
    for trace_id in last_acked:
        got = restarted.trace(trace_id)
        assert got["span_count"] == KILL_SPANS_PER_EXPORT
        assert got["root_name"] == "GET /work"
        assert got["complete"] is True
    assert restarted.stop() == 0

    with duckdb.connect(str(db), read_only=True) as conn:
        summaries = conn.execute("SELECT trace_id, span_count FROM traces").fetchall()
        stored = dict(
            conn.execute("SELECT trace_id, count(*) FROM spans GROUP BY trace_id").fetchall()
        )
        migrations = conn.execute("SELECT version FROM schema_migrations").fetchall()
    # the restart found the schema current
    assert migrations == [(number,) for number, _, _ in store_db.migrations()]
    assert len(summaries) == len(dict(summaries))  # one row per trace
    # Every stored trace folded exactly once, whether before the crash or after the restart.
    assert dict(summaries) == stored
    assert {trace_id: stored.get(trace_id) for trace_id in acked_traces} == {
        trace_id: KILL_SPANS_PER_EXPORT for trace_id in acked_traces
    }


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """The processes of ``pids`` still alive after up to ``timeout_s``; strays are killed."""
    deadline = time.monotonic() + timeout_s
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _alive(pid)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- clients that hang up -------------------------------------------------------------


def test_a_client_hanging_up_before_its_answer_costs_nothing(start_server: Callable) -> None:
    """An SDK whose export timed out closes the connection; the server commits the export
    anyway, finds no one to answer, says nothing about it and keeps serving."""
    server = start_server()
    address = urlsplit(server.otlp_url)
    sent = []
    for _ in range(3):
        trace_id = uuid.uuid4().bytes
        body = export_body(trace_id, new_span_ids(50), "impatient-client")
        sock = socket.create_connection((address.hostname, address.port))
        head = f"POST /v1/traces HTTP/1.1\r\nHost: onepane\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(f"{head}Content-Type: application/x-protobuf\r\n\r\n".encode() + body)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset: the server's answer will find the connection gone
        sent.append(trace_id.hex())

    conn = connect(server.otlp_url)
    trace_id = uuid.uuid4().bytes
    assert post(conn, export_body(trace_id, new_span_ids(5), "patient-client")).status == 200
    conn.close()
    for hung_up in sent:  # committed before the answer was due, so stored
        assert server.trace(hung_up)["span_count"] == 50
    assert server.stop() == 0
    output = "".join(server.output)
    assert "Traceback" not in output and "Error" not in output, output


# --- background checkpoints -----------------------------------------------------------


def test_background_checkpoints_keep_the_wal_small_and_lose_nothing(
    start_server: Callable, tmp_path: Path
) -> None:
    db = tmp_path / "checkpointed.duckdb"
    server = start_server("--checkpoint-wal-mb", "1", db=db)
    conn = connect(server.otlp_url)
    sent: dict[str, int] = {}
    for _ in range(120):
        trace_id = uuid.uuid4().bytes
        body = export_body(trace_id, new_span_ids(200), "checkpoint-test")
        assert post(conn, body).status == 200
        sent[trace_id.hex()] = 200
    conn.close()

    deadline = time.monotonic() + 20
    while server.metric("onepane_checkpoint_seconds_count") < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.metric("onepane_checkpoint_seconds_count") >= 1, "no background checkpoint"
    wal = Path(f"{db}.wal")
    assert not wal.exists() or wal.stat().st_size < 4 * 1024 * 1024  # 24,000 spans sent
    some_trace = next(iter(sent))
    assert server.trace(some_trace)["span_count"] == 200

    assert server.stop() == 0
    stored = spans_by_trace(db)
    assert {trace_id: counts[0] for trace_id, counts in stored.items()} == sent
