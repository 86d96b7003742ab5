"""Reading traces back: one trace by id, as a tree with roles and durations."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import orjson

from onepane.errors import Ambiguous, BadRequest, NotFound
from store import logs
from store.critical_path import critical_path, where_the_time_went
from store.spantree import children_of

_TRACE_ID_PREFIX = re.compile(r"^[0-9a-fA-F]{8,32}$")
_HEX = re.compile(r"^[0-9a-fA-F]*$")
MAX_PREFIX_MATCHES = 10
SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")

# trace_key (the id's first 8 bytes as an integer) is scanned first: a 10M-row integer
# column is read in milliseconds, with no index to maintain on ingest. Reading the other
# columns costs a little for every row group scanned, so when the trace's summary gives
# its time range, only the row groups of that time are read (spans are stored roughly in
# time order), plus the spans not yet folded into the summary (the newest row groups).
_COLUMNS = """
SELECT span_id, parent_span_id, name, kind, epoch_ns(start_time), epoch_ns(end_time),
       duration_ns, status_code, status_message, service_name, service_version, workload,
       role, http_route, http_method, http_status_code, db_system, db_operation,
       db_query_text, model_name, model_version, scope_name, scope_version, resource_id,
       attributes, events, links, trace_state
FROM spans
WHERE trace_key = $key AND trace_id = $trace_id
"""
_SPANS = _COLUMNS
_SPANS_BOUNDED = f"""
{_COLUMNS} AND start_time BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
UNION ALL
{_COLUMNS} AND batch_no > $folded
"""
_BOUNDS = """
SELECT epoch_ns(start_time), epoch_ns(end_time), (SELECT summarized_through FROM store_state)
FROM traces WHERE trace_key = $key AND trace_id = $trace_id
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


def trace_key(trace_id: str) -> int:
    """The scan key of a (normalized) trace id: its first 8 bytes as a signed integer."""
    return int.from_bytes(bytes.fromhex(trace_id[:16]), "big", signed=True)


_PREFIX_MATCHES = """
SELECT DISTINCT trace_id FROM spans
WHERE trace_key BETWEEN $lo AND $hi AND starts_with(trace_id, $prefix)
ORDER BY trace_id LIMIT $limit
"""
_MATCH_SUMMARIES = """
SELECT trace_id, epoch_ns(start_time), duration_ns, root_service, root_name, span_count
FROM traces WHERE trace_key BETWEEN $lo AND $hi AND list_contains($ids, trace_id)
"""


def resolve_trace_id(conn: duckdb.DuckDBPyConnection, text: str) -> str:
    """The full id of the one stored trace whose id is, or starts with, ``text``.

    People paste shortened ids, so a prefix of at least 8 hex characters is enough when
    only one stored trace has it; when several do, ``Ambiguous`` lists them.
    """
    if not _TRACE_ID_PREFIX.match(text):
        what = "is too short" if _HEX.match(text) else "is not hex"
        raise BadRequest(
            f"trace id {text[:64]!r} {what}: give the 32 hex characters of a trace id, "
            "or a prefix of at least 8 of them"
        )
    prefix = text.lower()
    if len(prefix) == 32:
        return prefix
    lo, hi = _key_range(prefix)
    params = {"lo": lo, "hi": hi, "prefix": prefix, "limit": MAX_PREFIX_MATCHES + 1}
    found = [row[0] for row in conn.execute(_PREFIX_MATCHES, params).fetchall()]
    if not found:
        raise NotFound(f"no stored trace id starts with {prefix}")
    if len(found) == 1:
        return found[0]
    more = " (and more)" if len(found) > MAX_PREFIX_MATCHES else ""
    raise Ambiguous(
        f"{len(found[:MAX_PREFIX_MATCHES])}{more} traces start with {prefix}: "
        "give more characters of the id",
        _match_summaries(conn, found[:MAX_PREFIX_MATCHES], lo, hi),
    )


