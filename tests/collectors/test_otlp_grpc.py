"""The OTLP/gRPC receiver (:4317) of a live `onepane serve`, driven by real gRPC clients.

The OpenTelemetry SDK's gRPC exporters send spans, metrics and logs as an application
would; a raw ``grpc`` channel sends what no SDK would (garbage, invalid items, a flood).
One server serves the module; every test uses its own trace ids, metric names and
workloads and measures counters as differences, so the tests do not depend on each other.
The backpressure test starts a server of its own with a one-row write queue.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import Compression
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from onepane.testing import LiveServer

SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}
REQUESTS: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}
RESPONSES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceResponse,
    "metrics": ExportMetricsServiceResponse,
    "logs": ExportLogsServiceResponse,
}
COMPRESSIONS = pytest.mark.parametrize(
    "compression", [None, Compression.Gzip], ids=["uncompressed", "gzip"]
)
NOW_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def otlp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server (one decoder process) for this module."""
    live = LiveServer(tmp_path_factory.mktemp("otlp-grpc") / "onepane.duckdb", "--decoders", "1")
    yield live
    if live.stop() != 0:
        pytest.fail("onepane serve did not stop cleanly:\n" + "".join(live.output))


@pytest.fixture(scope="module")
def channel(otlp: LiveServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(otlp.grpc_address) as chan:
        yield chan


# --- a raw gRPC client -------------------------------------------------------------------


@dataclass
class Outcome:
    """What one Export call got back: its status, and on OK the parsed response."""

    code: grpc.StatusCode
    details: str
    trailers: dict[str, Any]
    response: Any = None

    def status(self) -> status_pb2.Status:
        """The google.rpc.Status the server put in ``grpc-status-details-bin``."""
        return status_pb2.Status.FromString(self.trailers["grpc-status-details-bin"])

    def retry_info(self) -> error_details_pb2.RetryInfo:
        """The RetryInfo under the key the OpenTelemetry SDKs read."""
        return error_details_pb2.RetryInfo.FromString(self.trailers["google.rpc.retryinfo-bin"])


def export(
    channel: grpc.Channel,
    signal: str,
    body: bytes | Message,
    compression: Compression | None = None,
) -> Outcome:
    """One raw ``Export`` call to the ``signal`` service; bytes are sent as they are."""
    call = channel.unary_unary(
        f"/{SERVICES[signal]}/Export", request_serializer=None, response_deserializer=None
    )
    raw = body if isinstance(body, bytes) else body.SerializeToString()
    try:
        reply, rpc = call.with_call(raw, timeout=60, compression=compression)
    except grpc.RpcError as error:
        return Outcome(error.code(), error.details(), dict(error.trailing_metadata() or ()))
    response = RESPONSES[signal].FromString(reply)
    return Outcome(grpc.StatusCode.OK, "", dict(rpc.trailing_metadata() or ()), response)


def export_ok(channel: grpc.Channel, signal: str, body: bytes | Message) -> Any:
    """Export and insist on a plain OK (no partial success); returns the response."""
    outcome = export(channel, signal, body)
    assert outcome.code == grpc.StatusCode.OK, (outcome.code, outcome.details)
    assert not outcome.response.HasField("partial_success"), outcome.response
    return outcome.response


def grpc_requests(server: LiveServer) -> dict[tuple[str, str], float]:
    """onepane_otlp_requests_total over gRPC, by (signal, status code name)."""
    counts = {}
    for (name, labels), value in server.samples().items():
        label = dict(labels)
        if name == "onepane_otlp_requests_total" and label["transport"] == "grpc":
            counts[label["signal"], label["code"]] = value
    return counts


def grpc_requests_since(server: LiveServer, before: dict[tuple[str, str], float]) -> dict:
    """The gRPC requests answered since ``before`` was read, by (signal, code)."""
    now = grpc_requests(server)
    return {key: now[key] - before.get(key, 0) for key in now if now[key] != before.get(key, 0)}


def api(server: LiveServer, path: str, **query: str) -> dict[str, Any]:
    """GET an API path with query parameters; insists on 200."""
    url = path + ("?" + urllib.parse.urlencode(query) if query else "")
    status, body = server.get_json(url)
    assert status == 200, (url, status, body)
    return body


def metric_points(server: LiveServer, name: str, **query: str) -> list[dict[str, Any]]:
    quoted = urllib.parse.quote(name, safe="")
    return api(server, f"/api/v1/metrics/{quoted}/points", **query)["points"]


# --- building OTLP requests by hand --------------------------------------------------------


def new_trace_id() -> bytes:
    return b"\x6c" + secrets.token_bytes(15)


def new_span_id() -> bytes:
    return b"\x2a" + secrets.token_bytes(7)


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def resource(service: str) -> ResourceProto:
    return ResourceProto(attributes=[kv("service.name", service)])


def span(trace_id: bytes, span_id: bytes, name: str, parent: bytes = b"", offset_ms: int = 0):
    start = NOW_NS + offset_ms * 1_000_000
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_SERVER if not parent else Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 3_000_000,
    )


