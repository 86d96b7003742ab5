"""Span statistics: rate, errors and latency percentiles per route, model version, service
or workload, in total and per time bucket (``GET /api/v1/stats``).

One scan answers both: GROUPING SETS give each group's totals (exact percentiles over the
whole window) and its buckets in the same pass over the window's spans.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from onepane.errors import BadRequest
from store.window import Window, parse_duration, window

PARAMS = {"by", "workload", "service", "model", "version", "since", "start", "end", "step"}
_S = 1_000_000_000
_STEPS = [(60, "1m"), (300, "5m"), (900, "15m"), (3600, "1h"), (21600, "6h"), (86400, "1d")]
_BUCKETS = 60  # about this many points per series by default

# What each grouping counts and how it names a group.
_BY: dict[str, tuple[str, list[str]]] = {
    "route": (
        "http_route IS NOT NULL AND role IN ('request', 'api')",
        ["workload", "service_name", "http_method", "http_route"],
    ),
    "model": (
        "role = 'inference' AND model_name IS NOT NULL",
        ["workload", "model_name", "model_version"],
    ),
    "service": ("role IN ('request', 'api')", ["workload", "service_name"]),
    "workload": ("role IN ('request', 'api')", ["workload"]),
}


@dataclass(frozen=True)
class StatsQuery:
    by: str
    window: Window  # both ends set
    step_s: int
    workloads: tuple[str, ...] = ()
    service: str | None = None
    model: str | None = None
    version: str | None = None


def parse(
    q: Mapping[str, str], lists: Mapping[str, Sequence[str]], now_ns: int | None = None
) -> StatsQuery:
    """The query a request asks for; BadRequest naming what is wrong."""
    unknown = set(lists) - PARAMS
    if unknown:
        raise BadRequest(
            f"unknown parameter {sorted(unknown)[0][:40]!r}; use {', '.join(sorted(PARAMS))}"
        )
    by = q.get("by") or "route"
    if by not in _BY:
        raise BadRequest(f"by must be one of {', '.join(_BY)}, got {by[:20]!r}")
    now_ns = now_ns or time.time_ns()
    since = q.get("since") or (None if q.get("start") else "1h")
    win = window(q.get("start"), q.get("end"), since, now_ns)
    start_ns, end_ns = win.start_ns, win.end_ns if win.end_ns is not None else now_ns
    if start_ns is None or start_ns >= end_ns:
        raise BadRequest("the window must start before it ends; give since=1h or start and end")
    return StatsQuery(
        by=by,
        window=Window(start_ns, end_ns),
        step_s=_step(q.get("step"), end_ns - start_ns),
        workloads=tuple(w for w in lists.get("workload", []) if w),
        service=q.get("service") or None,
        model=q.get("model") or None,
        version=q.get("version") or None,
    )


def _step(text: str | None, span_ns: int) -> int:
    """The bucket in seconds: as asked (at least 1 s, at most 10,000 buckets), else the
    smallest round step giving about 60 buckets."""
    if text:
        step_s = max(1, parse_duration(text, "step") // _S)
        if span_ns // (step_s * _S) > 10_000:
            raise BadRequest(f"step {text[:20]!r} makes over 10,000 buckets; choose a longer one")
        return step_s
    wanted = span_ns / _S / _BUCKETS
    return next((s for s, _ in _STEPS if s >= wanted), _STEPS[-1][0])


def step_name(step_s: int) -> str:
    """``300`` as ``5m``: the largest whole unit."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if step_s % size == 0:
            return f"{step_s // size}{unit}"
    return f"{step_s}s"


def stats(
    cursor: duckdb.DuckDBPyConnection, q: Mapping[str, str], lists: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """``GET /api/v1/stats``."""
    query = parse(q, lists)
    rows = _rows(cursor, query)
    groups = [_group(query, row) for row in rows if row["bucket"] is None]
    groups.sort(key=lambda g: (-g["count"], g["key"]))
    series = [_point(query, row) for row in rows if row["bucket"] is not None]
    series.sort(key=lambda p: (p["key"], p["workload"], p["time"]))
    return {
        "by": query.by,
        "window": {"start": _iso(query.window.start_ns), "end": _iso(query.window.end_ns)},
        "step": step_name(query.step_s),
        "step_s": query.step_s,
        "groups": groups,
        "series": series,
    }


def _rows(cursor: duckdb.DuckDBPyConnection, query: StatsQuery) -> list[dict[str, Any]]:
    condition, keys = _BY[query.by]
    key_list = ", ".join(keys)
    sql = f"""
        SELECT {key_list}, bucket, count(*) AS n,
               count(*) FILTER (WHERE status_code = 2 OR http_status_code >= 500) AS errors,
               quantile_cont(duration_ns, [0.5, 0.95, 0.99]) AS q,
               max(duration_ns) AS max_ns
        FROM (
            SELECT *, epoch_ns(start_time) // $step * $step AS bucket FROM spans
            WHERE start_time >= make_timestamp_ns($start) AND start_time < make_timestamp_ns($end)
              AND {condition}
              AND (len($workloads) = 0 OR list_contains($workloads, workload))
              AND ($service IS NULL OR service_name = $service)
              AND ($model IS NULL OR model_name = $model)
              AND ($version IS NULL OR model_version = $version)
        )
        GROUP BY GROUPING SETS (({key_list}, bucket), ({key_list}))
    """
    cursor.execute(
        sql,
        {
            "step": query.step_s * _S,
            "start": query.window.start_ns,
            "end": query.window.end_ns,
            "workloads": list(query.workloads),
            "service": query.service,
            "model": query.model,
            "version": query.version,
        },
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _labels(query: StatsQuery, row: Mapping[str, Any]) -> dict[str, Any]:
    """The group's name and its parts."""
    labels: dict[str, Any] = {"workload": row["workload"], "service": row.get("service_name")}
    if query.by == "route":
        labels.update(route=row["http_route"], method=row["http_method"])
        key = " ".join(p for p in (row["http_method"], row["http_route"]) if p)
    elif query.by == "model":
        labels.update(model=row["model_name"], version=row["model_version"])
        key = " ".join(p for p in (row["model_name"], row["model_version"]) if p)
    elif query.by == "service":
        key = row["service_name"]
    else:
        key = row["workload"]
    return {"key": key, **labels}


def _figures(row: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    count, errors = int(row["n"]), int(row["errors"])
    p50, p95, p99 = (v / 1e6 for v in row["q"])
    return {
        "count": count,
        "errors": errors,
        "error_pct": 100.0 * errors / count if count else 0.0,
        "rate_per_s": count / seconds if seconds > 0 else 0.0,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
    }


def _group(query: StatsQuery, row: Mapping[str, Any]) -> dict[str, Any]:
    seconds = (query.window.end_ns - query.window.start_ns) / _S
    return {**_labels(query, row), **_figures(row, seconds), "max_ms": row["max_ns"] / 1e6}


def _point(query: StatsQuery, row: Mapping[str, Any]) -> dict[str, Any]:
    """One bucket; its rate over the part of the bucket inside the window."""
    start = max(int(row["bucket"]), query.window.start_ns)
    end = min(int(row["bucket"]) + query.step_s * _S, query.window.end_ns)
    labels = _labels(query, row)
    return {
        "key": labels["key"],
        "workload": labels["workload"],
        "time": _iso(int(row["bucket"])),
        **_figures(row, (end - start) / _S),
    }


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, _S)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"
