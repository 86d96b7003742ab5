"""The OTLP/HTTP trace receiver of a live `onepane serve`, driven by real OTLP clients.

One server serves the whole module (starting one takes seconds); every test sends its own
trace ids and measures metrics as differences, so the tests do not depend on each other.
"""

from __future__ import annotations

import functools
import gzip
import http.client
import json
import secrets
import socket
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags
from prometheus_client.parser import text_string_to_metric_families

from onepane.testing import LiveServer

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MIB = 1024 * 1024
LIMIT = 64 * MIB
NOW_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
EXAMPLE_TRACE = Path("/work/shared/data/otlp/trace.json")


@pytest.fixture(scope="module")
def otlp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server (the conftest LiveServer, one decoder process) for this module."""
    live = LiveServer(tmp_path_factory.mktemp("otlp-http") / "onepane.duckdb", "--decoders", "1")
    yield live
    if live.stop() != 0:
        pytest.fail("onepane serve did not stop cleanly:\n" + "".join(live.output))


# --- clients ---------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0]

    def rpc_status(self) -> status_pb2.Status:
        """The google.rpc.Status error body, in the encoding the reply says it has."""
        if self.content_type == JSON:
            return json_format.Parse(self.body, status_pb2.Status())
        assert self.content_type == PROTOBUF, self.headers
        return status_pb2.Status.FromString(self.body)

    def export_response(self) -> ExportTraceServiceResponse:
        if self.content_type == JSON:
            return json_format.Parse(self.body, ExportTraceServiceResponse())
        assert self.content_type == PROTOBUF, self.headers
        return ExportTraceServiceResponse.FromString(self.body)


def _address(server: LiveServer) -> tuple[str, int]:
    url = urlsplit(server.otlp_url)
    return url.hostname or "127.0.0.1", url.port or 80


def exchange(
    server: LiveServer,
    body: Any = b"",
    content_type: str | None = PROTOBUF,
    *,
    method: str = "POST",
    path: str = "/v1/traces",
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
    chunked: bool = False,
) -> Reply:
    """One HTTP request to the OTLP port (on ``conn`` when given, to reuse a connection)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(*_address(server), timeout=30)
    sent = dict(headers or {})
    if content_type:
        sent["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body, headers=sent, encode_chunked=chunked)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        if own:
            conn.close()


def send_headers_only(server: LiveServer, content_length: int) -> Reply:
    """Announce a body of ``content_length`` bytes but send none; read what comes back."""
    with socket.create_connection(_address(server), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: onepane\r\n"
            b"Content-Type: application/x-protobuf\r\n"
            + f"Content-Length: {content_length}\r\n\r\n".encode()
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Reply(response.status, response.headers, response.read())


def request_counts(server: LiveServer) -> dict[str, float]:
    """onepane_otlp_requests_total over HTTP (any signal, unknown paths too), by status code."""
    with urllib.request.urlopen(server.api_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name != "onepane_otlp_requests_total":
                continue
            if labels.get("transport") == "http":
                counts[labels["code"]] = counts.get(labels["code"], 0) + sample.value
    return counts


# --- building OTLP requests --------------------------------------------------------------


def new_trace_id() -> bytes:
    return b"\x5b" + secrets.token_bytes(15)


def new_span_id() -> bytes:
    return b"\x1e" + secrets.token_bytes(7)


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def proto_span(
    trace_id: bytes,
    span_id: bytes,
    name: str,
    parent: bytes = b"",
    kind: int = Span.SPAN_KIND_INTERNAL,
    offset_ms: int = 0,
    **attrs: Any,
) -> Span:
    start = NOW_NS + offset_ms * 1_000_000
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 5_000_000,
        attributes=[kv(key.replace("_", "."), value) for key, value in attrs.items()],
    )


def export_request(spans: list[Span], service: str = "cart") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=ResourceProto(attributes=[kv("service.name", service)]),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )


def small_trace(name: str = "GET /cart") -> tuple[str, bytes]:
    """A two-span trace as protobuf bytes, and its trace id in hex."""
    trace_id, root_id = new_trace_id(), new_span_id()
    spans = [
        proto_span(trace_id, root_id, name, kind=Span.SPAN_KIND_SERVER, http_route="/cart"),
        proto_span(trace_id, new_span_id(), "load cart", parent=root_id, offset_ms=1),
    ]
    return trace_id.hex(), export_request(spans).SerializeToString()


def json_span(trace_hex: str, span_hex: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "traceId": trace_hex,
        "spanId": span_hex,
        "name": name,
        "startTimeUnixNano": str(NOW_NS),
        "endTimeUnixNano": str(NOW_NS + 2_000_000),
        **extra,
    }


def json_request(spans: list[dict[str, Any]], service: str = "cart") -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeSpans": [{"scope": {"name": "handmade"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def by_name(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {span["name"]: span for span in trace["spans"]}


def assert_ok(reply: Reply, media: str = PROTOBUF) -> ExportTraceServiceResponse:
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.content_type == media
    response = reply.export_response()
    assert not response.HasField("partial_success"), response
    return response


# --- the SDK exporter, end to end --------------------------------------------------------

LINKED_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
LINKED_SPAN_ID = 0xB7AD6B7169203331


def _record_checkout(provider: TracerProvider) -> str:
    tracer = provider.get_tracer("checkout", "2.1.0")
    linked = SpanContext(LINKED_TRACE_ID, LINKED_SPAN_ID, is_remote=True, trace_flags=TraceFlags(1))
    with tracer.start_as_current_span(
        "POST /checkout",
        kind=SpanKind.SERVER,
        attributes={
            "http.route": "/checkout",
            "http.request.method": "POST",
            "http.response.status_code": 200,
            "user.tier": "gold",
            "cart.items": 3,
            "cart.total": 42.5,
            "cart.gift": True,
            "cart.skus": ["sku-1", "sku-2"],
            "retry.count": 0,
            "cart.express": False,
        },
    ) as root:
        with tracer.start_as_current_span(
            "SELECT orders",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "postgresql",
                "db.operation.name": "SELECT",
                "db.query.text": "SELECT * FROM orders WHERE id = $1",
            },
        ) as db_span:
            db_span.set_status(StatusCode.ERROR, "statement timeout")
        with (
            tracer.start_as_current_span(
                "fraud-model predict",
                attributes={"ml.model.name": "fraud-model", "ml.model.version": "7"},
            ),
            tracer.start_as_current_span("load features"),
        ):
            pass
        with tracer.start_as_current_span(
            "enqueue receipt",
            kind=SpanKind.PRODUCER,
            links=[Link(linked, {"link.reason": "follows-from"})],
        ) as producer:
            producer.add_event("queue.full", {"queue.name": "receipts", "queue.depth": 128})
        trace_id = root.get_span_context().trace_id
    return format(trace_id, "032x")