def trace_request(spans: list[Span], service: str = "grpc-raw") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource(service), scope_spans=[ScopeSpans(spans=spans)])
        ]
    )


def small_trace(name: str, children: int = 2) -> tuple[str, ExportTraceServiceRequest]:
    """A root span and ``children`` child spans; the trace id in hex and the request."""
    trace_id, root = new_trace_id(), new_span_id()
    spans = [span(trace_id, root, name)]
    spans += [
        span(trace_id, new_span_id(), f"step {i}", parent=root, offset_ms=i + 1)
        for i in range(children)
    ]
    return trace_id.hex(), trace_request(spans)


def metrics_request(metrics: list[Metric], service: str) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=resource(service), scope_metrics=[ScopeMetrics(metrics=metrics)]
            )
        ]
    )


def gauge(name: str, value: float) -> Metric:
    return Metric(
        name=name,
        gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=NOW_NS, as_double=value)]),
    )


def logs_request(records: list[LogRecord], service: str = "grpc-raw") -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=resource(service), scope_logs=[ScopeLogs(log_records=records)])
        ]
    )


def log_record(body: str, trace_id: bytes = b"", span_id: bytes = b"") -> LogRecord:
    return LogRecord(
        time_unix_nano=NOW_NS,
        severity_number=17,
        severity_text="ERROR",
        body=AnyValue(string_value=body),
        trace_id=trace_id,
        span_id=span_id,
    )


# --- the SDK exporters -------------------------------------------------------------------


def sdk_resource(service: str, deployment: str) -> Resource:
    return Resource.create(
        {
            "service.name": service,
            "k8s.namespace.name": "shop",
            "k8s.deployment.name": deployment,
        }
    )


