"""Decode an OTLP trace export into an Arrow table of span rows.

This runs in decoder worker processes, so it takes bytes and returns bytes-friendly
values (an Arrow table) and never touches the store. Spans that cannot be stored are
counted and described, and the rest of the batch is kept (OTLP partial success).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.otlp import semconv
from collectors.otlp.anyvalue import attributes
from collectors.otlp.wire import parse_protobuf, traces_from_json

_STR = pa.string()
_TS = pa.timestamp("ns")
SPAN_SCHEMA = pa.schema(
    [
        ("trace_key", pa.int64()),
        ("trace_id", _STR),
        ("span_id", _STR),
        ("parent_span_id", _STR),
        ("trace_state", _STR),
        ("name", _STR),
        ("kind", pa.int8()),
        ("start_time", _TS),
        ("end_time", _TS),
        ("duration_ns", pa.int64()),
        ("status_code", pa.int8()),
        ("status_message", _STR),
        ("service_name", _STR),
        ("service_version", _STR),
        ("environment", _STR),
        ("workload", _STR),
        ("role", _STR),
        ("http_route", _STR),
        ("http_method", _STR),
        ("http_status_code", pa.int32()),
        ("db_system", _STR),
        ("db_operation", _STR),
        ("db_query_text", _STR),
        ("model_name", _STR),
        ("model_version", _STR),
        ("k8s_namespace", _STR),
        ("k8s_pod", _STR),
        ("scope_name", _STR),
        ("scope_version", _STR),
        ("resource_id", pa.int64()),
        ("scope_attributes", _STR),
        ("attributes", _STR),
        ("events", _STR),
        ("links", _STR),
    ]
)
RESOURCE_SCHEMA = pa.schema([("resource_id", pa.int64()), ("attributes", _STR)])
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_MAX_MESSAGES = 5


@dataclass
class DecodedSpans:
    """The outcome of decoding one export: the rows to store and what was rejected."""

    table: pa.Table
    resources: pa.Table
    rejected: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.table.num_rows

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        shown = "; ".join(self.messages)
        more = self.rejected - len(self.messages)
        suffix = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} span(s) rejected: {shown}{suffix}"


def decode_traces(body: bytes, json: bool) -> DecodedSpans:
    """Decode an ``ExportTraceServiceRequest`` body (protobuf or OTLP/JSON)."""
    if json:
        request, rejected, messages = traces_from_json(body)
    else:
        request, rejected, messages = parse_protobuf(ExportTraceServiceRequest, body), 0, []
    builder = _Builder(rejected, messages)
    for resource_spans in request.resource_spans:
        builder.add_resource(resource_spans)
    return builder.finish()


class _Builder:
    """Accumulates span rows column by column."""

    def __init__(self, rejected: int, messages: list[str]) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.resources: dict[int, str] = {}
        self.rejected = rejected
        self.messages = messages[:_MAX_MESSAGES]

    def reject(self, where: str, why: str) -> None:
        self.rejected += 1
        if len(self.messages) < _MAX_MESSAGES:
            self.messages.append(f"{where}: {why}")

    def add_resource(self, resource_spans: Any) -> None:
        resource_attrs = attributes(resource_spans.resource.attributes)
        ident = semconv.resource_identity(resource_attrs)
        resource_json = orjson.dumps(resource_attrs, option=orjson.OPT_SORT_KEYS).decode()
        resource_id = resource_key(resource_json)
        self.resources[resource_id] = resource_json
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_attrs = attributes(scope.attributes)
            # The columns every span of this scope shares, before and after its own.
            head = (
                ident["service_name"],
                ident["service_version"],
                ident["environment"],
                ident["workload"],
            )
            tail = (
                ident["k8s_namespace"],
                ident["k8s_pod"],
                scope.name or None,
                scope.version or None,
                resource_id,
                orjson.dumps(scope_attrs).decode() if scope_attrs else None,
            )
            for span in scope_spans.spans:
                self.add_span(span, head, tail, ident["is_batch"])

    def add_span(
        self, span: Any, head: tuple[Any, ...], tail: tuple[Any, ...], is_batch: bool
    ) -> None:
        problem = _span_problem(span)
        if problem:
            self.reject(f"span {span.name!r} (span_id {span.span_id.hex() or 'empty'})", problem)
            return
        attrs = attributes(span.attributes)
        dumps = orjson.dumps
        parent = span.parent_span_id
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        role = semconv.span_role(attrs, span.kind, not parent, is_batch)
        status = span.status
        events, links = span.events, span.links
        trace_id = span.trace_id
        row = (
            int.from_bytes(trace_id[:8], "big", signed=True),
            trace_id.hex(),
            span.span_id.hex(),
            parent.hex() if parent else None,
            span.trace_state or None,
            span.name,
            span.kind,
            start,
            end,
            max(0, end - start),
            status.code,
            status.message or None,
            *head,
            role,
            *semconv.span_columns(attrs),
            *tail,
            dumps(attrs).decode(),
            _events_json(events) if events else None,
            _links_json(links) if links else None,
        )
        self.rows.append(row)

    def finish(self) -> DecodedSpans:
        columns = list(zip(*self.rows, strict=True)) or [() for _ in SPAN_SCHEMA.names]
        arrays = [
            pa.array(column, type=f.type) for column, f in zip(columns, SPAN_SCHEMA, strict=True)
        ]
        table = pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)
        resources = pa.Table.from_arrays(
            [
                pa.array(list(self.resources), pa.int64()),
                pa.array(list(self.resources.values()), _STR),
            ],
            schema=RESOURCE_SCHEMA,
        )
        return DecodedSpans(table, resources, self.rejected, self.messages)


def resource_key(resource_json: str) -> int:
    """A stable 64-bit id for a resource, from its attributes in canonical JSON."""
    digest = hashlib.blake2b(resource_json.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _span_problem(span: Any) -> str | None:
    """Why a span cannot be stored, or None when it can."""
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        got = len(span.trace_id)
        return f"trace_id must be 16 non-zero bytes (32 hex characters), got {got} bytes"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return (
            f"span_id must be 8 non-zero bytes (16 hex characters), got {len(span.span_id)} bytes"
        )
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(span.parent_span_id)} bytes"
    if not 0 <= span.kind <= 5:
        return f"kind {span.kind} is not an OTLP SpanKind (0-5)"
    if not 0 <= span.status.code <= 2:
        return f"status.code {span.status.code} is not an OTLP StatusCode (0-2)"
    return None


def _events_json(events: Any) -> str | None:
    if not events:
        return None
    return orjson.dumps(
        [
            {
                "time_unix_nano": event.time_unix_nano,
                "name": event.name,
                "attributes": attributes(event.attributes),
            }
            for event in events
        ]
    ).decode()


def _links_json(links: Any) -> str | None:
    if not links:
        return None
    return orjson.dumps(
        [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "trace_state": link.trace_state,
                "attributes": attributes(link.attributes),
            }
            for link in links
        ]
    ).decode()
