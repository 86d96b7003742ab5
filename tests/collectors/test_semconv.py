"""Semantic conventions (roles, workload identity, derived columns) and the trace decoder."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from collectors.otlp import semconv
from collectors.otlp.semconv import resource_identity, span_columns, span_role
from collectors.otlp.traces import SPAN_SCHEMA, decode_traces
from onepane.errors import BadRequest

SERVER, CLIENT, INTERNAL = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL
CONSUMER = Span.SPAN_KIND_CONSUMER


# --- span_role ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "kind", "is_root", "is_batch", "role"),
    [
        ({"ml.model.name": "fraud-model"}, INTERNAL, False, False, "inference"),
        ({"gen_ai.request.model": "gpt-4o"}, CLIENT, False, False, "inference"),
        ({"gen_ai.system": "openai"}, CLIENT, False, False, "inference"),
        ({"db.system": "mysql"}, CLIENT, False, False, "db"),
        ({"db.system.name": "postgresql"}, CLIENT, False, False, "db"),
        ({}, SERVER, True, False, "request"),
        ({"http.route": "/pay"}, SERVER, True, False, "request"),
        ({}, SERVER, False, False, "api"),
        ({"http.route": "/pay"}, CLIENT, False, False, "api"),
        ({"http.route": "/pay"}, INTERNAL, True, False, "api"),
        ({}, INTERNAL, True, True, "pipeline"),
        ({}, CONSUMER, False, True, "pipeline"),
        ({"pipeline.step": "load"}, INTERNAL, False, False, "pipeline"),
        ({}, INTERNAL, True, False, "internal"),
        ({"http.method": "GET"}, CLIENT, False, False, "internal"),
        ({"user.id": "42"}, INTERNAL, False, False, "internal"),
    ],
    ids=[
        "ml.model.name",
        "gen_ai.request.model",
        "gen_ai.other",
        "old-db.system",
        "new-db.system.name",
        "root-server",
        "root-server-with-route",
        "non-root-server",
        "client-with-route",
        "route-only",
        "batch-resource",
        "batch-consumer",
        "pipeline-attr",
        "root-internal",
        "method-without-route",
        "plain",
    ],
)
def test_span_role(
    attrs: dict[str, Any], kind: int, is_root: bool, is_batch: bool, role: str
) -> None:
    assert role in semconv.ROLES
    assert span_role(attrs, kind, is_root, is_batch) == role


def test_span_role_most_specific_signal_wins() -> None:
    both = {"ml.model.name": "ranker", "db.system.name": "redis", "http.route": "/rank"}
    assert span_role(both, SERVER, True, True) == "inference"
    db_server = {"db.system.name": "postgresql", "http.route": "/q"}
    assert span_role(db_server, SERVER, True, False) == "db"
    assert span_role({"http.route": "/run"}, SERVER, True, True) == "request"
    assert span_role({"pipeline.run": "7", "http.route": "/x"}, INTERNAL, False, False) == "api"


def test_span_role_matches_whole_attribute_names_only() -> None:
    """Prefixes are matched at the start of a key: look-alike keys do not change the role."""
    look_alikes = {"xml.model.name": "x", "mydb.system": "y", "my.gen_ai.model": "z"}
    assert span_role(look_alikes, CLIENT, False, False) == "internal"
    assert span_role({"data.pipeline.id": "1"}, INTERNAL, False, False) == "internal"


# --- resource_identity ---------------------------------------------------------------------

_CONTROLLERS = [
    ("k8s.deployment.name", "web"),
    ("k8s.statefulset.name", "db"),
    ("k8s.daemonset.name", "agent"),
    ("k8s.cronjob.name", "nightly"),
    ("k8s.job.name", "nightly-28901234"),
]


@pytest.mark.parametrize("first", range(len(_CONTROLLERS)), ids=[k for k, _ in _CONTROLLERS])
def test_workload_prefers_the_most_stable_controller(first: int) -> None:
    """deployment > statefulset > daemonset > cronjob > job > service.name."""
    attrs = dict(_CONTROLLERS[first:])
    attrs.update({"service.name": "svc", "k8s.namespace.name": "prod"})
    assert resource_identity(attrs)["workload"] == f"prod/{_CONTROLLERS[first][1]}"


def test_workload_falls_back_to_service_name_and_namespace_to_default() -> None:
    assert resource_identity({"service.name": "cart"})["workload"] == "default/cart"
    attrs = {"service.name": "cart", "service.namespace": "shop"}
    assert resource_identity(attrs)["workload"] == "shop/cart"
    attrs["k8s.namespace.name"] = "shop-prod"
    assert resource_identity(attrs)["workload"] == "shop-prod/cart"
    assert resource_identity({})["workload"] == "default/unknown_service"


def test_resource_identity_columns() -> None:
    ident = resource_identity(
        {
            "service.name": "checkout-api",
            "service.version": "1.4.2",
            "deployment.environment.name": "prod",
            "deployment.environment": "old-name",
            "k8s.namespace.name": "shop",
            "k8s.pod.name": "checkout-api-7d9f-x2x4q",
            "k8s.deployment.name": "checkout-api",
        }
    )
    assert ident == {
        "service_name": "checkout-api",
        "service_version": "1.4.2",
        "environment": "prod",
        "workload": "shop/checkout-api",
        "k8s_namespace": "shop",
        "k8s_pod": "checkout-api-7d9f-x2x4q",
        "is_batch": False,
    }
    old = resource_identity({"service.name": "a", "deployment.environment": "staging"})
    assert old["environment"] == "staging"
    assert old["service_version"] is None and old["k8s_namespace"] is None
    # service.namespace names the workload's namespace but is not a Kubernetes namespace.
    assert resource_identity({"service.namespace": "shop"})["k8s_namespace"] is None


@pytest.mark.parametrize(
    ("attrs", "is_batch"),
    [
        ({"k8s.job.name": "etl-1"}, True),
        ({"k8s.cronjob.name": "etl"}, True),
        ({"k8s.deployment.name": "web"}, False),
        ({"service.name": "etl"}, False),
    ],
)
def test_batch_resources(attrs: dict[str, str], is_batch: bool) -> None:
    assert resource_identity(attrs)["is_batch"] is is_batch


# --- span_columns --------------------------------------------------------------------------

_COLUMN_NAMES = semconv.SPAN_ATTRIBUTE_COLUMNS


def columns(attrs: dict[str, Any]) -> dict[str, Any]:
    return dict(zip(_COLUMN_NAMES, span_columns(attrs), strict=True))


def test_span_columns_from_current_names() -> None:
    assert columns(
        {
            "http.route": "/users/{id}",
            "http.request.method": "PUT",
            "http.response.status_code": 204,
            "db.system.name": "postgresql",
            "db.operation.name": "UPDATE",
            "db.query.text": "UPDATE users SET name = $1",
            "ml.model.name": "churn",
            "ml.model.version": "3",
        }
    ) == {
        "http_route": "/users/{id}",
        "http_method": "PUT",
        "http_status_code": 204,
        "db_system": "postgresql",
        "db_operation": "UPDATE",
        "db_query_text": "UPDATE users SET name = $1",
        "model_name": "churn",
        "model_version": "3",
    }


def test_span_columns_from_older_names() -> None:
    assert columns(
        {
            "http.method": "GET",
            "http.status_code": "404",
            "db.system": "mysql",
            "db.operation": "SELECT",
            "db.statement": "SELECT 1",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
        }
    ) == {
        "http_route": None,
        "http_method": "GET",
        "http_status_code": 404,
        "db_system": "mysql",
        "db_operation": "SELECT",
        "db_query_text": "SELECT 1",
        "model_name": "gpt-4o-2024-08-06",
        "model_version": None,
    }


def test_span_columns_prefer_current_names_over_older_ones() -> None:
    both = columns(
        {
            "http.request.method": "POST",
            "http.method": "GET",
            "http.response.status_code": 201,
            "http.status_code": 200,
            "db.system.name": "postgresql",
            "db.system": "postgres",
            "db.query.text": "new",
            "db.statement": "old",
            "gen_ai.request.model": "requested",
            "gen_ai.response.model": "served",
        }
    )
    assert both["http_method"] == "POST"
    assert both["http_status_code"] == 201
    assert both["db_system"] == "postgresql"
    assert both["db_query_text"] == "new"
    assert both["model_name"] == "requested"
    assert columns({"ml.model.name": "own", "gen_ai.request.model": "x"})["model_name"] == "own"


def test_span_columns_of_odd_values() -> None:
    assert columns({})["http_status_code"] is None
    assert columns({"http.response.status_code": "teapot"})["http_status_code"] is None
    assert columns({"ml.model.version": 7})["model_version"] == "7"
    assert all(value is None for value in span_columns({"user.id": "1"}))


# --- decode_traces on protobuf bytes ------------------------------------------------------

TRACE_ID = bytes.fromhex("f1e2d3c4b5a69788" + "0011223344556677")  # high bit set: negative key
ROOT_ID = bytes.fromhex("0102030405060708")
CHILD_ID = bytes.fromhex("1112131415161718")
LINK_TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
LINK_SPAN = bytes.fromhex("b7ad6b7169203331")
START = 1_767_225_600_000_000_000


def kv(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def _resource(**extra: str) -> Resource:
    attrs = {"service.name": "checkout-api", "k8s.namespace.name": "shop", **extra}
    return Resource(attributes=[kv(k, string_value=v) for k, v in attrs.items()])


def _good_spans() -> list[Span]:
    root = Span(
        trace_id=TRACE_ID,
        span_id=ROOT_ID,
        name="POST /checkout",
        kind=SERVER,
        start_time_unix_nano=START,
        end_time_unix_nano=START + 40_000_000,
        attributes=[
            kv("http.route", string_value="/checkout"),
            kv("http.response.status_code", int_value=201),
            kv("cart.total", double_value=42.5),
            kv("cart.gift", bool_value=False),
            kv("cart.items", int_value=0),
            kv("cart.note", string_value=""),
            kv("cart.skus", array_value=ArrayValue(values=[AnyValue(string_value="s1")])),
            kv("cart.raw", bytes_value=b"\x00\xff"),
            kv(
                "cart.owner",
                kvlist_value=KeyValueList(values=[kv("id", int_value=9)]),
            ),
        ],
        events=[
            Span.Event(time_unix_nano=START + 1, name="retry", attributes=[kv("n", int_value=2)])
        ],
        links=[
            Span.Link(
                trace_id=LINK_TRACE, span_id=LINK_SPAN, attributes=[kv("k", string_value="v")]
            )
        ],
        status=Status(code=Status.STATUS_CODE_ERROR, message="card declined"),
    )
    child = Span(
        trace_id=TRACE_ID,
        span_id=CHILD_ID,
        parent_span_id=ROOT_ID,
        name="SELECT orders",
        kind=CLIENT,
        start_time_unix_nano=START + 1_000_000,
        end_time_unix_nano=START + 900_000,  # ends before it starts: duration clamps to 0
        attributes=[kv("db.system", string_value="postgresql")],
    )
    third = Span(
        trace_id=TRACE_ID,
        span_id=bytes.fromhex("2122232425262728"),
        parent_span_id=ROOT_ID,
        name="score",
        attributes=[kv("gen_ai.request.model", string_value="gpt-4o")],
    )
    return [root, child, third]


def _request(spans: list[Span], resource: Resource | None = None) -> bytes:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=resource or _resource(),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(
                            name="checkout", version="2.1.0", attributes=[kv("x", int_value=1)]
                        ),
                        spans=spans,
                    )
                ],
            )
        ]
    ).SerializeToString()


def rows(body: bytes, json_body: bool = False) -> list[dict[str, Any]]:
    decoded = decode_traces(body, json_body)
    assert decoded.table.schema == SPAN_SCHEMA
    return decoded.table.to_pylist()


def test_decode_traces_accepts_valid_spans_into_rows() -> None:
    decoded = decode_traces(_request(_good_spans()), False)
    assert (decoded.accepted, decoded.rejected, decoded.error_message) == (3, 0, "")
    root, child, third = decoded.table.to_pylist()

    expected_key = int.from_bytes(TRACE_ID[:8], "big", signed=True)
    assert expected_key < 0
    assert {row["trace_key"] for row in (root, child, third)} == {expected_key}
    assert root["trace_id"] == TRACE_ID.hex() and root["span_id"] == ROOT_ID.hex()
    assert root["parent_span_id"] is None and child["parent_span_id"] == ROOT_ID.hex()
    assert (root["name"], root["kind"], root["role"]) == ("POST /checkout", SERVER, "request")
    assert (child["role"], third["role"]) == ("db", "inference")
    assert (root["status_code"], root["status_message"]) == (2, "card declined")
    assert root["duration_ns"] == 40_000_000 and child["duration_ns"] == 0
    assert (root["http_route"], root["http_status_code"]) == ("/checkout", 201)
    assert (child["db_system"], third["model_name"]) == ("postgresql", "gpt-4o")
    assert root["workload"] == "shop/checkout-api" and root["k8s_namespace"] == "shop"
    assert (root["scope_name"], root["scope_version"]) == ("checkout", "2.1.0")
    assert json.loads(root["scope_attributes"]) == {"x": 1}

    assert json.loads(root["attributes"]) == {
        "http.route": "/checkout",
        "http.response.status_code": 201,
        "cart.total": 42.5,
        "cart.gift": False,
        "cart.items": 0,
        "cart.note": "",
        "cart.skus": ["s1"],
        "cart.raw": base64.b64encode(b"\x00\xff").decode(),
        "cart.owner": {"id": 9},
    }
    assert json.loads(root["events"]) == [
        {"time_unix_nano": START + 1, "name": "retry", "attributes": {"n": 2}}
    ]
    assert json.loads(root["links"]) == [
        {
            "trace_id": LINK_TRACE.hex(),
            "span_id": LINK_SPAN.hex(),
            "trace_state": "",
            "attributes": {"k": "v"},
        }
    ]
    assert child["events"] is None and child["links"] is None


def test_decode_traces_resources_are_stored_once_by_content() -> None:
    body = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=_resource(), scope_spans=[ScopeSpans(spans=[span])])
            for span in _good_spans()
        ]
    ).SerializeToString()
    decoded = decode_traces(body, False)
    assert decoded.accepted == 3
    assert decoded.resources.num_rows == 1
    [resource] = decoded.resources.to_pylist()
    assert orjson.loads(resource["attributes"]) == {
        "service.name": "checkout-api",
        "k8s.namespace.name": "shop",
    }
    assert set(decoded.table.column("resource_id").to_pylist()) == {resource["resource_id"]}

    other = decode_traces(_request(_good_spans(), _resource(**{"k8s.pod.name": "p"})), False)
    assert other.resources.column("resource_id")[0] != resource["resource_id"]


def test_decode_traces_batch_resource_makes_pipeline_spans() -> None:
    spans = [Span(trace_id=TRACE_ID, span_id=ROOT_ID, name="extract", kind=INTERNAL)]
    [row] = rows(_request(spans, _resource(**{"k8s.job.name": "etl-28901234"})))
    assert row["role"] == "pipeline"
    assert row["workload"] == "shop/etl-28901234"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"trace_id": bytes(5)}, "trace_id must be 16 non-zero bytes"),
        ({"trace_id": bytes(16)}, "trace_id must be 16 non-zero bytes"),
        ({"span_id": b""}, "span_id must be 8 non-zero bytes (16 hex characters), got 0 bytes"),
        ({"span_id": bytes(8)}, "span_id must be 8 non-zero bytes"),
        ({"parent_span_id": b"\x01\x02"}, "parent_span_id must be empty or 8 bytes, got 2"),
        ({"kind": 9}, "kind 9 is not an OTLP SpanKind (0-5)"),
        ({"status": Status(code=7)}, "status.code 7 is not an OTLP StatusCode (0-2)"),
    ],
    ids=["short-trace", "zero-trace", "empty-span", "zero-span", "parent", "kind", "status"],
)
def test_decode_traces_rejects_bad_spans_and_keeps_the_rest(bad: dict[str, Any], why: str) -> None:
    broken = Span(trace_id=TRACE_ID, span_id=bytes.fromhex("99" * 8), name="broken")
    for field, value in bad.items():
        if field == "status":
            broken.status.CopyFrom(value)
        else:
            setattr(broken, field, value)
    decoded = decode_traces(_request([*_good_spans(), broken]), False)
    assert (decoded.accepted, decoded.rejected) == (3, 1)
    assert decoded.error_message.startswith("1 span(s) rejected: span 'broken' ")
    assert why in decoded.error_message
    assert "broken" not in decoded.table.column("name").to_pylist()


def test_decode_traces_error_message_is_capped() -> None:
    bad = [Span(trace_id=bytes(5), span_id=ROOT_ID, name=f"bad{i}") for i in range(8)]
    decoded = decode_traces(_request(bad), False)
    assert (decoded.accepted, decoded.rejected) == (0, 8)
    assert decoded.table.num_rows == 0 and decoded.table.schema == SPAN_SCHEMA
    assert decoded.error_message.startswith("8 span(s) rejected: span 'bad0'")
    assert "'bad4'" in decoded.error_message and "'bad5'" not in decoded.error_message
    assert decoded.error_message.endswith("; and 3 more")


def test_decode_traces_of_json_with_hex_ids() -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "basket"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_ID.hex().upper(),
                                "spanId": ROOT_ID.hex(),
                                "name": "GET /basket",
                                "kind": 2,
                                "startTimeUnixNano": str(START),
                                "endTimeUnixNano": START + 5,
                                "attributes": [{"key": "n", "value": {"intValue": "5"}}],
                            },
                            {"traceId": "not hex", "spanId": CHILD_ID.hex(), "name": "bad"},
                        ]
                    }
                ],
            }
        ]
    }
    decoded = decode_traces(json.dumps(document).encode(), True)
    assert (decoded.accepted, decoded.rejected) == (1, 1)
    assert "span 'bad': traceId 'not hex' is not hex" in decoded.error_message
    [row] = decoded.table.to_pylist()
    assert row["trace_id"] == TRACE_ID.hex()
    assert row["trace_key"] == int.from_bytes(TRACE_ID[:8], "big", signed=True)
    assert (row["kind"], row["role"], row["duration_ns"]) == (SERVER, "request", 5)
    assert json.loads(row["attributes"]) == {"n": 5}
    assert row["workload"] == "default/basket"


def test_decode_traces_empty_and_malformed_bodies() -> None:
    empty = decode_traces(b"", False)
    assert (empty.accepted, empty.rejected, empty.resources.num_rows) == (0, 0, 0)
    with pytest.raises(BadRequest, match="not a valid ExportTraceServiceRequest protobuf"):
        decode_traces(b"\x0a\x20\x0a", False)
    with pytest.raises(BadRequest, match="not valid JSON"):
        decode_traces(b"{", True)
