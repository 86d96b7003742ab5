"""Data scientist: which features drift and how — each feature's latest verdict, its
reference and production distributions side by side, its score run after run, the
dataset's drift share, the latest Evidently report — and the pipeline runs with their
duration, status and cost.

Three rounds of parallel calls: the workloads and drift references (the selectors), then
the model's runs and its per-feature history, then the latest run and the chosen
feature's distributions; the pipeline runs (the slowest call: their cost is computed) are
asked for as soon as the filters are known and read last.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import streamlit as st

from dashboards import api, state, ui
from dashboards.views import _ds_sections as sections
from dashboards.views import _ml_common as common

KINDS = ("model", "pipeline")
RUNS_READ = 200  # the newest runs of the model the history panels show
PIPELINE_RUNS = 100

HISTORY = {"feature": "Drift score of the feature, run after run", "dataset": "Dataset drift share"}


def model_options(references: Any, inventory: Any, mine: Collection[str] | None) -> list[str]:
    """Models with a drift reference; those of the page's workloads when the filters narrow
    it and the model inventory tells which workload serves each model."""
    names = sorted({r["model"] for r in references.get("references", [])})
    if mine is None or inventory is None or isinstance(inventory, api.ApiError):
        return names
    served = common.model_workloads(inventory)
    return [n for n in names if served.get(n) in mine]


def feature_options(references: Any, model: str) -> list[str]:
    """The features of the model's active references."""
    return sorted(
        {
            c["name"]
            for r in references.get("references", [])
            if r["model"] == model and r.get("active")
            for c in r.get("columns", [])
        }
    )


def most_drifted(columns: Any, run_id: int | None) -> str | None:
    """The latest run's most drifted feature (the run's own order: drifted, then score)."""
    if run_id is None or isinstance(columns, api.ApiError):
        return None
    latest = [c for c in columns.get("columns", []) if c["run_id"] == run_id]
    latest.sort(key=lambda c: (c["status"] != "drift", -(c["score"] or 0.0), c["name"]))
    return latest[0]["name"] if latest else None


def headline(run: Any) -> None:
    if not isinstance(run, dict):
        return
    share = run.get("drift_share")
    first, second, third, fourth = st.columns(4)
    first.metric("Latest run", run["status"])
    second.metric("Drift share", "–" if share is None else f"{share:.2f}")
    third.metric("Features drifted", f"{run['drifted']} of {run['columns']}")
    fourth.metric("Predictions judged", f"{run['rows']:,}")


def drift(f: state.Filters, references: Any, options: list[str]) -> None:
    """The drift panels of the chosen model and feature."""
    left, right = st.columns(2)
    model = state.select("Model", "model", options, options[0], where=left)
    docs = api.get_many(
        {
            "runs": ("/api/v1/drift/runs", {"model": model, "limit": RUNS_READ}),
            "columns": ("/api/v1/drift/columns", {"model": model, "limit": RUNS_READ}),
        }
    )
    runs = [] if isinstance(docs["runs"], api.ApiError) else docs["runs"]["runs"]
    latest = runs[0] if runs else None
    features = feature_options(references, model)
    if not features:
        ui.failed(docs["runs"], "drift runs")
        st.info(f"{model}'s reference holds no feature.")
        return
    top = most_drifted(docs["columns"], latest["run_id"] if latest else None)
    feature = state.select("Feature", "feature", features, top or features[0], where=right)
    third = {
        "distribution": (
            "/api/v1/drift/distribution",
            {"model": model, "feature": feature, "since": f.window},
        )
    }
    if latest is not None:
        third["run"] = (f"/api/v1/drift/runs/{latest['run_id']}", None)
    docs |= api.get_many(third)
    run = docs.get("run", docs["runs"] if isinstance(docs["runs"], api.ApiError) else None)
    headline(run)
    sections.features_panel(run, model)
    sections.distribution_panel(docs["distribution"], feature)
    # One history chart at a time: each chart drawn costs the first render a few tenths of
    # a second in the browser.
    history = state.segments(
        "History", "history", list(HISTORY), "feature", format_func=HISTORY.__getitem__
    )
    if history == "dataset":
        sections.share_panel(docs["runs"])
    else:
        sections.score_panel(docs["columns"], feature)
    sections.report_panel(run if isinstance(run, dict) else None)


def pipeline_params(f: state.Filters) -> api.Params:
    return {"since": f.window, "team": f.team, "workload": f.workload, "limit": PIPELINE_RUNS}


def main() -> None:
    ui.start_page(
        "Data scientist",
        "Which features drift and how, against the reference the model was trained on; "
        "pipeline runs with their duration, status and cost.",
    )
    narrowed = any(state.param(name) not in (None, state.ALL) for name in ("team", "workload"))
    first: dict[str, tuple[str, api.Params]] = {
        "workloads": ("/api/v1/workloads", None),
        "references": ("/api/v1/drift/references", None),
    }
    if narrowed:
        first["models"] = ("/api/v1/models", {"since": common.window_param()})
    docs = api.get_many(first)
    if not ui.failed(docs["workloads"], "the workloads"):
        render(docs)
    ui.footer()


def render(docs: dict[str, Any]) -> None:
    catalog = docs["workloads"]["workloads"]
    f = state.filters(catalog, KINDS)
    pipelines = api.start_many({"runs": ("/api/v1/pipelines/runs", pipeline_params(f))})
    references = docs["references"]
    if ui.failed(references, "drift references"):
        references = None  # shown; the pipeline runs below still are
    elif not references["references"]:
        common.no_models("drift references")
    else:
        narrowed = f.team is not None or f.workload is not None
        mine = set(state.workloads_of(catalog, f, KINDS)) if narrowed else None
        options = model_options(references, docs.get("models"), mine)
        if options:
            drift(f, references, options)
        else:
            st.info("No model of these workloads has a drift reference; widen the filters.")
    sections.pipelines_panel(pipelines.result()["runs"])


main()
