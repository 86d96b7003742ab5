"""Retention in a live `onepane serve`: rows past their group's horizon are deleted, in
steps through the single writer, while OTLP exports keep being answered.

One server serves the module. Its store is seeded before it starts with 150,000 spans
from 20 days ago (a purge of several steps) and with old and recent cost, gate and drift
rows; more old and recent spans, metric points and log records arrive over OTLP/HTTP.
The server is stopped before the store file is read back.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from onepane.config import read_file, retention_config
from onepane.errors import ConfigError
from onepane.testing import LiveServer, otlp_sender, wait_for
from store import db, summary

SECOND = 1_000_000_000
DAY = 86_400 * SECOND
SEEDED_SPANS = 60_000  # 3 per trace, 20 days old: six delete steps of 10,000
CONFIG = """\
retention:
  spans: 15d
  metrics: 30d
  logs: 15d
  cost: 400d
  drift: 90d
  gate: 400d
  interval: 2s
  chunk_rows: 10000
"""
OLD_OTLP_TRACES = 20  # of 3 spans, 20 days old, from service old-svc
OLD_POINTS, RECENT_POINTS = 30, 10  # 40 days old / a minute old
OLD_LOGS, RECENT_LOGS = 25, 5  # 20 days old / a minute old
COUNTED = ("spans", "traces", "metric_points", "logs", "cost_pod_hours", "gate_decisions",
           "drift_runs", "drift_run_columns")  # fmt: skip

_SEED_SPANS = """
INSERT INTO spans BY NAME
SELECT i // 3 + 1 AS trace_key, printf('%032x', i // 3 + 1) AS trace_id,
       printf('%016x', i + 1) AS span_id,
       CASE WHEN i % 3 = 0 THEN NULL ELSE printf('%016x', i - i % 3 + 1) END AS parent_span_id,
       'GET /archive' AS name, 2 AS kind,
       make_timestamp_ns($t0 + i * 10_000_000) AS start_time,
       make_timestamp_ns($t0 + i * 10_000_000 + 5_000_000) AS end_time,
       5_000_000 AS duration_ns, 0 AS status_code, 'archive' AS service_name,
       'shop/archive' AS workload, 'api' AS role, 42 AS resource_id, '{}' AS attributes,
       i // 3_000 + 1 AS batch_no
FROM range($n) r(i)
"""
_SEED_COST = """
INSERT INTO cost_pod_hours BY NAME
SELECT make_timestamp_ns($hour) AS hour, 'uid-' || $hour AS pod_uid, 'shop' AS namespace,
       'api-0' AS pod, 'shop/api' AS workload, 1.0 AS hours, 1.0 AS cpu_core_hours,
       1.0 AS ram_byte_hours, 0.0 AS gpu_hours, 0.1 AS cpu_cost, 0.1 AS ram_cost,
       0.0 AS gpu_cost, 0.2 AS total_cost, 1 AS price_version, 'test' AS price_source,
       '{}' AS labels
"""
_SEED_GATE = """
INSERT INTO gate_decisions (decision_id, time, action, workload, environment, verdict, document)
VALUES ($id, make_timestamp_ns($time), 'check', 'shop/api', 'production', 'pass', '{}')
"""
_SEED_DRIFT = """
INSERT INTO drift_runs (run_id, time, model_name, reference_id, window_start, window_end,
    trigger, rows, status, columns, drifted, share_threshold, seconds, report_status)
VALUES ($id, make_timestamp_ns($time), 'fraud-model', 1, make_timestamp_ns($time),
    make_timestamp_ns($time), 'manual', 100, 'no drift', 1, 0, 0.5, 0.1, 'ready')
