"""``GET /api/v1/allocation``: cost per workload, team, kind, namespace or label over a
window, in OpenCost's /allocation response shape so its consumers can read it.

``idle=true`` adds ``__idle__``: what the nodes cost beyond what pods were allocated.
``shareIdle=even|weighted`` shares that idle out over the step's allocations instead
(evenly, or in proportion to their cost; ``true`` is weighted, as in OpenCost), so the
totals still add up to what the nodes cost. ``reconcile=true`` scales each node's day to
its FOCUS bill (cost/reconcile.py); the ``*CostAdjustment`` fields say by how much.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import duckdb

from cost.reconcile import NODE_DAY_BILLED
from cost.window import CostWindow, iso
from onepane.errors import BadRequest

IDLE, UNALLOCATED = "__idle__", "__unallocated__"
_KEYS = {
    "workload": "c.workload",
    "controller": "c.workload",
    "namespace": "c.namespace",
    "team": f"coalesce(w.team, '{UNALLOCATED}')",
    "kind": "coalesce(w.kind, 'app')",
    "node": "coalesce(c.node, '')",
    "pod": "c.namespace || '/' || c.pod",
    "controllerKind": "coalesce(c.controller_kind, '')",
}
SHARE = {"none": None, "false": None, "": None, "true": "weighted", "weighted": "weighted",
         "even": "even"}  # fmt: skip
_SUMS = (
    "hours",
    "cpu_core_hours",
    "cpu_request_hours",
    "cpu_usage_hours",
    "ram_byte_hours",
    "ram_request_hours",
    "ram_usage_hours",
    "gpu_hours",
    "gpu_util_hours",
    "gpu_measured_hours",
    "cpu_cost",
    "ram_cost",
    "gpu_cost",
    "cpu_adjustment",
    "ram_adjustment",
    "gpu_adjustment",
    "gpu_idle_cost",
)


@dataclass(frozen=True)
class AllocationQuery:
    window: CostWindow
    aggregate: tuple[str, ...] = ("workload",)
    idle: bool = False
    share_idle: str | None = None  # None | even | weighted
    reconcile: bool = False


def parse_aggregate(text: str | None) -> tuple[str, ...]:
    """``workload``, ``team``, ``kind``, ``namespace``, ``node``, ``pod``, ``controller``,
    ``controllerKind`` or ``label:KEY``; several joined by commas."""
    parts = tuple(p.strip() for p in (text or "workload").split(",") if p.strip())
    for part in parts:
        if part not in _KEYS and not (part.startswith("label:") and len(part) > 6):
            raise BadRequest(
                f"cannot aggregate by {part[:40]!r}; use {', '.join(_KEYS)} or label:KEY"
            )
    return parts or ("workload",)


def _key_sql(aggregate: tuple[str, ...], params: dict[str, Any]) -> list[str]:
    exprs = []
    for i, part in enumerate(aggregate):
        if part.startswith("label:"):
            params[f"label{i}"] = '$."' + part[6:].replace('"', '\\"') + '"'
            exprs.append(f"coalesce(json_extract_string(c.labels, $label{i}), '{UNALLOCATED}')")
        else:
            exprs.append(_KEYS[part])
    return exprs


def _scaled(reconcile: bool) -> tuple[str, str]:
    """The CTE prefix and the factor expression for ``reconcile``."""
    if not reconcile:
        return "", "1.0"
    return f"{NODE_DAY_BILLED.strip()},", "coalesce(f.factor, 1.0)"


def _allocations_sql(query: AllocationQuery, params: dict[str, Any]) -> str:
    keys = _key_sql(query.aggregate, params)
    prefix, factor = _scaled(query.reconcile)
    join = (
        "LEFT JOIN node_day_factor f ON f.node = c.node AND f.day = date_trunc('day', c.hour)"
        if query.reconcile
        else ""
    )
    key_columns = ", ".join(f"{k} AS k{i}" for i, k in enumerate(keys))
    key_names = ", ".join(f"k{i}" for i in range(len(keys)))
    return f"""