def _sdk_provider(server: LiveServer, **exporter_args: Any) -> TracerProvider:
    resource = Resource.create(
        {
            "service.name": "checkout-api",
            "k8s.namespace.name": "shop",
            "k8s.deployment.name": "checkout-api",
            "k8s.pod.name": "checkout-api-7d9f-x2x4q",
        }
    )
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=server.otlp_url + "/v1/traces", **exporter_args)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_sdk_exporter_trace_is_stored_with_roles_tree_and_attributes(otlp: LiveServer) -> None:
    before = otlp.metric("onepane_spans_accepted_total")
    provider = _sdk_provider(otlp)
    try:
        trace_id = _record_checkout(provider)
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()

    trace = otlp.trace(trace_id)
    assert trace["trace_id"] == trace_id
    assert [s["name"] for s in trace["spans"]] == [
        "POST /checkout",
        "SELECT orders",
        "fraud-model predict",
        "load features",
        "enqueue receipt",
    ]
    assert [s["depth"] for s in trace["spans"]] == [0, 1, 1, 2, 1]
    assert trace["span_count"] == 5
    assert trace["complete"] is True
    assert trace["root_name"] == "POST /checkout"
    assert trace["root_service"] == "checkout-api"
    assert trace["roles"] == ["db", "inference", "internal", "request"]
    assert trace["services"] == ["checkout-api"]
    assert trace["error_count"] == 1
    assert otlp.metric("onepane_spans_accepted_total") - before == 5

    spans = by_name(trace)
    root, db, model = spans["POST /checkout"], spans["SELECT orders"], spans["fraud-model predict"]
    features, producer = spans["load features"], spans["enqueue receipt"]
    assert trace["root_span_id"] == root["span_id"] and trace["root_span_ids"] == [root["span_id"]]
    assert root["parent_span_id"] is None
    assert root["children"] == [db["span_id"], model["span_id"], producer["span_id"]]
    assert model["children"] == [features["span_id"]]
    assert features["parent_span_id"] == model["span_id"]
    assert db["children"] == [] and producer["children"] == []

    roles = {name: span["role"] for name, span in spans.items()}
    assert roles == {
        "POST /checkout": "request",
        "SELECT orders": "db",
        "fraud-model predict": "inference",
        "load features": "internal",
        "enqueue receipt": "internal",
    }
    kinds = {name: span["kind"] for name, span in spans.items()}
    assert kinds == {
        "POST /checkout": "SERVER",
        "SELECT orders": "CLIENT",
        "fraud-model predict": "INTERNAL",
        "load features": "INTERNAL",
        "enqueue receipt": "PRODUCER",
    }
    assert {span["workload"] for span in trace["spans"]} == {"shop/checkout-api"}
    assert {span["scope_name"] for span in trace["spans"]} == {"checkout"}
    assert {span["scope_version"] for span in trace["spans"]} == {"2.1.0"}

    # Attributes of every AnyValue type come back with their types, falsy values included.
    assert root["attributes"] == {
        "http.route": "/checkout",
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "user.tier": "gold",
        "cart.items": 3,
        "cart.total": 42.5,
        "cart.gift": True,
        "cart.skus": ["sku-1", "sku-2"],
        "retry.count": 0,
        "cart.express": False,
    }
    assert type(root["attributes"]["cart.items"]) is int
    assert type(root["attributes"]["cart.total"]) is float
    assert (root["http_route"], root["http_method"], root["http_status_code"]) == (
        "/checkout",
        "POST",
        200,
    )
    assert (db["db_system"], db["db_operation"]) == ("postgresql", "SELECT")
    assert db["db_query_text"] == "SELECT * FROM orders WHERE id = $1"
    assert db["status"] == {"code": "ERROR", "message": "statement timeout"}
    assert root["status"] == {"code": "UNSET", "message": None}
    assert (model["model_name"], model["model_version"]) == ("fraud-model", "7")
    assert root["duration_ns"] >= db["duration_ns"] > 0
    assert root["offset_ns"] == 0 and db["offset_ns"] >= 0

    # Events and links are kept whole.
    [event] = producer["events"]
    assert event["name"] == "queue.full"
    assert event["attributes"] == {"queue.name": "receipts", "queue.depth": 128}
    assert producer["start_unix_nano"] <= event["time_unix_nano"] <= producer["end_unix_nano"]
    [link] = producer["links"]
    assert link["trace_id"] == format(LINKED_TRACE_ID, "032x")
    assert link["span_id"] == format(LINKED_SPAN_ID, "016x")
    assert link["attributes"] == {"link.reason": "follows-from"}
    assert root["events"] == [] and root["links"] == []

    # The resource is stored once, with the SDK's own attributes next to ours.
    assert list(trace["resources"]) == [root["resource_id"]]
    resource = trace["resources"][root["resource_id"]]
    assert resource["service.name"] == "checkout-api"
    assert resource["k8s.namespace.name"] == "shop"
    assert resource["k8s.deployment.name"] == "checkout-api"
    assert resource["k8s.pod.name"] == "checkout-api-7d9f-x2x4q"
    assert resource["telemetry.sdk.language"] == "python"
    assert {span["resource_id"] for span in trace["spans"]} == {root["resource_id"]}