"""
_SEED_DRIFT_COLUMN = """
INSERT INTO drift_run_columns (run_id, name, type, status, reference_count, current_count)
VALUES ($id, 'amount', 'numerical', 'no drift', 100, 100)
"""


def _seed(path: Path, now: int) -> None:
    conn = db.connect(path)
    conn.execute('INSERT INTO resources VALUES (42, \'{"service.name":"archive"}\')')
    conn.execute(_SEED_SPANS, {"t0": now - 20 * DAY, "n": SEEDED_SPANS})
    summary.fold(conn, summary.last_batch(conn))
    for hour in (now - 500 * DAY, now - 100 * DAY):
        conn.execute(_SEED_COST, {"hour": hour})
    for decision_id, days in ((1, 500), (2, 1)):
        conn.execute(_SEED_GATE, {"id": decision_id, "time": now - days * DAY})
    reports = Path(f"{path}.reports")
    reports.mkdir()
    for run_id, days in ((1, 100), (2, 1)):
        conn.execute(_SEED_DRIFT, {"id": run_id, "time": now - days * DAY})
        conn.execute(_SEED_DRIFT_COLUMN, {"id": run_id})
        (reports / f"{run_id}.html").write_text("<html>report</html>")
    conn.close()


def _resource(service: str) -> Resource:
    return Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])


def _traces(service: str, start: int, traces: int, key: int) -> bytes:
    """``traces`` traces of a root span and two children, starting ``start`` (Unix ns);
    trace ids are 8 bytes of ``key`` then the trace's number."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add(resource=_resource(service)).scope_spans.add().spans
    for t in range(traces):
        trace_id = key.to_bytes(8, "big") + t.to_bytes(8, "big")
        root = spans.add(trace_id=trace_id, span_id=(t * 3 + 1).to_bytes(8, "big"))
        for i in range(3):
            span = root if i == 0 else spans.add(trace_id=trace_id, parent_span_id=root.span_id)
            if i:
                span.span_id = (t * 3 + 1 + i).to_bytes(8, "big")
            span.name, span.kind = f"step {i}", 2
            span.start_time_unix_nano = start + t * SECOND + i * 1_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + 50_000_000
    return request.SerializeToString()


def _points(times: list[int]) -> bytes:
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add(resource=_resource("metered")).scope_metrics.add()
    points = [NumberDataPoint(time_unix_nano=t, as_double=1.0) for t in times]
    scope.metrics.append(Metric(name="queue.depth", gauge=Gauge(data_points=points)))
    return request.SerializeToString()


def _logs(times: list[int]) -> bytes:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add(resource=_resource("logger")).scope_logs.add().log_records
    for t in times:
        records.append(LogRecord(time_unix_nano=t, body=AnyValue(string_value="hello")))
    return request.SerializeToString()


def _deleted(server: LiveServer, table: str) -> float:
    return server.samples().get(
        ("onepane_retention_deleted_rows_total", frozenset({("table", table)})), 0.0
    )


