"""The cost routes of the HTTP API: query parameters in, cost documents out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from cost import billing, query, reconcile, unit
from cost import window as cost_window
from onepane.errors import BadRequest

ALLOCATION_PARAMS = {"window", "aggregate", "step", "idle", "includeIdle", "shareIdle",
                     "reconcile", "accumulate", "resolution"}  # fmt: skip
UNIT_PARAMS = {"window", "step", "workload", "by"}
RECONCILE_PARAMS = {"window"}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


def check_params(given: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(given) - allowed
    if unknown:
        raise BadRequest(
            f"unknown parameter {sorted(unknown)[0][:40]!r}; use {', '.join(sorted(allowed))}"
        )


def whole_param(text: str | None, default: int, name: str) -> int:
    """A whole-number query parameter (``default`` when absent); 400 for anything else."""
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise BadRequest(f"{name} must be a whole number, got {text[:20]!r}")
    return int(text)


def _flag(q: Mapping[str, str], *names: str) -> bool:
    for name in names:
        value = q.get(name, "").lower()
        if value in _TRUE:
            return True
        if value not in _FALSE:
            raise BadRequest(f"{name} must be true or false, got {value[:20]!r}")
    return False


def allocation(cursor: duckdb.DuckDBPyConnection, q: Mapping[str, str]) -> dict[str, Any]:
    """``GET /api/v1/allocation``."""
    share = q.get("shareIdle", "").lower()
    if share not in query.SHARE:
        raise BadRequest(f"shareIdle must be none, even or weighted, got {share[:20]!r}")
    step = None if _flag(q, "accumulate") else q.get("step")
    window = cost_window.parse(q.get("window", "7d"), step, time.time_ns())
    request = query.AllocationQuery(
        window=window,
        aggregate=query.parse_aggregate(q.get("aggregate")),
        idle=_flag(q, "idle", "includeIdle"),
        share_idle=query.SHARE[share],
        reconcile=_flag(q, "reconcile"),
    )
    return query.allocation(cursor, request)


def unit_costs(cursor: duckdb.DuckDBPyConnection, q: Mapping[str, str]) -> dict[str, Any]:
    """``GET /api/v1/unit-costs``."""
    by = q.get("by", "version")
    if by not in ("version", "workload"):
        raise BadRequest(f"by must be version or workload, got {by[:20]!r}")
    window = cost_window.parse(q.get("window", "7d"), q.get("step"), time.time_ns())
    rows = unit.unit_costs(cursor, window, q.get("workload"), by_version=by == "version")
    return {"unit_costs": rows}


def reconciliation(cursor: duckdb.DuckDBPyConnection, q: Mapping[str, str]) -> dict[str, Any]:
    """``GET /api/v1/reconciliation``."""
    window = cost_window.parse(q.get("window", "30d"), None, time.time_ns())
    return reconcile.reconcile(cursor, window)


def import_bill(
    cursor: duckdb.DuckDBPyConnection,
    apply: Callable[[Callable[[duckdb.DuckDBPyConnection], Any], int], Any],
    data: bytes,
    filename: str,
) -> dict[str, Any]:
    """``POST /api/v1/billing/imports``: check the whole file, then store it in one commit."""
    parsed = billing.parse(cursor, data, filename)
    now = time.time_ns()
    return apply(lambda conn: billing.store(conn, parsed, filename, now), parsed.rows.num_rows)


_ISO = "'%Y-%m-%dT%H:%M:%SZ'"


def _dicts(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows of ``sql`` as dicts keyed by the column names (the SQL's aliases)."""
    cursor.execute(sql, params or {})
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def imports(cursor: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """``GET /api/v1/billing/imports``: every import, with the rows it still holds."""
    found = _dicts(
        cursor,
        f"SELECT import_id, file, strftime(imported_at, {_ISO}) AS imported_at, rows, "
        "replaced AS replaced_rows, periods AS billing_periods, "
        "(SELECT count(*) FROM billing_rows b WHERE b.import_id = i.import_id) AS rows_kept "
        "FROM billing_imports i ORDER BY import_id",
    )
    for entry in found:
        entry["billing_periods"] = json.loads(entry["billing_periods"])
    return {"imports": found}


def prices(cursor: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """``GET /api/v1/prices``: every price version and its rules."""
    versions = _dicts(
        cursor,
        f"SELECT version, strftime(valid_from, {_ISO}) AS valid_from, "
        f"strftime(loaded_at, {_ISO}) AS loaded_at, currency FROM price_versions ORDER BY version",
    )
    for version in versions:
        version["rules"] = _dicts(
            cursor,
            "SELECT asset_class, match_field, match_value, region, capacity_type, hourly, source "
            "FROM prices WHERE version = $v ORDER BY rule",
            {"v": version["version"]},
        )
    return {"versions": versions}


def workloads(cursor: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """``GET /api/v1/workloads``: kind, team and unit per workload, and where they came from."""
    return {
        "workloads": _dicts(
            cursor,
            "SELECT workload, kind, kind_source, team, unit, "
            f"strftime(first_seen, {_ISO}) AS first_seen, strftime(last_seen, {_ISO}) AS last_seen "
            "FROM workload_identity ORDER BY workload",
        )
    }


_GPU_IDLE = """
SELECT workload, sum(gpu_idle_cost) / sum(gpu_cost)
FROM cost_pod_hours
WHERE hour >= make_timestamp_ns($start) AND gpu_cost > 0 AND gpu_idle_cost IS NOT NULL
GROUP BY workload
"""


def gauges(cursor: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """The figures /metrics shows: unit cost and GPU idle share per workload, last 24 h."""
    now = time.time_ns()
    window = cost_window.parse("24h", None, now)
    units = [
        (u["workload"], u["kind"], u["unit"], u["unit_cost"])
        for u in unit.unit_costs(cursor, window, by_version=False)
        if u["unit_cost"] is not None
    ]
    idle = cursor.execute(_GPU_IDLE, {"start": window.start_ns}).fetchall()
    return {"unit_cost": units, "gpu_idle_share": idle}