def test_sdk_exporter_with_gzip_compression(otlp: LiveServer) -> None:
    provider = _sdk_provider(otlp, compression=Compression.Gzip)
    try:
        tracer = provider.get_tracer("gzip-check")
        with (
            tracer.start_as_current_span("GET /gz", kind=SpanKind.SERVER) as root,
            tracer.start_as_current_span("compress"),
        ):
            pass
        trace_id = format(root.get_span_context().trace_id, "032x")
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    trace = otlp.trace(trace_id)
    assert [s["name"] for s in trace["spans"]] == ["GET /gz", "compress"]
    assert [s["role"] for s in trace["spans"]] == ["request", "internal"]


# --- OTLP/JSON ---------------------------------------------------------------------------


def test_json_example_from_the_spec_is_stored_and_found_by_uppercase_id(otlp: LiveServer) -> None:
    reply = exchange(otlp, EXAMPLE_TRACE.read_bytes(), JSON)
    assert reply.status == 200
    assert reply.content_type == JSON
    assert "partialSuccess" not in json.loads(reply.body)

    trace = otlp.trace("5B8EFFF798038103D269B633813FC60C")
    assert trace["trace_id"] == "5b8efff798038103d269b633813fc60c"
    [span] = trace["spans"]
    assert span["name"] == "I'm a server span"
    assert span["span_id"] == "eee19b7ec3c1b174"
    assert span["parent_span_id"] == "eee19b7ec3c1b173"
    assert span["kind"] == "SERVER"
    # Its parent never arrived: shown as a root, marked orphan, and a SERVER hop, not the request.
    assert span["orphan"] is True and trace["complete"] is False
    assert span["role"] == "api"
    assert span["start_unix_nano"] == 1544712660000000000
    assert span["end_unix_nano"] == 1544712661000000000
    assert span["duration_ns"] == 1_000_000_000
    assert trace["duration_ms"] == 1000.0
    assert span["attributes"] == {"my.span.attr": "some value"}
    assert (span["scope_name"], span["scope_version"]) == ("my.library", "1.0.0")
    assert span["service_name"] == "my.service"
    assert span["workload"] == "default/my.service"
    assert trace["resources"] == {span["resource_id"]: {"service.name": "my.service"}}


