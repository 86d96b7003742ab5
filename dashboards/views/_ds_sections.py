"""The data scientist page's panels: drift per feature, one feature's reference and
production distributions, its score run after run, the dataset's drift share, the latest
Evidently report (loaded on request) and the pipeline runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import api, ui
from dashboards.views import _ml_common as common

SIDES = {"reference": "#4c78a8", "production": "#e45756"}
TOP_CATEGORIES = 30
P_VALUE_TESTS = {
    "ks",
    "chisquare",
    "z",
    "anderson",
    "fisher_exact",
    "cramer_von_mises",
    "mannw",
    "epps_singleton",
    "t_test",
    "g_test",
    "empirical_mmd",
}
PIPELINE_HOW = (
    "A pipeline run is a trace whose root span has the pipeline role: send the job's spans "
    "over OTLP with `k8s.job.name` or `k8s.cronjob.name` on the resource (or `pipeline.*` "
    "attributes on the root span)."
)


def features_panel(doc: Any, model: str) -> None:
    """The latest run's outcome for every feature (``GET /api/v1/drift/runs/{id}``)."""
    st.subheader("Drift per feature")
    if doc is None:
        st.info(
            f"No drift run of {model} yet: run one with `onepane drift run --model {model}` "
            "(or give it `every:` in onepane.yaml to run on a schedule)."
        )
        return
    if ui.failed(doc, "the latest drift run"):
        return
    share = "–" if doc["drift_share"] is None else f"{doc['drift_share']:.2f}"
    st.caption(
        f"Run {doc['run_id']} at {doc['time']} over {doc['rows']:,} predictions "
        f"({doc['window_start']} to {doc['window_end']}): {doc['status']}, "
        f"{doc['drifted']} of {doc['columns']} features drifted (share {share}, "
        f"dataset drift at {doc['share_threshold']:.2f})."
    )
    columns = [
        "name",
        "type",
        "status",
        "method",
        "score",
        "threshold",
        "drifted",
        "reference_count",
        "current_count",
        "unseen",
        "detail",
    ]
    common.table(
        common.frame(doc.get("column_results", []), columns),
        {
            "name": "feature",
            "score": common.number("score", "%.4f"),
            "threshold": common.number("threshold", "%.4f"),
            "reference_count": "reference values",
            "current_count": "production values",
            "unseen": "unseen categories",
        },
    )


def distribution_panel(doc: Any, feature: str) -> None:
    """Reference and production distributions of one feature, in the same bins."""
    st.subheader(f"Reference vs production: {feature}")
    if ui.failed(doc, f"the distributions of {feature}"):
        return
    ref, prod = doc["reference"], doc["production"]
    st.caption(
        f"Reference {ref['reference_id']} ({ref['source']}, version {ref['version']}): "
        f"{ref['count']:,} values · production {prod['start']} to {prod['end']}: "
        f"{prod['count']:,} values."
    )
    if doc["type"] == "numerical":
        rows, key = doc.get("bins") or [], ["lower", "upper"]
    else:
        rows, key = doc.get("categories") or [], ["category"]
    if not rows:
        st.info(f"Neither the reference nor production holds a value of {feature}.")
        return
    if prod["count"] == 0:
        st.info(f"No prediction in this window carried {feature}: the reference alone.")
    if doc["type"] == "numerical":
        _histogram(rows, feature)
    else:
        _category_bars(rows, feature)
    with st.expander("The shares, bin by bin" if key != ["category"] else "The shares"):
        columns = [
            *key,
            "reference_share",
            "production_share",
            "reference_count",
            "production_count",
        ]
        common.table(
            common.frame(rows, columns),
            {c: common.number(c.replace("_", " "), "%.4f") for c in columns[len(key) : -2]},
        )


