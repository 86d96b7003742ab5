"""The demo company sends real OTLP/HTTP protobuf traces that link across services."""

from __future__ import annotations

import csv
import gzip
import io
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from drift.methods import Current
from drift.profile import profile, read_table
from drift.run import RunOptions, judge_column, verdict
from onepane.cli import DEMO_CONFIG
from onepane.config import drift_config, read_file
from onepane.demo import DemoCompany, DemoConfig, traffic_rate
from onepane.demo_drift import REFERENCE_ROWS, REFERENCES, training_csv
from onepane.testing import LiveServer

SEED = 1234
NOW_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z


class _OtlpHandler(BaseHTTPRequestHandler):
    """Accepts POST /v1/traces like an OTLP/HTTP receiver and keeps the decoded requests
    (metrics and logs are acknowledged and dropped; a live server checks those)."""

    server: _OtlpServer

    def do_POST(self) -> None:
        if self.path not in ("/v1/traces", "/v1/metrics", "/v1/logs"):
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            with self.server.lock:
                self.server.requests.append(request)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


class _OtlpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OtlpHandler)
        self.lock = threading.Lock()
        self.requests: list[ExportTraceServiceRequest] = []


@dataclass(frozen=True)
class Received:
    """One exported span with the attributes of the resource that sent it."""

    resource: dict[str, Any]
    span: Span

    @property
    def attrs(self) -> dict[str, Any]:
        return _attrs(self.span.attributes)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attrs(key_values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


def _received(server: _OtlpServer) -> list[Received]:
    with server.lock:
        requests = list(server.requests)
    return [
        Received(_attrs(rs.resource.attributes), span)
        for request in requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


@pytest.fixture
def otlp_server() -> Iterator[_OtlpServer]:
    server = _OtlpServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def company(otlp_server: _OtlpServer) -> Iterator[DemoCompany]:
    host, port = otlp_server.server_address[:2]
    demo = DemoCompany(DemoConfig(endpoint=f"http://{host}:{port}", seed=SEED))
    yield demo
    demo.shutdown()


def test_demo_traces_arrive_linked_across_services(
    otlp_server: _OtlpServer, company: DemoCompany
) -> None:
    checkout_id = company.emit_checkout(NOW_NS)
    recommendation_id = company.emit_recommendation(NOW_NS)
    pipeline_id = company.emit_pipeline_run(NOW_NS)
    company.force_flush()
    spans = _received(otlp_server)

    checkout = [r for r in spans if r.span.trace_id.hex() == checkout_id]
    services = {r.resource["service.name"] for r in checkout}
    assert {"web-frontend", "checkout-api", "fraud-model"} <= services
    _assert_one_tree(checkout)
    roots = [r for r in checkout if not r.span.parent_span_id]
    assert roots[0].span.name == "GET /checkout"
    assert roots[0].span.kind == Span.SPAN_KIND_SERVER
    assert roots[0].attrs["http.route"] == "/checkout"

    inference = [r for r in checkout if r.span.name == "predict fraud-model"]
    assert len(inference) == 1
    assert inference[0].attrs["ml.model.name"] == "fraud-model"
    assert inference[0].attrs["ml.model.version"] == "3.2.0"
    assert 0.0 <= inference[0].attrs["ml.prediction"] <= 1.0
    assert "ml.feature.amount" in inference[0].attrs
    db = [r for r in checkout if r.attrs.get("db.system.name") == "postgresql"]
    assert db and db[0].span.kind == Span.SPAN_KIND_CLIENT
    assert db[0].attrs["db.query.text"].startswith("SELECT")

    for r in checkout:
        assert r.resource["k8s.namespace.name"] in {"shop", "ml"}
        assert r.resource["k8s.deployment.name"] == r.resource["service.name"]
        assert r.resource["k8s.pod.name"].startswith(r.resource["service.name"] + "-")
        assert r.resource["deployment.environment.name"] == "prod"
        assert r.resource["onepane.team"]

    recommendation = [r for r in spans if r.span.trace_id.hex() == recommendation_id]
    _assert_one_tree(recommendation)
    recsys = {r.resource["service.name"]: r.resource for r in recommendation}["recsys-model"]
    assert recsys["k8s.node.name"].startswith("gpu-node-")
    assert any(r.attrs.get("db.system.name") == "redis" for r in recommendation)

    pipeline = [r for r in spans if r.span.trace_id.hex() == pipeline_id]
    _assert_one_tree(pipeline)
    root = next(r for r in pipeline if not r.span.parent_span_id)
    assert root.resource["k8s.cronjob.name"] == "nightly-etl"
    assert root.resource["k8s.job.name"].startswith("nightly-etl-")
    assert root.attrs["pipeline.name"] == "nightly-etl"
    assert root.span.end_time_unix_nano == NOW_NS
    assert root.span.end_time_unix_nano - root.span.start_time_unix_nano > 60 * 10**9
    steps = {r.attrs.get("pipeline.step") for r in pipeline} - {None}
    assert steps == {"extract", "transform", "load"}


def test_failed_checkouts_mark_the_failing_span_and_its_ancestors(
    otlp_server: _OtlpServer, company: DemoCompany
) -> None:
    trace_ids = {company.emit_checkout(NOW_NS + i * 10**9) for i in range(250)}
    company.force_flush()
    by_trace: dict[str, list[Received]] = {}
    for r in _received(otlp_server):
        by_trace.setdefault(r.span.trace_id.hex(), []).append(r)
    assert set(by_trace) == trace_ids

    failed = [t for t in by_trace.values() if _root(t).attrs["http.response.status_code"] == 500]
    assert 1 <= len(failed) <= 15  # about 2% of 250
    for trace in failed:
        origin = [r for r in trace if any(e.name == "exception" for e in r.span.events)]
        assert len(origin) == 1
        for r in _ancestors(trace, origin[0]):
            assert r.span.status.code == Status.STATUS_CODE_ERROR
            assert r.span.status.message


def test_same_seed_gives_same_traces(otlp_server: _OtlpServer) -> None:
    host, port = otlp_server.server_address[:2]
    config = DemoConfig(endpoint=f"http://{host}:{port}", seed=SEED)
    first, second = DemoCompany(config), DemoCompany(config)
    try:
        assert first.pods == second.pods
        assert first.emit_checkout(NOW_NS) == second.emit_checkout(NOW_NS)
    finally:
        first.shutdown()
        second.shutdown()


def test_traffic_has_a_daily_shape_never_below_a_fifth_of_peak() -> None:
    config = DemoConfig(rate=50.0, day_seconds=100.0)
    rates = [traffic_rate(config, t / 10) for t in range(1000)]
    assert max(rates) == pytest.approx(50.0, rel=0.01)
    assert min(rates) >= 0.2 * 50.0 - 1e-9
    assert min(rates) == pytest.approx(10.0, rel=0.01)


def _root(trace: list[Received]) -> Received:
    return next(r for r in trace if not r.span.parent_span_id)


def _assert_one_tree(trace: list[Received]) -> None:
    """One root; every other span's parent is a span of the same trace."""
    ids = {r.span.span_id for r in trace}
    assert len(ids) == len(trace)
    assert len([r for r in trace if not r.span.parent_span_id]) == 1
    for r in trace:
        assert not r.span.parent_span_id or r.span.parent_span_id in ids


def _ancestors(trace: list[Received], start: Received) -> Iterator[Received]:
    by_id = {r.span.span_id: r for r in trace}
    current: Received | None = start
    while current is not None:
        yield current
        current = by_id.get(current.span.parent_span_id)


def test_demo_metrics_and_logs_land_in_a_live_server(server: LiveServer) -> None:
    demo = DemoCompany(DemoConfig(endpoint=server.otlp_url, seed=SEED, metrics_interval_s=3600))
    try:
        now = time.time_ns()
        trace_ids = [demo.emit_checkout(now + i * 10**6) for i in range(120)]
        for i in range(20):
            demo.emit_recommendation(now + i * 10**6)
        demo.emit_pipeline_run(now)
        demo.force_flush()
    finally:
        demo.shutdown()

    catalog = {m["name"]: m for m in server.get_json("/api/v1/metrics")[1]["metrics"]}
    durations = catalog["http.server.request.duration"]
    assert (durations["type"], durations["unit"]) == ("histogram", "s")
    assert "shop/checkout-api" in durations["workloads"]
    assert catalog["k8s.pod.cpu.usage"]["type"] == "gauge"
    assert len(catalog["k8s.pod.cpu.usage"]["workloads"]) == 5
    predictions = server.get_json("/api/v1/metrics/ml.predictions/points?workload=ml/fraud-model")
    # Cumulative: the flush and the shutdown each export the same running total.
    points = predictions[1]["points"]
    assert [p["value"] for p in points] == [120] * len(points)
    assert points[0]["temporality"] == "cumulative"
    assert points[0]["attributes"] == {
        "ml.model.name": "fraud-model",
        "ml.model.version": "3.2.0",
    }
    frontend = server.get_json(
        "/api/v1/metrics/http.server.request.duration/points?workload=shop/web-frontend"
    )[1]["points"]
    latest = {tuple(sorted(p["attributes"].items())): p["count"] for p in frontend}
    assert sum(latest.values()) == 120  # one series per status code, 200 and 500
    assert {dict(key)["http.route"] for key in latest} == {"/checkout"}

    logs = server.get_json("/api/v1/logs?limit=1000")[1]["logs"]
    errors = [log for log in logs if log["severity_text"] == "ERROR"]
    assert errors, "about 2% of 120 checkouts fail; seed 1234 has failures"
    for log in errors:
        assert log["trace_id"] in trace_ids
        trace = server.trace(log["trace_id"])
        failing = [
            (span, log)
            for span in trace["spans"]
            for log in span["logs"]
            if log["severity_text"] == "ERROR"
        ]
        assert len(failing) == 1  # logged once, inside the span where it failed
        span, record = failing[0]
        assert span["status"]["code"] == "ERROR"
        assert record["body"].endswith(span["status"]["message"])
        assert record["attributes"]["exception.message"] == span["status"]["message"]
    pipeline_logs = server.get_json("/api/v1/logs?workload=data/nightly-etl")[1]["logs"]
    assert sorted(log["body"].split(":")[0] for log in pipeline_logs) == [
        "extract",
        "load",
        "transform",
    ]


def test_hourly_fraud_model_incident_is_what_trace_search_finds(server: LiveServer) -> None:
    demo = DemoCompany(DemoConfig(endpoint=server.otlp_url, seed=SEED, metrics_interval_s=3600))
    minute = 60 * 10**9
    demo.started_ns = time.time_ns() - 80 * minute  # incidents at +1..5 min and +61..65 min
    try:
        emitted = {}
        for i in range(150):  # a checkout every 30 s for 75 minutes
            at = demo.started_ns + i * minute // 2
            emitted[demo.emit_checkout(at)] = demo.in_incident(at)
        demo.force_flush()
    finally:
        demo.shutdown()
    incident = {trace_id for trace_id, slow in emitted.items() if slow}
    assert len(incident) == 16  # 8 checkouts in each of the two 4-minute spells

    window = f"start={(demo.started_ns - minute) // 10**9}&end={time.time_ns() // 10**9 + 60}"
    query = f"/api/v1/traces?model=fraud-model&min_duration_ms=400&limit=100&{window}"
    found = _search_until(server, query, len(incident))
    found_ids = {t["trace_id"] for t in found}
    assert incident <= found_ids
    assert len(found_ids - incident) <= 2  # the model's rare slow predictions outside them
    tops = [
        summary["where_the_time_went"]
        for summary in found
        if summary["trace_id"] in incident and not summary["error_count"]
    ]
    fraud_first = [split for split in tops if split["by_service"][0]["service"] == "fraud-model"]
    assert len(fraud_first) >= len(tops) - 1  # a slow card charge can outweigh it once
    for split in fraud_first:
        assert split["by_role"]["inference"]["share"] > 0.5
        assert split["headline"].endswith("% in fraud-model inference")

    calm = next(trace_id for trace_id, slow in emitted.items() if not slow)
    share = server.trace(calm)["where_the_time_went"]["by_role"]["inference"]["share"]
    assert share < 0.5


def _search_until(server: LiveServer, query: str, at_least: int) -> list[dict[str, Any]]:
    """Search until the summaries (folded about once a second) show ``at_least`` traces."""
    deadline = time.monotonic() + 15
    while True:
        status, body = server.get_json(query)
        assert status == 200, body
        if len(body["traces"]) >= at_least or time.monotonic() > deadline:
            return body["traces"]
        time.sleep(0.2)


def test_fraud_model_amounts_drift_after_one_simulated_day_and_only_they(
    otlp_server: _OtlpServer,
) -> None:
    host, port = otlp_server.server_address[:2]
    day_s = 10.0
    config = DemoConfig(
        endpoint=f"http://{host}:{port}", seed=SEED, day_seconds=day_s, metrics_interval_s=3600
    )
    demo = DemoCompany(config)
    day = int(day_s * 10**9)
    try:
        assert not demo.amount_drifted(demo.started_ns + day - 1)
        assert demo.amount_drifted(demo.started_ns + day)
        first = {demo.emit_checkout(demo.started_ns + i * 10**7) for i in range(250)}
        second = {demo.emit_checkout(demo.started_ns + day + i * 10**7) for i in range(500)}
        demo.force_flush()
    finally:
        demo.shutdown()
    inputs: dict[str, list[dict[str, Any]]] = {"first": [], "second": []}
    for r in _received(otlp_server):
        if r.span.name == "predict fraud-model":
            trace_id = r.span.trace_id.hex()
            day_of = "first" if trace_id in first else "second" if trace_id in second else None
            assert day_of is not None
            inputs[day_of].append(r.attrs)
    assert [len(v) for v in inputs.values()] == [250, 500]

    def median(day_of: str, feature: str) -> float:
        return statistics.median(a[f"ml.feature.{feature}"] for a in inputs[day_of])

    def country_shares(day_of: str) -> dict[str, float]:
        counts = Counter(a["ml.feature.country"] for a in inputs[day_of])
        return {c: n / len(inputs[day_of]) for c, n in counts.items()}

    assert 50 < median("first", "amount") < 72  # lognormal, median 60: what it was trained on
    assert 125 < median("second", "amount") < 180  # median 150 from the second day on
    # Its other inputs keep their distribution.
    assert 0.8 < median("second", "account_age_days") / median("first", "account_age_days") < 1.25
    before, after = country_shares("first"), country_shares("second")
    assert set(before) == set(after) == {"DE", "FR", "NL", "ES", "US", "BR"}
    assert all(abs(before[c] - after[c]) < 0.08 for c in before)

    # A drift run with demo.yaml's settings, against the reference the demo registers,
    # flags the amounts and nothing else (Evidently's tests, as the server runs them).
    settings = drift_config(read_file(DEMO_CONFIG))
    options = RunOptions(min_rows=settings.min_rows, drift_share=settings.drift_share)
    fraud = REFERENCES[0]
    reference = profile(read_table(training_csv(fraud, SEED), "fraud-model.csv")).columns
    judged = {}
    for name, ref in reference.items():
        values = [a[f"ml.feature.{name}"] for a in inputs["second"]]
        if ref.type == "numerical":
            current = Current(len(values), 0, values=np.array(values, dtype=float))
        else:
            current = Current(len(values), 0, categories=dict(Counter(values)))
        judged[name] = judge_column(ref, current, len(values), options)
    assert {name: c["status"] for name, c in judged.items()} == {
        "amount": "drift",
        "country": "no drift",
        "account_age_days": "no drift",
    }
    assert judged["amount"]["method"] == "wasserstein"
    outcome = verdict(list(judged.values()), len(inputs["second"]), options)
    assert (outcome["status"], outcome["drifted"], outcome["columns"]) == ("drift", 1, 3)


def test_the_models_training_data_is_their_undrifted_inputs() -> None:
    fraud, recsys = REFERENCES
    assert (fraud.model, fraud.version, recsys.model) == ("fraud-model", "3.2.0", "recsys-model")
    data = training_csv(fraud, seed=SEED)
    assert data == training_csv(fraud, seed=SEED)  # the same seed, the same file
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert len(rows) == REFERENCE_ROWS == 5000
    assert list(rows[0]) == ["amount", "country", "account_age_days"]
    assert 57 < statistics.median(float(r["amount"]) for r in rows) < 63
    assert {r["country"] for r in rows} == {"DE", "FR", "NL", "ES", "US", "BR"}
    assert all(r["account_age_days"].isdigit() for r in rows)
    header = training_csv(recsys, seed=SEED).decode().splitlines()[0]
    assert header == "items_viewed_7d,user_segment"