def tracer_provider(
    server: LiveServer, resource: Resource, compression: Compression | None
) -> TracerProvider:
    """A TracerProvider exporting every span, as it ends, through the SDK's gRPC exporter."""
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(
        endpoint=server.grpc_address, insecure=True, compression=compression
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@COMPRESSIONS
def test_sdk_span_exporter_trace_across_two_services(
    otlp: LiveServer, compression: Compression | None
) -> None:
    tag = "gzip" if compression else "plain"
    before = grpc_requests(otlp)
    storefront = tracer_provider(otlp, sdk_resource("storefront", f"storefront-{tag}"), compression)
    inventory = tracer_provider(
        otlp, sdk_resource("inventory-api", f"inventory-{tag}"), compression
    )
    try:
        front, back = storefront.get_tracer("storefront"), inventory.get_tracer("inventory")
        with front.start_as_current_span(
            "GET /products/{id}", kind=SpanKind.SERVER, attributes={"http.route": "/products/{id}"}
        ) as root:
            with (
                front.start_as_current_span("GET inventory", kind=SpanKind.CLIENT),
                back.start_as_current_span(
                    "GET /stock/{sku}", kind=SpanKind.SERVER, attributes={"http.route": "/stock"}
                ),
                back.start_as_current_span(
                    "SELECT stock",
                    kind=SpanKind.CLIENT,
                    attributes={"db.system.name": "postgresql", "db.operation.name": "SELECT"},
                ),
            ):
                pass
            with front.start_as_current_span("render page"):
                pass
        trace_id = format(root.get_span_context().trace_id, "032x")
    finally:
        storefront.shutdown()
        inventory.shutdown()

    # Every span was its own export (SimpleSpanProcessor), each answered OK.
    assert grpc_requests_since(otlp, before) == {("traces", "OK"): 5}
    trace = otlp.trace(trace_id)
    assert [s["name"] for s in trace["spans"]] == [
        "GET /products/{id}",
        "GET inventory",
        "GET /stock/{sku}",
        "SELECT stock",
        "render page",
    ]
    assert [s["depth"] for s in trace["spans"]] == [0, 1, 2, 3, 1]
    assert [s["role"] for s in trace["spans"]] == ["request", "internal", "api", "db", "internal"]
    assert [s["service_name"] for s in trace["spans"]] == [
        "storefront",
        "storefront",
        "inventory-api",
        "inventory-api",
        "storefront",
    ]
    assert [s["workload"] for s in trace["spans"]] == [
        f"shop/storefront-{tag}",
        f"shop/storefront-{tag}",
        f"shop/inventory-{tag}",
        f"shop/inventory-{tag}",
        f"shop/storefront-{tag}",
    ]
    spans = trace["spans"]
    assert spans[2]["parent_span_id"] == spans[1]["span_id"]  # the hop between services
    assert spans[0]["children"] == [spans[1]["span_id"], spans[4]["span_id"]]
    assert (spans[3]["db_system"], spans[3]["db_operation"]) == ("postgresql", "SELECT")
    assert trace["span_count"] == 5 and trace["complete"] is True
    assert (trace["root_name"], trace["root_service"]) == ("GET /products/{id}", "storefront")
    assert trace["services"] == ["inventory-api", "storefront"]
    assert trace["roles"] == ["api", "db", "internal", "request"]
    assert len(trace["resources"]) == 2


def _record_metrics(provider: MeterProvider, prefix: str) -> None:
    meter = provider.get_meter("checkout", "1.4.0")
    orders = meter.create_counter(f"{prefix}.orders", unit="{order}", description="Orders placed")
    orders.add(3, {"payment": "card"})
    orders.add(4, {"payment": "card"})
    latency = meter.create_histogram(
        f"{prefix}.latency", unit="ms", explicit_bucket_boundaries_advisory=[10.0, 100.0, 1000.0]
    )
    for value in (5.0, 7.0, 20.0, 300.0):
        latency.record(value)

    def utilization(options: CallbackOptions) -> list[Observation]:
        return [Observation(0.75, {"gpu": "0"})]

    meter.create_observable_gauge(f"{prefix}.gpu_utilization", [utilization], unit="1")


@COMPRESSIONS
def test_sdk_metric_exporter_stores_counter_histogram_and_gauge(
    otlp: LiveServer, compression: Compression | None
) -> None:
    tag = "gzip" if compression else "plain"
    prefix, workload = f"grpc.{tag}", f"shop/checkout-{tag}"
    exporter = OTLPMetricExporter(
        endpoint=otlp.grpc_address, insecure=True, compression=compression
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        metric_readers=[reader], resource=sdk_resource("checkout-api", f"checkout-{tag}")
    )
    try:
        _record_metrics(provider, prefix)
        before = grpc_requests(otlp)
        assert provider.force_flush(10_000)
        assert grpc_requests_since(otlp, before) == {("metrics", "OK"): 1}

        catalog = api(otlp, "/api/v1/metrics", workload=workload)["metrics"]
        assert [(m["name"], m["type"], m["unit"]) for m in catalog] == [
            (f"{prefix}.gpu_utilization", "gauge", "1"),
            (f"{prefix}.latency", "histogram", "ms"),
            (f"{prefix}.orders", "sum", "{order}"),
        ]
        orders_entry = catalog[2]
        assert orders_entry["description"] == "Orders placed"
        assert (orders_entry["temporality"], orders_entry["monotonic"]) == ("cumulative", True)
        assert all(m["workloads"] == [workload] for m in catalog)
        assert all((m["points"], m["series"]) == (1, 1) for m in catalog)

        [orders] = metric_points(otlp, f"{prefix}.orders")
        assert (orders["metric_type"], orders["value"]) == ("sum", 7.0)
        assert orders["attributes"] == {"payment": "card"}
        assert (orders["workload"], orders["service_name"]) == (workload, "checkout-api")
        assert orders["scope_name"] == "checkout"
        assert orders["start_unix_nano"] < orders["time_unix_nano"]

        [latency] = metric_points(otlp, f"{prefix}.latency")
        assert (latency["count"], latency["sum"]) == (4, 332.0)
        assert (latency["min"], latency["max"]) == (5.0, 300.0)
        assert latency["explicit_bounds"] == [10.0, 100.0, 1000.0]
        assert latency["bucket_counts"] == [2, 1, 1, 0]
        assert latency["workload"] == workload

        [utilization] = metric_points(otlp, f"{prefix}.gpu_utilization")
        assert (utilization["metric_type"], utilization["value"]) == ("gauge", 0.75)
        assert utilization["attributes"] == {"gpu": "0"}
        assert utilization["workload"] == workload
    finally:
        provider.shutdown()


@COMPRESSIONS
def test_sdk_log_exporter_puts_a_log_under_its_span(
    otlp: LiveServer, compression: Compression | None
) -> None:
    tag = "gzip" if compression else "plain"
    sdk = sdk_resource("payments", f"payments-{tag}")
    tracer = tracer_provider(otlp, sdk, compression)
    logger_provider = LoggerProvider(resource=sdk)
    exporter = OTLPLogExporter(endpoint=otlp.grpc_address, insecure=True, compression=compression)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with warnings.catch_warnings():  # the SDK's handler is deprecated, still the documented one
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=logger_provider)
    log = logging.getLogger(f"onepane.test.grpc.payments.{tag}")
    log.propagate = False
    log.addHandler(handler)
    try:
        with (
            tracer.get_tracer("payments").start_as_current_span(
                "POST /pay", kind=SpanKind.SERVER
            ) as root,
            tracer.get_tracer("payments").start_as_current_span("charge card") as charge,
        ):
            log.error("payment declined for order %s", f"o-17-{tag}")
        trace_id = format(root.get_span_context().trace_id, "032x")
        charge_id = format(charge.get_span_context().span_id, "016x")
    finally:
        log.removeHandler(handler)
        logger_provider.shutdown()
        tracer.shutdown()

    trace = otlp.trace(trace_id)
    spans = {s["name"]: s for s in trace["spans"]}
    assert spans["POST /pay"]["logs"] == []
    [record] = spans["charge card"]["logs"]
    assert (record["severity_text"], record["severity_number"]) == ("ERROR", 17)
    assert record["body"] == f"payment declined for order o-17-{tag}"
    assert (record["service_name"], record["workload"]) == ("payments", f"shop/payments-{tag}")
    assert trace["log_count"] == 1 and trace["logs"] == []

    [found] = api(otlp, "/api/v1/logs", trace_id=trace_id)["logs"]
    assert (found["trace_id"], found["span_id"]) == (trace_id, charge_id)
    assert found["body"] == record["body"]
    assert found["severity_text"] == "ERROR"


