"""OTLP metrics and logs over HTTP (``POST /v1/metrics``, ``/v1/logs``) into a live
`onepane serve`, read back through ``/api/v1/metrics``, ``/api/v1/logs`` and the trace view.

One server serves the module; every test sends its own metric names, services and trace
ids and measures the server's counters as differences, so the tests do not depend on each
other. Every read follows its 200 at once, with no sleep: acknowledged means committed.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import duckdb
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    DataPointFlags,
    Exemplar,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from prometheus_client.parser import text_string_to_metric_families

from onepane.testing import LiveServer

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SECOND = 1_000_000_000
T0 = 1_767_225_600 * SECOND  # 2026-01-01T00:00:00Z
DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
EXAMPLES = Path("/work/shared/data/otlp")
EXAMPLE_NS = 1544712660300000000  # every timestamp in the spec's examples
EXAMPLE_TRACE_ID = "5b8efff798038103d269b633813fc60c"
EXAMPLE_SPAN_ID = "eee19b7ec3c1b174"


@pytest.fixture(scope="module")
def otlp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server (one decoder process) for the module."""
    live = LiveServer(tmp_path_factory.mktemp("otlp-ml") / "onepane.duckdb", "--decoders", "1")
    yield live
    if live.stop() != 0:
        pytest.fail("onepane serve did not stop cleanly:\n" + "".join(live.output))


def uid() -> str:
    return secrets.token_hex(4)


# --- the wire ------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes

    def rpc_status(self) -> status_pb2.Status:
        """The google.rpc.Status error body, in the encoding the reply says it has."""
        if self.content_type == JSON:
            return json_format.Parse(self.body, status_pb2.Status())
        assert self.content_type == PROTOBUF, self.content_type
        return status_pb2.Status.FromString(self.body)


_SIGNAL_OF = {
    ExportMetricsServiceRequest: "metrics",
    ExportLogsServiceRequest: "logs",
    ExportTraceServiceRequest: "traces",
}
_RESPONSE_OF = {"metrics": ExportMetricsServiceResponse, "logs": ExportLogsServiceResponse}


def post(
    server: LiveServer, signal: str, body: bytes, media: str, *, gzipped: bool = False
) -> Reply:
    """One OTLP/HTTP export of raw bytes to ``/v1/{signal}``."""
    url = urlsplit(server.otlp_url)
    headers = {"Content-Type": media}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("POST", f"/v1/{signal}", body, headers)
        response = conn.getresponse()
        content_type = (response.headers.get("Content-Type") or "").split(";")[0]
        return Reply(response.status, content_type, response.read())
    finally:
        conn.close()


def otlp_dict(message: Message) -> dict[str, Any]:
    """A message as OTLP/JSON: integer enums, and trace and span ids in hex, not base64."""

    def hex_ids(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (
                    base64.b64decode(value).hex()
                    if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str)
                    else hex_ids(value)
                )
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [hex_ids(item) for item in node]
        return node

    return hex_ids(json_format.MessageToDict(message, use_integers_for_enums=True))


def export(
    server: LiveServer, request: Message, media: str = PROTOBUF, *, gzipped: bool = False
) -> Message | None:
    """Send an export request in ``media``; the partial success of a 200, or None."""
    signal = _SIGNAL_OF[type(request)]
    body = (
        request.SerializeToString()
        if media == PROTOBUF
        else json.dumps(otlp_dict(request)).encode()
    )
    reply = post(server, signal, body, media, gzipped=gzipped)
    return partial_success(reply, signal, media)


def partial_success(reply: Reply, signal: str, media: str) -> Any:
    """The partial success of a 200 export response in ``media``, or None when it has none."""
    assert reply.status == 200, (reply.status, reply.body[:500])
    assert reply.content_type == media
    kind = _RESPONSE_OF.get(signal)
    if kind is None:
        return None
    if media == JSON:
        response = json_format.Parse(reply.body, kind())
    else:
        response = kind.FromString(reply.body)
    return response.partial_success if response.HasField("partial_success") else None


# --- building OTLP requests -----------------------------------------------------------------


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    assert isinstance(value, str), value
    return AnyValue(string_value=value)


def key_values(attrs: dict[str, Any] | None) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in (attrs or {}).items()]


def resource(attrs: dict[str, Any]) -> Resource:
    return Resource(attributes=key_values(attrs))


def scope(name: str = "test.meter", version: str = "", **attrs: Any) -> InstrumentationScope:
    return InstrumentationScope(name=name, version=version, attributes=key_values(attrs))


def metrics_request(
    metrics: list[Metric], attrs: dict[str, Any], meter: InstrumentationScope | None = None
) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=resource(attrs),
                scope_metrics=[ScopeMetrics(scope=meter or scope(), metrics=metrics)],
            )
        ]
    )


def number(
    value: float,
    at_s: float,
    start_s: float | None = None,
    attrs: dict[str, Any] | None = None,
    exemplars: tuple[Exemplar, ...] = (),
) -> NumberDataPoint:
    """A number point ``at_s`` seconds after T0 (``int`` values are sent as as_int)."""
    point = NumberDataPoint(
        time_unix_nano=T0 + int(at_s * SECOND),
        start_time_unix_nano=0 if start_s is None else T0 + int(start_s * SECOND),
        attributes=key_values(attrs),
        exemplars=exemplars,
    )
    if isinstance(value, int):
        point.as_int = value
    else:
        point.as_double = value
    return point


def sum_metric(
    name: str,
    points: list[NumberDataPoint],
    temporality: int = CUMULATIVE,
    monotonic: bool = True,
    unit: str = "",
) -> Metric:
    return Metric(
        name=name,
        unit=unit,
        sum=Sum(data_points=points, aggregation_temporality=temporality, is_monotonic=monotonic),
    )


def gauge_metric(name: str, points: list[NumberDataPoint], unit: str = "") -> Metric:
    return Metric(name=name, unit=unit, gauge=Gauge(data_points=points))


def histogram_point(
    counts: list[int], bounds: list[float], at_s: float = 10, count: int | None = None, **extra: Any
) -> HistogramDataPoint:
    return HistogramDataPoint(
        time_unix_nano=T0 + int(at_s * SECOND),
        start_time_unix_nano=T0,
        count=sum(counts) if count is None else count,
        bucket_counts=counts,
        explicit_bounds=bounds,
        **extra,
    )