@pytest.fixture(scope="module")
def purged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Everything the tests check: OTLP answers during the purge, /metrics at the end,
    and row counts read from the store file after the server stopped."""
    folder = tmp_path_factory.mktemp("retention")
    path, config = folder / "onepane.duckdb", folder / "onepane.yaml"
    now = time.time_ns()
    _seed(path, now)
    config.write_text(CONFIG)
    server = LiveServer(path, "--decoders", "0", "--config", str(config))
    try:
        send = {s: otlp_sender("http", server.otlp_url, server.grpc_address, s) for s in
                ("traces", "metrics", "logs")}  # fmt: skip
        minute = now - 60 * SECOND
        answers = [
            send["traces"](_traces("old-svc", now - 20 * DAY, OLD_OTLP_TRACES, key=1)),
            send["metrics"](_points([now - 40 * DAY + i * SECOND for i in range(OLD_POINTS)])),
            send["metrics"](_points([minute + i * SECOND for i in range(RECENT_POINTS)])),
            send["logs"](_logs([now - 20 * DAY + i * SECOND for i in range(OLD_LOGS)])),
            send["logs"](_logs([minute + i * SECOND for i in range(RECENT_LOGS)])),
        ]
        old_spans = SEEDED_SPANS + 3 * OLD_OTLP_TRACES
        during, key, deleted = [], 100, 0.0
        deadline = time.monotonic() + 120
        while deleted < old_spans and time.monotonic() < deadline:
            key += 1
            answer = send["traces"](_traces("live-svc", minute, 2, key=key))
            deleted = _deleted(server, "spans")
            during.append((answer.code, deleted))
        wait_for(
            "unused resources deleted", lambda: _deleted(server, "resources"), lambda n: n >= 2
        )
        # A resource deleted for want of spans is stored again when the service returns.
        comeback = send["traces"](_traces("old-svc", minute, 1, key=2))
        samples = server.samples()
    finally:
        server.stop()
    conn = duckdb.connect(str(path), read_only=True)
    try:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            for table in COUNTED
        }
        mismatched = conn.execute(
            "SELECT count(*) FROM traces t FULL JOIN (SELECT trace_key, trace_id, count(*) AS n "
            "FROM spans GROUP BY ALL) s USING (trace_key, trace_id) "
            "WHERE s.n IS DISTINCT FROM t.span_count"
        ).fetchall()[0][0]
        dangling = conn.execute(
            "SELECT count(*) FROM spans ANTI JOIN resources USING (resource_id)"
        ).fetchall()[0][0]
        services = dict(
            conn.execute("SELECT service_name, count(*) FROM spans GROUP BY 1").fetchall()
        )
    finally:
        conn.close()
    return {
        "now": now,
        "answers": answers,
        "during": during,
        "comeback": comeback,
        "samples": samples,
        "counts": counts,
        "mismatched": mismatched,
        "dangling": dangling,
        "services": services,
        "reports": sorted(p.name for p in Path(f"{path}.reports").iterdir()),
        "live_spans": 6 * (key - 100),
    }


def test_rows_past_their_horizon_are_deleted_and_recent_rows_kept(purged: dict) -> None:
    assert all(answer.ok for answer in purged["answers"]), purged["answers"]
    counts = purged["counts"]
    assert purged["services"] == {"live-svc": purged["live_spans"], "old-svc": 3}
    assert counts["spans"] == purged["live_spans"] + 3
    assert counts["metric_points"] == RECENT_POINTS
    assert counts["logs"] == RECENT_LOGS
    assert counts["cost_pod_hours"] == 1  # 100 days old: within cost: 400d
    assert counts["gate_decisions"] == 1
    assert (counts["drift_runs"], counts["drift_run_columns"]) == (1, 1)
    assert purged["reports"] == ["2.html"]  # the 100-day-old run's report went with it


def test_every_trace_summary_matches_the_spans_left(purged: dict) -> None:
    assert purged["counts"]["traces"] == purged["counts"]["spans"] // 3
    assert purged["mismatched"] == 0


def test_a_deleted_resource_is_stored_again_when_its_service_returns(purged: dict) -> None:
    assert purged["comeback"].ok
    assert purged["services"]["old-svc"] == 3
    assert purged["dangling"] == 0


def test_ingest_is_answered_during_a_purge_of_several_steps(purged: dict) -> None:
    during = purged["during"]
    old_spans = SEEDED_SPANS + 3 * OLD_OTLP_TRACES
    assert [code for code, _ in during if code != "200"] == []
    assert during[-1][1] == old_spans
    # An export answered after the purge had begun and before it ended: between two reads
    # of the deleted-spans counter that were both part way.
    partway = [
        (before, after)
        for (_, before), (_, after) in itertools.pairwise(during)
        if before > 0 and after < old_spans
    ]
    assert partway, during


def test_metrics_count_deleted_rows_and_the_store_size(purged: dict) -> None:
    samples = purged["samples"]

    def deleted(table: str) -> float:
        return samples[("onepane_retention_deleted_rows_total", frozenset({("table", table)}))]

    assert deleted("spans") == SEEDED_SPANS + 3 * OLD_OTLP_TRACES
    assert deleted("traces") == SEEDED_SPANS // 3 + OLD_OTLP_TRACES
    assert deleted("metric_points") == OLD_POINTS
    assert deleted("logs") == OLD_LOGS
    assert deleted("cost_pod_hours") == deleted("gate_decisions") == deleted("drift_runs") == 1
    assert deleted("resources") >= 2  # archive and old-svc; metered/logger are in use
    last_run = samples[("onepane_retention_last_run_timestamp_seconds", frozenset())]
    assert last_run * 1e9 > purged["now"]
    db_bytes = samples[("onepane_store_bytes", frozenset({("file", "db")}))]
    assert db_bytes > 1_000_000
    assert ("onepane_store_bytes", frozenset({("file", "wal")})) in samples


def _config_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "onepane.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        retention_config(read_file(path))
    return str(caught.value)


def test_retention_settings_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "onepane.yaml"
    path.write_text("retention: {spans: 15d, metrics: 2w, cost: forever, interval: 10m}\n")
    config = retention_config(read_file(path))
    assert config.horizons_s == {"spans": 15 * 86_400, "metrics": 14 * 86_400}
    assert (config.interval_s, config.chunk_rows) == (600, 50_000)
    assert not retention_config({}).enabled  # no section: everything is kept
    assert "unknown key retention.span;" in _config_error(tmp_path, "retention: {span: 15d}\n")
    assert "retention.logs '15 days' is not a duration" in _config_error(
        tmp_path, "retention: {logs: 15 days}\n"
    )
    assert "retention.spans must be a duration with a unit" in _config_error(
        tmp_path, "retention: {spans: 15}\n"
    )
    assert "retention.gpu must be at least 1h" in _config_error(tmp_path, "retention: {gpu: 5m}\n")
    assert "retention.interval must be more than 0" in _config_error(
        tmp_path, "retention: {spans: 1d, interval: 0s}\n"
    )
    assert "retention.chunk_rows must be a whole number of at least 1000" in _config_error(
        tmp_path, "retention: {chunk_rows: 10}\n"
    )