# --- bad input -----------------------------------------------------------------------------


def _valid_request(signal: str) -> Message:
    """A small valid export of ``signal``."""
    if signal == "traces":
        return small_trace("GET /after-garbage")[1]
    if signal == "metrics":
        return metrics_request([gauge("grpc.after_garbage", 1.0)], "grpc-raw")
    return logs_request([log_record("after garbage")])


@pytest.mark.parametrize("signal", list(SERVICES))
def test_garbage_is_invalid_argument_with_the_reason(
    otlp: LiveServer, channel: grpc.Channel, signal: str
) -> None:
    before = grpc_requests(otlp)
    outcome = export(channel, signal, b"this is not protobuf")
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    message_name = REQUESTS[signal].DESCRIPTOR.name
    assert f"body is not a valid {message_name} protobuf message" in outcome.details
    status = outcome.status()
    assert (status.code, status.message) == (code_pb2.INVALID_ARGUMENT, outcome.details)
    assert list(status.details) == []  # nothing to retry: no RetryInfo
    assert "google.rpc.retryinfo-bin" not in outcome.trailers

    # The server keeps serving the same service.
    export_ok(channel, signal, _valid_request(signal))
    assert grpc_requests_since(otlp, before) == {
        (signal, "INVALID_ARGUMENT"): 1,
        (signal, "OK"): 1,
    }


