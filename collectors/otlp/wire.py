"""The OTLP wire rules shared by every signal: bodies, encodings, ids and status replies.

OTLP/HTTP carries protobuf or JSON, optionally gzip-compressed. OTLP/JSON differs from the
protobuf JSON mapping in one way that matters: trace and span ids are hex, not base64.
Errors are answered with a ``google.rpc.Status`` in the request's own encoding.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from onepane.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_BODY_BYTES = 64 * 1024 * 1024

M = TypeVar("M", bound=Message)


def media_type(content_type: str | None) -> str:
    """The OTLP encoding of a request from its Content-Type header; 415 for anything else."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in (PROTOBUF, JSON):
        return kind
    raise UnsupportedMediaType(
        f"Content-Type {content_type or '(none)'!r} is not OTLP; send {PROTOBUF} or {JSON}"
    )


def decompress(body: bytes, encoding: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body after Content-Encoding, refusing more than ``limit`` bytes out."""
    kind = (encoding or "identity").strip().lower()
    if kind == "identity":
        return body
    if kind != "gzip":
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding"
        )
    return _gunzip(body, limit)


def _gunzip(body: bytes, limit: int) -> bytes:
    out = bytearray()
    data = body
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise BadRequest(f"gzip body is corrupt: {exc}") from exc
        if len(out) > limit:
            raise PayloadTooLarge(
                f"body is over {limit} bytes after gzip decompression; send smaller batches"
            )
        if not inflater.eof:
            raise BadRequest("gzip body is truncated; send the whole compressed body")
        data = inflater.unused_data
    return bytes(out)


def parse_protobuf(message_type: type[M], body: bytes) -> M:
    """Parse a protobuf body, turning a decode failure into a 400 with the reason."""
    try:
        return message_type.FromString(body)
    except DecodeError as exc:
        raise BadRequest(
            f"body is not a valid {message_type.DESCRIPTOR.name} protobuf message: {exc}"
        ) from exc


def load_json(body: bytes) -> dict[str, Any]:
    """The top-level JSON object of an OTLP/JSON body."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest("OTLP/JSON body must be a JSON object")
    return document


def parse_json_message(message_type: type[M], document: dict[str, Any]) -> M:
    """An OTLP/JSON document (ids already base64) as a message; unknown fields are ignored."""
    try:
        return json_format.ParseDict(document, message_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        name = message_type.DESCRIPTOR.name
        raise BadRequest(f"body is not a valid OTLP/JSON {name}: {exc}") from exc


def hex_id_to_base64(value: Any, field: str) -> str:
    """An OTLP/JSON hex id (any case) in the base64 form protobuf's JSON parser expects."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a hex string, got {type(value).__name__}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{field} {value[:40]!r} is not hex") from None
    return base64.b64encode(raw).decode("ascii")


def _fix_ids(item: Any, fields: tuple[tuple[str, str], ...]) -> None:
    if not isinstance(item, dict):
        return  # not a span or link object: the message parser rejects the body with a 400
    for camel, snake in fields:
        for key in (camel, snake):
            if key in item and item[key] != "":
                item[key] = hex_id_to_base64(item[key], camel)


_SPAN_IDS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))
_LINK_IDS = (("traceId", "trace_id"), ("spanId", "span_id"))
_LOG_IDS = (("traceId", "trace_id"), ("spanId", "span_id"))
_METRIC_DATA = (
    ("gauge", "gauge"),
    ("sum", "sum"),
    ("histogram", "histogram"),
    ("exponentialHistogram", "exponential_histogram"),
    ("summary", "summary"),
)


def _children(item: Any, camel: str, snake: str) -> list[Any]:
    if not isinstance(item, dict):
        return []
    value = item.get(camel, item.get(snake))
    return value if isinstance(value, list) else []


def _fix_span(span: Any) -> None:
    _fix_ids(span, _SPAN_IDS)
    for link in _children(span, "links", "links"):
        _fix_ids(link, _LINK_IDS)


def _fix_log(record: Any) -> None:
    _fix_ids(record, _LOG_IDS)


def _fix_point(point: Any) -> None:
    for exemplar in _children(point, "exemplars", "exemplars"):
        _fix_ids(exemplar, _LOG_IDS)


def _item_name(item: Any) -> str:
    if not isinstance(item, dict):
        return "''"
    name = item.get("name") or item.get("eventName")
    if name is None and ("timeUnixNano" in item or "time_unix_nano" in item):
        return f"at {item.get('timeUnixNano', item.get('time_unix_nano'))}"
    return repr(name or "")[:80]


@dataclass(frozen=True)
class _JsonShape:
    """Where the items with hex ids sit in one signal's OTLP/JSON document."""

    message: type[Message]
    path: tuple[tuple[str, str], ...]  # resource list, scope list
    items: tuple[str, str]  # the item list in a scope (metrics: the metric list)
    noun: str
    fix: Callable[[Any], None]


_SHAPES = {
    "traces": _JsonShape(
        ExportTraceServiceRequest,
        (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans")),
        ("spans", "spans"),
        "span",
        _fix_span,
    ),
    "logs": _JsonShape(
        ExportLogsServiceRequest,
        (("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs")),
        ("logRecords", "log_records"),
        "log record",
        _fix_log,
    ),
    "metrics": _JsonShape(
        ExportMetricsServiceRequest,
        (("resourceMetrics", "resource_metrics"), ("scopeMetrics", "scope_metrics")),
        ("metrics", "metrics"),
        "data point",
        _fix_point,
    ),
}


def _item_lists(document: Any, shape: _JsonShape) -> Iterator[tuple[Any, list[Any]]]:
    """Every list of items (spans, log records, a metric's data points) with its owner."""
    scopes = [document]
    for camel, snake in shape.path:
        scopes = [child for level in scopes for child in _children(level, camel, snake)]
    for scope in scopes:
        items = _children(scope, *shape.items)
        if shape.noun != "data point":
            yield None, items
            continue
        for metric in items:
            for camel, snake in _METRIC_DATA:
                data = metric.get(camel, metric.get(snake)) if isinstance(metric, dict) else None
                yield metric, _children(data, "dataPoints", "data_points")


def request_from_json(body: bytes, signal: str) -> tuple[Message, int, list[str]]:
    """An OTLP/JSON export of ``signal``; items with unreadable hex ids are dropped and
    described (OTLP partial success), the rest parsed into the protobuf request."""
    shape = _SHAPES[signal]
    document = load_json(body)
    rejected, messages = 0, []
    for owner, items in _item_lists(document, shape):
        kept = []
        for item in items:
            try:
                shape.fix(item)
            except ValueError as exc:
                rejected += 1
                where = _item_name(item) if owner is None else f"of {_item_name(owner)}"
                messages.append(f"{shape.noun} {where}: {exc}")
                continue
            kept.append(item)
        items[:] = kept
    return parse_json_message(shape.message, document), rejected, messages


def read_request(body: bytes, json: bool, signal: str) -> tuple[Any, int, list[str]]:
    """An export request of ``signal`` from protobuf or OTLP/JSON, with the items the JSON
    path had to drop (count and descriptions); 400 for a body that is not one."""
    if json:
        return request_from_json(body, signal)
    return parse_protobuf(_SHAPES[signal].message, body), 0, []


def encode_message(message: Message, media: str) -> bytes:
    """A response message in the request's encoding (OTLP/JSON or protobuf)."""
    if media == JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


GRPC_CODE_FOR_HTTP = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    411: code_pb2.INVALID_ARGUMENT,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    500: code_pb2.INTERNAL,
    503: code_pb2.UNAVAILABLE,
}


def status_body(http_status: int, message: str, media: str) -> bytes:
    """A ``google.rpc.Status`` error body for an HTTP status."""
    code = GRPC_CODE_FOR_HTTP.get(http_status, code_pb2.UNKNOWN)
    return encode_message(status_pb2.Status(code=code, message=message), media)
