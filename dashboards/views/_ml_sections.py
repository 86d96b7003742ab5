"""The ML engineer page's panels, each from the API documents the page fetched at once:
the models serving, inference latency and throughput per version, GPU use and idle cost,
cost per 1k predictions, drift per model and the gate's decisions."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import api, charts, state, ui
from dashboards.views import _ml_common as common

IDLE = "__idle__"  # the allocation's row for capacity no workload holds


# -- the rows each panel shows (pure: what the tests compare with the API) ------------


_CHARTS = {"latency": "p95 latency per version", "throughput": "Throughput per version"}


def models(doc: Any, mine: Collection[str]) -> list[dict[str, Any]]:
    """The inventory's versions of the page's workloads, serving ones first."""
    if isinstance(doc, api.ApiError):
        return []
    rows = [m for m in doc.get("models", []) if m.get("workload") in mine]
    return sorted(rows, key=lambda m: (not m.get("serving"), m["model"], str(m.get("version"))))


def groups(doc: Any, mine: Collection[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``stats?by=model``: the page's versions in total and per time bucket."""
    if isinstance(doc, api.ApiError):
        return [], []
    totals = [g for g in doc.get("groups", []) if g.get("workload") in mine]
    series = [s for s in doc.get("series", []) if s.get("workload") in mine]
    return totals, series


def allocation(doc: Any) -> dict[str, dict[str, Any]]:
    """The accumulated allocation's rows by workload (one window, idle included)."""
    if isinstance(doc, api.ApiError):
        return {}
    merged: dict[str, dict[str, Any]] = {}
    for step in doc.get("data") or []:
        merged.update(step or {})
    return merged


def gpu_rows(gpus: Any, alloc: Mapping[str, Mapping[str, Any]], mine: Collection[str]) -> list:
    """Per workload of the page holding GPUs: allocation, measured use, cost and idle cost."""
    used = (
        {}
        if isinstance(gpus, api.ApiError)
        else {g["workload"]: g for g in gpus.get("workloads", [])}
    )
    rows = []
    for name in sorted(mine):
        cost, seen = alloc.get(name, {}), used.get(name, {})
        if not cost.get("gpuHours") and not seen:
            continue
        rows.append(
            {
                "workload": name,
                "gpus": cost.get("gpuCount"),
                "gpu_hours": cost.get("gpuHours"),
                "utilization_pct": _pct(seen.get("avg_utilization")),
                "max_utilization_pct": _pct(seen.get("max_utilization")),
                "gpu_cost": cost.get("gpuCost"),
                "idle_cost": cost.get("gpuIdleCost"),
            }
        )
    return rows


def unit_costs(doc: Any, mine: Collection[str]) -> list[dict[str, Any]]:
    if isinstance(doc, api.ApiError):
        return []
    return [u for u in doc.get("unit_costs", []) if u.get("workload") in mine]


def latest_runs(doc: Any, names: Collection[str] | None) -> list[dict[str, Any]]:
    """The newest drift run of each model (of ``names``; every model when None)."""
    if isinstance(doc, api.ApiError):
        return []
    latest: dict[str, dict[str, Any]] = {}
    for run in doc.get("runs", []):  # newest first
        if names is None or run["model"] in names:
            latest.setdefault(run["model"], run)
    return sorted(latest.values(), key=lambda r: r["model"])


# -- the panels -----------------------------------------------------------------------


def models_panel(doc: Any, rows: list[dict[str, Any]]) -> None:
    st.subheader("Models and the versions serving")
    if ui.failed(doc, "the model inventory"):
        return
    if not rows:
        st.info("No model version of these workloads was seen in this window.")
        return
    columns = [
        "model",
        "version",
        "workload",
        "team",
        "environment",
        "serving",
        "last_seen",
        "predictions",
        "p95_ms",
        "drift_status",
        "unit_cost",
    ]
    common.table(
        common.times(common.frame(rows, columns), "last_seen"),
        {
            "serving": st.column_config.CheckboxColumn("serving now"),
            "last_seen": common.time_column("last seen"),
            "p95_ms": common.number("p95 (ms)", "%.1f"),
            "drift_status": "drift",
            "unit_cost": common.money("cost / 1k predictions"),
        },
    )


def latency_panel(doc: Any, totals: list[dict[str, Any]], series: list[dict[str, Any]]) -> None:
    st.subheader("Inference latency and throughput per version")
    if ui.failed(doc, "inference statistics"):
        return
    if not totals:
        st.info("No inference span of these models in this window.")
        return
    columns = [
        "model",
        "version",
        "workload",
        "count",
        "rate_per_s",
        "errors",
        "error_pct",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    ]
    common.table(
        common.frame(totals, columns),
        {
            "count": "predictions",
            "rate_per_s": common.number("predictions/s", "%.3f"),
            "error_pct": common.number("error %", "%.2f"),
            **{f"p{q}_ms": common.number(f"p{q} (ms)", "%.1f") for q in (50, 95, 99)},
        },
    )
    if series:
        # One chart at a time (each drawn costs the first render a few tenths of a second).
        df = charts.frame(series).rename(columns={"key": "version"})
        shown = state.segments(
            "Chart", "chart", list(_CHARTS), "latency", format_func=_CHARTS.__getitem__
        )
        if shown == "throughput":
            charts.lines(df, "rate_per_s", "version", title="Throughput", y_title="predictions/s")
        else:
            charts.lines(df, "p95_ms", "version", title="p95 latency", y_title="ms")


