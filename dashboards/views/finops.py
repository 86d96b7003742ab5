"""Platform / FinOps: where the money goes and what is wasted.

Cost by team, kind or workload over time; idle and unallocated cost; GPU utilisation by
hour of day (where training could move); billed vs allocated from the FOCUS import; the
model inventory (CSV export); the gate audit log. Six API calls, five of them together.
"""

from __future__ import annotations

import streamlit as st

from dashboards import api, state, ui
from dashboards.views import _finops_data as data
from dashboards.views import _finops_panels as panels

KINDS = ("app", "model", "pipeline")

ui.start_page(
    "Platform / FinOps",
    "Cost by team, kind and workload; idle capacity and GPU waste; billed vs allocated; "
    "which models run in production; every gate decision.",
)
try:
    catalog = api.get("/api/v1/workloads").get("workloads") or []
except api.ApiError as exc:
    ui.failed(exc, "the workload catalog")
    catalog = []
f = state.filters(catalog, KINDS, window_default="7d")

cost_box = st.container()
cost_box.subheader(f"Cost over the last {f.window}")
by = state.segments("Cost by", "by", data.BY, "team", where=cost_box)
idle_box = st.container()
idle_box.subheader("Idle and unallocated cost")
heat_box = st.container()
heat_box.subheader(f"GPU utilisation by hour of day, last {data.HEATMAP_SINCE}")
bill_box = st.container()
bill_box.subheader("Billed vs allocated, last 30 days")
models_box = st.container()
models_box.subheader("Model inventory")
gate_box = st.container()
gate_box.subheader("Gate audit log")
verdict = state.segments("Verdict", "verdict", data.VERDICTS, "all", where=gate_box)

docs = api.get_many(data.requests(f, verdict))
found = panels.cost(cost_box, docs["allocation"], f, by)
panels.idle(idle_box, found, f)
panels.gpu_heatmap(heat_box, docs["heatmap"])
panels.reconciliation(bill_box, docs["reconciliation"])
panels.inventory(models_box, docs["models"], f)
panels.gate_log(gate_box, docs["gate"])
ui.footer()