def _histogram(rows: Sequence[Mapping[str, Any]], feature: str) -> None:
    df = _long(rows, ["lower", "upper"])
    chart = (
        alt.Chart(df)
        .mark_bar(opacity=0.55, binSpacing=0)
        .encode(
            x=alt.X("lower:Q", title=feature, bin="binned"),
            x2="upper:Q",
            y=alt.Y("share:Q", title="share of values", stack=None, axis=alt.Axis(format="%")),
            color=_side_color(),
            tooltip=["side", "lower", "upper", alt.Tooltip("share:Q", format=".2%"), "count"],
        )
    )
    st.altair_chart(chart.properties(height=260), width="stretch")


def _category_bars(rows: Sequence[Mapping[str, Any]], feature: str) -> None:
    top = sorted(rows, key=lambda r: -max(r["reference_share"], r["production_share"]))
    shown = top[:TOP_CATEGORIES]
    if len(rows) > len(shown):
        st.caption(f"The {len(shown)} largest of {len(rows)} categories.")
    df = _long(shown, ["category"])
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("category:N", title=feature, sort=[r["category"] for r in shown]),
            yOffset=alt.YOffset("side:N", sort=list(SIDES)),
            x=alt.X("share:Q", title="share of values", axis=alt.Axis(format="%")),
            color=_side_color(),
            tooltip=["side", "category", alt.Tooltip("share:Q", format=".2%"), "count"],
        )
    )
    st.altair_chart(chart, width="stretch")  # a fixed height squeezes the bands away


def _long(rows: Sequence[Mapping[str, Any]], key: list[str]) -> pd.DataFrame:
    """One row per (bin or category, side)."""
    return pd.DataFrame(
        [
            {
                **{k: r[k] for k in key},
                "side": side,
                "share": r[f"{side}_share"],
                "count": r[f"{side}_count"],
            }
            for r in rows
            for side in SIDES
        ]
    )


def _side_color() -> alt.Color:
    scale = alt.Scale(domain=list(SIDES), range=list(SIDES.values()))
    return alt.Color("side:N", title=None, scale=scale, legend=alt.Legend(orient="bottom"))


def score_panel(doc: Any, feature: str) -> None:
    """The feature's score in each run, against its threshold."""
    st.subheader(f"Drift score of {feature}, run after run")
    if ui.failed(doc, f"the drift history of {feature}"):
        return
    rows = [c for c in doc.get("columns", []) if c["name"] == feature and c["score"] is not None]
    if not rows:
        st.info(f"No drift run has scored {feature} yet.")
        return
    methods = sorted({r["method"] for r in rows if r.get("method")})
    below = any(m in P_VALUE_TESTS for m in methods)
    st.caption(
        f"Test: {', '.join(methods) or '–'}; the feature drifts when its score is "
        + ("below (a p-value)" if below else "above")
        + " the threshold."
    )
    _against(rows, "score", "threshold", "score")
    with st.expander("The runs"):
        columns = [
            "run_id",
            "time",
            "version",
            "status",
            "method",
            "score",
            "threshold",
            "drifted",
            "current_count",
        ]
        common.table(
            common.times(common.frame(rows, columns), "time"), {"time": common.time_column("run")}
        )


def share_panel(doc: Any) -> None:
    """The dataset's drift share in each run, against the share that makes dataset drift."""
    st.subheader("Dataset drift share, run after run")
    if ui.failed(doc, "drift runs"):
        return
    rows = [r for r in doc.get("runs", []) if r.get("drift_share") is not None]
    if not rows:
        st.info("No drift run has judged this model's features yet.")
        return
    _against(rows, "drift_share", "share_threshold", "drift share")


def _against(rows: Sequence[Mapping[str, Any]], value: str, limit: str, title: str) -> None:
    """``value`` over time as a line, ``limit`` dashed."""
    df = common.times(
        pd.DataFrame([{k: r[k] for k in ("time", value, limit)} for r in rows]), "time"
    )
    line = (
        alt.Chart(df)
        .mark_line(point=True, color="#e45756")
        .encode(
            x=alt.X("time:T", title=None, axis=alt.Axis(format="%b %d %H:%M")),
            y=alt.Y(f"{value}:Q", title=title),
            tooltip=["time", value, limit],
        )
    )
    rule = alt.Chart(df).mark_rule(strokeDash=[4, 4], color="#888").encode(y=f"max({limit}):Q")
    st.altair_chart((line + rule).properties(height=220), width="stretch")
    st.caption(f"Dashed: the threshold ({df[limit].max():g}).")


