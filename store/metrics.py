"""Reading OTLP metrics back: the catalog of metrics, raw points, and counter rates.

A series is one metric from one resource, scope and attribute set. Cumulative sums are
turned into increases and per-second rates point by point: a value that goes down (for a
monotonic counter) or a start time that moves forward means the counter restarted, and
the increase is then the new value itself, over the time since the new start.
"""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

from onepane.errors import BadRequest, NotFound
from store.window import Window

# Points before the window are read too, so the window's first point gets a rate.
LOOKBACK_NS = 15 * 60 * 1_000_000_000
MAX_POINTS = 10_000

_FILTER = """
    ($workload IS NULL OR workload = $workload)
    AND ($service IS NULL OR service_name = $service)
    AND ($start IS NULL OR time >= make_timestamp_ns($start))
    AND ($end IS NULL OR time < make_timestamp_ns($end))
"""

_CATALOG = f"""
SELECT metric_name, metric_type, any_value(unit), any_value(description),
       any_value(temporality), any_value(is_monotonic), count(*),
       count(DISTINCT (resource_id, scope_name, attributes)),
       list(DISTINCT workload ORDER BY workload), epoch_ns(max(time))
FROM metric_points
WHERE {_FILTER}
GROUP BY metric_name, metric_type
ORDER BY metric_name, metric_type
"""

_POINTS = f"""
SELECT metric_type, workload, service_name, resource_id, scope_name, scope_version,
       scope_attributes, attributes, epoch_ns(start_time), epoch_ns(time), temporality, value,
       count, sum, min, max,
       explicit_bounds, bucket_counts, scale, zero_count, zero_threshold, positive_offset,
       positive_counts, negative_offset, negative_counts, quantiles, quantile_values, flags,
       exemplars
FROM metric_points
WHERE metric_name = $name AND {_FILTER}
ORDER BY time, resource_id, attributes
LIMIT $limit
"""
_POINT_FIELDS = [
    "metric_type",
    "workload",
    "service_name",
    "resource_id",
    "scope_name",
    "scope_version",
    "scope_attributes",
    "attributes",
    "start_unix_nano",
    "time_unix_nano",
    "temporality",
    "value",
    "count",
    "sum",
    "min",
    "max",
    "explicit_bounds",
    "bucket_counts",
    "scale",
    "zero_count",
    "zero_threshold",
    "positive_offset",
    "positive_counts",
    "negative_offset",
    "negative_counts",
    "quantiles",
    "quantile_values",
    "flags",
    "exemplars",
]

_RATES = """
WITH points AS (
    SELECT workload, resource_id, scope_name, attributes, temporality, is_monotonic,
           epoch_ns(start_time) AS start_ns, epoch_ns(time) AS time_ns, value,
           lag(value) OVER series AS prev_value,
           lag(epoch_ns(time)) OVER series AS prev_ns,
           lag(epoch_ns(start_time)) OVER series AS prev_start_ns
    FROM metric_points
    WHERE metric_name = $name AND metric_type = 'sum' AND value IS NOT NULL
      AND ($workload IS NULL OR workload = $workload)
      AND ($service IS NULL OR service_name = $service)
      AND ($start IS NULL OR time >= make_timestamp_ns($start - $lookback))
      AND ($end IS NULL OR time < make_timestamp_ns($end))
    WINDOW series AS (
        PARTITION BY resource_id, scope_name, attributes, temporality ORDER BY time
    )
), steps AS (
    SELECT *,
           temporality = 2 AND prev_value IS NOT NULL AND (
               (is_monotonic AND value < prev_value)
               OR (start_ns IS NOT NULL AND prev_start_ns IS NOT NULL AND start_ns > prev_start_ns)
           ) AS reset
    FROM points
), increases AS (
    SELECT workload, resource_id, scope_name, attributes, time_ns, reset,
           CASE WHEN temporality = 1 OR reset THEN value ELSE value - prev_value END AS increase,
           CASE
               WHEN temporality = 1 THEN time_ns - start_ns
               WHEN reset AND start_ns > prev_ns THEN time_ns - start_ns
               ELSE time_ns - prev_ns
           END AS interval_ns
    FROM steps
    -- A delta point ending when the previous one did repeats it (a retried export).
    WHERE CASE WHEN temporality = 1 THEN prev_ns IS DISTINCT FROM time_ns
               ELSE prev_value IS NOT NULL END
)
SELECT workload, resource_id, scope_name, attributes, time_ns, increase, interval_ns, reset
FROM increases
WHERE interval_ns > 0 AND ($start IS NULL OR time_ns >= $start)
ORDER BY resource_id, scope_name, attributes, time_ns
"""