def histogram_metric(name: str, points: list[HistogramDataPoint]) -> Metric:
    return Metric(name=name, histogram=Histogram(data_points=points, aggregation_temporality=DELTA))


def log_record(
    body: Any = None,
    *,
    at_ns: int = T0,
    severity: int = 9,
    text: str = "",
    trace_id: bytes = b"",
    span_id: bytes = b"",
    observed_ns: int = 0,
    attrs: dict[str, Any] | None = None,
) -> LogRecord:
    record = LogRecord(
        time_unix_nano=at_ns,
        observed_time_unix_nano=observed_ns,
        severity_number=severity,
        severity_text=text,
        trace_id=trace_id,
        span_id=span_id,
        attributes=key_values(attrs),
    )
    if body is not None:
        record.body.CopyFrom(any_value(body))
    return record


def logs_request(
    records: list[LogRecord], attrs: dict[str, Any], logger: InstrumentationScope | None = None
) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=resource(attrs),
                scope_logs=[ScopeLogs(scope=logger or scope("test.logger"), log_records=records)],
            )
        ]
    )


def new_trace_id() -> bytes:
    return b"\x4c" + secrets.token_bytes(15)


def new_span_id() -> bytes:
    return b"\x5d" + secrets.token_bytes(7)


def trace_request(trace_id: bytes, spans: list[tuple[bytes, bytes, str]], service: str) -> Message:
    """Spans (span id, parent id, name) of one trace, 10 ms each, starting at T0."""
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=resource({"service.name": service}),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=trace_id,
                                span_id=span_id,
                                parent_span_id=parent,
                                name=name,
                                kind=Span.SPAN_KIND_SERVER if not parent else 1,
                                start_time_unix_nano=T0 + i * 1_000_000,
                                end_time_unix_nano=T0 + (i + 10) * 1_000_000,
                            )
                            for i, (span_id, parent, name) in enumerate(spans)
                        ]
                    )
                ],
            )
        ]
    )


# --- reading back ---------------------------------------------------------------------------


def api(server: LiveServer, path: str, **query: Any) -> dict[str, Any]:
    status, body = server.get_json(path + ("?" + urlencode(query) if query else ""))
    assert status == 200, (path, query, body)
    return body


def api_error(server: LiveServer, path: str, status: int, **query: Any) -> str:
    got, body = server.get_json(path + ("?" + urlencode(query) if query else ""))
    assert got == status, (path, query, got, body)
    return body["error"]


def points(server: LiveServer, name: str, **query: Any) -> list[dict[str, Any]]:
    return api(server, f"/api/v1/metrics/{quote(name, safe='')}/points", **query)["points"]


def rate_series(server: LiveServer, name: str, **query: Any) -> list[dict[str, Any]]:
    return api(server, f"/api/v1/metrics/{quote(name, safe='')}/rate", **query)["series"]


def search_logs(server: LiveServer, **query: Any) -> list[dict[str, Any]]:
    return api(server, "/api/v1/logs", **query)["logs"]


