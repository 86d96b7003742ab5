"""Reconciliation: per day, what Onepane allocated to the cluster's nodes against what the
FOCUS bill charged for them, the gap, and where the gap comes from.

A billing row belongs to a node when its ``ResourceId`` (or the part after its last
``/``, as in an ARN), its ``ResourceName`` or one of its tag values equals the node's
name, its ``spec.providerID`` or the instance id at the end of it. The gap (billed −
allocated) is explained as parts that add up to it: discounts (``EffectiveCost`` −
``ListCost``: commitments, reserved instances, savings plans, negotiated rates), price
differences (``ListCost`` − what Onepane allocated), nodes not billed, and the rest. The
scale factor per node and day (billed ÷ allocated) is what ``reconcile=true`` multiplies
allocations by, so they add up to the bill. Days are whole: a window that starts or ends
within a day compares all of that day, and an hour is scaled by its whole day's factor.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import duckdb

from cost.window import CostWindow, iso

# The whole days [$start, $end) touches: a day's bill is only comparable with the whole
# day's allocation.
_DAY_START = "date_trunc('day', make_timestamp_ns($start))"
_DAY_END = "(date_trunc('day', make_timestamp_ns($end) - INTERVAL 1 MICROSECOND) + INTERVAL 1 DAY)"

# Billed and allocated cost per node and day, over those whole days.
NODE_DAY_BILLED = f"""
node_keys AS (
    SELECT DISTINCT node, key FROM (
        SELECT name AS node,
               unnest([name, provider_id, regexp_extract(provider_id, '([^/]+)$', 1)]) AS key
        FROM k8s_nodes)
    WHERE key IS NOT NULL AND key <> ''
),
bill_keys AS (
    SELECT import_id, row_number,
           unnest(list_distinct(list_filter(
               [resource_id, resource_name, regexp_extract(resource_id, '([^/]+)$', 1)]
               || coalesce(json_extract_string(tags, '$.*'), []),
               k -> k IS NOT NULL AND k <> ''))) AS key
    FROM billing_rows
    WHERE charge_period_start >= {_DAY_START}
      AND charge_period_start < {_DAY_END}
),
bill_nodes AS (
    SELECT b.import_id, b.row_number, min(k.node) AS node
    FROM bill_keys b JOIN node_keys k ON k.key = b.key
    GROUP BY ALL
),
bill AS (
    SELECT r.*, n.node, date_trunc('day', r.charge_period_start) AS day
    FROM billing_rows r
    LEFT JOIN bill_nodes n ON n.import_id = r.import_id AND n.row_number = r.row_number
    WHERE r.charge_period_start >= {_DAY_START}
      AND r.charge_period_start < {_DAY_END}
),
node_day_billed AS (
    SELECT node, day, sum(effective_cost) AS billed, sum(list_cost) AS list_cost,
           sum(effective_cost) FILTER (WHERE list_cost IS NULL) AS billed_without_list
    FROM bill WHERE node IS NOT NULL GROUP BY ALL
),
node_day_allocated AS (
    SELECT node, date_trunc('day', hour) AS day, sum(node_cost) AS allocated
    FROM cost_node_hours
    WHERE hour >= {_DAY_START}
      AND hour < {_DAY_END}
    GROUP BY ALL
),
node_day_factor AS (
    SELECT a.node, a.day, b.billed / a.allocated AS factor
    FROM node_day_allocated a JOIN node_day_billed b USING (node, day)
    WHERE a.allocated > 0
)"""

_NODE_DAYS = f"""
WITH {NODE_DAY_BILLED.strip()}
SELECT coalesce(a.node, b.node) AS node, epoch_ns(coalesce(a.day, b.day)) AS day_ns,
       a.allocated, b.billed, b.list_cost, b.billed_without_list
FROM node_day_allocated a FULL OUTER JOIN node_day_billed b USING (node, day)
ORDER BY day_ns, node
"""

_UNMATCHED = f"""
WITH {NODE_DAY_BILLED.strip()}
SELECT coalesce(service_name, charge_category, 'unknown') AS service, count(*) AS rows,
       sum(effective_cost) AS effective_cost
