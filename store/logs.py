"""Reading log records back: a trace's logs, and a filtered list for the API."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import orjson

from onepane.errors import BadRequest
from store.window import Window

MAX_LOGS = 5_000
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_COLUMNS = """
    trace_id, span_id, epoch_ns(time), epoch_ns(observed_time), severity_number, severity_text,
    body, event_name, service_name, workload, resource_id, scope_name, attributes
"""
_FIELDS = [
    "trace_id",
    "span_id",
    "time_unix_nano",
    "observed_time_unix_nano",
    "severity_number",
    "severity_text",
    "body",
    "event_name",
    "service_name",
    "workload",
    "resource_id",
    "scope_name",
    "attributes",
]

_TRACE_LOGS = f"""
SELECT {_COLUMNS} FROM logs
WHERE trace_key = $key AND trace_id = $trace_id
ORDER BY time, observed_time
"""

_SEARCH = f"""
SELECT {_COLUMNS} FROM logs
WHERE ($workload IS NULL OR workload = $workload)
  AND ($service IS NULL OR service_name = $service)
  AND ($trace_id IS NULL OR trace_id = $trace_id)
  AND severity_number >= $min_severity
  AND ($text IS NULL OR contains(lower(body), lower($text)))
  AND ($start IS NULL OR time >= make_timestamp_ns($start))
  AND ($end IS NULL OR time < make_timestamp_ns($end))
ORDER BY time DESC
LIMIT $limit
"""

# SeverityText names for the lowest number of each OTLP severity range.
SEVERITIES = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}


def _record(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(_FIELDS, row, strict=True))
    record["resource_id"] = str(record["resource_id"])
    record["body"] = orjson.loads(record["body"]) if record["body"] is not None else None
    record["attributes"] = orjson.loads(record["attributes"]) if record["attributes"] else {}
    return record


def trace_logs(conn: duckdb.DuckDBPyConnection, trace_id: str, key: int) -> list[dict[str, Any]]:
    """Every log record written inside one trace, oldest first."""
    rows = conn.execute(_TRACE_LOGS, {"key": key, "trace_id": trace_id}).fetchall()
    return [_record(row) for row in rows]


def min_severity(text: str | None) -> int:
    """A severity filter (a name such as ``warn``, or a number 1-24) as a SeverityNumber."""
    if not text:
        return 0
    if text.isdigit() and 0 <= int(text) <= 24:
        return int(text)
    try:
        return SEVERITIES[text.lower()]
    except KeyError:
        names = ", ".join(SEVERITIES)
        raise BadRequest(f"severity {text[:20]!r} is not one of {names} or 0-24") from None


def search(
    conn: duckdb.DuckDBPyConnection,
    window: Window,
    *,
    workload: str | None = None,
    service: str | None = None,
    trace_id: str | None = None,
    severity: str | None = None,
    text: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Log records matching every filter given, newest first."""
    if not 1 <= limit <= MAX_LOGS:
        raise BadRequest(f"limit must be between 1 and {MAX_LOGS}")
    if trace_id and not _TRACE_ID.fullmatch(trace_id):
        raise BadRequest(f"trace_id {trace_id[:64]!r} is not 32 hex characters")
    params = {
        "workload": workload,
        "service": service,
        "trace_id": trace_id.lower() if trace_id else None,
        "min_severity": min_severity(severity),
        # Bodies are stored as JSON: search for the text as JSON writes it, so quotes,
        # backslashes and newlines in the text match those in the body.
        "text": orjson.dumps(text).decode()[1:-1] if text else None,
        "start": window.start_ns,
        "end": window.end_ns,
        "limit": limit,
    }
    return [_record(row) for row in conn.execute(_SEARCH, params).fetchall()]
