"""Routes that join the store's parts for the persona views: the model inventory
(``GET /api/v1/models``) and pipeline runs with their cost (``GET /api/v1/pipelines/runs``).
"""

from __future__ import annotations

import csv
import io
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from cost import unit
from cost import window as cost_window
from onepane.costapi import check_params, whole_param
from onepane.errors import BadRequest
from store import model_hours
from store.window import parse_duration

MODEL_PARAMS = {"since", "model", "team", "environment", "format"}
RUN_PARAMS = {"since", "workload", "team", "status", "limit"}
SERVING_NS = 15 * 60 * 1_000_000_000  # "serving": a prediction within the last 15 minutes
HOUR_NS = 3600 * 1_000_000_000
_ISO = "'%Y-%m-%dT%H:%M:%S.%gZ'"
MODEL_FIELDS = (
    "model", "version", "workload", "team", "environment", "serving", "first_seen",
    "last_seen", "predictions", "errors", "p50_ms", "p95_ms", "drift_status", "drift_share",
    "drift_run_id", "drift_time", "unit", "unit_cost", "cost",
)  # fmt: skip

_LATEST_DRIFT = f"""
SELECT DISTINCT ON (model_name, coalesce(model_version, ''))
       model_name, model_version, status, drift_share, run_id, strftime(time, {_ISO})
FROM drift_runs ORDER BY model_name, coalesce(model_version, ''), run_id DESC
"""


def _since(q: Mapping[str, str], default: str, now_ns: int) -> tuple[str, int]:
    text = q.get("since") or default
    return text, now_ns - parse_duration(text, "since")


