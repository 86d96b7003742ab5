"""Decode an OTLP logs export into an Arrow table of log records.

A record keeps its time and observed time, severity, body (any ``AnyValue``, stored as
JSON so a map or a list survives whole), attributes, event name, and the trace and span
it was written in, so the trace view can show a trace's logs under their spans.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pyarrow as pa

from collectors.otlp.anyvalue import any_value, attributes
from collectors.otlp.decoded import (
    IDENTITY_FIELDS,
    STR,
    TS,
    Builder,
    Decoded,
    Resource,
    range_problem,
    scope_json,
    table_from_rows,
    trace_key,
)
from collectors.otlp.features import FEATURE_SCHEMA, PREFIX, feature_rows, model_of
from collectors.otlp.wire import read_request

LOG_SCHEMA = pa.schema(
    [
        ("trace_key", pa.int64()),
        ("trace_id", STR),
        ("span_id", STR),
        ("time", TS),
        ("observed_time", TS),
        ("severity_number", pa.int8()),
        ("severity_text", STR),
        ("body", STR),
        ("event_name", STR),
        ("flags", pa.int32()),
        *IDENTITY_FIELDS,
        ("scope_attributes", STR),
        ("attributes", STR),
        ("dropped_attributes_count", pa.int32()),
    ]
)


def decode_logs(body: bytes, json: bool) -> Decoded:
    """Decode an ``ExportLogsServiceRequest`` body (protobuf or OTLP/JSON)."""
    request, rejected, messages = read_request(body, json, "logs")
    builder = _LogBuilder(rejected, messages)
    for resource_logs in request.resource_logs:
        resource = builder.resource(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            builder.add_scope(scope_logs, resource)
    features = table_from_rows(builder.features, FEATURE_SCHEMA) if builder.features else None
    return builder.finish(table_from_rows(builder.rows, LOG_SCHEMA), features)


class _LogBuilder(Builder):
    def __init__(self, rejected: int, messages: list[str]) -> None:
        super().__init__("logs", rejected, messages)
        self.rows: list[tuple[Any, ...]] = []
        self.features: list[tuple[Any, ...]] = []
        self.received_ns = time.time_ns()

    def add_scope(self, scope_logs: Any, resource: Resource) -> None:
        scope = scope_logs.scope
        place = (*resource.columns(scope), scope_json(scope))
        for record in scope_logs.log_records:
            problem = _record_problem(record)
            if problem:
                self.reject(f"log record {_describe(record)}", problem)
                continue
            self.rows.append(self.row(record, place))

    def row(self, record: Any, place: tuple[Any, ...]) -> tuple[Any, ...]:
        trace_id, span_id = record.trace_id, record.span_id
        observed = record.observed_time_unix_nano or None
        body = any_value(record.body) if record.HasField("body") else None
        attrs = attributes(record.attributes)
        when = record.time_unix_nano or observed or self.received_ns
        if any(key.startswith(PREFIX) for key in attrs):  # an inference log record
            model, version = model_of(attrs)
            feature_rows(self.features, when, model, version or place[1], place[3], attrs)
        return (
            trace_key(trace_id) if trace_id else None,
            trace_id.hex() or None,
            span_id.hex() or None,
            when,  # the spec: when a record has no time, use its observed time
            observed,
            record.severity_number,
            record.severity_text or None,
            None if body is None else orjson.dumps(body).decode(),
            getattr(record, "event_name", "") or None,
            record.flags,
            *place,
            orjson.dumps(attrs).decode() if attrs else None,
            record.dropped_attributes_count,
        )


def _record_problem(record: Any) -> str | None:
    """Why a log record cannot be stored, or None when it can."""
    if record.trace_id and (len(record.trace_id) != 16 or record.trace_id == bytes(16)):
        return f"trace_id must be empty or 16 non-zero bytes, got {len(record.trace_id)} bytes"
    if record.span_id and (len(record.span_id) != 8 or record.span_id == bytes(8)):
        return f"span_id must be empty or 8 non-zero bytes, got {len(record.span_id)} bytes"
    if not 0 <= record.severity_number <= 24:
        return f"severity_number {record.severity_number} is not an OTLP SeverityNumber (0-24)"
    return range_problem(
        time_unix_nano=record.time_unix_nano,
        observed_time_unix_nano=record.observed_time_unix_nano,
        flags=record.flags,
        dropped_attributes_count=record.dropped_attributes_count,
    )


def _describe(record: Any) -> str:
    text = record.body.string_value if record.HasField("body") else ""
    return repr(text[:60]) if text else f"at {record.time_unix_nano}"
