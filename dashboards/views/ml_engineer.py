"""ML engineer: my models and the versions serving now, inference latency and throughput
per version, GPU utilisation against allocation with the idle cost, cost per 1k
predictions per version, drift per model and the gate's decisions for my models.

One call for the workloads (the sidebar's filters), then every panel's call at once.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards import api, state, ui
from dashboards.views import _ml_common as common
from dashboards.views import _ml_sections as sections

KINDS = ("model",)
RUNS_READ = 200  # the newest drift runs read, for each model's latest
DECISIONS_SHOWN = 20


def requests(f: state.Filters) -> dict[str, tuple[str, api.Params]]:
    """Every panel's API call under the filters."""
    window = f.window
    one = {"workload": f.workload} if f.workload else {}
    units = {"by": "version", "window": window, **one}
    return {
        "models": ("/api/v1/models", {"since": window, "team": f.team}),
        "stats": ("/api/v1/stats", {"by": "model", "since": window, **one}),
        "gpus": ("/api/v1/gpus", {"by": "workload", "since": window}),
        "allocation": (
            "/api/v1/allocation",
            {"window": window, "aggregate": "workload", "idle": "true", "accumulate": "true"},
        ),
        "units": ("/api/v1/unit-costs", units),
        "unit_series": ("/api/v1/unit-costs", {**units, "step": common.cost_step(window)}),
        "runs": ("/api/v1/drift/runs", {"limit": RUNS_READ}),
        "gate": (
            "/api/v1/gate/decisions",
            {"kind": "model", "team": f.team, "workload": f.workload, "limit": DECISIONS_SHOWN},
        ),
    }


def headline(
    serving: int, predictions: int, idle_cost: float | None, drifting: int, judged: int
) -> None:
    first, second, third, fourth = st.columns(4)
    first.metric("Versions serving now", serving)
    second.metric("Predictions", f"{predictions:,}")
    third.metric("Idle GPU cost", ui.money(idle_cost))
    fourth.metric("Models drifting", f"{drifting} of {judged}")


def render(catalog: list[dict[str, Any]]) -> None:
    f = state.filters(catalog, KINDS)
    mine = set(state.workloads_of(catalog, f, KINDS))
    if not mine:
        st.info(f"Team {f.team} runs no model workload; choose another team.")
        return
    docs = api.get_many(requests(f))
    models = sections.models(docs["models"], mine)
    totals, series = sections.groups(docs["stats"], mine)
    alloc = sections.allocation(docs["allocation"])
    gpus = sections.gpu_rows(docs["gpus"], alloc, mine)
    names = common.model_workloads(docs["models"], docs["stats"])
    scoped = (
        None
        if f.team is None and f.workload is None
        else {m for m, w in names.items() if w in mine}
    )
    runs = sections.latest_runs(docs["runs"], scoped)
    headline(
        serving=sum(1 for m in models if m.get("serving")),
        predictions=sum(g["count"] for g in totals),
        idle_cost=None
        if isinstance(docs["allocation"], api.ApiError)
        else sum(g["idle_cost"] or 0.0 for g in gpus),
        drifting=sum(1 for r in runs if r["status"] == "drift"),
        judged=len(runs),
    )
    sections.models_panel(docs["models"], models)
    sections.latency_panel(docs["stats"], totals, series)
    unallocated = alloc.get(sections.IDLE, {}).get("gpuCost") or 0.0
    sections.gpu_panel(docs["gpus"], docs["allocation"], gpus, unallocated)
    unit_series = sections.unit_costs(docs["unit_series"], mine)
    sections.unit_cost_panel(docs["units"], sections.unit_costs(docs["units"], mine), unit_series)
    sections.drift_panel(docs["runs"], runs)
    sections.gate_panel(docs["gate"])


def main() -> None:
    ui.start_page(
        "ML engineer",
        "My models and versions serving, their latency, GPU use and idle cost, cost per "
        "1k predictions, drift and gate decisions.",
    )
    try:
        catalog = api.get("/api/v1/workloads")["workloads"]
    except api.ApiError as exc:
        ui.failed(exc, "the workloads")
        catalog = None
    if catalog is not None:
        if any(w.get("kind") in KINDS for w in catalog):
            render(catalog)
        else:
            common.no_models("models")
    ui.footer()


main()