@st.cache_data(max_entries=4, show_spinner="Loading Evidently's report…")
def _report(server: str, run_id: int) -> str:
    """A drawn report never changes: kept per (server, run)."""
    return api.get_bytes(f"/api/v1/drift/runs/{run_id}/report").decode("utf-8")


def report_panel(run: Mapping[str, Any] | None) -> None:
    """The latest run's Evidently report: its state, and (on request) the report itself."""
    st.subheader("Evidently report")
    if run is None:
        st.info("No drift run yet, so no report.")
        return
    status, run_id = run["report_status"], run["run_id"]
    st.caption(f"Run {run_id}: report {status}.")
    if status == "pending":
        st.info(f"Evidently is drawing the report of run {run_id}; reload in a moment.")
        return
    if status != "ready":
        st.warning(f"Run {run_id} has no report: {run.get('report_note') or 'none was drawn'}")
        return
    key = f"ds:report:{api.server_url()}:{run_id}"
    if st.button(f"Show the report of run {run_id} (a few MB)", key=f"show-report-{run_id}"):
        st.session_state[key] = True
    if not st.session_state.get(key):
        return
    try:
        html = _report(api.server_url(), run_id)
    except api.ApiError as exc:
        ui.failed(exc, f"the report of run {run_id}")
        return
    st.download_button(
        "Download the report (HTML)",
        html,
        file_name=f"drift-run-{run_id}.html",
        mime="text/html",
        key=f"download-report-{run_id}",
    )
    st.iframe(html, height=900)


def pipelines_panel(doc: Any) -> None:
    """Pipeline runs with their duration, status and cost (``GET /api/v1/pipelines/runs``)."""
    st.subheader("Pipeline runs")
    if ui.failed(doc, "pipeline runs"):
        return
    runs = doc.get("runs", [])
    if not runs:
        st.info(f"No pipeline run in this window for the filters chosen. {PIPELINE_HOW}")
        return
    summary = common.frame(
        doc.get("summary", []),
        ["workload", "team", "runs", "failed", "avg_duration_ms", "cost_per_run"],
    )
    summary["avg_duration_ms"] = summary["avg_duration_ms"] / 1000
    common.table(
        summary.rename(columns={"avg_duration_ms": "avg_duration_s"}),
        {
            "avg_duration_s": common.number("average duration (s)", "%.1f"),
            "cost_per_run": common.money("cost per run"),
        },
    )
    rows = [
        {
            **r,
            "duration_s": r["duration_ms"] / 1000,
            "trace": ui.page_url("incident", {"trace": r["trace_id"]}),
        }
        for r in runs
    ]
    columns = [
        "start",
        "workload",
        "name",
        "status",
        "duration_s",
        "spans",
        "errors",
        "cost",
        "trace",
    ]
    df = common.times(common.frame(rows, columns), "start")
    chart = (
        alt.Chart(df.assign(minutes=df["duration_s"] / 60))
        .mark_bar(size=8)
        .encode(
            x=alt.X("start:T", title=None),
            y=alt.Y("minutes:Q", title="duration (min)"),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=["ok", "error"], range=["#54a24b", "#e45756"]),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=["workload", "start", "status", "minutes", "cost"],
        )
    )
    st.altair_chart(chart.properties(height=200), width="stretch")
    common.table(
        df,
        {
            "start": common.time_column("started"),
            "duration_s": common.number("duration (s)", "%.1f"),
            "cost": common.money("cost"),
            "trace": common.link("trace", r"trace=([0-9a-f]{12})"),
        },
    )
