"""Reading traces back: one trace by id, as a tree with roles and durations."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import orjson

from onepane.errors import BadRequest, NotFound

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")

_SUMMARY = """
SELECT epoch_ns(start_time), epoch_ns(end_time), duration_ns, root_span_id, root_service,
       root_name, span_count, error_count, roles, services
FROM traces WHERE trace_id = ?
"""
# start_time bounds let DuckDB skip row groups by their min/max (zone maps) before it
# compares trace ids: spans arrive roughly in time order.
_SPANS = """
SELECT s.span_id, s.parent_span_id, s.name, s.kind, epoch_ns(s.start_time),
       epoch_ns(s.end_time), s.duration_ns, s.status_code, s.status_message, s.service_name,
       s.service_version, s.workload, s.role, s.http_route, s.http_method, s.http_status_code,
       s.db_system, s.db_operation, s.db_query_text, s.model_name, s.model_version,
       s.scope_name, s.scope_version, s.resource_id, s.attributes, s.events, s.links,
       s.trace_state
FROM spans s
WHERE s.start_time BETWEEN make_timestamp_ns(?) AND make_timestamp_ns(?) AND s.trace_id = ?
ORDER BY s.start_time, s.span_id
"""
_SPAN_FIELDS = [
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_unix_nano",
    "end_unix_nano",
    "duration_ns",
    "status_code",
    "status_message",
    "service_name",
    "service_version",
    "workload",
    "role",
    "http_route",
    "http_method",
    "http_status_code",
    "db_system",
    "db_operation",
    "db_query_text",
    "model_name",
    "model_version",
    "scope_name",
    "scope_version",
    "resource_id",
    "attributes",
    "events",
    "links",
    "trace_state",
]


def normalize_trace_id(trace_id: str) -> str:
    """A trace id as stored: 32 lowercase hex characters."""
    if not _TRACE_ID.match(trace_id):
        raise BadRequest(f"trace id {trace_id[:64]!r} is not 32 hex characters")
    return trace_id.lower()


def get_trace(conn: duckdb.DuckDBPyConnection, trace_id: str) -> dict[str, Any]:
    """One trace with its summary and its spans in depth-first tree order."""
    trace_id = normalize_trace_id(trace_id)
    summary = conn.execute(_SUMMARY, [trace_id]).fetchone()
    if summary is None:
        raise NotFound(f"trace {trace_id} is not in the store")
    start, end = summary[0], summary[1]
    rows = conn.execute(_SPANS, [start, end, trace_id]).fetchall()
    spans = _unique_spans(rows)
    resources = _resources(conn, {span["resource_id"] for span in spans})
    ordered, roots = tree_order(spans)
    for span in ordered:
        span["offset_ns"] = span["start_unix_nano"] - start
    return {
        "trace_id": trace_id,
        "start_unix_nano": start,
        "end_unix_nano": end,
        "duration_ns": summary[2],
        "duration_ms": summary[2] / 1e6,
        "root_span_id": summary[3],
        "root_service": summary[4],
        "root_name": summary[5],
        "span_count": len(ordered),
        "error_count": sum(1 for span in ordered if span["status"]["code"] == "ERROR"),
        "roles": summary[8].split(","),
        "services": summary[9].split(","),
        "root_span_ids": roots,
        "resources": resources,
        "spans": ordered,
    }


def _unique_spans(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Span dicts, each span once (a retried export can store a span twice)."""
    seen: set[str] = set()
    spans = []
    for row in rows:
        if row[0] in seen:
            continue
        seen.add(row[0])
        span = dict(zip(_SPAN_FIELDS, row, strict=True))
        span["kind"] = SPAN_KINDS[span["kind"]]
        span["status"] = {
            "code": STATUS_CODES[span.pop("status_code")],
            "message": span.pop("status_message"),
        }
        span["duration_ms"] = span["duration_ns"] / 1e6
        span["resource_id"] = str(span["resource_id"])
        for key in ("attributes", "events", "links"):
            span[key] = (
                orjson.loads(span[key]) if span[key] else ([] if key != "attributes" else {})
            )
        spans.append(span)
    return spans


def tree_order(spans: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Spans in depth-first order (children by start time) with ``depth`` and ``children``.

    A span whose parent never arrived is shown as a root and marked ``orphan``. Iterative,
    so a trace thousands of levels deep is fine.
    """
    by_id = {span["span_id"]: span for span in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_span_id"]
        span["orphan"] = parent is not None and parent not in by_id
        key = parent if parent in by_id else None
        children.setdefault(key, []).append(span)
    for span in spans:
        span["children"] = [child["span_id"] for child in children.get(span["span_id"], [])]
    roots = children.get(None, [])
    ordered: list[dict[str, Any]] = []
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        span["depth"] = depth
        ordered.append(span)
        stack.extend((child, depth + 1) for child in reversed(children.get(span["span_id"], [])))
    return ordered, [root["span_id"] for root in roots]


def _resources(conn: duckdb.DuckDBPyConnection, ids: set[int]) -> dict[str, Any]:
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT resource_id, attributes FROM resources WHERE resource_id IN (SELECT unnest(?))",
        [[int(i) for i in ids]],
    ).fetchall()
    return {str(rid): orjson.loads(attrs) for rid, attrs in rows}
