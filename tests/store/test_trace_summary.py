"""One trace, exported in pieces and out of order, becomes one correct summary and one tree.

The spans come from three services (three OpenTelemetry SDK tracer providers with their own
resources) and are sent with the SDK's OTLP/HTTP protobuf exporter to a live server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

MS = 1_000_000
BASE_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
MISSING_PARENT = 0x0BADC0FFEE0DDF00D  # a span id that is never sent

RESOURCES = {
    "frontend": {
        "service.name": "frontend",
        "service.version": "1.4.2",
        "deployment.environment.name": "prod",
    },
    "scoring-api": {
        "service.name": "scoring-api",
        "service.version": "0.9.0",
        "k8s.namespace.name": "ml",
        "k8s.deployment.name": "scoring",
    },
    "ledger": {
        "service.name": "ledger",
        "k8s.namespace.name": "payments",
        "k8s.cronjob.name": "ledger-reconcile",
    },
}

# Out of order: the deepest children first, the root last; one request mixes two services.
BATCHES = (("select", "predict"), ("reconcile",), ("score", "call", "render"), ("root",))
SPAN_COUNT = 7
ERROR_COUNT = 2
TRACE_START_NS = BASE_NS - 5 * MS  # the skewed orphan starts before the root
TRACE_END_NS = BASE_NS + 130 * MS  # an async db write outlives the request


@dataclass
class CheckoutTrace:
    """The spans of one checkout trace, by short key, as the SDK recorded them."""

    spans: dict[str, ReadableSpan]

    @property
    def trace_id(self) -> str:
        return format(self.spans["root"].context.trace_id, "032x")

    def span_id(self, key: str) -> str:
        return format(self.spans[key].context.span_id, "016x")

    def batch(self, keys: tuple[str, ...]) -> list[ReadableSpan]:
        return [self.spans[key] for key in keys]


def record_checkout_trace() -> CheckoutTrace:
    """Record the trace with the OTel SDK: three services, each its own resource."""
    recorded = InMemorySpanExporter()
    tracers = {}
    for service, attrs in RESOURCES.items():
        provider = TracerProvider(resource=Resource.create(attrs))
        provider.add_span_processor(SimpleSpanProcessor(recorded))
        tracers[service] = provider.get_tracer("checkout-test", "1.0.0")
    spans: dict[str, Any] = {}

    def span(key, service, name, parent, start_ms, end_ms, kind=SpanKind.INTERNAL, **kw):
        context = trace.set_span_in_context(parent) if parent is not None else Context()
        attributes = kw.get("attributes", {})
        started = tracers[service].start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=_ns(start_ms)
        )
        if kw.get("error"):
            started.set_status(Status(StatusCode.ERROR, kw["error"]))
        started.end(end_time=_ns(end_ms))
        spans[key] = started
        return started

    root = span(
        "root",
        "frontend",
        "GET /checkout",
        None,
        0,
        120,
        SpanKind.SERVER,
        attributes={"http.route": "/checkout", "http.request.method": "GET"},
    )
    span("render", "frontend", "render cart", root, 2, 10, error="template missing")
    call = span("call", "frontend", "POST", root, 15, 100, SpanKind.CLIENT)
    score = span(
        "score",
        "scoring-api",
        "POST /score",
        call,
        20,
        95,
        SpanKind.SERVER,
        attributes={"http.route": "/score", "http.response.status_code": 200},
    )
    span(
        "predict",
        "scoring-api",
        "predict fraud",
        score,
        30,
        70,
        attributes={"ml.model.name": "fraud", "ml.model.version": "3"},
        error="model timeout",
    )
    span(
        "select",
        "ledger",
        "INSERT ledger.entries",
        score,
        72,
        130,
        SpanKind.CLIENT,
        attributes={"db.system.name": "postgresql", "db.operation.name": "INSERT"},
    )
    lost_parent = NonRecordingSpan(
        SpanContext(
            root.context.trace_id,
            MISSING_PARENT,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
    span("reconcile", "ledger", "reconcile", lost_parent, -5, 60)
    finished = {s.context.span_id: s for s in recorded.get_finished_spans()}
    assert len(finished) == SPAN_COUNT
    return CheckoutTrace({key: finished[s.context.span_id] for key, s in spans.items()})


def _ns(ms: int) -> int:
    return BASE_NS + ms * MS


def export(otlp_url: str, spans: list[ReadableSpan]) -> None:
    """One OTLP/HTTP protobuf export with the SDK exporter; it returns after the 200."""
    exporter = OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces", timeout=30)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def stored_summaries(db: Path) -> list[dict[str, Any]]:
    """Every row of `traces`, read from the file once the server has let go of it."""
    with duckdb.connect(str(db), read_only=True) as conn:
        cursor = conn.execute(
            "SELECT trace_id, epoch_ns(start_time) AS start_ns, epoch_ns(end_time) AS end_ns,"
            " duration_ns, root_span_id, root_service, root_name, span_count, error_count,"
            " roles, services FROM traces ORDER BY trace_id"
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def expected_summary(checkout: CheckoutTrace) -> dict[str, Any]:
    return {
        "trace_id": checkout.trace_id,
        "start_ns": TRACE_START_NS,
        "end_ns": TRACE_END_NS,
        "duration_ns": 135 * MS,
        "root_span_id": checkout.span_id("root"),
        "root_service": "frontend",
        "root_name": "GET /checkout",
        "span_count": SPAN_COUNT,
        "error_count": ERROR_COUNT,
        "roles": "api,db,inference,internal,pipeline,request",
        "services": "frontend,ledger,scoring-api",
    }


def test_out_of_order_batches_fold_into_one_summary(start_server: Callable) -> None:
    checkout = record_checkout_trace()
    server = start_server()
    for keys in BATCHES:
        export(server.otlp_url, checkout.batch(keys))
    assert server.stop() == 0  # SIGTERM: the writer folds before it exits

    assert stored_summaries(server.db) == [expected_summary(checkout)]


def test_batches_split_over_two_server_lifetimes_make_one_summary(
    start_server: Callable, tmp_path: Path
) -> None:
    checkout = record_checkout_trace()
    db = tmp_path / "lifetimes.duckdb"

    # First lifetime: the deepest children, then the root. Second: the rest, root-less, with
    # the earliest span of all; the second fold must keep the root and widen the start.
    first_half, second_half = (BATCHES[0], BATCHES[3]), (BATCHES[1], BATCHES[2])
    first = start_server(db=db)
    for keys in first_half:
        export(first.otlp_url, checkout.batch(keys))
    assert first.stop() == 0
    assert stored_summaries(db) == [
        {
            **expected_summary(checkout),
            "start_ns": BASE_NS,
            "duration_ns": 130 * MS,
            "span_count": 3,
            "error_count": 1,
            "roles": "db,inference,request",
        }
    ]

    second = start_server(db=db)
    for keys in second_half:
        export(second.otlp_url, checkout.batch(keys))
    assert second.trace(checkout.trace_id)["span_count"] == SPAN_COUNT
    assert second.stop() == 0

    assert stored_summaries(db) == [expected_summary(checkout)]


def test_trace_by_id_is_a_tree_right_after_the_export(server) -> None:
    checkout = record_checkout_trace()
    for keys in BATCHES:
        export(server.otlp_url, checkout.batch(keys))

    got = server.trace(checkout.trace_id.upper())  # ids are accepted in either case

    sid = checkout.span_id
    assert got["trace_id"] == checkout.trace_id
    assert got["span_count"] == SPAN_COUNT
    assert got["error_count"] == ERROR_COUNT
    assert got["start_unix_nano"] == TRACE_START_NS
    assert got["end_unix_nano"] == TRACE_END_NS
    assert got["duration_ns"] == 135 * MS
    assert got["duration_ms"] == pytest.approx(135.0)
    assert (got["root_span_id"], got["root_service"], got["root_name"]) == (
        sid("root"),
        "frontend",
        "GET /checkout",
    )
    assert got["complete"] is False  # one span's parent never arrived
    assert got["root_span_ids"] == [sid("reconcile"), sid("root")]  # by start time
    assert got["roles"] == ["api", "db", "inference", "internal", "pipeline", "request"]
    assert got["services"] == ["frontend", "ledger", "scoring-api"]

    # Depth-first, children by start time: (key, depth, children, orphan).
    expected_tree = [
        ("reconcile", 0, [], True),
        ("root", 0, ["render", "call"], False),
        ("render", 1, [], False),
        ("call", 1, ["score"], False),
        ("score", 2, ["predict", "select"], False),
        ("predict", 3, [], False),
        ("select", 3, [], False),
    ]
    spans = got["spans"]
    assert [(s["span_id"], s["depth"], s["children"], s["orphan"]) for s in spans] == [
        (sid(key), depth, [sid(child) for child in children], orphan)
        for key, depth, children, orphan in expected_tree
    ]
    by_id = {s["span_id"]: s for s in spans}
    assert by_id[sid("reconcile")]["parent_span_id"] == format(MISSING_PARENT, "016x")
    assert by_id[sid("score")]["parent_span_id"] == sid("call")

    # (key, offset from trace start ms, duration ms, role, service, workload, status)
    expected_spans = [
        ("root", 5, 120, "request", "frontend", "default/frontend", "UNSET"),
        ("render", 7, 8, "internal", "frontend", "default/frontend", "ERROR"),
        ("call", 20, 85, "internal", "frontend", "default/frontend", "UNSET"),
        ("score", 25, 75, "api", "scoring-api", "ml/scoring", "UNSET"),
        ("predict", 35, 40, "inference", "scoring-api", "ml/scoring", "ERROR"),
        ("select", 77, 58, "db", "ledger", "payments/ledger-reconcile", "UNSET"),
        ("reconcile", 0, 65, "pipeline", "ledger", "payments/ledger-reconcile", "UNSET"),
    ]
    for key, offset_ms, duration_ms, role, service, workload, status in expected_spans:
        span = by_id[sid(key)]
        assert span["name"] == checkout.spans[key].name
        assert span["offset_ns"] == offset_ms * MS, key
        assert span["duration_ns"] == duration_ms * MS, key
        assert span["duration_ms"] == pytest.approx(duration_ms), key
        assert (span["role"], span["service_name"], span["workload"]) == (role, service, workload)
        assert span["status"]["code"] == status, key

    assert by_id[sid("root")]["kind"] == "SERVER"
    assert by_id[sid("root")]["http_route"] == "/checkout"
    assert by_id[sid("predict")]["status"]["message"] == "model timeout"
    assert (by_id[sid("predict")]["model_name"], by_id[sid("predict")]["model_version"]) == (
        "fraud",
        "3",
    )
    assert by_id[sid("select")]["db_system"] == "postgresql"
    assert by_id[sid("score")]["attributes"]["http.response.status_code"] == 200

    resources = got["resources"]
    assert sorted(r["service.name"] for r in resources.values()) == [
        "frontend",
        "ledger",
        "scoring-api",
    ]
    for span in spans:
        resource = resources[span["resource_id"]]
        assert resource["service.name"] == span["service_name"]
    assert resources[by_id[sid("score")]["resource_id"]]["k8s.deployment.name"] == "scoring"


def test_trace_lookup_errors_are_json(server) -> None:
    status, body = server.get_json("/api/v1/traces/not-a-trace-id")
    assert status == 400
    assert "not-a-trace-id" in body["error"]
    assert "32 hex" in body["error"]

    status, body = server.get_json("/api/v1/traces/" + "ab" * 15)  # a 30-character prefix
    assert status == 404
    assert "no stored trace id starts with " + "ab" * 15 in body["error"]

    status, body = server.get_json("/api/v1/traces/abcdef1")  # too short to be a prefix
    assert status == 400
    assert "too short" in body["error"] and "at least 8" in body["error"]

    unknown = "0123456789abcdef0123456789abcdef"
    status, body = server.get_json(f"/api/v1/traces/{unknown}")
    assert status == 404
    assert unknown in body["error"]