FROM bill WHERE node IS NULL
GROUP BY ALL ORDER BY effective_cost DESC NULLS LAST LIMIT 10
"""


def _add(total: dict[str, float], **values: float | None) -> None:
    for key, value in values.items():
        total[key] = total.get(key, 0.0) + (value or 0.0)


def reconcile(cursor: duckdb.DuckDBPyConnection, window: CostWindow) -> dict[str, Any]:
    """Allocated vs billed per day and per node over ``window``."""
    params = {"start": window.start_ns, "end": window.end_ns}
    days: dict[int, dict[str, Any]] = defaultdict(lambda: {"nodes": []})
    nodes: dict[str, dict[str, float]] = defaultdict(dict)
    for node, day_ns, allocated, billed, list_cost, without_list in cursor.execute(
        _NODE_DAYS, params
    ).fetchall():
        day = days[day_ns]
        _add(day, allocated=allocated)
        if billed is not None:
            _add(day, billed=billed, matched_allocated=allocated, list_cost=list_cost,
                 billed_with_list=billed - (without_list or 0.0),
                 allocated_with_list=allocated if list_cost is not None else 0.0)  # fmt: skip
        else:
            day.setdefault("unbilled_nodes", []).append(node)
        if allocated is None:
            day.setdefault("nodes_not_in_inventory", []).append(node)
        day["nodes"].append(_figures(node, allocated, billed))
        _add(nodes[node], allocated=allocated)
        if billed is not None:
            _add(nodes[node], billed=billed)
    out_days = [_day(day_ns, day) for day_ns, day in sorted(days.items())]
    totals: dict[str, float] = {}  # over the days the bill covers: the rest is not billed yet
    for day in out_days:
        if day["billed"] is not None:
            _add(totals, allocated=day["allocated"], billed=day["billed"])
        else:
            _add(totals, allocated_unbilled_days=day["allocated"])
    unmatched = [
        {"service": s, "rows": n, "effective_cost": c}
        for s, n, c in cursor.execute(_UNMATCHED, params).fetchall()
    ]
    return {
        "window": {"start": iso(window.start_ns), "end": iso(window.end_ns)},
        "totals": {
            **_figures(None, totals.get("allocated"), totals.get("billed")),
            "billed_days": sum(1 for d in out_days if d["billed"] is not None),
            "allocated_unbilled_days": totals.get("allocated_unbilled_days", 0.0),
        },
        "days": out_days,
        "nodes": [_figures(n, v.get("allocated"), v.get("billed")) for n, v in nodes.items()],
        "unmatched_billing": unmatched,
    }


def _figures(node: str | None, allocated: float | None, billed: float | None) -> dict[str, Any]:
    figures: dict[str, Any] = {} if node is None else {"node": node}
    gap = None if billed is None or allocated is None else billed - allocated
    figures.update(
        allocated=allocated,
        billed=billed,
        gap=gap,
        gap_pct=None if gap is None or not allocated else 100.0 * gap / allocated,
        scale_factor=None if billed is None or not allocated else billed / allocated,
    )
    return figures


def _day(day_ns: int, day: dict[str, Any]) -> dict[str, Any]:
    out = {"date": iso(day_ns)[:10], **_figures(None, day.get("allocated"), day.get("billed"))}
    if out["gap"] is not None:  # the parts add up to the gap
        list_cost = day.get("list_cost", 0.0)
        parts = {
            # what commitments, RIs, savings plans and negotiated rates took off list prices
            "discounts": day.get("billed_with_list", 0.0) - list_cost,
            # list prices above (+) or below (−) the prices Onepane allocated with
            "price_difference": list_cost - day.get("allocated_with_list", 0.0),
            # allocated to nodes the bill does not show (yet)
            "not_billed": day.get("matched_allocated", 0.0) - day.get("allocated", 0.0),
        }
        parts["other"] = out["gap"] - sum(parts.values())  # rows without ListCost
        out["explained"] = parts
    out["nodes"] = day["nodes"]
    for key in ("unbilled_nodes", "nodes_not_in_inventory"):
        if key in day:
            out[key] = day[key]
    return out