def test_invalid_span_is_a_partial_success_and_the_rest_is_stored(
    otlp: LiveServer, channel: grpc.Channel
) -> None:
    rejected_before = otlp.metric("onepane_spans_rejected_total")
    trace_id, root = new_trace_id(), new_span_id()
    request = trace_request(
        [
            span(trace_id, root, "GET /partial"),
            span(trace_id, b"\x01\x02\x03", "short id", parent=root, offset_ms=1),
            span(trace_id, new_span_id(), "kept child", parent=root, offset_ms=2),
        ]
    )
    outcome = export(channel, "traces", request)
    assert outcome.code == grpc.StatusCode.OK
    partial = outcome.response.partial_success
    assert partial.rejected_spans == 1
    assert "'short id'" in partial.error_message
    assert "span_id must be 8 non-zero bytes" in partial.error_message
    assert "got 3 bytes" in partial.error_message

    trace = otlp.trace(trace_id.hex())
    assert [s["name"] for s in trace["spans"]] == ["GET /partial", "kept child"]
    assert otlp.metric("onepane_spans_rejected_total") - rejected_before == 1


def test_mismatched_histogram_buckets_are_rejected_data_points(
    otlp: LiveServer, channel: grpc.Channel
) -> None:
    name = "grpc.partial.latency"
    histogram = Metric(
        name=name,
        histogram=Histogram(
            aggregation_temporality=2,
            data_points=[
                HistogramDataPoint(
                    time_unix_nano=NOW_NS,
                    count=3,
                    sum=12.0,
                    explicit_bounds=[1.0, 5.0],
                    bucket_counts=[1, 1, 1],
                ),
                HistogramDataPoint(
                    time_unix_nano=NOW_NS + 1,
                    count=2,
                    explicit_bounds=[1.0, 5.0],
                    bucket_counts=[1, 1],
                ),
            ],
        ),
    )
    request = metrics_request([histogram, gauge("grpc.partial.queue_depth", 9.0)], "grpc-partial")
    outcome = export(channel, "metrics", request)
    assert outcome.code == grpc.StatusCode.OK
    partial = outcome.response.partial_success
    assert partial.rejected_data_points == 1
    assert f"data point of {name!r}" in partial.error_message
    assert "2 bucket_counts for 2 explicit_bounds" in partial.error_message

    [kept] = metric_points(otlp, name)
    assert (kept["count"], kept["sum"], kept["bucket_counts"]) == (3, 12.0, [1, 1, 1])
    [depth] = metric_points(otlp, "grpc.partial.queue_depth")
    assert depth["value"] == 9.0


def test_log_with_a_bad_trace_id_is_a_rejected_log_record(
    otlp: LiveServer, channel: grpc.Channel
) -> None:
    marker = uuid.uuid4().hex
    request = logs_request(
        [
            log_record(f"bad trace id {marker}", trace_id=b"\x01" * 5),
            log_record(f"good record {marker}", trace_id=new_trace_id(), span_id=new_span_id()),
        ]
    )
    outcome = export(channel, "logs", request)
    assert outcome.code == grpc.StatusCode.OK
    partial = outcome.response.partial_success
    assert partial.rejected_log_records == 1
    assert f"bad trace id {marker}" in partial.error_message
    assert "trace_id must be empty or 16 non-zero bytes, got 5 bytes" in partial.error_message

    found = api(otlp, "/api/v1/logs", q=marker)["logs"]
    assert [record["body"] for record in found] == [f"good record {marker}"]


# --- acknowledge after commit --------------------------------------------------------------


def test_ok_means_readable_at_once(otlp: LiveServer, channel: grpc.Channel) -> None:
    """No sleep anywhere: an OK from Export is only sent once the rows are committed."""
    for i in range(15):
        trace_id, request = small_trace(f"GET /ack/{i}", children=3)
        export_ok(channel, "traces", request)
        trace = otlp.trace(trace_id)
        assert (trace["span_count"], trace["root_name"]) == (4, f"GET /ack/{i}")

        name = f"grpc.ack.{uuid.uuid4().hex[:12]}"
        export_ok(channel, "metrics", metrics_request([gauge(name, float(i))], "grpc-ack"))
        assert [point["value"] for point in metric_points(otlp, name)] == [float(i)]

        log_trace = new_trace_id()
        export_ok(channel, "logs", logs_request([log_record(f"ack {i}", trace_id=log_trace)]))
        found = api(otlp, "/api/v1/logs", trace_id=log_trace.hex())["logs"]
        assert [record["body"] for record in found] == [f"ack {i}"]