def models(
    cursor: duckdb.DuckDBPyConnection, q: Mapping[str, str], lists: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """``GET /api/v1/models``: every model and version seen on inference spans in the
    window, with its owner, when it was seen, latency (p50/p95 over the window's last 24
    hours), latest drift verdict and unit cost."""
    check_params(lists, MODEL_PARAMS)
    if q.get("format") not in (None, "json", "csv"):
        raise BadRequest(f"format must be json or csv, got {q['format'][:20]!r}")
    now = time.time_ns()
    since, start = _since(q, "30d", now)
    cursor.execute(
        model_hours.INVENTORY,
        {
            "start": start,
            "whole": model_hours.whole_hour(start),
            "recent": max(start, now - model_hours.LATENCY_NS),
            "serving": now - SERVING_NS,
            "model": q.get("model") or None,
            "team": q.get("team") or None,
            "environment": q.get("environment") or None,
        },
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    drift = {(m, v): rest for m, v, *rest in cursor.execute(_LATEST_DRIFT).fetchall()}
    costs = _unit_costs(cursor, since, now)
    for row in rows:
        found = drift.get((row["model"], row["version"])) or drift.get((row["model"], None))
        status, share, run_id, at = found or (None, None, None, None)
        row.update(drift_status=status, drift_share=share, drift_run_id=run_id, drift_time=at)
        cost = costs.get((row["workload"], row["version"]), {})
        row.update(unit=cost.get("unit"), unit_cost=cost.get("unit_cost"), cost=cost.get("cost"))
    return {"models": [{f: row[f] for f in MODEL_FIELDS} for row in rows]}


def _unit_costs(
    cursor: duckdb.DuckDBPyConnection, since: str, now_ns: int
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Unit cost per (workload, version) over the window, as GET /api/v1/unit-costs gives."""
    hours = since if parse_duration(since, "since") >= HOUR_NS else "1h"  # costs are hourly
    window = cost_window.parse(hours, None, now_ns)
    return {(u["workload"], u["version"]): u for u in unit.unit_costs(cursor, window)}


def models_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The inventory as CSV: a header, then one line per model version."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MODEL_FIELDS)
    for row in rows:
        writer.writerow(["" if row[f] is None else row[f] for f in MODEL_FIELDS])
    return out.getvalue().encode()


_RUNS = f"""
SELECT s.workload, i.team, s.trace_id, s.name,
       epoch_ns(s.start_time) AS start_ns, epoch_ns(s.end_time) AS end_ns,
       strftime(s.start_time, {_ISO}) AS start, strftime(s.end_time, {_ISO}) AS "end",
       s.duration_ns / 1e6 AS duration_ms,
       coalesce(t.span_count, 1) AS spans,
       coalesce(t.error_count, CASE WHEN s.status_code = 2 THEN 1 ELSE 0 END) AS errors
FROM spans s
LEFT JOIN workload_identity i USING (workload)
LEFT JOIN traces t ON t.trace_key = s.trace_key AND t.trace_id = s.trace_id
WHERE s.role = 'pipeline' AND s.parent_span_id IS NULL
  AND s.start_time >= make_timestamp_ns($start)
  AND (len($workloads) = 0 OR list_contains($workloads, s.workload))
  AND ($team IS NULL OR i.team = $team)
ORDER BY s.start_time DESC
"""

_HOURLY_COST = """
SELECT workload, epoch_ns(hour) AS hour_ns, sum(total_cost) AS cost
FROM cost_pod_hours
WHERE hour >= make_timestamp_ns($start) AND list_contains($workloads, workload)
GROUP BY ALL
"""


def pipeline_runs(
    cursor: duckdb.DuckDBPyConnection, q: Mapping[str, str], lists: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """``GET /api/v1/pipelines/runs``: one run per trace whose root span is a pipeline span,
    newest first, each with its status, duration and cost, and a summary per workload."""
    check_params(lists, RUN_PARAMS)
    status = q.get("status") or None
    if status not in (None, "ok", "error"):
        raise BadRequest(f"status must be ok or error, got {status[:20]!r}")
    limit = whole_param(q.get("limit"), 100, "limit")
    _, start = _since(q, "7d", time.time_ns())
    cursor.execute(
        _RUNS,
        {"start": start, "workloads": [w for w in lists.get("workload", []) if w],
         "team": q.get("team") or None},
    )  # fmt: skip
    names = [d[0] for d in cursor.description]
    runs = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for run in runs:
        run["status"] = "error" if run["errors"] else "ok"
    _add_run_costs(cursor, runs, start)
    summary = _summary(runs)
    shown = [r for r in runs if status is None or r["status"] == status][:limit]
    for run in shown:
        del run["start_ns"], run["end_ns"]
    return {"runs": shown, "summary": summary}


def _add_run_costs(
    cursor: duckdb.DuckDBPyConnection, runs: list[dict[str, Any]], start_ns: int
) -> None:
    """Each run's share of its workload's cost: every hour the run overlaps gives its cost
    in equal parts to the runs of that workload overlapping it. None without cost rows."""
    workloads = sorted({r["workload"] for r in runs})
    if not workloads:
        return
    hourly = {
        (w, h): c
        for w, h, c in cursor.execute(
            _HOURLY_COST, {"start": start_ns // HOUR_NS * HOUR_NS, "workloads": workloads}
        ).fetchall()
    }
    sharing: dict[tuple[str, int], int] = defaultdict(int)
    for run in runs:
        for hour in _hours(run):
            sharing[(run["workload"], hour)] += 1
    for run in runs:
        parts = [
            hourly[(run["workload"], h)] / sharing[(run["workload"], h)]
            for h in _hours(run)
            if (run["workload"], h) in hourly
        ]
        run["cost"] = sum(parts) if parts else None


def _hours(run: Mapping[str, Any]) -> range:
    first = run["start_ns"] // HOUR_NS * HOUR_NS
    return range(first, max(run["end_ns"], run["start_ns"] + 1), HOUR_NS)


def _summary(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for run in runs:
        by[run["workload"]].append(run)
    out = []
    for workload, own in sorted(by.items()):
        costs = [r["cost"] for r in own if r["cost"] is not None]
        out.append(
            {
                "workload": workload,
                "team": own[0]["team"],
                "runs": len(own),
                "failed": sum(r["status"] == "error" for r in own),
                "avg_duration_ms": sum(r["duration_ms"] for r in own) / len(own),
                "cost_per_run": sum(costs) / len(costs) if costs else None,
            }
        )
    return out
