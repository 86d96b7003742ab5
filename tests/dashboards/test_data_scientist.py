"""The data scientist page against the demo: drift per feature, the distributions, the
score history, the Evidently report and the pipeline runs equal what the API answers; the
model and feature live in the URL; an empty store gets guidance."""

from __future__ import annotations

import time
import urllib.request

from streamlit.testing.v1 import AppTest

from tests.dashboards import pages

WINDOW = "6h"


def open_page(**params: str) -> AppTest:
    return pages.open_page("data", window=WINDOW, **params)


table = pages.table_with
metric = pages.metric


def latest_run(demo_api, model: str) -> dict:
    run_id = demo_api.get("/api/v1/drift/runs", model=model)["runs"][0]["run_id"]
    return demo_api.get(f"/api/v1/drift/runs/{run_id}")


def test_drift_per_feature_equals_the_latest_run(app_env):
    at = open_page(model="fraud-model")
    run = latest_run(app_env, "fraud-model")
    shown = table(at, ["method", "score", "threshold", "unseen categories"])
    columns = {
        "feature": ("name", None), "status": ("status", None), "method": ("method", None),
        "score": ("score", "%.4f"), "threshold": ("threshold", "%.4f"),
        "drifted": ("drifted", None), "production values": ("current_count", None),
    }  # fmt: skip
    assert pages.shown(shown, columns) == pages.expect(run["column_results"], columns)
    assert metric(at, "Latest run") == run["status"] == "drift"
    assert metric(at, "Drift share") == f"{run['drift_share']:.2f}"
    assert metric(at, "Features drifted") == f"{run['drifted']} of {run['columns']}"
    assert metric(at, "Predictions judged") == f"{run['rows']:,}"
    # no feature in the URL: the most drifted one is shown, and the URL says so
    assert at.selectbox(key="widget:feature").value == "amount"
    assert at.query_params["feature"] == "amount"


def test_model_and_feature_in_the_url_show_that_distribution(app_env):
    at = open_page(model="fraud-model", feature="amount")
    assert at.selectbox(key="widget:model").value == "fraud-model"
    doc = app_env.get(
        "/api/v1/drift/distribution", model="fraud-model", feature="amount", since=WINDOW
    )
    shown = table(at, ["lower", "upper", "reference share"])
    columns = {
        "lower": ("lower", None), "upper": ("upper", None),
        "reference share": ("reference_share", "%.4f"),
        "production share": ("production_share", "%.4f"),
        "reference_count": ("reference_count", None),
        "production_count": ("production_count", None),
    }  # fmt: skip
    assert pages.shown(shown, columns) == pages.expect(doc["bins"], columns)
    assert any(s.value == "Reference vs production: amount" for s in at.subheader)
    history = app_env.get("/api/v1/drift/columns", model="fraud-model", feature="amount")
    runs = table(at, ["run_id", "score", "current_count"])
    columns = {k: (k, None) for k in ("run_id", "score", "threshold")}
    assert pages.shown(runs, columns) == pages.expect(history["columns"], columns)


def test_a_categorical_feature_shows_its_categories(app_env):
    at = open_page(model="recsys-model", feature="user_segment")
    doc = app_env.get(
        "/api/v1/drift/distribution", model="recsys-model", feature="user_segment", since=WINDOW
    )
    shown = table(at, ["category", "production share"])
    columns = {
        "category": ("category", None),
        "reference share": ("reference_share", "%.4f"),
        "production share": ("production_share", "%.4f"),
        "reference_count": ("reference_count", None),
        "production_count": ("production_count", None),
    }
    assert pages.shown(shown, columns) == pages.expect(doc["categories"], columns)
    run = latest_run(app_env, "recsys-model")
    assert table(at, ["method", "unseen categories"])["feature"].tolist() == [
        c["name"] for c in run["column_results"]
    ]
    assert at.query_params["model"] == "recsys-model"
    assert at.query_params["feature"] == "user_segment"


def test_the_report_loads_only_when_asked(app_env):
    run = latest_run(app_env, "fraud-model")
    deadline = time.monotonic() + 180
    while run["report_status"] == "pending" and time.monotonic() < deadline:
        time.sleep(1)
        run = latest_run(app_env, "fraud-model")
    assert run["report_status"] == "ready", run["report_note"]
    at = open_page(model="fraud-model")
    assert not at.get("iframe") and not at.get("download_button")
    at.button(key=f"show-report-{run['run_id']}").click().run()
    assert not at.exception
    url = f"{app_env.url}/api/v1/drift/runs/{run['run_id']}/report"
    with urllib.request.urlopen(url, timeout=60) as response:
        report = response.read().decode()
    [frame] = at.get("iframe")
    assert frame.proto.srcdoc == report
    [download] = at.get("download_button")
    assert download.proto.label == "Download the report (HTML)"


def test_pipeline_runs_equal_the_api(app_env):
    at = open_page()
    doc = app_env.get("/api/v1/pipelines/runs", since=WINDOW, limit=100)
    assert len(doc["runs"]) == 3  # the demo's three nightly runs
    shown = table(at, ["duration (s)", "trace"])
    assert shown["trace"].tolist() == [
        f"/incident?persona=data&trace={r['trace_id']}" for r in doc["runs"]
    ]
    assert shown["status"].tolist() == [r["status"] for r in doc["runs"]]
    assert shown["duration (s)"].tolist() == [
        pages.num(r["duration_ms"] / 1000, "%.1f") for r in doc["runs"]
    ]
    assert shown["cost"].tolist() == [pages.text(r["cost"], "$%.4f") for r in doc["runs"]]
    summary = table(at, ["runs", "failed", "cost per run"])
    columns = {k: (k, None) for k in ("workload", "runs", "failed")}
    columns["cost per run"] = ("cost_per_run", "$%.4f")
    assert pages.shown(summary, columns) == pages.expect(doc["summary"], columns)


def test_a_team_without_drift_data_keeps_its_pipelines(app_env):
    at = open_page(team="data")
    assert any("No model of these workloads has a drift reference" in i.value for i in at.info)
    doc = app_env.get("/api/v1/pipelines/runs", since=WINDOW, team="data", limit=100)
    assert len(table(at, ["duration (s)"])) == len(doc["runs"]) == 3


def test_an_empty_store_says_what_to_send(start_server, monkeypatch):
    server = start_server()
    monkeypatch.setenv("ONEPANE_SERVER", server.api_url)
    at = open_page()
    assert any("No drift references yet" in i.value for i in at.info)
    assert any("onepane drift reference add" in c.value for c in at.code)
    assert any("No pipeline run in this window" in i.value for i in at.info)
    assert any(c.value.startswith("Data from the Onepane API") for c in at.caption)


def test_the_history_shown_is_chosen_in_the_url(app_env):
    at = open_page(model="fraud-model", feature="amount")
    headings = [s.value for s in at.subheader]
    assert "Drift score of amount, run after run" in headings
    assert "Dataset drift share, run after run" not in headings
    at = open_page(model="fraud-model", feature="amount", history="dataset")
    headings = [s.value for s in at.subheader]
    assert "Dataset drift share, run after run" in headings
    assert "Drift score of amount, run after run" not in headings
    assert at.query_params["history"] == "dataset"
