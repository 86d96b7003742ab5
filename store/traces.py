"""Reading traces back: one trace by id, as a tree with roles and durations."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import orjson

from onepane.errors import BadRequest, NotFound
from store import logs

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")

# trace_key (the id's first 8 bytes as an integer) is scanned first: a 10M-row integer
# column is read in milliseconds, with no index to maintain on ingest.
_SPANS = """
SELECT span_id, parent_span_id, name, kind, epoch_ns(start_time), epoch_ns(end_time),
       duration_ns, status_code, status_message, service_name, service_version, workload,
       role, http_route, http_method, http_status_code, db_system, db_operation,
       db_query_text, model_name, model_version, scope_name, scope_version, resource_id,
       attributes, events, links, trace_state
FROM spans
WHERE trace_key = $key AND trace_id = $trace_id
ORDER BY start_time, span_id
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


def trace_key(trace_id: str) -> int:
    """The scan key of a (normalized) trace id: its first 8 bytes as a signed integer."""
    return int.from_bytes(bytes.fromhex(trace_id[:16]), "big", signed=True)


def get_trace(conn: duckdb.DuckDBPyConnection, trace_id: str) -> dict[str, Any]:
    """One trace: its summary, its spans in depth-first tree order, each with the log
    records written inside it, and the trace's logs that name no stored span."""
    trace_id = normalize_trace_id(trace_id)
    key = trace_key(trace_id)
    rows = conn.execute(_SPANS, {"key": key, "trace_id": trace_id}).fetchall()
    if not rows:
        raise NotFound(f"trace {trace_id} is not in the store")
    spans = _unique_spans(rows)
    unattached = _attach_logs(spans, logs.trace_logs(conn, trace_id, key))
    resources = _resources(conn, {span["resource_id"] for span in spans})
    ordered, roots = tree_order(spans)
    start = min(span["start_unix_nano"] for span in ordered)
    end = max(span["end_unix_nano"] for span in ordered)
    for span in ordered:
        span["offset_ns"] = span["start_unix_nano"] - start
    root = next((span for span in ordered if span["parent_span_id"] is None), ordered[0])
    return {
        "trace_id": trace_id,
        "start_unix_nano": start,
        "end_unix_nano": end,
        "duration_ns": end - start,
        "duration_ms": (end - start) / 1e6,
        "root_span_id": root["span_id"],
        "root_service": root["service_name"],
        "root_name": root["name"],
        "complete": all(not span["orphan"] for span in ordered),
        "span_count": len(ordered),
        "error_count": sum(1 for span in ordered if span["status"]["code"] == "ERROR"),
        "roles": sorted({span["role"] for span in ordered}),
        "services": sorted({span["service_name"] for span in ordered}),
        "root_span_ids": roots,
        "resources": resources,
        "log_count": sum(len(span["logs"]) for span in ordered) + len(unattached),
        "logs": unattached,
        "spans": ordered,
    }


def _attach_logs(
    spans: list[dict[str, Any]], records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Put each log record under its span; return those whose span is not stored."""
    by_id = {span["span_id"]: span for span in spans}
    for span in spans:
        span["logs"] = []
    unattached = []
    for record in records:
        record.pop("trace_id")
        span = by_id.get(record["span_id"] or "")
        if span is None:
            unattached.append(record)  # keeps its span_id: the span it names is not stored
        else:
            del record["span_id"]
            span["logs"].append(record)
    return unattached


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