def gpu_panel(gpus: Any, alloc_doc: Any, rows: list[dict[str, Any]], unallocated: float) -> None:
    st.subheader("GPU utilisation against allocation")
    st.caption(
        "Allocated GPUs (average count over the window) against the utilisation dcgm "
        "measured; idle cost is GPU cost × (1 − utilisation), in the hours with samples."
    )
    if ui.failed(alloc_doc, "the allocation") or ui.failed(gpus, "GPU utilisation"):
        return
    if not rows:
        st.info("These workloads held no GPU in this window.")
        return
    common.table(
        pd.DataFrame(rows),
        {
            "gpus": common.number("GPUs allocated", "%.2f"),
            "gpu_hours": common.number("GPU hours", "%.2f"),
            "utilization_pct": common.number("utilisation %", "%.1f"),
            "max_utilization_pct": common.number("max utilisation %", "%.1f"),
            "gpu_cost": common.money("GPU cost"),
            "idle_cost": common.money("idle GPU cost"),
        },
    )
    _cost_split(rows)
    if unallocated:
        st.caption(
            f"GPUs no workload held cost {ui.money(unallocated)} in this window "
            "(the FinOps page shows where)."
        )


def _cost_split(rows: list[dict[str, Any]]) -> None:
    """Each workload's GPU cost as one bar: the part its GPUs were busy and the idle part."""
    parts = pd.DataFrame(
        [
            {"workload": r["workload"], "part": part, "cost": value}
            for r in rows
            for part, value in (
                ("used", (r["gpu_cost"] or 0.0) - (r["idle_cost"] or 0.0)),
                ("idle", r["idle_cost"] or 0.0),
            )
        ]
    )
    scale = alt.Scale(domain=["used", "idle"], range=["#54a24b", "#e45756"])
    chart = (
        alt.Chart(parts, title="GPU cost: used and idle")
        .mark_bar()
        .encode(
            y=alt.Y("workload:N", title=None),
            x=alt.X("cost:Q", title="$", stack=True),
            color=alt.Color("part:N", title=None, scale=scale, legend=alt.Legend(orient="bottom")),
            tooltip=["workload", "part", alt.Tooltip("cost:Q", format="$.4f")],
        )
    )
    st.altair_chart(chart, width="stretch")  # a fixed height squeezes the bands away


def unit_cost_panel(doc: Any, rows: list[dict[str, Any]], series: list[dict[str, Any]]) -> None:
    st.subheader("Cost per 1k predictions per version")
    if ui.failed(doc, "unit costs"):
        return
    if not rows:
        st.info("No cost or prediction of these models in this window.")
        return
    columns = ["workload", "version", "unit", "cost", "count", "unit_cost"]
    common.table(
        common.frame(rows, columns),
        {"cost": common.money("cost"), "count": "units", "unit_cost": common.money("unit cost")},
    )
    points = [s for s in series if s.get("unit_cost") is not None]
    if points:
        df = charts.frame(points, times=("start",))
        df["version"] = df["workload"] + " " + df["version"].fillna("")
        charts.lines(
            df,
            "unit_cost",
            "version",
            x="start",
            title="Cost per 1k predictions",
            y_title="$ per 1k predictions",
        )


def drift_panel(doc: Any, runs: list[dict[str, Any]]) -> None:
    st.subheader("Drift per model")
    if ui.failed(doc, "drift runs"):
        return
    if not runs:
        st.info(
            "No drift run for these models yet. Once a model has a reference (`onepane drift "
            "reference add`), run `onepane drift run --model NAME`, or schedule it under "
            "`drift.models` in onepane.yaml."
        )
        return
    rows = [
        {
            **r,
            "version": r["version"] or "all",
            "details": ui.page_url("data-scientist", {"model": r["model"]}),
        }
        for r in runs
    ]
    columns = [
        "model",
        "version",
        "time",
        "status",
        "drift_share",
        "drifted",
        "columns",
        "rows",
        "run_id",
        "details",
    ]
    common.table(
        common.times(common.frame(rows, columns), "time"),
        {
            "time": common.time_column("latest run"),
            "drift_share": common.number("drift share", "%.2f"),
            "drifted": "drifted columns",
            "rows": "predictions",
            "details": common.link("features", "features"),
        },
    )


def gate_panel(doc: Any) -> None:
    st.subheader("Gate decisions")
    if ui.failed(doc, "gate decisions"):
        return
    decisions = doc.get("decisions", [])
    if not decisions:
        st.info("No gate decision for these models yet (`onepane gate check` in CI).")
        return
    st.caption(f"The {len(decisions)} latest decisions for these models.")
    rows = [{**d, "why": _why(d)} for d in decisions]
    columns = [
        "time",
        "workload",
        "version",
        "action",
        "verdict",
        "environment",
        "actor",
        "why",
        "decision_id",
    ]
    common.table(
        common.times(common.frame(rows, columns), "time"), {"time": common.time_column("time")}
    )


def _why(decision: Mapping[str, Any]) -> str:
    """The checks that failed (or 'all checks passed'), and an override's reason."""
    failed = [
        c.get("detail") or c.get("threshold")
        for c in decision.get("checks") or []
        if c.get("passed") is False
    ]
    text = "; ".join(str(f) for f in failed) or "all checks passed"
    if decision.get("override_reason"):
        text += f" (overridden: {decision['override_reason']})"
    return text


def _pct(share: float | None) -> float | None:
    return None if share is None else share * 100