def test_handcrafted_json_numbers_strings_enums_unknown_fields_mixed_case(
    otlp: LiveServer,
) -> None:
    trace_id, root_id, child_id = new_trace_id(), new_span_id(), new_span_id()
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(trace_id.hex()))
    assert mixed.lower() == trace_id.hex() and mixed != trace_id.hex()
    root = {
        "traceId": mixed,
        "spanId": root_id.hex().upper(),
        "name": "GET /basket",
        "kind": 2,
        "startTimeUnixNano": NOW_NS,  # int64 as a JSON number
        "endTimeUnixNano": NOW_NS + 30_000_000,
        "futureSpanField": {"nested": [1, 2]},
        "attributes": [
            {"key": "http.route", "value": {"stringValue": "/basket", "futureValue": 1}},
            {"key": "basket.size", "value": {"intValue": "12"}},
            {"key": "basket.weight", "value": {"intValue": 7}},
            {"key": "basket.ratio", "value": {"doubleValue": 0.25}},
            {"key": "basket.open", "value": {"boolValue": True}},
            {"key": "basket.raw", "value": {"bytesValue": "aGVsbG8="}},
            {
                "key": "basket.tags",
                "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}]}},
            },
            {
                "key": "basket.owner",
                "value": {"kvlistValue": {"values": [{"key": "id", "value": {"intValue": "9"}}]}},
            },
        ],
        "status": {"code": 2, "message": "upstream failed", "futureStatus": True},
    }
    child = {
        "traceId": trace_id.hex().upper(),
        "spanId": child_id.hex(),
        "parentSpanId": root_id.hex().upper(),
        "name": "call pricing",
        "kind": 3,
        "startTimeUnixNano": str(NOW_NS + 1_000_000),  # int64 as a JSON string
        "endTimeUnixNano": str(NOW_NS + 21_000_000),
        "attributes": [{"key": "http.route", "value": {"stringValue": "/price"}}],
    }
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "basket"}},
                        {"key": "service.namespace", "value": {"stringValue": "retail"}},
                    ],
                    "futureResourceField": "x",
                },
                "scopeSpans": [
                    {"scope": {"name": "manual"}, "spans": [root, child], "futureScope": 3}
                ],
                "futureResourceSpans": [],
            }
        ],
        "futureTopLevel": {"a": 1},
    }
    reply = exchange(otlp, json.dumps(document).encode(), JSON)
    assert_ok(reply, JSON)

    trace = otlp.trace(mixed)
    assert trace["trace_id"] == trace_id.hex()
    spans = by_name(trace)
    get, call = spans["GET /basket"], spans["call pricing"]
    assert get["span_id"] == root_id.hex()
    assert call["parent_span_id"] == root_id.hex()
    assert get["children"] == [child_id.hex()]
    assert (get["depth"], call["depth"]) == (0, 1)
    assert (get["kind"], call["kind"]) == ("SERVER", "CLIENT")
    assert (get["role"], call["role"]) == ("request", "api")
    assert get["start_unix_nano"] == NOW_NS and get["duration_ns"] == 30_000_000
    assert call["start_unix_nano"] == NOW_NS + 1_000_000 and call["duration_ns"] == 20_000_000
    assert get["status"] == {"code": "ERROR", "message": "upstream failed"}
    assert get["workload"] == "retail/basket"
    assert get["attributes"] == {
        "http.route": "/basket",
        "basket.size": 12,
        "basket.weight": 7,
        "basket.ratio": 0.25,
        "basket.open": True,
        "basket.raw": "aGVsbG8=",
        "basket.tags": ["a", 2],
        "basket.owner": {"id": 9},
    }


