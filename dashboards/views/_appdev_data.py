"""The app developer page's data: which API calls it makes for the chosen team, workload
and window, and the tables it shows, shaped from the documents those calls return.

Routes that take one workload (deployments, unit costs) are asked once for the chosen
workload, else once for everything the team may see and filtered here; the trace search
takes every workload in scope at once (``workload`` repeated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboards import api, ui
from dashboards.state import Filters

KINDS = ("app",)
TRACES = 10
DEPLOYS = 20
MAX_CHART_ROUTES = 8

Doc = Mapping[str, Any]
Requests = dict[str, tuple[str, api.Params | None]]


def requests(f: Filters, scope: Sequence[str]) -> Requests:
    """Every call of the page after the catalog, to run at once (``api.get_many``)."""
    one = scope[0] if len(scope) == 1 else None
    who: dict[str, str | None] = {"workload": one} if one else {"team": f.team, "kind": KINDS[0]}
    calls: Requests = {
        "routes": ("/api/v1/stats", {"by": "route", "since": f.window, "workload": one}),
        "services": ("/api/v1/stats", {"by": "workload", "since": f.window, "workload": one}),
        "deployments": ("/api/v1/deployments", {**who, "limit": DEPLOYS}),
        "decisions": ("/api/v1/gate/decisions", {**who, "limit": DEPLOYS}),
        "unit_series": (
            "/api/v1/unit-costs",
            {
                "workload": one,
                "window": f.window,
                "step": "1h",
                "by": "version" if one else "workload",
            },
        ),
        "unit_total": (
            "/api/v1/unit-costs",
            {"workload": one, "window": f.window, "by": "workload"},
        ),
    }
    if scope:  # one search each, over every workload in scope (a repeated parameter)
        base = {"workload": list(scope), "since": f.window, "limit": TRACES}
        calls["slowest:0"] = ("/api/v1/traces", {**base, "sort": "slowest"})
        calls["failed:0"] = ("/api/v1/traces", {**base, "status": "error"})
    return calls


def mine(rows: Sequence[Doc], scope: Sequence[str]) -> list[Doc]:
    """The rows of the workloads in scope."""
    wanted = set(scope)
    return [row for row in rows if row.get("workload") in wanted]


@dataclass(frozen=True)
class Totals:
    """The key numbers of the workloads in scope over the window."""

    requests: int
    errors: int
    error_pct: float | None
    p95_ms: float | None
    p95_label: str  # "p95", or "Worst p95 (workload)" over several workloads
    unit_cost: float | None
    unit: str


def totals(services: Sequence[Doc], units: Sequence[Doc]) -> Totals:
    """From ``stats?by=workload`` groups and whole-window ``unit-costs?by=workload`` rows
    (both already cut to the scope): exact figures for one workload; for several, the sum,
    the worst p95 and the cost of all their requests over their count."""
    count = sum(g["count"] for g in services)
    errors = sum(g["errors"] for g in services)
    if len(services) == 1:
        error_pct, p95, label = services[0]["error_pct"], services[0]["p95_ms"], "p95 latency"
    else:
        worst = max(services, key=lambda g: g["p95_ms"], default=None)
        error_pct = 100.0 * errors / count if count else None
        p95 = worst["p95_ms"] if worst else None
        label = f"Worst p95 ({worst['workload']})" if worst else "p95 latency"
    return Totals(count, errors, error_pct, p95, label, _unit_cost(units), _unit(units))


def _unit_cost(rows: Sequence[Doc]) -> float | None:
    if len(rows) == 1:
        return rows[0]["unit_cost"]
    cost = sum(r["cost"] for r in rows if r["cost"] is not None and r["count"])
    count = sum(r["count"] for r in rows if r["cost"] is not None and r["count"])
    return cost / count * 1000 if count else None


def _unit(rows: Sequence[Doc]) -> str:
    return next((r["unit"] for r in rows if r.get("unit")), "1k requests")


SERVICE_COLUMNS = ["workload", "team", "requests", "rate_per_s", "error_pct", "p50_ms",
                   "p95_ms", "p99_ms", "unit_cost", "last_seen"]  # fmt: skip


def service_table(
    catalog: Sequence[Doc], scope: Sequence[str], services: Sequence[Doc], units: Sequence[Doc]
) -> pd.DataFrame:
    """One row per workload in scope, busiest first; a quiet one shows no figures."""
    stats = {g["workload"]: g for g in services}
    cost = {u["workload"]: u["unit_cost"] for u in units}
    info = {w["workload"]: w for w in catalog}
    rows = []
    for workload in scope:
        g = stats.get(workload, {})
        rows.append(
            {
                "workload": workload,
                "team": info.get(workload, {}).get("team"),
                "requests": g.get("count", 0),
                **{k: g.get(k) for k in ("rate_per_s", "error_pct", "p50_ms", "p95_ms", "p99_ms")},
                "unit_cost": cost.get(workload),
                "last_seen": info.get(workload, {}).get("last_seen"),
            }
        )
    df = pd.DataFrame(rows, columns=SERVICE_COLUMNS)
    df["last_seen"] = pd.to_datetime(df["last_seen"], utc=True, format="ISO8601")
    return df.sort_values("requests", ascending=False, kind="stable").reset_index(drop=True)


ROUTE_COLUMNS = ["route", "workload", "requests", "errors", "error_pct", "rate_per_s",
                 "p50_ms", "p95_ms", "p99_ms", "max_ms"]  # fmt: skip


def route_table(groups: Sequence[Doc]) -> pd.DataFrame:
    """``stats?by=route`` groups (most requests first) as the per-route table."""
    rows = [{**g, "route": g["key"], "requests": g["count"]} for g in groups]
    return pd.DataFrame(rows, columns=ROUTE_COLUMNS)


def route_series(doc: Doc, groups: Sequence[Doc], route: str | None) -> pd.DataFrame:
    """The buckets of the busiest routes (or of the chosen one), one line each; a route
    served by several workloads is named with its workload."""
    keys = [(g["key"], g["workload"]) for g in groups if route in (None, g["key"])]
    shown = set(keys[:MAX_CHART_ROUTES])
    several = len({w for _, w in shown}) > 1
    rows = [
        {**p, "route": f"{p['key']} ({p['workload']})" if several else p["key"]}
        for p in doc.get("series") or []
        if (p["key"], p["workload"]) in shown
    ]
    df = pd.DataFrame(rows, columns=["route", "time", "rate_per_s", "error_pct", "p50_ms",
                                     "p95_ms", "p99_ms", "count"])  # fmt: skip
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    return df


DEPLOY_COLUMNS = ["time", "workload", "version", "environment", "action", "verdict",
                  "unit_cost", "limit", "change_pct", "decision"]  # fmt: skip


def deploy_table(
    deployments: Sequence[Doc], decisions: Sequence[Doc], scope: Sequence[str]
) -> pd.DataFrame:
    """Releases of the workloads in scope, newest first, with what the gate found: the
    projected unit cost, the limit it was held to, the change over the running release
    and a link to the whole decision."""
    by_id = {d["decision_id"]: d for d in decisions}
    rows = []
    for dep in mine(deployments, scope):
        decision = by_id.get(dep.get("decision_id"), {})
        projection = decision.get("projection") or {}
        limit = next(
            (c for c in decision.get("checks") or [] if c.get("threshold") == "max_unit_cost"), {}
        )
        rows.append(
            {
                **{
                    k: dep.get(k)
                    for k in ("time", "workload", "version", "environment", "action", "verdict")
                },
                "unit_cost": projection.get("unit_cost"),
                "limit": limit.get("limit_text"),
                "change_pct": projection.get("increase_pct"),
                "decision": decision_url(dep["decision_id"]) if dep.get("decision_id") else None,
            }
        )
    df = pd.DataFrame(rows, columns=DEPLOY_COLUMNS)
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    return df


def decision_url(decision_id: int) -> str:
    """The gate decision's whole document (its checks, projection and override)."""
    return api.url(f"/api/v1/gate/decisions/{decision_id}")


def unit_series(rows: Sequence[Doc], scope: Sequence[str], by_version: bool) -> pd.DataFrame:
    """Cost per unit per hour, one line per version (one workload) or per workload."""
    data = [
        {
            "time": r["start"],
            "line": (r.get("version") or "unknown version") if by_version else r["workload"],
            "unit_cost": r["unit_cost"],
            "cost": r["cost"],
            "count": r["count"],
        }
        for r in mine(rows, scope)
        if r["unit_cost"] is not None
    ]
    df = pd.DataFrame(data, columns=["time", "line", "unit_cost", "cost", "count"])
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    return df


def fmt_count(value: int) -> str:
    return f"{value:,}"


def metric_values(t: Totals) -> dict[str, str]:
    """The page's key numbers as shown (tests compare them with the API's figures)."""
    return {
        "Requests": fmt_count(t.requests),
        "Error %": ui.pct(t.error_pct, 2),
        t.p95_label: ui.ms(t.p95_ms),
        f"Cost per {t.unit}": unit_money(t.unit_cost),
    }


def unit_money(value: float | None) -> str:
    """A cost per unit: cents matter, so four decimals below a dollar."""
    return ui.money(value) if value is None or value >= 1 else f"${value:.4f}"