WITH {prefix}
rows AS (
    SELECT c.*, {key_columns}, {factor} AS f,
           (epoch_ns(c.hour) - $start) // $step AS step_i
    FROM cost_pod_hours c
    LEFT JOIN workload_identity w ON w.workload = c.workload
    {join}
    WHERE c.hour >= make_timestamp_ns($start) AND c.hour < make_timestamp_ns($end)
)
SELECT step_i, {key_names}, min(epoch_ns(hour)), max(epoch_ns(hour)),
       sum(hours), sum(cpu_core_hours), sum(cpu_request * hours), sum(cpu_usage * hours),
       sum(ram_byte_hours), sum(ram_request * hours), sum(ram_usage * hours), sum(gpu_hours),
       sum(gpu_utilization * gpu_hours), sum(gpu_hours) FILTER (WHERE gpu_utilization IS NOT NULL),
       sum(cpu_cost * f), sum(ram_cost * f), sum(gpu_cost * f),
       sum(cpu_cost * (f - 1)), sum(ram_cost * (f - 1)), sum(gpu_cost * (f - 1)),
       sum(gpu_idle_cost * f),
       list(DISTINCT price_source ORDER BY price_source),
       list(DISTINCT price_version ORDER BY price_version)
FROM rows
GROUP BY step_i, {key_names}
ORDER BY step_i, {key_names}
"""


def _idle_sql(reconcile: bool) -> str:
    prefix, factor = _scaled(reconcile)
    join = (
        "LEFT JOIN node_day_factor f ON f.node = n.node AND f.day = date_trunc('day', n.hour)"
        if reconcile
        else ""
    )
    return f"""
WITH {prefix}
rows AS (
    SELECT n.*, {factor} AS f, (epoch_ns(n.hour) - $start) // $step AS step_i
    FROM cost_node_hours n {join}
    WHERE n.hour >= make_timestamp_ns($start) AND n.hour < make_timestamp_ns($end)
)
SELECT step_i, min(epoch_ns(hour)), max(epoch_ns(hour)), sum(idle_cpu_cost * f),
       sum(idle_ram_cost * f), sum(idle_gpu_cost * f), sum(idle_cpu_cost * (f - 1)),
       sum(idle_ram_cost * (f - 1)), sum(idle_gpu_cost * (f - 1)),
       list(DISTINCT price_source ORDER BY price_source),
       list(DISTINCT price_version ORDER BY price_version)