# --- gzip ---------------------------------------------------------------------------------


def _multi_member_gzip(data: bytes) -> bytes:
    """Two gzip members back to back (what `cat a.gz b.gz` makes): one valid gzip stream."""
    half = len(data) // 2
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


@pytest.mark.parametrize("squeeze", [gzip.compress, _multi_member_gzip], ids=["one", "members"])
def test_gzip_protobuf_body_is_accepted(
    otlp: LiveServer, squeeze: Callable[[bytes], bytes]
) -> None:
    trace_id, body = small_trace("GET /zipped")
    compressed = squeeze(body)
    assert compressed != body
    reply = exchange(otlp, compressed, PROTOBUF, headers={"Content-Encoding": "gzip"})
    assert_ok(reply)
    trace = otlp.trace(trace_id)
    assert [s["name"] for s in trace["spans"]] == ["GET /zipped", "load cart"]


def test_gzip_json_body_is_accepted(otlp: LiveServer) -> None:
    trace_hex, span_hex = new_trace_id().hex(), new_span_id().hex()
    body = gzip.compress(json_request([json_span(trace_hex, span_hex, "zipped json")]))
    reply = exchange(otlp, body, JSON, headers={"Content-Encoding": "GZIP"})
    assert_ok(reply, JSON)
    assert [s["name"] for s in otlp.trace(trace_hex)["spans"]] == ["zipped json"]


# --- partial success ------------------------------------------------------------------------


def test_protobuf_partial_success_keeps_good_spans(otlp: LiveServer) -> None:
    good_trace, root_id = new_trace_id(), new_span_id()
    good = [
        proto_span(good_trace, root_id, "GET /orders", kind=Span.SPAN_KIND_SERVER),
        proto_span(good_trace, new_span_id(), "orders db", parent=root_id, offset_ms=1),
        proto_span(good_trace, new_span_id(), "orders cache", parent=root_id, offset_ms=2),
    ]
    bad = [
        proto_span(b"\x01\x02\x03\x04\x05", new_span_id(), "short trace id"),
        proto_span(new_trace_id(), b"", "no span id"),
    ]
    rejected_before = otlp.metric("onepane_spans_rejected_total")
    request = export_request([good[0], bad[0], good[1], bad[1], good[2]])
    reply = exchange(otlp, request.SerializeToString(), PROTOBUF)

    assert reply.status == 200 and reply.content_type == PROTOBUF
    partial = reply.export_response().partial_success
    assert partial.rejected_spans == 2
    assert partial.error_message.startswith("2 span(s) rejected: ")
    assert "'short trace id'" in partial.error_message
    assert "trace_id must be 16 non-zero bytes" in partial.error_message
    assert "got 5 bytes" in partial.error_message
    assert "'no span id' (span_id empty): span_id must be 8 non-zero bytes" in (
        partial.error_message
    )
    assert otlp.metric("onepane_spans_rejected_total") - rejected_before == 2

    trace = otlp.trace(good_trace.hex())
    assert [s["name"] for s in trace["spans"]] == ["GET /orders", "orders db", "orders cache"]
    assert trace["complete"] is True


