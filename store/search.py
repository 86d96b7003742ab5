"""Trace search: which traces have a span matching every filter, as summaries.

Span filters (service, workload, route, span name, model, role, version, duration,
status, attributes) all apply to *one* span, as in Jaeger: ``service=checkout-api&
min_duration_ms=500`` finds traces in which a checkout-api span took 500 ms or more.
The time range applies to that span's start; with no span filter, to the trace's start.

Every value a user gives is a query parameter, never SQL. An attribute filter is first a
plain substring test on the span's attribute JSON (the cheap part of a scan), then an
exact test of the attribute at the top level of that JSON; resource attributes are
matched in the small ``resources`` table first and turned into a list of resource ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

from onepane.errors import BadRequest
from store.critical_path import critical_path, where_the_time_went
from store.traces import trace_key
from store.window import Window

MAX_LIMIT = 1000
SORTS = ("newest", "slowest")
STATUSES = {"unset": 0, "ok": 1, "error": 2}

# Span filters on extracted columns: query parameter -> column.
COLUMN_FILTERS = {
    "service": "service_name",
    "workload": "workload",
    "route": "http_route",
    "name": "name",
    "model": "model_name",
    "role": "role",
    "version": "service_version",
}


@dataclass(frozen=True)
class TraceQuery:
    """What a trace search asks for. ``attrs`` holds (key, value) pairs; value None means
    the attribute only has to be present."""

    # column -> value, or the values any of which it may have (a repeated parameter)
    columns: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    status: str | None = None
    attrs: tuple[tuple[str, str | None], ...] = ()
    window: Window = field(default_factory=Window)
    sort: str = "newest"
    limit: int = 20

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise BadRequest(f"sort {self.sort[:40]!r} is not one of: {', '.join(SORTS)}")
        if self.status is not None and self.status not in STATUSES:
            raise BadRequest(f"status {self.status[:40]!r} is not one of: {', '.join(STATUSES)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")
        for key, _ in self.attrs:
            if not key:
                raise BadRequest("attr needs a key: attr=key=value, or attr=key for presence")

    @property
    def has_span_filter(self) -> bool:
        return bool(
            self.columns
            or self.min_duration_ns is not None
            or self.max_duration_ns is not None
            or self.status is not None
            or self.attrs
        )


def parse_attr(text: str) -> tuple[str, str | None]:
    """``key=value`` (the first ``=`` splits) or ``key`` for presence."""
    key, sep, value = text.partition("=")
    return key, (value if sep else None)


_SUMMARY_COLUMNS = """
t.trace_id, epoch_ns(t.start_time), epoch_ns(t.end_time), t.duration_ns, t.root_span_id,
t.root_service, t.root_name, t.span_count, t.error_count, t.roles, t.services
"""
_SUMMARY_FIELDS = (
    "trace_id",
    "start_unix_nano",
    "end_unix_nano",
    "duration_ns",
    "root_span_id",
    "root_service",
    "root_name",
    "span_count",
    "error_count",
    "roles",
    "services",
)
_ORDER = {"newest": "t.start_time DESC", "slowest": "t.duration_ns DESC"}


# Up to this many matching traces are passed to the summary query as a list; beyond it,
# the summary query joins the span scan (a broad filter, where the scan is cheap anyway).
MAX_LISTED = 20_000


def search(conn: duckdb.DuckDBPyConnection, query: TraceQuery) -> list[dict[str, Any]]:
    """Summaries of the matching traces, newest or slowest first, with the time split."""
    params: dict[str, Any] = {"limit": query.limit}
    win = query.window
    if win.start_ns is not None:
        params["start"] = win.start_ns
    if win.end_ns is not None:
        params["end"] = win.end_ns
    if query.has_span_filter:
        # Failed spans are rare: an error search is narrow, the listing path suits it.
        rows = [] if query.status == "error" else _top_search(conn, query, dict(params))
        if len(rows) < query.limit:  # too few among the top candidates: search them all
            rows = conn.execute(_span_search(conn, query, params), params).fetchall()
    else:
        sql = _summaries_sql("", _trace_window(win, "t.start_time"), query.sort)
        rows = conn.execute(sql, params).fetchall()
    summaries = [_summary(row) for row in rows]
    _add_time_split(conn, summaries)
    return summaries


# A search with a span filter first looks at this many times ``limit`` of the window's
# newest or slowest traces: when enough of them have a matching span (a broad filter, such
# as every workload of a team), those are the answer, found without listing every match.
TOP_CANDIDATES = 20


def _top_search(
    conn: duckdb.DuckDBPyConnection, query: TraceQuery, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """The first ``limit`` of the top candidates that have a matching span."""
    where = " AND ".join(["true", *_trace_window(query.window, "t.end_time")])
    order = f"{_ORDER[query.sort]}, t.trace_id"
    spans = " AND ".join(_span_where(conn, query, params))
    sql = (
        f"WITH candidates AS (SELECT * FROM traces AS t WHERE {where} ORDER BY {order} "
        f"LIMIT {query.limit * TOP_CANDIDATES}) "
        f"SELECT {_SUMMARY_COLUMNS} FROM candidates AS t WHERE EXISTS (SELECT 1 FROM spans AS s "
        f"WHERE s.trace_key = t.trace_key AND s.trace_id = t.trace_id AND {spans}) "
        f"ORDER BY {order} LIMIT $limit"
    )
    return conn.execute(sql, params).fetchall()


def _span_search(conn: duckdb.DuckDBPyConnection, query: TraceQuery, params: dict[str, Any]) -> str:
    """The summary query for a search with span filters; runs the span scan once."""
    span_params = {k: v for k, v in params.items() if k != "limit"}
    hits_sql = _hits_sql(conn, query, span_params)
    # A trace may start before the window and have its matching span inside it.
    where = _trace_window(query.window, "t.end_time")
    hits = conn.execute(f"{hits_sql} LIMIT {MAX_LISTED + 1}", span_params).fetchall()
    if len(hits) <= MAX_LISTED:
        params["keys"] = [key for key, _ in hits]
        params["ids"] = [trace_id for _, trace_id in hits]
        join = (
            "SEMI JOIN (SELECT unnest($keys) AS trace_key, unnest($ids) AS trace_id) AS h "
            "ON t.trace_key = h.trace_key AND t.trace_id = h.trace_id"
        )
    else:
        params.update(span_params)
        join = (
            f"SEMI JOIN ({hits_sql}) AS h ON t.trace_key = h.trace_key AND t.trace_id = h.trace_id"
        )
    return _summaries_sql(join, where, query.sort)


def _trace_window(win: Window, start_column: str) -> list[str]:
    where = []
    if win.start_ns is not None:
        where.append(f"{start_column} >= make_timestamp_ns($start)")
    if win.end_ns is not None:
        where.append("t.start_time < make_timestamp_ns($end)")
    return where


def _summaries_sql(join: str, where: list[str], sort: str) -> str:
    return (
        f"SELECT {_SUMMARY_COLUMNS} FROM traces AS t {join} "
        f"WHERE {' AND '.join(['true', *where])} "
        f"ORDER BY {_ORDER[sort]}, t.trace_id LIMIT $limit"
    )


def _hits_sql(conn: duckdb.DuckDBPyConnection, query: TraceQuery, params: dict[str, Any]) -> str:
    where = " AND ".join(_span_where(conn, query, params))
    return f"SELECT DISTINCT s.trace_key, s.trace_id FROM spans AS s WHERE {where}"


def _span_where(
    conn: duckdb.DuckDBPyConnection, query: TraceQuery, params: dict[str, Any]
) -> list[str]:
    """The conditions a matching span meets: the filters, and a start in the window."""
    where = _span_conditions(conn, query, params)
    if query.window.start_ns is not None:
        where.append("s.start_time >= make_timestamp_ns($start)")
    if query.window.end_ns is not None:
        where.append("s.start_time < make_timestamp_ns($end)")
    return where


def _span_conditions(
    conn: duckdb.DuckDBPyConnection, query: TraceQuery, params: dict[str, Any]
) -> list[str]:
    conditions = ["true"]
    for i, (column, value) in enumerate(sorted(query.columns.items())):
        if column not in COLUMN_FILTERS.values():
            raise BadRequest(f"cannot filter spans on {column!r}")
        if isinstance(value, tuple):
            conditions.append(f"list_contains($c{i}, s.{column})")
            params[f"c{i}"] = list(value)
        else:
            conditions.append(f"s.{column} = $c{i}")
            params[f"c{i}"] = value
    if query.min_duration_ns is not None:
        conditions.append("s.duration_ns >= $min_ns")
        params["min_ns"] = query.min_duration_ns
    if query.max_duration_ns is not None:
        conditions.append("s.duration_ns <= $max_ns")
        params["max_ns"] = query.max_duration_ns
    if query.status is not None:
        conditions.append("s.status_code = $status")
        params["status"] = STATUSES[query.status]
    for i, (key, value) in enumerate(query.attrs):
        conditions.append(_attr_condition(conn, i, key, value, params))
    return conditions


def _attr_condition(
    conn: duckdb.DuckDBPyConnection,
    i: int,
    key: str,
    value: str | None,
    params: dict[str, Any],
) -> str:
    """One attribute filter on the span's attributes or its resource's."""
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    params[f"a{i}_ptr"] = pointer
    params[f"a{i}_needle"] = prefilter(key, value, _attribute_sample(conn))
    if value is None:
        exact = f"json_extract(s.attributes, $a{i}_ptr) IS NOT NULL"
    else:
        params[f"a{i}_value"] = value
        exact = f"json_extract_string(s.attributes, $a{i}_ptr) = $a{i}_value"
    span = f"(contains(s.attributes, $a{i}_needle) AND {exact})"
    resources = _matching_resources(conn, pointer, value)
    if not resources:
        return span
    params[f"a{i}_resources"] = resources
    return f"(list_contains($a{i}_resources, s.resource_id) OR {span})"


_MIN_NEEDLE = 2
_SAMPLE_ROWS = 2000
_SAMPLE_TTL_S = 600.0
_sample: tuple[float, str] = (-_SAMPLE_TTL_S, "")
# Measured on this project's machine: each stop of the substring search at the needle's
# first character costs ~5 ns; each row that passes it costs ~150 ns of JSON parsing.
_STOP_COST, _MATCH_COST = 5, 150


def prefilter(key: str, value: str | None, sample: str) -> str:
    """A substring every span with this attribute has in its attribute JSON, chosen so
    that a scan finds it fast.

    Both ``key":`` and the value's text (the same whether the value is stored quoted, as
    a string, or bare, as a number or boolean) must appear, so any tail of either will
    do. Two things make a scan slow: a substring search stops at every occurrence of the
    needle's first character (``"`` comes every few bytes in JSON), and every row the
    needle matches is parsed for the exact test (a key most spans carry matches them
    all). Both are estimated on ``sample``, some stored attribute JSON, and the cheapest
    tail wins.
    """
    candidates = [orjson.dumps(key).decode()[1:] + ":"]
    if value:
        candidates.append(orjson.dumps(value).decode()[1:-1])
    stops: dict[str, int] = {}
    best, best_cost = candidates[0], None
    for text in candidates:
        for at in range(max(1, len(text) - _MIN_NEEDLE + 1)):
            needle = text[at:]
            if needle[0] not in stops:
                stops[needle[0]] = sample.count(needle[0])
            cost = (
                _STOP_COST * stops[needle[0]] + _MATCH_COST * sample.count(needle),
                -len(needle),
            )
            if best_cost is None or cost < best_cost:
                best, best_cost = needle, cost
    return best


def _attribute_sample(conn: duckdb.DuckDBPyConnection) -> str:
    """Some stored span attribute JSON (the first rows), refreshed every few minutes."""
    global _sample
    taken, text = _sample
    if time.monotonic() - taken > _SAMPLE_TTL_S or not text:
        rows = conn.execute(f"SELECT attributes FROM spans LIMIT {_SAMPLE_ROWS}").fetchall()
        _sample = (time.monotonic(), "".join(row[0] for row in rows))
    return _sample[1]


def _matching_resources(
    conn: duckdb.DuckDBPyConnection, pointer: str, value: str | None
) -> list[int]:
    if value is None:
        sql = "SELECT resource_id FROM resources WHERE json_extract(attributes, $p) IS NOT NULL"
        params: dict[str, Any] = {"p": pointer}
    else:
        sql = "SELECT resource_id FROM resources WHERE json_extract_string(attributes, $p) = $v"
        params = {"p": pointer, "v": value}
    return [row[0] for row in conn.execute(sql, params).fetchall()]


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    summary = dict(zip(_SUMMARY_FIELDS, row, strict=True))
    summary["duration_ms"] = summary["duration_ns"] / 1e6
    summary["roles"] = summary["roles"].split(",") if summary["roles"] else []
    summary["services"] = summary["services"].split(",") if summary["services"] else []
    return summary


_SPANS_OF = """
SELECT trace_id, span_id, parent_span_id, epoch_ns(start_time), epoch_ns(end_time), role,
       service_name, workload
