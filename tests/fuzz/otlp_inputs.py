"""Hostile OTLP exports for the fuzz targets: protobuf exports built by hypothesis from the
opentelemetry-proto classes (ids of every length, every AnyValue type nested, extreme
numbers, out-of-range enums), the same as OTLP/JSON, the OTLP/JSON examples with hostile
values, and byte-level mutations of all of them."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from collectors.otlp import wire

OTLP = Path("/work/shared/data/otlp")
OTLP_EXAMPLES = {"traces": "trace.json", "metrics": "metrics.json", "logs": "logs.json"}

U64 = st.one_of(st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
I64 = st.one_of(st.sampled_from([-(2**63), -1, 0, 2**63 - 1]), st.integers(-(2**63), 2**63 - 1))
U32 = st.one_of(st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
I32 = st.integers(-(2**31), 2**31 - 1)
DOUBLES = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", "\x00", "\u202e\u0645\u0631\u062d\u0628\u0627", "e\u0301\u0301\u0301", "🔥" * 20]
    ),
)
ID16 = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20), st.just(bytes(16)))
ID8 = st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=12), st.just(bytes(8)))


def any_values(max_leaves: int = 12) -> st.SearchStrategy[AnyValue]:
    """Every ``AnyValue`` type, nested arrays and key/value lists included."""
    scalars = st.one_of(
        st.builds(lambda v: AnyValue(string_value=v), TEXT),
        st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
        st.builds(lambda v: AnyValue(int_value=v), I64),
        st.builds(lambda v: AnyValue(double_value=v), DOUBLES),
        st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=20)),
        st.just(AnyValue()),
    )

    def nest(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
        def array(values: list[AnyValue]) -> AnyValue:
            out = AnyValue()
            out.array_value.values.extend(values)
            return out

        def kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
            out = AnyValue()
            out.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in pairs)
            return out

        return st.one_of(
            st.builds(array, st.lists(children, max_size=4)),
            st.builds(kvlist, st.lists(st.tuples(TEXT, children), max_size=4)),
        )

    return st.recursive(scalars, nest, max_leaves=max_leaves)


ATTRIBUTES = st.lists(
    st.builds(lambda k, v: KeyValue(key=k, value=v), TEXT, any_values()), max_size=5
)
RESOURCE_ATTRIBUTES = st.lists(
    st.builds(
        lambda k, v: KeyValue(key=k, value=v),
        st.sampled_from(["service.name", "deployment.environment", "k8s.pod.name", "x"]),
        any_values(4),
    ),
    max_size=4,
)


def _fill(message: Any, **fields: Any) -> Any:
    for name, value in fields.items():
        target = getattr(message, name)
        if isinstance(value, list):
            target.extend(value)
        elif hasattr(target, "CopyFrom"):
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


SPANS = st.builds(
    lambda **f: _fill(trace_pb2.Span(), **f),
    trace_id=ID16,
    span_id=ID8,
    parent_span_id=st.one_of(st.just(b""), ID8),
    name=TEXT,
    kind=st.integers(-2, 8),
    start_time_unix_nano=U64,
    end_time_unix_nano=U64,
    attributes=ATTRIBUTES,
    status=st.builds(lambda c, m: trace_pb2.Status(code=c, message=m), st.integers(-1, 4), TEXT),
    events=st.lists(
        st.builds(lambda t, n: trace_pb2.Span.Event(time_unix_nano=t, name=n), U64, TEXT),
        max_size=2,
    ),
    links=st.lists(
        st.builds(lambda t, s: trace_pb2.Span.Link(trace_id=t, span_id=s), ID16, ID8), max_size=2
    ),
    flags=U32,
    dropped_attributes_count=U32,
)


def _trace_request(resources: list[tuple[list[KeyValue], str, list[Any]]]) -> bytes:
    request = ExportTraceServiceRequest()
    for attrs, scope, spans in resources:
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(attrs)
        ss = rs.scope_spans.add()
        ss.scope.name = scope
        ss.spans.extend(spans)
    return request.SerializeToString()


TRACE_BODIES = st.builds(
    _trace_request,
    st.lists(st.tuples(RESOURCE_ATTRIBUTES, TEXT, st.lists(SPANS, max_size=4)), max_size=2),
)

NUMBER_POINTS = st.builds(
    lambda t, s, v, f, a: _fill(
        metrics_pb2.NumberDataPoint(time_unix_nano=t, start_time_unix_nano=s, flags=f, **v),
        attributes=a,
    ),
    U64,
    U64,
    st.one_of(
        st.builds(lambda v: {"as_double": v}, DOUBLES),
        st.builds(lambda v: {"as_int": v}, I64),
        st.just({}),
    ),
    U32,
    ATTRIBUTES,
)
HISTOGRAM_POINTS = st.builds(
    lambda t, c, s, b, bc, f: _fill(
        metrics_pb2.HistogramDataPoint(time_unix_nano=t, count=c, sum=s, flags=f),
        explicit_bounds=b,
        bucket_counts=bc,
    ),
    U64,
    U64,
    DOUBLES,
    st.lists(DOUBLES, max_size=4),
    st.lists(U64, max_size=5),
    U32,
)
EXPONENTIAL_POINTS = st.builds(
    lambda t, c, z, sc, pc, nc: _fill(
        metrics_pb2.ExponentialHistogramDataPoint(
            time_unix_nano=t, count=c, zero_count=z, scale=sc
        ),
        positive=metrics_pb2.ExponentialHistogramDataPoint.Buckets(offset=sc, bucket_counts=pc),
        negative=metrics_pb2.ExponentialHistogramDataPoint.Buckets(bucket_counts=nc),
    ),
    U64,
    U64,
    U64,
    I32,
    st.lists(U64, max_size=4),
    st.lists(U64, max_size=4),
)
SUMMARY_POINTS = st.builds(
    lambda t, c, q: _fill(
        metrics_pb2.SummaryDataPoint(time_unix_nano=t, count=c),
        quantile_values=[
            metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=a, value=b) for a, b in q
        ],
    ),
    U64,
    U64,
    st.lists(st.tuples(DOUBLES, DOUBLES), max_size=3),
)


TEMPORALITY = st.one_of(st.integers(-1, 3), I32)


def _metric(name: str, kind: str, points: list[Any], temporality: int) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=name)
    data = getattr(metric, kind)
    if kind != "gauge" and kind != "summary":
        data.aggregation_temporality = temporality
    data.data_points.extend(points)
    return metric


METRICS = st.one_of(
    *(
        st.builds(_metric, TEXT, st.just(kind), st.lists(points, max_size=3), TEMPORALITY)
        for kind, points in (
            ("gauge", NUMBER_POINTS),
            ("sum", NUMBER_POINTS),
            ("histogram", HISTOGRAM_POINTS),
            ("exponential_histogram", EXPONENTIAL_POINTS),
            ("summary", SUMMARY_POINTS),
        )
    )
)


def _metrics_request(resources: list[tuple[list[KeyValue], list[Any]]]) -> bytes:
    request = ExportMetricsServiceRequest()
    for attrs, metrics in resources:
        rm = request.resource_metrics.add()
        rm.resource.attributes.extend(attrs)
        rm.scope_metrics.add().metrics.extend(metrics)
    return request.SerializeToString()


METRIC_BODIES = st.builds(
    _metrics_request,
    st.lists(st.tuples(RESOURCE_ATTRIBUTES, st.lists(METRICS, max_size=3)), max_size=2),
)

LOG_RECORDS = st.builds(
    lambda **f: _fill(logs_pb2.LogRecord(), **f),
    time_unix_nano=U64,
    observed_time_unix_nano=U64,
    severity_number=st.integers(-1, 30),
    severity_text=TEXT,
    body=any_values(),
    attributes=ATTRIBUTES,
    trace_id=st.one_of(st.just(b""), ID16),
    span_id=st.one_of(st.just(b""), ID8),
    flags=U32,
    dropped_attributes_count=U32,
    event_name=TEXT,
)


def _logs_request(resources: list[tuple[list[KeyValue], list[Any]]]) -> bytes:
    request = ExportLogsServiceRequest()
    for attrs, records in resources:
        rl = request.resource_logs.add()
        rl.resource.attributes.extend(attrs)
        rl.scope_logs.add().log_records.extend(records)
    return request.SerializeToString()


LOG_BODIES = st.builds(
    _logs_request,
    st.lists(st.tuples(RESOURCE_ATTRIBUTES, st.lists(LOG_RECORDS, max_size=4)), max_size=2),
)
PROTOBUF_BODIES = {"traces": TRACE_BODIES, "metrics": METRIC_BODIES, "logs": LOG_BODIES}


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, written by hand."""
    size, length = bytearray(), len(payload)
    while True:
        byte, length = length & 0x7F, length >> 7
        size.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(size) + payload


