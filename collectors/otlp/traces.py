"""Decode an OTLP trace export into an Arrow table of span rows.

This runs in decoder worker processes, so it takes bytes and returns bytes-friendly
values (an Arrow table) and never touches the store. Spans that cannot be stored are
counted and described, and the rest of the batch is kept (OTLP partial success).
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from collectors.otlp import semconv
from collectors.otlp.anyvalue import attributes
from collectors.otlp.decoded import (
    STR,
    TS,
    Builder,
    Decoded,
    range_problem,
    scope_json,
    table_from_rows,
    trace_key,
)
from collectors.otlp.features import FEATURE_SCHEMA, feature_rows, model_of
from collectors.otlp.wire import read_request

SPAN_SCHEMA = pa.schema(
    [
        ("trace_key", pa.int64()),
        ("trace_id", STR),
        ("span_id", STR),
        ("parent_span_id", STR),
        ("trace_state", STR),
        ("name", STR),
        ("kind", pa.int8()),
        ("start_time", TS),
        ("end_time", TS),
        ("duration_ns", pa.int64()),
        ("status_code", pa.int8()),
        ("status_message", STR),
        ("service_name", STR),
        ("service_version", STR),
        ("environment", STR),
        ("workload", STR),
        ("role", STR),
        ("http_route", STR),
        ("http_method", STR),
        ("http_status_code", pa.int32()),
        ("db_system", STR),
        ("db_operation", STR),
        ("db_query_text", STR),
        ("model_name", STR),
        ("model_version", STR),
        ("k8s_namespace", STR),
        ("k8s_pod", STR),
        ("scope_name", STR),
        ("scope_version", STR),
        ("resource_id", pa.int64()),
        ("scope_attributes", STR),
        ("attributes", STR),
        ("events", STR),
        ("links", STR),
    ]
)
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def decode_traces(body: bytes, json: bool) -> Decoded:
    """Decode an ``ExportTraceServiceRequest`` body (protobuf or OTLP/JSON)."""
    request, rejected, messages = read_request(body, json, "traces")
    builder = _SpanBuilder("traces", rejected, messages)
    for resource_spans in request.resource_spans:
        builder.add_resource(resource_spans)
    features = table_from_rows(builder.features, FEATURE_SCHEMA) if builder.features else None
    return builder.finish(table_from_rows(builder.rows, SPAN_SCHEMA), features)


class _SpanBuilder(Builder):
    """Accumulates span rows."""

    def __init__(self, signal: str, rejected: int, messages: list[str]) -> None:
        super().__init__(signal, rejected, messages)
        self.rows: list[tuple[Any, ...]] = []
        self.features: list[tuple[Any, ...]] = []

    def add_resource(self, resource_spans: Any) -> None:
        resource = self.resource(resource_spans.resource)
        ident = resource.identity
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
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
                resource.resource_id,
                scope_json(scope),
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
            trace_key(trace_id),
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
        if role == "inference":
            model, version = model_of(attrs)
            feature_rows(self.features, start, model, version or head[1], head[3], attrs)


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
    return range_problem(
        start_time_unix_nano=span.start_time_unix_nano, end_time_unix_nano=span.end_time_unix_nano
    )


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