def test_gzip_compressed_raw_export(otlp: LiveServer, channel: grpc.Channel) -> None:
    trace_id, request = small_trace("GET /gzip-raw", children=20)
    outcome = export(channel, "traces", request, compression=Compression.Gzip)
    assert outcome.code == grpc.StatusCode.OK, outcome.details
    assert otlp.trace(trace_id)["span_count"] == 21


# --- backpressure --------------------------------------------------------------------------

CLIENTS = 10
EXPORTS_PER_CLIENT = 12
SPANS_PER_EXPORT = 150


@dataclass
class ClientLog:
    acknowledged: list[str] = field(default_factory=list)
    refusals: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def backpressure_client(address: str, number: int, log: ClientLog) -> None:
    """Send every export until it is answered OK, retrying each RESOURCE_EXHAUSTED soon
    (sooner than RetryInfo asks, to keep the queue under pressure)."""
    rng = random.Random(number)
    deadline = time.monotonic() + 60
    try:
        with grpc.insecure_channel(address) as chan:
            for _ in range(EXPORTS_PER_CLIENT):
                trace_id, request = small_trace(f"GET /flood/{number}", SPANS_PER_EXPORT - 1)
                while True:
                    outcome = export(chan, "traces", request)
                    if outcome.code == grpc.StatusCode.OK:
                        if outcome.response.HasField("partial_success"):
                            log.errors.append(f"partial success: {outcome.response}")
                        log.acknowledged.append(trace_id)
                        break
                    if outcome.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        log.errors.append(f"{outcome.code}: {outcome.details}")
                        return
                    log.refusals.append(outcome)
                    if time.monotonic() > deadline:
                        log.errors.append("still refused after 60 s")
                        return
                    time.sleep(rng.uniform(0.01, 0.05))
    except Exception as exc:  # reported by the test thread
        log.errors.append(repr(exc))


def test_backpressure_resource_exhausted_with_retry_info_and_nothing_lost(
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_server("--queue-rows", "1", "--decoders", "0")
    logs = [ClientLog() for _ in range(CLIENTS)]
    threads = [
        threading.Thread(target=backpressure_client, args=(server.grpc_address, n, log))
        for n, log in enumerate(logs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not any(thread.is_alive() for thread in threads)
    assert [error for log in logs for error in log.errors] == []

    acknowledged = [trace_id for log in logs for trace_id in log.acknowledged]
    refusals = [outcome for log in logs for outcome in log.refusals]
    exports = CLIENTS * EXPORTS_PER_CLIENT
    assert len(acknowledged) == len(set(acknowledged)) == exports
    assert refusals, "a one-row write queue never pushed back"
    for refusal in refusals:
        assert "retry" in refusal.details, refusal.details
        # The key the OpenTelemetry SDKs read...
        delay = refusal.retry_info().retry_delay
        # ...one 150-span request commits in milliseconds: wait about a second.
        assert 1 <= delay.seconds <= 5, delay
        # ...and the status details the Collector reads.
        status = refusal.status()
        assert (status.code, status.message) == (code_pb2.RESOURCE_EXHAUSTED, refusal.details)
        [detail] = status.details
        info = error_details_pb2.RetryInfo()
        assert detail.Unpack(info), detail.type_url
        assert info.retry_delay == delay

    counted = grpc_requests(server)
    assert counted == {("traces", "OK"): exports, ("traces", "RESOURCE_EXHAUSTED"): len(refusals)}
    metrics = server.samples()
    assert metrics[("onepane_spans_accepted_total", frozenset())] == exports * SPANS_PER_EXPORT
    assert metrics[("onepane_write_queue_rows", frozenset())] == 0

    # Acknowledged means stored, each span once.
    some = acknowledged[len(acknowledged) // 2]
    assert server.trace(some)["span_count"] == SPANS_PER_EXPORT
    assert server.stop() == 0
    with duckdb.connect(str(server.db), read_only=True) as conn:
        stored = conn.execute(
            "SELECT trace_id, count(*), count(DISTINCT span_id) FROM spans GROUP BY trace_id"
        ).fetchall()
    assert {trace_id: (rows, distinct) for trace_id, rows, distinct in stored} == {
        trace_id: (SPANS_PER_EXPORT, SPANS_PER_EXPORT) for trace_id in acknowledged
    }