def _params(window: Window, workload: str | None, service: str | None) -> dict[str, Any]:
    return {
        "workload": workload,
        "service": service,
        "start": window.start_ns,
        "end": window.end_ns,
    }


def catalog(
    conn: duckdb.DuckDBPyConnection,
    window: Window,
    workload: str | None = None,
    service: str | None = None,
) -> list[dict[str, Any]]:
    """Every metric received in the window: type, unit, how many series and points."""
    rows = conn.execute(_CATALOG, _params(window, workload, service)).fetchall()
    out = []
    for row in rows:
        entry = dict(zip(_CATALOG_FIELDS, row, strict=True))
        entry["temporality"] = _TEMPORALITY.get(entry["temporality"])
        out.append(entry)
    return out


_CATALOG_FIELDS = (
    "name",
    "type",
    "unit",
    "description",
    "temporality",
    "monotonic",
    "points",
    "series",
    "workloads",
    "last_time_unix_nano",
)
_TEMPORALITY = {0: "unspecified", 1: "delta", 2: "cumulative"}


def points(
    conn: duckdb.DuckDBPyConnection,
    name: str,
    window: Window,
    workload: str | None = None,
    service: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Raw points of one metric, oldest first; only the fields its type fills."""
    if not 1 <= limit <= MAX_POINTS:
        raise BadRequest(f"limit must be between 1 and {MAX_POINTS}")
    params = {**_params(window, workload, service), "name": name, "limit": limit}
    rows = conn.execute(_POINTS, params).fetchall()
    out = []
    for row in rows:
        point = {k: v for k, v in zip(_POINT_FIELDS, row, strict=True) if v is not None}
        point["resource_id"] = str(point["resource_id"])
        point["attributes"] = orjson.loads(point["attributes"])
        if "temporality" in point:
            point["temporality"] = _TEMPORALITY.get(point["temporality"])
        for key in ("exemplars", "scope_attributes"):
            if key in point:
                point[key] = orjson.loads(point[key])
        out.append(point)
    return out


def rates(
    conn: duckdb.DuckDBPyConnection,
    name: str,
    window: Window,
    workload: str | None = None,
    service: str | None = None,
) -> list[dict[str, Any]]:
    """Per-second rates of a sum, per series: each point's increase over the previous one
    (cumulative, reset-aware) or its own interval (delta)."""
    kinds = conn.execute(
        "SELECT DISTINCT metric_type FROM metric_points WHERE metric_name = ?", [name]
    ).fetchall()
    if not kinds:
        raise NotFound(f"metric {name!r} is not in the store")
    if ("sum",) not in kinds:
        raise BadRequest(
            f"metric {name!r} is a {kinds[0][0]}; rates are for sums (counters), "
            "read its points instead"
        )
    params = {**_params(window, workload, service), "name": name, "lookback": LOOKBACK_NS}
    series: dict[tuple[Any, ...], dict[str, Any]] = {}
    for workload_, resource_id, scope, attrs, time_ns, increase, interval_ns, reset in conn.execute(
        _RATES, params
    ).fetchall():
        key = (resource_id, scope, attrs)
        if key not in series:
            series[key] = {
                "workload": workload_,
                "resource_id": str(resource_id),
                "scope_name": scope,
                "attributes": orjson.loads(attrs),
                "points": [],
            }
        series[key]["points"].append(
            {
                "time_unix_nano": time_ns,
                "increase": increase,
                "interval_s": interval_ns / 1e9,
                "rate_per_s": increase / (interval_ns / 1e9),
                "reset": reset,
            }
        )
    return list(series.values())
