"""The FinOps page's data: the API calls it makes for the chosen filters, and the tables it
shows, shaped from the documents those calls return (no Streamlit here).

Cost comes from one ``GET /api/v1/allocation`` aggregated by team, kind and workload at
once, with the nodes' idle cost (``idle=true``): the page filters it by team and workload
and sums it by the chosen dimension, so switching between team, kind and workload asks
nothing new and every figure adds up to what the API returned.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboards import api
from dashboards.state import Filters

BY = ("team", "kind", "workload")
IDLE, UNALLOCATED = "__idle__", "__unallocated__"
VERDICTS = ("all", "pass", "blocked", "overridden", "undecided")
HEATMAP_SINCE = "7d"
IDLE_BELOW = 0.2  # a GPU hour under 20% average utilisation is idle
GATE_LIMIT = 200
SHORT_WINDOWS = ("1h", "6h", "24h")

Doc = Mapping[str, Any]
Requests = dict[str, tuple[str, api.Params | None]]
COST_COLUMNS = ["time", "team", "kind", "workload", "cost", "cpu_cost", "ram_cost", "gpu_cost",
                "gpu_idle_cost"]  # fmt: skip


def step_for(window: str) -> str:
    """Cost bars per hour for a day or less, per day beyond."""
    return "1h" if window in SHORT_WINDOWS else "1d"


def requests(f: Filters, verdict: str) -> Requests:
    """Every call the page makes, run together with ``api.get_many``."""
    gate: dict[str, str | int | None] = {"team": f.team, "workload": f.workload}
    gate.update(verdict=None if verdict == "all" else verdict, limit=GATE_LIMIT)
    return {
        "allocation": (
            "/api/v1/allocation",
            {
                "window": f.window,
                "aggregate": ",".join(BY),
                "step": step_for(f.window),
                "idle": "true",
            },
        ),
        "heatmap": ("/api/v1/gpus/heatmap", {"since": HEATMAP_SINCE}),
        "reconciliation": ("/api/v1/reconciliation", {"window": "30d"}),
        "models": ("/api/v1/models", {"team": f.team}),
        "gate": ("/api/v1/gate/decisions", gate),
    }


# -- cost ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """The allocation under the filters: one row per step and workload, and the nodes'
    idle cost per step (cluster-wide: idle capacity belongs to no team)."""

    rows: pd.DataFrame  # COST_COLUMNS
    idle: pd.DataFrame  # time, cost, cpu_cost, ram_cost, gpu_cost

    @property
    def empty(self) -> bool:
        return self.rows.empty and float(self.idle["cost"].sum()) == 0.0


def _figures(allocation: Doc) -> dict[str, Any]:
    return {
        "cost": allocation.get("totalCost") or 0.0,
        "cpu_cost": allocation.get("cpuCost") or 0.0,
        "ram_cost": allocation.get("ramCost") or 0.0,
        "gpu_cost": allocation.get("gpuCost") or 0.0,
        "gpu_idle_cost": allocation.get("gpuIdleCost"),  # None: GPU use never measured
    }


def cost(doc: Doc, f: Filters) -> Cost:
    """The allocation document as frames, keeping the chosen team's or workload's rows."""
    rows, idle = [], []
    for step in doc.get("data") or []:
        for name, allocation in (step or {}).items():
            start = pd.Timestamp(allocation["window"]["start"])
            if name == IDLE:
                idle.append({"time": start, **_figures(allocation)})
                continue
            props = allocation.get("properties") or {}
            if (f.team and props.get("team") != f.team) or (
                f.workload and props.get("workload") != f.workload
            ):
                continue
            keys = {k: props.get(k) or UNALLOCATED for k in BY}
            rows.append({"time": start, **keys, **_figures(allocation)})
    idle_columns = ["time", "cost", "cpu_cost", "ram_cost", "gpu_cost"]
    return Cost(
        rows=pd.DataFrame(rows, columns=COST_COLUMNS),
        idle=pd.DataFrame(idle, columns=[*idle_columns, "gpu_idle_cost"])[idle_columns],
    )


def totals(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    """Cost per ``by`` over the window, most expensive first, with its share of the total."""
    columns = ["cost", "cpu_cost", "ram_cost", "gpu_cost"]
    grouped = rows.groupby(by, as_index=False)[columns].sum()
    idle = rows.groupby(by)["gpu_idle_cost"].sum(min_count=1).reset_index(drop=True)
    grouped["gpu_idle_cost"] = idle.to_numpy()
    whole = float(grouped["cost"].sum())
    grouped["share_pct"] = grouped["cost"] / whole * 100 if whole else 0.0
    return grouped.sort_values(["cost", by], ascending=[False, True]).reset_index(drop=True)


def over_time(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    """Cost per step and ``by``: the stacked bars."""
    return rows.groupby(["time", by], as_index=False)["cost"].sum()


def gpu_idle_in_allocations(rows: pd.DataFrame) -> float | None:
    """What allocated GPUs cost while unused (None when no GPU use was measured)."""
    measured = rows["gpu_idle_cost"].dropna()
    return float(measured.sum()) if len(measured) else None


# -- GPU heatmap -----------------------------------------------------------------------


def gpu_label(cell: Doc, ambiguous: bool = False) -> str:
    label = f"{cell.get('hostname') or '?'} · GPU {cell.get('gpu')}"
    return f"{label} ({str(cell.get('uuid'))[:12]})" if ambiguous else label


def heatmap(cells: Sequence[Doc]) -> pd.DataFrame:
    """One row per GPU and hour of day: utilisation in percent."""
    seen: dict[str, set[Any]] = {}
    for c in cells:
        seen.setdefault(gpu_label(c), set()).add(c.get("uuid"))
    rows = [
        {
            "GPU": gpu_label(c, len(seen[gpu_label(c)]) > 1),
            "hour": int(c["hour"]),
            "utilisation": float(c["avg_utilization"]) * 100,
            "samples": int(c["samples"]),
        }
        for c in cells
    ]
    return pd.DataFrame(rows, columns=["GPU", "hour", "utilisation", "samples"])


def hour_ranges(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Hours of day as runs [first, last + 1), a run across midnight kept whole."""
    wanted = sorted(set(hours))
    if len(wanted) == 24:
        return [(0, 24)]
    runs: list[list[int]] = []
    for hour in wanted:
        if runs and runs[-1][1] == hour:
            runs[-1][1] = hour + 1
        else:
            runs.append([hour, hour + 1])
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][1] == 24:
        runs[0] = [runs.pop()[0], runs[0][1]]
    return [(a, b) for a, b in runs]