FROM spans
WHERE trace_key IN (SELECT unnest($keys))
  AND start_time >= make_timestamp_ns($lo) AND start_time <= make_timestamp_ns($hi)
"""
_SPANS_OF_ONE = """
SELECT trace_id, span_id, parent_span_id, epoch_ns(start_time), epoch_ns(end_time), role,
       service_name, workload
FROM spans
WHERE trace_key = $k{i}
  AND start_time >= make_timestamp_ns($lo{i}) AND start_time <= make_timestamp_ns($hi{i})
"""
_SPAN_FIELDS = (
    "span_id",
    "parent_span_id",
    "start_unix_nano",
    "end_unix_nano",
    "role",
    "service_name",
    "workload",
)


# Up to this many traces, each trace's spans are read within its own time range (a scan
# of a few row groups each): the slowest traces of a day lie hours apart, and one range
# from the first start to the last end would scan the whole day's spans.
MAX_RANGES = 50


def _spans_of(summaries: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The query (and its parameters) for the spans of these traces."""
    if len(summaries) > MAX_RANGES:
        params = {
            "keys": sorted({trace_key(s["trace_id"]) for s in summaries}),
            "lo": min(s["start_unix_nano"] for s in summaries),
            "hi": max(s["end_unix_nano"] for s in summaries),
        }
        return _SPANS_OF, params
    parts, params = [], {}
    for i, s in enumerate(summaries):
        parts.append(_SPANS_OF_ONE.format(i=i))
        params |= {f"k{i}": trace_key(s["trace_id"]), f"lo{i}": s["start_unix_nano"],
                   f"hi{i}": s["end_unix_nano"]}  # fmt: skip
    return " UNION ALL ".join(parts), params


def _add_time_split(conn: duckdb.DuckDBPyConnection, summaries: list[dict[str, Any]]) -> None:
    """Give each summary ``where_the_time_went``, from its spans' critical path."""
    if not summaries:
        return
    wanted = {s["trace_id"]: s for s in summaries}
    spans: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in wanted}
    for row in conn.execute(*_spans_of(summaries)).fetchall():
        if row[0] in spans:  # another trace can share the 8-byte key
            spans[row[0]].setdefault(row[1], dict(zip(_SPAN_FIELDS, row[1:], strict=True)))
    for trace_id, summary in wanted.items():
        trace_spans = list(spans[trace_id].values())
        split = where_the_time_went(trace_spans, critical_path(trace_spans))
        summary["where_the_time_went"] = split