def _key_range(prefix: str) -> tuple[int, int]:
    """The trace keys that ids starting with ``prefix`` can have (signed, in order: the
    first hex digit, which holds the sign bit, is fixed)."""
    head = prefix[:16]
    lo = int(head.ljust(16, "0"), 16)
    hi = int(head.ljust(16, "f"), 16)
    return tuple(v - (1 << 64) if v >= 1 << 63 else v for v in (lo, hi))  # type: ignore[return-value]


def _match_summaries(
    conn: duckdb.DuckDBPyConnection, ids: list[str], lo: int, hi: int
) -> list[dict[str, Any]]:
    rows = conn.execute(_MATCH_SUMMARIES, {"lo": lo, "hi": hi, "ids": ids}).fetchall()
    known = {row[0]: row for row in rows}
    matches = []
    for trace_id in ids:
        match: dict[str, Any] = {"trace_id": trace_id}
        if trace_id in known:
            _, start, duration, service, name, spans = known[trace_id]
            match |= {
                "start_unix_nano": start,
                "duration_ms": duration / 1e6,
                "root_service": service,
                "root_name": name,
                "span_count": spans,
            }
        matches.append(match)
    return matches


def get_trace(conn: duckdb.DuckDBPyConnection, trace_id: str) -> dict[str, Any]:
    """One trace by id or unique id prefix: its summary, its spans in depth-first tree
    order, each with the log records written inside it and its time on the critical path,
    the trace's logs that name no stored span, the critical path and where the time went."""
    trace_id = resolve_trace_id(conn, trace_id)
    key = trace_key(trace_id)
    rows = _span_rows(conn, trace_id, key)
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
    path = critical_path(ordered)
    for span in ordered:
        span["critical_path_ms"] = path.self_ns.get(span["span_id"], 0) / 1e6
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
        "where_the_time_went": where_the_time_went(ordered, path),
        "critical_path": [
            {"span_id": span_id, "offset_ns": lo - start, "duration_ms": (hi - lo) / 1e6}
            for span_id, lo, hi in path.sections
        ],
        "logs": unattached,
        "spans": ordered,
    }


def _span_rows(conn: duckdb.DuckDBPyConnection, trace_id: str, key: int) -> list[tuple[Any, ...]]:
    """The trace's span rows ordered by start time (a span twice if stored twice)."""
    params: dict[str, Any] = {"key": key, "trace_id": trace_id}
    bounds = conn.execute(_BOUNDS, params).fetchall()
    if len(bounds) == 1:
        params["lo"], params["hi"], params["folded"] = bounds[0]
        rows = conn.execute(_SPANS_BOUNDED, params).fetchall()
    else:
        rows = conn.execute(_SPANS, params).fetchall()
    rows.sort(key=lambda row: (row[4], row[0]))
    return rows


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

    A span whose parent never arrived (or whose parent chain loops) is shown as a root
    and marked ``orphan``. Iterative, so a trace thousands of levels deep is fine.
    """
    by_id = {span["span_id"]: span for span in spans}
    children = children_of(spans)
    roots = children.get(None, [])
    root_set = set(roots)
    for span in spans:
        span["orphan"] = span["parent_span_id"] is not None and span["span_id"] in root_set
        span["children"] = children.get(span["span_id"], [])
    ordered: list[dict[str, Any]] = []
    stack = [(by_id[root], 0) for root in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        span["depth"] = depth
        ordered.append(span)
        stack.extend((by_id[child], depth + 1) for child in reversed(span["children"]))
    return ordered, roots


def _resources(conn: duckdb.DuckDBPyConnection, ids: set[int]) -> dict[str, Any]:
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT resource_id, attributes FROM resources WHERE resource_id IN (SELECT unnest(?))",
        [[int(i) for i in ids]],
    ).fetchall()
    return {str(rid): orjson.loads(attrs) for rid, attrs in rows}