def counters(server: LiveServer) -> dict[str, float]:
    """The server's metric point and log record counters from /metrics, by name and reason."""
    with urllib.request.urlopen(server.api_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name.startswith(("onepane_metric_points_", "onepane_log_records_")) and (
                name.endswith("_total")
            ):
                reason = sample.labels.get("reason")
                out[name + (f"{{{reason}}}" if reason else "")] = sample.value
    return out


def changed(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The counters that moved, by how much."""
    return {
        key: after.get(key, 0) - before.get(key, 0)
        for key in after.keys() | before.keys()
        if after.get(key, 0) != before.get(key, 0)
    }


def subset(item: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``item`` named in ``expected`` (None for absent), to compare whole."""
    return {key: item.get(key) for key in expected}


# --- the spec's examples, in every encoding -------------------------------------------------

ENCODINGS = {
    "json": (JSON, False),
    "protobuf": (PROTOBUF, False),
    "json-gzip": (JSON, True),
    "protobuf-gzip": (PROTOBUF, True),
}
EXAMPLE_FILES = {
    "metrics": (EXAMPLES / "metrics.json", ExportMetricsServiceRequest),
    "logs": (EXAMPLES / "logs.json", ExportLogsServiceRequest),
}


def base64_ids(node: Any) -> Any:
    """OTLP/JSON hex ids in the base64 form of protobuf's own JSON mapping."""
    if isinstance(node, dict):
        return {
            key: (
                base64.b64encode(bytes.fromhex(value)).decode()
                if key in ("traceId", "spanId")
                else base64_ids(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [base64_ids(item) for item in node]
    return node


def example_body(signal: str, service: str, media: str) -> bytes:
    """A spec example with its service.name set to ``service``, as OTLP/JSON or protobuf."""
    path, request_type = EXAMPLE_FILES[signal]
    raw = path.read_bytes()
    assert raw.count(b'"my.service"') == 1
    raw = raw.replace(b'"my.service"', json.dumps(service).encode())
    if media == JSON:
        return raw
    request = json_format.ParseDict(base64_ids(json.loads(raw)), request_type())
    return request.SerializeToString()


@pytest.fixture(scope="module")
def examples(otlp: LiveServer) -> dict[str, str]:
    """metrics.json and logs.json sent once in each encoding, each encoding under its own
    service.name (the JSON one verbatim), and trace.json, the span logs.json was written
    in. Returns the service of each encoding."""
    reply = post(otlp, "traces", (EXAMPLES / "trace.json").read_bytes(), JSON)
    assert reply.status == 200, reply.body
    services = {}
    for encoding, (media, gzipped) in ENCODINGS.items():
        service = "my.service" if encoding == "json" else f"my.service.{encoding}"
        for signal in EXAMPLE_FILES:
            body = example_body(signal, service, media)
            reply = post(otlp, signal, body, media, gzipped=gzipped)
            assert partial_success(reply, signal, media) is None
        services[encoding] = service
    return services


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_example_metrics_keep_every_point_type_whole(
    otlp: LiveServer, examples: dict[str, str], encoding: str
) -> None:
    service = examples[encoding]
    workload = f"default/{service}"  # no k8s attributes: the service is the workload
    found = {
        name: points(otlp, name, workload=workload)
        for name in ("my.counter", "my.gauge", "my.histogram", "my.exponential.histogram")
    }
    assert {name: len(got) for name, got in found.items()} == dict.fromkeys(found, 1)
    [counter], [gauge], [histogram], [exponential] = found.values()

    shared = {
        "workload": workload,
        "service_name": service,
        "scope_name": "my.library",
        "resource_id": counter["resource_id"],
        "time_unix_nano": EXAMPLE_NS,
        "flags": 0,
    }
    for point in found.values():
        assert subset(point[0], shared) == shared
    expected_counter = {
        "metric_type": "sum",
        "attributes": {"my.counter.attr": "some value"},
        "temporality": "delta",
        "start_unix_nano": EXAMPLE_NS,
        "value": 5.0,
    }
    assert subset(counter, expected_counter) == expected_counter
    expected_gauge = {
        "metric_type": "gauge",
        "attributes": {"my.gauge.attr": "some value"},
        "value": 10.0,
        "temporality": None,  # absent: a gauge has neither
        "start_unix_nano": None,
    }
    assert subset(gauge, expected_gauge) == expected_gauge
    expected_histogram = {
        "metric_type": "histogram",
        "attributes": {"my.histogram.attr": "some value"},
        "temporality": "delta",
        "start_unix_nano": EXAMPLE_NS,
        "count": 2,
        "sum": 2.0,
        "min": 0.0,
        "max": 2.0,
        "explicit_bounds": [1.0],
        "bucket_counts": [1, 1],
        "value": None,
    }
    assert subset(histogram, expected_histogram) == expected_histogram
    expected_exponential = {
        "metric_type": "exponential_histogram",
        "attributes": {"my.exponential.histogram.attr": "some value"},
        "temporality": "delta",
        "start_unix_nano": EXAMPLE_NS,
        "count": 3,
        "sum": 10.0,
        "min": 0.0,
        "max": 5.0,
        "scale": 0,
        "zero_count": 1,
        "zero_threshold": 0.0,
        "positive_offset": 1,
        "positive_counts": [0, 2],
        "negative_counts": None,
    }
    assert subset(exponential, expected_exponential) == expected_exponential

    catalog = api(otlp, "/api/v1/metrics", workload=workload)["metrics"]
    described = {
        m["name"]: (m["type"], m["unit"], m["description"], m["temporality"], m["monotonic"])
        for m in catalog
    }
    assert described == {
        "my.counter": ("sum", "1", "I am a Counter", "delta", True),
        "my.gauge": ("gauge", "1", "I am a Gauge", None, None),
        "my.histogram": ("histogram", "1", "I am a Histogram", "delta", None),
        "my.exponential.histogram": (
            "exponential_histogram",
            "1",
            "I am an Exponential Histogram",
            "delta",
            None,
        ),
    }
    assert {(m["points"], m["series"], tuple(m["workloads"])) for m in catalog} == {
        (1, 1, (workload,))
    }


EXAMPLE_LOG = {
    "trace_id": EXAMPLE_TRACE_ID,
    "span_id": EXAMPLE_SPAN_ID,
    "time_unix_nano": EXAMPLE_NS,
    "observed_time_unix_nano": EXAMPLE_NS,
    "severity_number": 10,
    "severity_text": "Information",
    "body": "Example log record",
    "scope_name": "my.library",
    "attributes": {
        "string.attribute": "some string",
        "boolean.attribute": True,
        "int.attribute": 10,
        "double.attribute": 637.704,
        "array.attribute": ["many", "values"],
        "map.attribute": {"some.map.key": "some value"},
    },
}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_example_log_record_is_stored_whole(
    otlp: LiveServer, examples: dict[str, str], encoding: str
) -> None:
    service = examples[encoding]
    [record] = search_logs(otlp, workload=f"default/{service}")
    assert subset(record, EXAMPLE_LOG) == EXAMPLE_LOG
    assert (record["service_name"], record["workload"]) == (service, f"default/{service}")
    assert type(record["attributes"]["int.attribute"]) is int
    # Metrics and logs from the same resource point at the same stored resource.
    [gauge] = points(otlp, "my.gauge", workload=f"default/{service}")
    assert record["resource_id"] == gauge["resource_id"]


def test_example_logs_show_under_their_span_in_the_trace_view(
    otlp: LiveServer, examples: dict[str, str]
) -> None:
    trace = otlp.trace(EXAMPLE_TRACE_ID.upper())
    [span] = trace["spans"]
    assert span["span_id"] == EXAMPLE_SPAN_ID
    # The same record was sent once per encoding, each from its own service.
    assert sorted(record["service_name"] for record in span["logs"]) == sorted(examples.values())
    expected = {k: v for k, v in EXAMPLE_LOG.items() if k not in ("trace_id", "span_id")}
    for record in span["logs"]:
        assert subset(record, expected) == expected
    assert trace["logs"] == [] and trace["log_count"] == len(ENCODINGS)
    # trace.json and the JSON logs.json share one resource: its attributes are in the view.
    [from_json] = [r for r in span["logs"] if r["service_name"] == examples["json"]]
    assert from_json["resource_id"] == span["resource_id"]
    assert trace["resources"][span["resource_id"]] == {"service.name": "my.service"}


# --- every point type keeps its resource, scope and attributes --------------------------------

RECSYS = {
    "service.name": "recsys-api",
    "service.version": "3.2.0",
    "deployment.environment.name": "prod",
    "k8s.namespace.name": "ml",
    "k8s.deployment.name": "recsys",
    "k8s.pod.name": "recsys-5d8f-x2x4q",
    "host.gpu.count": 8,
}
POINT_ATTRS = {"route": "/recommend", "gpu": 0, "cached": False, "ratio": 0.5, "tags": ["a", "b"]}


def test_points_and_records_keep_resource_scope_attributes_and_workload(
    start_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = start_server(db=tmp_path / "whole.duckdb")
    trace_id, span_id = new_trace_id(), new_span_id()
    exemplar = Exemplar(
        time_unix_nano=T0 + 9 * SECOND,
        as_double=3.5,
        trace_id=trace_id,
        span_id=span_id,
        filtered_attributes=key_values({"user.tier": "gold"}),
    )
    request = metrics_request(
        [
            sum_metric(
                "recsys.requests", [number(12, 10, 0, POINT_ATTRS, (exemplar,))], unit="{request}"
            ),
            gauge_metric(
                "recsys.gpu.utilization", [number(0.93, 10, attrs={"gpu": 0}), number(41, 10)]
            ),
            histogram_metric(
                "recsys.latency",
                [histogram_point([3, 5, 0, 2], [0.1, 0.5, 1.0], sum=2.75, min=0.02, max=1.7)],
            ),
            Metric(
                name="recsys.batch.size",
                exponential_histogram=ExponentialHistogram(
                    aggregation_temporality=CUMULATIVE,
                    data_points=[
                        ExponentialHistogramDataPoint(
                            time_unix_nano=T0 + 10 * SECOND,
                            start_time_unix_nano=T0,
                            count=8,
                            sum=41.5,
                            scale=2,
                            zero_count=1,
                            zero_threshold=0.001,
                            positive=ExponentialHistogramDataPoint.Buckets(
                                offset=-2, bucket_counts=[1, 0, 4]
                            ),
                            negative=ExponentialHistogramDataPoint.Buckets(
                                offset=1, bucket_counts=[2]
                            ),
                            attributes=key_values({"model": "two-tower"}),
                        )
                    ],
                ),
            ),
            Metric(
                name="recsys.queue.wait",
                summary=Summary(
                    data_points=[
                        SummaryDataPoint(
                            time_unix_nano=T0 + 10 * SECOND,
                            start_time_unix_nano=T0,
                            count=10,
                            sum=4.25,
                            quantile_values=[
                                SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.25),
                                SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=1.5),
                            ],
                        )
                    ]
                ),
            ),
        ],
        RECSYS,
        scope("recsys.metrics", "0.4.1", **{"meter.tier": "gold"}),
    )
    assert export(server, request) is None
    logs = logs_request(
        [log_record("scored", trace_id=trace_id, span_id=span_id, attrs=POINT_ATTRS)],
        RECSYS,
        scope("recsys.logger", "0.4.1", **{"logger.tier": "gold"}),
    )
    assert export(server, logs) is None

    [requests] = points(server, "recsys.requests")
    gauges = points(server, "recsys.gpu.utilization")
    [latency] = points(server, "recsys.latency")
    [batch] = points(server, "recsys.batch.size")
    [wait] = points(server, "recsys.queue.wait")
    every = [requests, *gauges, latency, batch, wait]
    assert {(p["workload"], p["service_name"], p["scope_name"]) for p in every} == {
        ("ml/recsys", "recsys-api", "recsys.metrics")
    }
    for point in every:
        assert (point["scope_version"], point["scope_attributes"]) == (
            "0.4.1",
            {"meter.tier": "gold"},
        )
    assert len({p["resource_id"] for p in every}) == 1
    assert requests["attributes"] == POINT_ATTRS
    assert type(requests["attributes"]["gpu"]) is int and type(requests["value"]) is float
    assert (requests["value"], requests["temporality"]) == (12.0, "cumulative")
    assert requests["exemplars"] == [
        {
            "time_unix_nano": T0 + 9 * SECOND,
            "value": 3.5,
            "trace_id": trace_id.hex(),
            "span_id": span_id.hex(),
            "attributes": {"user.tier": "gold"},
        }
    ]
    assert sorted((g["value"], g["attributes"]) for g in gauges) == [(0.93, {"gpu": 0}), (41.0, {})]
    expected_latency = {
        "count": 10,
        "sum": 2.75,
        "min": 0.02,
        "max": 1.7,
        "explicit_bounds": [0.1, 0.5, 1.0],
        "bucket_counts": [3, 5, 0, 2],
        "temporality": "delta",
    }
    assert subset(latency, expected_latency) == expected_latency
    expected_batch = {
        "count": 8,
        "sum": 41.5,
        "scale": 2,
        "zero_count": 1,
        "zero_threshold": 0.001,
        "positive_offset": -2,
        "positive_counts": [1, 0, 4],
        "negative_offset": 1,
        "negative_counts": [2],
        "temporality": "cumulative",
        "attributes": {"model": "two-tower"},
    }
    assert subset(batch, expected_batch) == expected_batch
    expected_wait = {
        "metric_type": "summary",
        "count": 10,
        "sum": 4.25,
        "quantiles": [0.5, 0.99],
        "quantile_values": [0.25, 1.5],
        "start_unix_nano": T0,
        "time_unix_nano": T0 + 10 * SECOND,
    }
    assert subset(wait, expected_wait) == expected_wait
    [record] = search_logs(server, workload="ml/recsys")
    assert record["resource_id"] == requests["resource_id"]
    assert (record["scope_name"], record["attributes"]) == ("recsys.logger", POINT_ATTRS)

    # What the API leaves out is in the store: the resource once, scope versions, identity.
    assert server.stop() == 0
    with duckdb.connect(str(server.db), read_only=True) as db:
        [(resource_json,)] = db.execute(
            "SELECT attributes FROM resources WHERE resource_id = ?", [int(record["resource_id"])]
        ).fetchall()
        assert json.loads(resource_json) == RECSYS
        assert db.execute(
            "SELECT DISTINCT scope_version, service_version, environment, k8s_namespace, k8s_pod"
            " FROM metric_points"
        ).fetchall() == [("0.4.1", "3.2.0", "prod", "ml", "recsys-5d8f-x2x4q")]
        assert db.execute(
            "SELECT DISTINCT metric_name, unit, is_monotonic FROM metric_points"
            " WHERE metric_type = 'sum'"
        ).fetchall() == [("recsys.requests", "{request}", True)]
        [(scope_version, scope_attrs)] = db.execute(
            "SELECT scope_version, scope_attributes FROM logs"
        ).fetchall()
        assert (scope_version, json.loads(scope_attrs)) == ("0.4.1", {"logger.tier": "gold"})


# --- counter rates ----------------------------------------------------------------------------


def steps(series: dict[str, Any]) -> list[tuple[float, float, float, float, bool]]:
    """A rate series as (seconds after T0, increase, interval_s, rate_per_s, reset)."""
    return [
        (
            (p["time_unix_nano"] - T0) / SECOND,
            p["increase"],
            p["interval_s"],
            p["rate_per_s"],
            p["reset"],
        )
        for p in series["points"]
    ]


def test_cumulative_counter_rates_across_resets(otlp: LiveServer) -> None:
    name, service = f"http.server.requests.{uid()}", f"web-{uid()}"
    restarted, dropped = {"host": "a"}, {"host": "b"}
    before_resets = [
        point
        for attrs in (restarted, dropped)
        for point in (number(0, 0, 0, attrs), number(100, 10, 0, attrs), number(250, 20, 0, attrs))
    ]
    after_resets = [
        # The process restarted at +25 s: a new start time, the count begins again.
        number(30, 30, 25, restarted),
        number(90, 40, 25, restarted),
        # Only the value went down; the start time stayed.
        number(40, 30, 0, dropped),
        number(100, 40, 0, dropped),
    ]
    attrs = {"service.name": service}
    assert export(otlp, metrics_request([sum_metric(name, before_resets)], attrs)) is None
    assert export(otlp, metrics_request([sum_metric(name, after_resets)], attrs), JSON) is None

    series = {s["attributes"]["host"]: s for s in rate_series(otlp, name)}
    assert set(series) == {"a", "b"}
    assert steps(series["a"]) == [
        (10, 100, 10, 10, False),
        (20, 150, 10, 15, False),
        (30, 30, 5, 6, True),  # since the new start time, not since the previous point
        (40, 60, 10, 6, False),
    ]
    assert steps(series["b"]) == [
        (10, 100, 10, 10, False),
        (20, 150, 10, 15, False),
        (30, 40, 10, 4, True),
        (40, 60, 10, 6, False),
    ]
    assert {(s["workload"], s["scope_name"]) for s in series.values()} == {
        (f"default/{service}", "test.meter")
    }
    # The points themselves keep their start times, so the restart is visible there too.
    starts = [
        ((p["time_unix_nano"] - T0) // SECOND, (p["start_unix_nano"] - T0) // SECOND, p["value"])
        for p in points(otlp, name)
        if p["attributes"] == restarted
    ]
    assert starts == [(0, 0, 0), (10, 0, 100), (20, 0, 250), (30, 25, 30), (40, 25, 90)]

    # A window starting after a reset still rates its first point against the one before.
    later = rate_series(otlp, name, start=str(T0 // SECOND + 35))
    assert sorted(steps(s) for s in later) == [[(40, 60, 10, 6, False)]] * 2


def test_delta_sum_rate_is_value_over_its_own_interval(otlp: LiveServer) -> None:
    name = f"jobs.processed.{uid()}"
    delta = [number(50, 10, 0), number(30, 15, 10), number(0.0, 25, 15)]
    request = metrics_request([sum_metric(name, delta, DELTA)], {"service.name": "etl"})
    assert export(otlp, request) is None
    [series] = rate_series(otlp, name)
    assert steps(series) == [(10, 50, 10, 5, False), (15, 30, 5, 6, False), (25, 0, 10, 0, False)]


def test_updown_counter_decrease_is_not_a_reset(otlp: LiveServer) -> None:
    name = f"queue.depth.{uid()}"
    cumulative = [number(10, 10, 0), number(25, 20, 0), number(15, 30, 0), number(5, 40, 35)]
    request = metrics_request(
        [sum_metric(name, cumulative, monotonic=False)], {"service.name": "queue"}
    )
    assert export(otlp, request) is None
    [series] = rate_series(otlp, name)
    assert steps(series) == [
        (20, 15, 10, 1.5, False),
        (30, -10, 10, -1, False),  # an UpDownCounter may go down
        (40, 5, 5, 1, True),  # but a new start time still means it restarted
    ]


def test_rates_ignore_retried_exports_arrival_order_and_empty_points(otlp: LiveServer) -> None:
    """An exporter that lost a 200 sends the same points again; batches may arrive out of
    order; a point flagged "no recorded value" has nothing to rate."""
    cumulative, delta = f"rpc.calls.{uid()}", f"rpc.bytes.{uid()}"
    gap = NumberDataPoint(
        time_unix_nano=T0 + 15 * SECOND,
        start_time_unix_nano=T0,
        flags=DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK,
    )
    attrs = {"service.name": f"rpc-{uid()}"}
    later = metrics_request(
        [
            sum_metric(cumulative, [number(250, 20, 0), number(30, 30, 25)]),
            sum_metric(delta, [number(30, 20, 10)], DELTA),
        ],
        attrs,
    )
    earlier = metrics_request(
        [
            sum_metric(cumulative, [number(0, 0, 0), number(100, 10, 0), gap]),
            sum_metric(delta, [number(50, 10, 0)], DELTA),
        ],
        attrs,
    )
    for request in (later, earlier, later, earlier):  # out of order, then each one retried
        assert export(otlp, request) is None

    [calls] = rate_series(otlp, cumulative)
    assert steps(calls) == [
        (10, 100, 10, 10, False),
        (20, 150, 10, 15, False),
        (30, 30, 5, 6, True),
    ]
    [sent] = rate_series(otlp, delta)
    assert steps(sent) == [(10, 50, 10, 5, False), (20, 30, 10, 3, False)]
    # The points themselves are all kept, the empty one without a value.
    stored = points(otlp, cumulative)
    assert [p.get("value") for p in stored] == [0, 0, 100, 100, None, None, 250, 250, 30, 30]
    assert {p["flags"] for p in stored if "value" not in p} == {1}


def test_rates_and_points_filter_by_workload(otlp: LiveServer) -> None:
    name, deployment = f"gpu.seconds.{uid()}", f"trainer-{uid()}"
    trainer = {
        "service.name": "trainer",
        "k8s.namespace.name": "ml",
        "k8s.deployment.name": deployment,
    }
    web = {"service.name": f"web-{uid()}"}
    for attrs, values in ((trainer, (0, 80)), (web, (0, 5))):
        counter = [number(values[0], 0, 0), number(values[1], 20, 0)]
        assert export(otlp, metrics_request([sum_metric(name, counter)], attrs)) is None

    everything = rate_series(otlp, name)
    assert sorted((s["workload"], s["points"][0]["rate_per_s"]) for s in everything) == sorted(
        [(f"ml/{deployment}", 4.0), (f"default/{web['service.name']}", 0.25)]
    )
    [only] = rate_series(otlp, name, workload=f"ml/{deployment}")
    assert (only["workload"], steps(only)) == (f"ml/{deployment}", [(20, 80, 20, 4, False)])
    assert [p["value"] for p in points(otlp, name, workload=f"ml/{deployment}")] == [0, 80]
    assert rate_series(otlp, name, workload="ml/nobody") == []
    [entry] = api(otlp, "/api/v1/metrics", workload=f"ml/{deployment}")["metrics"]
    assert (entry["name"], entry["series"], entry["workloads"]) == (
        name,
        1,
        [f"ml/{deployment}"],
    )


def test_rate_of_a_gauge_is_400_and_of_an_unknown_metric_404(otlp: LiveServer) -> None:
    gauge, latency = f"memory.used.{uid()}", f"latency.{uid()}"
    request = metrics_request(
        [
            gauge_metric(gauge, [number(1.5e9, 10)]),
            histogram_metric(latency, [histogram_point([1, 2], [0.5])]),
        ],
        {"service.name": "api"},
    )
    assert export(otlp, request) is None
    message = api_error(otlp, f"/api/v1/metrics/{gauge}/rate", 400)
    assert f"metric '{gauge}' is a gauge" in message and "rates are for sums" in message
    assert "is a histogram" in api_error(otlp, f"/api/v1/metrics/{latency}/rate", 400)
    unknown = f"no.such.metric.{uid()}"
    assert api_error(otlp, f"/api/v1/metrics/{unknown}/rate", 404) == (
        f"metric '{unknown}' is not in the store"
    )
    assert "use points or rate" in api_error(otlp, f"/api/v1/metrics/{gauge}/sum", 404)
    # Bad query values are refused, not ignored.
    assert "limit" in api_error(otlp, f"/api/v1/metrics/{gauge}/points", 400, limit=0)
    assert "limit" in api_error(otlp, f"/api/v1/metrics/{gauge}/points", 400, limit="ten")
    assert "not a duration" in api_error(otlp, f"/api/v1/metrics/{gauge}/rate", 400, since="1y")
    assert "start must be before end" in api_error(
        otlp, "/api/v1/metrics", 400, start="2026-01-02T00:00:00Z", end="2026-01-01T00:00:00Z"
    )


# --- logs ---------------------------------------------------------------------------------------

MS = 1_000_000


def test_trace_view_puts_logs_under_their_spans(otlp: LiveServer) -> None:
    trace_id, root, child, unknown = new_trace_id(), new_span_id(), new_span_id(), new_span_id()
    service = f"checkout-{uid()}"
    records = [
        log_record("checkout started", at_ns=T0 + 1 * MS, trace_id=trace_id, span_id=root),
        log_record(
            "card declined",
            at_ns=T0 + 5 * MS,
            observed_ns=T0 + 7 * MS,
            severity=17,
            text="ERROR",
            trace_id=trace_id,
            span_id=child,
            attrs={"card.brand": "visa", "attempt": 2},
        ),
        log_record("checkout failed", at_ns=T0 + 9 * MS, trace_id=trace_id, span_id=root),
        log_record("retry scheduled", at_ns=T0 + 12 * MS, trace_id=trace_id, span_id=unknown),
        log_record("trace-level note", at_ns=T0 + 2 * MS, trace_id=trace_id),
        log_record("some other trace", trace_id=new_trace_id(), span_id=root),
        log_record("no trace at all", span_id=root),
    ]
    # Logs may arrive before their spans: they are joined when the trace is read.
    assert export(otlp, logs_request(records, {"service.name": service})) is None
    spans = [(root, b"", "POST /checkout"), (child, root, "charge card")]
    reply = post(
        otlp, "traces", trace_request(trace_id, spans, service).SerializeToString(), PROTOBUF
    )
    assert reply.status == 200

    trace = otlp.trace(trace_id.hex())
    by_name = {span["name"]: span for span in trace["spans"]}
    assert [r["body"] for r in by_name["POST /checkout"]["logs"]] == [
        "checkout started",
        "checkout failed",
    ]
    [declined] = by_name["charge card"]["logs"]
    assert subset(
        declined,
        {
            "body": 0,
            "time_unix_nano": 0,
            "observed_time_unix_nano": 0,
            "severity_number": 0,
            "severity_text": 0,
            "attributes": 0,
            "service_name": 0,
            "workload": 0,
        },
    ) == {
        "body": "card declined",
        "time_unix_nano": T0 + 5 * MS,
        "observed_time_unix_nano": T0 + 7 * MS,
        "severity_number": 17,
        "severity_text": "ERROR",
        "attributes": {"card.brand": "visa", "attempt": 2},
        "service_name": service,
        "workload": f"default/{service}",
    }
    # Records of this trace whose span is not stored are listed once, at the top, in time
    # order, still saying which span they name.
    assert [(r["body"], r.get("span_id")) for r in trace["logs"]] == [
        ("trace-level note", None),
        ("retry scheduled", unknown.hex()),
    ]
    assert trace["log_count"] == 5


LOG_BODIES: dict[str, Any] = {
    "string": "disk almost full",
    "empty string": "",
    "int": 42,
    "big int": 2**62 + 1,
    "negative int": -7,
    "double": 2.5,
    "false": False,
    "map": {"user": {"id": 7, "roles": ["admin", "dev"]}, "ok": True, "ratio": 0.25},
    "array": [1, "two", 3.5, False, {"k": "v"}, []],
    "bytes": b"\x00\xffhi",
}


@pytest.mark.parametrize("media", [PROTOBUF, JSON], ids=["protobuf", "json"])
def test_log_body_of_every_anyvalue_kind_is_kept(otlp: LiveServer, media: str) -> None:
    service = f"bodies-{uid()}"
    records = [
        log_record(body, at_ns=T0 + i * SECOND, attrs={"case": case})
        for i, (case, body) in enumerate(LOG_BODIES.items())
    ]
    # No body at all, and no time: the observed time stands in for it.
    records.append(log_record(at_ns=0, observed_ns=T0 + 99 * SECOND, attrs={"case": "none"}))
    assert export(otlp, logs_request(records, {"service.name": service}), media) is None

    found = {r["attributes"]["case"]: r for r in search_logs(otlp, service=service)}
    expected = {
        case: base64.b64encode(body).decode() if isinstance(body, bytes) else body
        for case, body in LOG_BODIES.items()
    }
    assert {case: r["body"] for case, r in found.items()} == {**expected, "none": None}
    assert type(found["int"]["body"]) is int and type(found["double"]["body"]) is float
    assert found["none"]["time_unix_nano"] == T0 + 99 * SECOND
    assert found["none"]["observed_time_unix_nano"] == T0 + 99 * SECOND
    assert found["string"]["observed_time_unix_nano"] is None


def test_log_search_filters(otlp: LiveServer) -> None:
    now = time.time_ns()
    minute = 60 * SECOND
    deployment = f"checkout-{uid()}"
    workload = f"shop/{deployment}"
    trace_id = new_trace_id()
    bodies = {
        "cart": ("cart loaded", 9, 50, trace_id),
        "retry": ("payment retry, card declined once", 13, 40, b""),
        "failed": ('payment failed: "card declined" at C:\\pay\\gw', 17, 30, b""),
        "shutdown": ({"event": "shutdown", "reason": "OOMKilled"}, 21, 20, b""),
        "noise": ("debug noise", 5, 10, trace_id),
        "old": ("old failure", 17, 180, b""),
    }
    records = [
        log_record(
            body,
            at_ns=now - ago * minute,
            severity=severity,
            trace_id=tid,
            span_id=new_span_id() if tid else b"",
            attrs={"case": case},
        )
        for case, (body, severity, ago, tid) in bodies.items()
    ]
    service = f"checkout-api-{uid()}"
    attrs = {
        "service.name": service,
        "k8s.namespace.name": "shop",
        "k8s.deployment.name": deployment,
    }
    assert export(otlp, logs_request(records, attrs)) is None
    elsewhere = logs_request([log_record("card declined elsewhere", at_ns=now, severity=17)], {})
    assert export(otlp, elsewhere) is None

    def cases(**query: Any) -> list[str]:
        return [r["attributes"]["case"] for r in search_logs(otlp, workload=workload, **query)]

    assert cases() == ["noise", "shutdown", "failed", "retry", "cart", "old"]  # newest first
    assert cases(severity="warn") == ["shutdown", "failed", "retry", "old"]
    assert cases(severity="ERROR") == cases(severity="17") == ["shutdown", "failed", "old"]
    assert cases(trace_id=trace_id.hex().upper()) == ["noise", "cart"]
    assert cases(q="card DECLINED") == ["failed", "retry"]
    assert cases(q='"card declined" at C:\\pay') == ["failed"]
    assert cases(q="oomkilled") == ["shutdown"]  # inside a map body
    assert cases(since="1h") == ["noise", "shutdown", "failed", "retry", "cart"]
    assert cases(since="1h", severity="error") == ["shutdown", "failed"]
    assert cases(limit=2) == ["noise", "shutdown"]
    assert cases(q="no such text") == []
    everyone = [r["body"] for r in search_logs(otlp, q="card declined elsewhere")]
    assert everyone == ["card declined elsewhere"]
    assert {r["workload"] for r in search_logs(otlp, service=service)} == {workload}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"severity": "loud"}, "severity 'loud' is not one of trace, debug, info, warn, error"),
        ({"severity": "25"}, "is not one of"),
        ({"limit": "0"}, "limit must be between 1 and"),
        ({"limit": "many"}, "limit must be a whole number"),
        ({"since": "yesterday"}, "since 'yesterday' is not a duration"),
        ({"start": "soon"}, "start 'soon' is not a time"),
        ({"since": "1h", "start": "2026-01-01T00:00:00Z"}, "give either since or start"),
        ({"trace_id": "eee19b7ec3c1b174"}, "trace_id 'eee19b7ec3c1b174' is not 32 hex characters"),
        ({"trace_id": "z" * 32}, "is not 32 hex characters"),
    ],
)
def test_log_search_refuses_bad_filters(
    otlp: LiveServer, query: dict[str, str], message: str
) -> None:
    assert message in api_error(otlp, "/api/v1/logs", 400, **query)


# --- bad input ----------------------------------------------------------------------------------


def otlp_requests(server: LiveServer, signal: str) -> dict[str, float]:
    """onepane_otlp_requests_total over HTTP for one signal, by status code."""
    with urllib.request.urlopen(server.api_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "onepane_otlp_requests_total" and labels["signal"] == signal:
                out[labels["code"]] = out.get(labels["code"], 0) + sample.value
    return out


BAD_BODIES = {
    "metrics-protobuf": (
        "metrics",
        PROTOBUF,
        b"\x0a\x20\x0a\x05",
        "body is not a valid ExportMetricsServiceRequest protobuf message",
    ),
    "logs-protobuf": (
        "logs",
        PROTOBUF,
        b"\x0a\x20\x0a\x05",
        "body is not a valid ExportLogsServiceRequest protobuf message",
    ),
    "metrics-json": ("metrics", JSON, b'{"resourceMetrics": [', "body is not valid JSON"),
    "logs-json": ("logs", JSON, b'{"resourceLogs": [', "body is not valid JSON"),
    "metrics-json-shape": (
        "metrics",
        JSON,
        b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "x",'
        b' "gauge": {"dataPoints": [{"timeUnixNano": "1", "asDouble": "lots"}]}}]}]}]}',
        "body is not a valid OTLP/JSON ExportMetricsServiceRequest",
    ),
    "logs-json-shape": (
        "logs",
        JSON,
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": {"body": 1}}]}]}',
        "body is not a valid OTLP/JSON ExportLogsServiceRequest",
    ),
}


@pytest.mark.parametrize(
    ("signal", "media", "body", "message"), BAD_BODIES.values(), ids=BAD_BODIES
)
def test_undecodable_body_is_400_with_status_and_counts_nothing(
    otlp: LiveServer, signal: str, media: str, body: bytes, message: str
) -> None:
    before, requests_before = counters(otlp), otlp_requests(otlp, signal)
    reply = post(otlp, signal, body, media)
    assert reply.status == 400 and reply.content_type == media
    status = reply.rpc_status()
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert message in status.message
    assert changed(before, counters(otlp)) == {}
    assert changed(requests_before, otlp_requests(otlp, signal)) == {"400": 1}


def test_invalid_points_are_rejected_and_the_rest_stored(otlp: LiveServer) -> None:
    run = uid()
    gauge, hist, total = f"bad.gauge.{run}", f"bad.hist.{run}", f"bad.sum.{run}"
    trace_id, span_id = new_trace_id(), new_span_id()
    good_exemplar = Exemplar(as_int=3, time_unix_nano=T0, trace_id=trace_id, span_id=span_id)
    request = metrics_request(
        [
            gauge_metric(gauge, [number(1.0, 10), NumberDataPoint(as_double=2.0)]),  # no time
            histogram_metric(
                hist,
                [
                    histogram_point([1, 2], [0.5]),
                    histogram_point([1, 1], [0.5, 1.0]),  # one count short
                    histogram_point([1, 2], [0.5], count=5),  # buckets say 3
                ],
            ),
            Metric(gauge=Gauge(data_points=[number(3.0, 10), number(4.0, 20)])),  # no name
            sum_metric(total, [number(7, 10, 0, exemplars=(good_exemplar,))]),
        ],
        {"service.name": f"bad-{run}"},
    )
    before = counters(otlp)
    partial = export(otlp, request)
    assert partial is not None and partial.rejected_data_points == 5
    message = partial.error_message
    assert message.startswith("5 data point(s) rejected: ")
    assert f"data point of '{gauge}': time_unix_nano is required" in message
    assert (
        f"data point of '{hist}': 2 bucket_counts for 2 explicit_bounds; "
        "there must be one more count than bounds"
    ) in message
    assert f"data point of '{hist}': bucket_counts add up to 3 but count is 5" in message
    assert message.endswith("metric with no name (2): every metric needs a name")  # no "more"
    assert changed(before, counters(otlp)) == {
        "onepane_metric_points_received_total": 8,
        "onepane_metric_points_accepted_total": 3,
        "onepane_metric_points_rejected_total{invalid}": 5,
    }
    assert [p["value"] for p in points(otlp, gauge)] == [1.0]
    assert [p["bucket_counts"] for p in points(otlp, hist)] == [[1, 2]]
    [kept] = points(otlp, total)
    assert [(e["trace_id"], e["span_id"], e["value"]) for e in kept["exemplars"]] == [
        (trace_id.hex(), span_id.hex(), 3)
    ]


@pytest.mark.parametrize("media", [PROTOBUF, JSON], ids=["protobuf", "json"])
def test_exemplar_with_bad_ids_rejects_its_point(otlp: LiveServer, media: str) -> None:
    name = f"checkout.requests.{uid()}"
    bad = Exemplar(as_int=1, time_unix_nano=T0, trace_id=b"\x01\x02\x03\x04\x05")
    zero_span = Exemplar(as_int=1, time_unix_nano=T0, trace_id=new_trace_id(), span_id=bytes(8))
    request = metrics_request(
        [
            sum_metric(
                name,
                [
                    number(1, 10, 0, exemplars=(bad,)),
                    number(2, 20, 0),
                    number(3, 30, 0, exemplars=(zero_span,)),
                    number(4, 40, 0, {"route": "/"}, exemplars=(bad,)),
                ],
            )
        ],
        {"service.name": "exemplars"},
    )
    if media == JSON:
        document = otlp_dict(request)
        data_points = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]
        data_points["dataPoints"][3]["exemplars"][0]["traceId"] = "not-hex-at-all"
        body = json.dumps(document).encode()
    else:
        body = request.SerializeToString()
    before = counters(otlp)
    partial = partial_success(post(otlp, "metrics", body, media), "metrics", media)
    assert partial is not None and partial.rejected_data_points == 3
    message = partial.error_message
    assert (
        f"data point of '{name}': exemplar trace_id must be empty or 16 non-zero bytes, got 5 bytes"
    ) in message
    assert "exemplar span_id must be empty or 8 non-zero bytes, got 8 bytes" in message
    if media == JSON:
        assert f"data point of '{name}': traceId 'not-hex-at-all' is not hex" in message
    assert changed(before, counters(otlp)) == {
        "onepane_metric_points_received_total": 4,
        "onepane_metric_points_accepted_total": 1,
        "onepane_metric_points_rejected_total{invalid}": 3,
    }
    assert [p["value"] for p in points(otlp, name)] == [2.0]


@pytest.mark.parametrize("media", [PROTOBUF, JSON], ids=["protobuf", "json"])
def test_invalid_log_records_are_rejected_and_the_rest_stored(otlp: LiveServer, media: str) -> None:
    service = f"bad-logs-{uid()}"
    records = [
        log_record("kept first", at_ns=T0),
        log_record("short trace", trace_id=b"\x01\x02\x03\x04\x05", span_id=new_span_id()),
        log_record("zero span", trace_id=new_trace_id(), span_id=bytes(8)),
        log_record("too severe", severity=25),
        log_record("kept second", at_ns=T0 + SECOND, severity=24, trace_id=new_trace_id()),
    ]
    request = logs_request(records, {"service.name": service})
    if media == JSON:
        document = otlp_dict(request)
        log_records = document["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        log_records[1]["traceId"] = "z" * 32
        log_records.append({**log_records[0], "spanId": "eee19b7ec3c1b17g"})
        body = json.dumps(document).encode()
        rejected = 4
    else:
        body = request.SerializeToString()
        rejected = 3
    before = counters(otlp)
    partial = partial_success(post(otlp, "logs", body, media), "logs", media)
    assert partial is not None and partial.rejected_log_records == rejected
    message = partial.error_message
    assert message.startswith(f"{rejected} log record(s) rejected: ")
    assert (
        "log record 'zero span': span_id must be empty or 8 non-zero bytes, got 8 bytes"
    ) in message
    assert (
        "log record 'too severe': severity_number 25 is not an OTLP SeverityNumber (0-24)"
    ) in message
    if media == JSON:
        assert f"traceId '{'z' * 32}' is not hex" in message
        assert "spanId 'eee19b7ec3c1b17g' is not hex" in message
    else:
        assert (
            "log record 'short trace': trace_id must be empty or 16 non-zero bytes, got 5 bytes"
        ) in message
    assert changed(before, counters(otlp)) == {
        "onepane_log_records_received_total": len(records) + (media == JSON),
        "onepane_log_records_accepted_total": 2,
        "onepane_log_records_rejected_total{invalid}": rejected,
    }
    kept = search_logs(otlp, service=service)
    assert [(r["body"], r["severity_number"]) for r in kept] == [
        ("kept second", 24),
        ("kept first", 9),
    ]


def test_accepted_counters_match_what_was_stored(otlp: LiveServer) -> None:
    service = f"counted-{uid()}"
    before = counters(otlp)
    metrics = metrics_request(
        [gauge_metric(f"counted.{uid()}", [number(float(i), i + 1) for i in range(7)])],
        {"service.name": service},
    )
    assert export(otlp, metrics, JSON, gzipped=True) is None
    logs = logs_request([log_record(f"line {i}") for i in range(4)], {"service.name": service})
    assert export(otlp, logs, PROTOBUF, gzipped=True) is None
    assert changed(before, counters(otlp)) == {
        "onepane_metric_points_received_total": 7,
        "onepane_metric_points_accepted_total": 7,
        "onepane_log_records_received_total": 4,
        "onepane_log_records_accepted_total": 4,
    }
    assert len(search_logs(otlp, service=service)) == 4