FROM rows GROUP BY step_i ORDER BY step_i
"""


def allocation(cursor: duckdb.DuckDBPyConnection, query: AllocationQuery) -> dict[str, Any]:
    """The allocation sets of ``query``, one per step, OpenCost-shaped."""
    w = query.window
    params: dict[str, Any] = {"start": w.start_ns, "end": w.end_ns, "step": w.step_ns}
    sql = _allocations_sql(query, params)
    sets: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    width = len(query.aggregate)
    for row in cursor.execute(sql, params).fetchall():
        step_i, names = row[0], row[1 : 1 + width]
        first, last, *sums, sources, versions = row[1 + width :]
        name = "/".join(str(n) for n in names)
        properties = _properties(query.aggregate, names)
        sets[step_i][name] = _allocation(
            name, properties, w, step_i, first, last, dict(zip(_SUMS, sums, strict=True)),
            sources, versions,
        )  # fmt: skip
    if query.idle or query.share_idle:
        idle_params = {"start": w.start_ns, "end": w.end_ns, "step": w.step_ns}
        for step_i, first, last, *figures, sources, versions in cursor.execute(
            _idle_sql(query.reconcile), idle_params
        ).fetchall():
            idle = _idle(w, step_i, first, last, figures, sources, versions)
            _place_idle(sets[step_i], idle, query.share_idle)
    data = [dict(sorted(sets.get(i, {}).items())) for i in range(len(w.steps))]
    return {"code": 200, "status": "success", "data": data}


def _properties(aggregate: tuple[str, ...], names: tuple[Any, ...]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for part, value in zip(aggregate, names, strict=True):
        if part.startswith("label:"):
            properties.setdefault("labels", {})[part[6:]] = value
        else:
            properties[part] = value
    return properties


def _bounds(w: CostWindow, step_i: int, first: int, last: int) -> tuple[int, int]:
    step_start, step_end = w.steps[step_i]
    return max(first, step_start), min(last + 3_600_000_000_000, step_end)


def _ratio(part: float | None, whole: float | None) -> float:
    return (part or 0.0) / whole if whole else 0.0


def _allocation(
    name: str,
    properties: dict[str, Any],
    w: CostWindow,
    step_i: int,
    first: int,
    last: int,
    s: dict[str, float | None],
    sources: list[str],
    versions: list[int],
) -> dict[str, Any]:
    start, end = _bounds(w, step_i, first, last)
    hours = (end - start) / 3.6e12
    v = {k: (x or 0.0) for k, x in s.items()}
    total = v["cpu_cost"] + v["ram_cost"] + v["gpu_cost"]
    cost_weight = v["cpu_cost"] + v["ram_cost"]
    efficiency = (
        (_ratio(v["cpu_usage_hours"], v["cpu_core_hours"]) * v["cpu_cost"]
         + _ratio(v["ram_usage_hours"], v["ram_byte_hours"]) * v["ram_cost"]) / cost_weight
        if cost_weight else 0.0
    )  # fmt: skip
    return {
        "name": name,
        "properties": properties,
        "window": {"start": iso(w.steps[step_i][0]), "end": iso(w.steps[step_i][1])},
        "start": iso(start),
        "end": iso(end),
        "minutes": hours * 60,
        "cpuCores": _ratio(v["cpu_core_hours"], hours),
        "cpuCoreRequestAverage": _ratio(v["cpu_request_hours"], hours),
        "cpuCoreUsageAverage": _ratio(v["cpu_usage_hours"], hours),
        "cpuCoreHours": v["cpu_core_hours"],
        "cpuCost": v["cpu_cost"],
        "cpuCostAdjustment": v["cpu_adjustment"],
        "cpuEfficiency": _ratio(v["cpu_usage_hours"], v["cpu_request_hours"]),
        "gpuCount": _ratio(v["gpu_hours"], hours),
        "gpuHours": v["gpu_hours"],
        "gpuCost": v["gpu_cost"],
        "gpuCostAdjustment": v["gpu_adjustment"],
        # null when GPU hours were never measured: unknown is not the same as not idle
        "gpuIdleCost": v["gpu_idle_cost"]
        if v["gpu_measured_hours"] or not v["gpu_hours"]
        else None,
        "gpuUtilization": _ratio(v["gpu_util_hours"], v["gpu_measured_hours"])
        if v["gpu_measured_hours"]
        else None,
        "networkCost": 0.0,
        "loadBalancerCost": 0.0,
        "pvCost": 0.0,
        "pvBytes": 0.0,
        "ramBytes": _ratio(v["ram_byte_hours"], hours),
        "ramByteRequestAverage": _ratio(v["ram_request_hours"], hours),
        "ramByteUsageAverage": _ratio(v["ram_usage_hours"], hours),
        "ramByteHours": v["ram_byte_hours"],
        "ramCost": v["ram_cost"],
        "ramCostAdjustment": v["ram_adjustment"],
        "ramEfficiency": _ratio(v["ram_usage_hours"], v["ram_request_hours"]),
        "sharedCost": 0.0,
        "externalCost": 0.0,
        "totalCost": total,
        "totalEfficiency": efficiency,
        "priceSources": sources,
        "priceVersions": versions,
    }


def _idle(
    w: CostWindow,
    step_i: int,
    first: int,
    last: int,
    figures: list[float | None],
    sources: list[str],
    versions: list[int],
) -> dict[str, Any]:
    cpu, ram, gpu, cpu_adj, ram_adj, gpu_adj = (x or 0.0 for x in figures)
    zero = dict.fromkeys(_SUMS, 0.0)
    zero.update(cpu_cost=cpu, ram_cost=ram, gpu_cost=gpu, cpu_adjustment=cpu_adj,
                ram_adjustment=ram_adj, gpu_adjustment=gpu_adj)  # fmt: skip
    return _allocation(IDLE, {}, w, step_i, first, last, zero, sources, versions)


def _place_idle(step: dict[str, dict[str, Any]], idle: dict[str, Any], share: str | None) -> None:
    """Add ``__idle__`` to the step, or share it out over the step's allocations."""
    if share is None or not step:
        step[IDLE] = idle
        return
    amount = idle["totalCost"]
    weights = {n: (a["totalCost"] if share == "weighted" else 1.0) for n, a in step.items()}
    total_weight = sum(weights.values())
    if total_weight <= 0:  # nothing allocated costs anything: share evenly
        weights = dict.fromkeys(step, 1.0)
        total_weight = float(len(step))
    for name, allocation in step.items():
        portion = amount * (weights[name] / total_weight)  # the share first: weights can be tiny
        allocation["sharedCost"] += portion
        allocation["totalCost"] += portion