def deep_log_body(depth: int) -> bytes:
    """An export whose one log record's body nests arrays in key/value lists ``depth`` levels
    deep: written as bytes, since protobuf refuses to build a message this deep."""
    value = _field(1, b"bottom")  # AnyValue.string_value
    for level in range(depth):
        if level % 2:
            value = _field(5, _field(1, value))  # AnyValue.array_value.values
        else:  # AnyValue.kvlist_value.values: KeyValue(key="k", value=...)
            value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))
    record = b"\x09" + (1).to_bytes(8, "little") + _field(5, value)  # time_unix_nano, body
    return _field(1, _field(2, _field(2, record)))  # resource_logs.scope_logs.log_records


DEEP_LOG_BODIES = st.integers(1, 400).map(deep_log_body)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few bytes flipped, cut, inserted or repeated."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "repeat"]))
        if action == "flip" and data:
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[where : where + draw(st.integers(1, 8))]
        elif action == "insert":
            data[where:where] = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=8), st.sampled_from([b"\xff\xfe", b"\x80"])
                )
            )
        elif action == "truncate":
            del data[where:]
        else:
            data[where:where] = data[where : where + draw(st.integers(1, 16))] * 3
    return bytes(data)


def protobuf_mutations(signal: str) -> st.SearchStrategy[bytes]:
    return PROTOBUF_BODIES[signal].filter(bool).flatmap(mutated)