def _span(run: tuple[int, int]) -> str:
    return "all day" if run == (0, 24) else f"{run[0]:02d}:00–{run[1] % 24:02d}:00"


def idle_sentence(frame: pd.DataFrame, below: float = IDLE_BELOW) -> str:
    """Where training could move: each GPU's hours under ``below`` average utilisation."""
    if frame.empty:
        return ""
    parts = []
    for gpu, cells in frame.groupby("GPU", sort=True):
        idle = cells[cells["utilisation"] < below * 100]
        if idle.empty:
            continue
        spans = ", ".join(_span(r) for r in hour_ranges(idle["hour"]))
        parts.append(f"**{gpu}** {spans} (avg {idle['utilisation'].mean():.0f}%)")
    measured = frame["hour"].nunique()
    scope = f", {measured} of 24 hours measured" if measured < 24 else ""
    if not parts:
        return f"No GPU averages under {below:.0%} utilisation in any hour of the day{scope}."
    return (
        f"**Idle hours** (UTC; under {below:.0%} average utilisation over the last 7 days"
        f"{scope}): " + "; ".join(parts) + ". Training and batch jobs scheduled into these "
        "hours run on GPUs already paid for."
    )


# -- billed vs allocated ---------------------------------------------------------------


def reconciliation_days(doc: Doc) -> pd.DataFrame:
    """Billed and allocated per day (billed empty where no bill covers the day)."""
    rows = [
        {
            "date": d["date"],
            "allocated": d.get("allocated"),
            "billed": d.get("billed"),
            "gap": d.get("gap"),
            "gap_pct": d.get("gap_pct"),
        }
        for d in doc.get("days") or []
    ]
    return pd.DataFrame(rows, columns=["date", "allocated", "billed", "gap", "gap_pct"])


def reconciliation_series(days: pd.DataFrame) -> pd.DataFrame:
    """The days as lines: one series for billed, one for allocated."""
    long = days.melt(id_vars="date", value_vars=["allocated", "billed"], var_name="series",
                     value_name="cost").dropna(subset=["cost"])  # fmt: skip
    long["time"] = pd.to_datetime(long["date"], utc=True)
    return long


# -- model inventory and gate log ------------------------------------------------------


def inventory(models: Sequence[Doc], f: Filters) -> list[Doc]:
    """The inventory's rows, of the chosen workload when one is chosen."""
    return [m for m in models if not f.workload or m.get("workload") == f.workload]


def inventory_csv(rows: Sequence[Doc]) -> bytes:
    """The rows as ``GET /api/v1/models?format=csv`` writes them: the API's columns in its
    order, empty cells for nulls."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = list(rows[0]) if rows else []
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return out.getvalue().encode()


GATE_COLUMNS = ["time", "decision_id", "workload", "version", "action", "verdict",
                "environment", "team", "unit_cost", "unit", "failed_checks", "actor",
                "approver", "override_reason"]  # fmt: skip


def gate_rows(decisions: Sequence[Doc]) -> pd.DataFrame:
    """The audit log as the API orders it (newest first)."""
    rows = []
    for d in decisions:
        projection = d.get("projection") or {}
        failed = [c.get("threshold", "?") for c in d.get("checks") or [] if not c.get("passed")]
        rows.append(
            {
                **{k: d.get(k) for k in GATE_COLUMNS},
                "unit_cost": projection.get("unit_cost"),
                "failed_checks": ", ".join(failed),
            }
        )
    frame = pd.DataFrame(rows, columns=GATE_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    return frame