def test_json_partial_success_for_a_trace_id_that_is_not_hex(otlp: LiveServer) -> None:
    trace_hex = new_trace_id().hex()
    spans = [
        json_span(trace_hex, new_span_id().hex(), "kept one"),
        json_span("zz" * 16, new_span_id().hex(), "bad id"),
        json_span(trace_hex, new_span_id().hex(), "kept two"),
    ]
    reply = exchange(otlp, json_request(spans), JSON)
    assert reply.status == 200 and reply.content_type == JSON
    document = json.loads(reply.body)
    assert document["partialSuccess"]["rejectedSpans"] in ("1", 1)
    message = document["partialSuccess"]["errorMessage"]
    assert "'bad id'" in message and "traceId" in message and "is not hex" in message
    assert sorted(s["name"] for s in otlp.trace(trace_hex)["spans"]) == ["kept one", "kept two"]


# --- errors ---------------------------------------------------------------------------------


@functools.cache
def _gzip_bomb() -> bytes:
    return gzip.compress(bytes(70 * MIB), compresslevel=9)


def _truncated_gzip() -> bytes:
    _, body = small_trace()
    compressed = gzip.compress(body)
    return compressed[: len(compressed) // 2]


@dataclass(frozen=True)
class BadRequestCase:
    send: Callable[[LiveServer], Reply]
    status: int
    media: str
    code: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


ERROR_CASES = {
    "malformed-protobuf": BadRequestCase(
        lambda s: exchange(s, b"\x0a\x20\x0a\x05", PROTOBUF),
        400,
        PROTOBUF,
        code_pb2.INVALID_ARGUMENT,
        "body is not a valid ExportTraceServiceRequest protobuf message",
    ),
    "malformed-json": BadRequestCase(
        lambda s: exchange(s, b'{"resourceSpans": [', JSON),
        400,
        JSON,
        code_pb2.INVALID_ARGUMENT,
        "body is not valid JSON",
    ),
    "json-array": BadRequestCase(
        lambda s: exchange(s, b'[{"resourceSpans": []}]', JSON),
        400,
        JSON,
        code_pb2.INVALID_ARGUMENT,
        "OTLP/JSON body must be a JSON object",
    ),
    "json-span-not-object": BadRequestCase(
        lambda s: exchange(s, b'{"resourceSpans": [{"scopeSpans": [{"spans": [5]}]}]}', JSON),
        400,
        JSON,
        code_pb2.INVALID_ARGUMENT,
        "body is not a valid OTLP/JSON ExportTraceServiceRequest",
    ),
    "text-plain": BadRequestCase(
        lambda s: exchange(s, b"span POST /x took 5ms", "text/plain"),
        415,
        JSON,
        code_pb2.INVALID_ARGUMENT,
        "Content-Type 'text/plain' is not OTLP; send application/x-protobuf or application/json",
    ),
    "brotli": BadRequestCase(
        lambda s: exchange(s, b"\x0b\x02\x80", PROTOBUF, headers={"Content-Encoding": "br"}),
        415,
        PROTOBUF,
        code_pb2.INVALID_ARGUMENT,
        "Content-Encoding 'br' is not supported; send gzip",
    ),
    "content-length-over-limit": BadRequestCase(
        lambda s: send_headers_only(s, LIMIT + 1),
        413,
        PROTOBUF,
        code_pb2.INVALID_ARGUMENT,
        f"body of {LIMIT + 1} bytes is over the {LIMIT}-byte limit",
        (("Connection", "close"),),
    ),
    "gzip-bomb": BadRequestCase(
        lambda s: exchange(s, _gzip_bomb(), PROTOBUF, headers={"Content-Encoding": "gzip"}),
        413,
        PROTOBUF,
        code_pb2.INVALID_ARGUMENT,
        f"body is over {LIMIT} bytes after gzip decompression",
    ),
    "truncated-gzip": BadRequestCase(
        lambda s: exchange(s, _truncated_gzip(), PROTOBUF, headers={"Content-Encoding": "gzip"}),
        400,
        PROTOBUF,
        code_pb2.INVALID_ARGUMENT,
        "gzip body is truncated",
    ),
    "get": BadRequestCase(
        lambda s: exchange(s, None, None, method="GET"),
        405,
        PROTOBUF,
        code_pb2.UNIMPLEMENTED,
        "OTLP endpoints take POST",
        (("Allow", "POST"),),
    ),
    "unknown-path": BadRequestCase(
        lambda s: exchange(s, small_trace()[1], PROTOBUF, path="/v1/unknown"),
        404,
        PROTOBUF,
        code_pb2.NOT_FOUND,
        "no OTLP endpoint at /v1/unknown; send to /v1/traces, /v1/metrics or /v1/logs",
    ),
}


def test_gzip_bomb_is_small_on_the_wire() -> None:
    assert len(_gzip_bomb()) < MIB  # so the 413 below is about the inflated size


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_bad_request_gets_status_body_saying_what_was_wrong(
    otlp: LiveServer, case: BadRequestCase
) -> None:
    reply = case.send(otlp)
    assert reply.status == case.status, reply.body[:300]
    assert reply.content_type == case.media
    status = reply.rpc_status()
    assert case.message in status.message
    assert status.code == case.code
    for name, value in case.headers:
        assert reply.headers.get(name) == value


def test_server_survives_bad_requests_and_counts_them(otlp: LiveServer) -> None:
    counts_before = request_counts(otlp)
    total_before = otlp.metric("onepane_otlp_requests_total")
    expected: dict[str, int] = {}
    for case in ERROR_CASES.values():
        assert case.send(otlp).status == case.status
        expected[str(case.status)] = expected.get(str(case.status), 0) + 1

    trace_id, body = small_trace("GET /still-alive")
    assert_ok(exchange(otlp, body, PROTOBUF))
    assert otlp.trace(trace_id)["root_name"] == "GET /still-alive"
    expected["200"] = 1

    counts_after = request_counts(otlp)
    deltas = {
        code: counts_after.get(code, 0) - counts_before.get(code, 0)
        for code in set(counts_after) | set(counts_before)
    }
    assert {code: n for code, n in deltas.items() if n} == expected
    assert otlp.metric("onepane_otlp_requests_total") - total_before == len(ERROR_CASES) + 1


def test_keep_alive_connection_survives_refused_bodies(otlp: LiveServer) -> None:
    """An exporter reuses its connection: a refused, unread body must not poison the next one."""
    trace_id, body = small_trace("GET /after-refusals")
    conn = http.client.HTTPConnection(*_address(otlp), timeout=30)
    try:
        assert exchange(otlp, b"x" * 5000, "text/plain", conn=conn).status == 415
        assert exchange(otlp, body, PROTOBUF, path="/v1/logz", conn=conn).status == 404
        assert_ok(exchange(otlp, body, PROTOBUF, conn=conn))
        assert_ok(exchange(otlp, b"", PROTOBUF, conn=conn))
    finally:
        conn.close()
    assert otlp.trace(trace_id)["span_count"] == 2


# --- transfer encodings ---------------------------------------------------------------------


def test_chunked_request_body_is_accepted(otlp: LiveServer) -> None:
    trace_id, body = small_trace("GET /chunked")
    third = len(body) // 3
    chunks = iter([body[:third], body[third : 2 * third], body[2 * third :]])
    reply = exchange(otlp, chunks, PROTOBUF, chunked=True)
    assert_ok(reply)
    trace = otlp.trace(trace_id)
    assert [s["name"] for s in trace["spans"]] == ["GET /chunked", "load cart"]
    assert trace["spans"][1]["parent_span_id"] == trace["spans"][0]["span_id"]