HOSTILE_JSON = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "NaN", "-Infinity", "zz", "0" * 33, "\ud800x", "\x00", "A" * 1000]),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


def example_document(signal: str) -> Any:
    return json.loads((OTLP / OTLP_EXAMPLES[signal]).read_text())


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*path, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_paths(value, (*path, i)))
    return out


@st.composite
def json_mutations(draw: st.DrawFn, signal: str) -> bytes:
    """An OTLP/JSON example with some of its values replaced by hostile ones, re-encoded, and
    sometimes with its bytes mutated too (invalid UTF-8, cut off)."""
    document = copy.deepcopy(example_document(signal))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(document)))
        if not path:
            continue
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "nest"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "nest":
            parent[path[-1]] = {
                "kvlistValue": {"values": [{"key": "k", "value": parent[path[-1]]}]}
            }
        else:
            parent[path[-1]] = draw(HOSTILE_JSON)
    text = json.dumps(document, allow_nan=False).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        text = draw(mutated(text))
    return text


@st.composite
def json_documents(draw: st.DrawFn, signal: str) -> bytes:
    """A generated protobuf export written as OTLP/JSON, ids in hex as OTLP/JSON has them."""
    from google.protobuf import json_format

    message_type = wire._SHAPES[signal].message
    message = message_type.FromString(draw(PROTOBUF_BODIES[signal]))
    document = json_format.MessageToDict(message)
    for _, items in wire._item_lists(document, wire._SHAPES[signal]):
        for item in items:
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in item:
                    item[key] = base64.b64decode(item[key]).hex()
    return orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS) if document else b"{}"
