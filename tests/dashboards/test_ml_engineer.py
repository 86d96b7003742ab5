"""The ML engineer page against the demo: every figure it shows equals what the API answers
for the same filters, the filters live in the URL, and an empty store gets guidance."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboards import ui
from tests.dashboards import pages

WINDOW = "6h"


def open_page(**params: str) -> AppTest:
    return pages.open_page("ml", window=WINDOW, **params)


table = pages.table_with
metric = pages.metric


def model_workloads(demo_api) -> set[str]:
    return {
        w["workload"]
        for w in demo_api.get("/api/v1/workloads")["workloads"]
        if w["kind"] == "model"
    }


def test_versions_latency_and_throughput_equal_the_stats(app_env):
    at = open_page()
    mine = model_workloads(app_env)
    groups = [
        g
        for g in app_env.get("/api/v1/stats", by="model", since=WINDOW)["groups"]
        if g["workload"] in mine
    ]
    assert {g["model"] for g in groups} == {"fraud-model", "recsys-model"}
    columns = {
        "model": ("model", None), "version": ("version", None), "predictions": ("count", None),
        "predictions/s": ("rate_per_s", "%.3f"), "errors": ("errors", None),
        "p50 (ms)": ("p50_ms", "%.1f"), "p95 (ms)": ("p95_ms", "%.1f"),
        "p99 (ms)": ("p99_ms", "%.1f"),
    }  # fmt: skip
    shown = table(at, ["predictions/s", "p95 (ms)"])
    assert pages.shown(shown, columns) == pages.expect(groups, columns)
    assert metric(at, "Predictions") == f"{sum(g['count'] for g in groups):,}"


def test_models_serving_equal_the_inventory(app_env):
    at = open_page()
    mine = model_workloads(app_env)
    models = [
        m for m in app_env.get("/api/v1/models", since=WINDOW)["models"] if m["workload"] in mine
    ]
    shown = table(at, ["serving now", "predictions"])
    columns = {
        "model": ("model", None), "version": ("version", None), "workload": ("workload", None),
        "serving now": ("serving", "check"), "predictions": ("predictions", None),
        "drift": ("drift_status", None),
    }  # fmt: skip
    expected = sorted(models, key=lambda m: (not m["serving"], m["model"], m["version"]))
    assert pages.shown(shown, columns) == pages.expect(expected, columns)
    assert metric(at, "Versions serving now") == str(sum(m["serving"] for m in models))


def test_gpu_use_and_idle_cost_equal_the_allocation(app_env):
    at = open_page()
    mine = model_workloads(app_env)
    [allocation] = app_env.get(
        "/api/v1/allocation", window=WINDOW, aggregate="workload", idle="true", accumulate="true"
    )["data"]
    used = {
        g["workload"]: g
        for g in app_env.get("/api/v1/gpus", by="workload", since=WINDOW)["workloads"]
    }
    holders = sorted(w for w in mine if allocation.get(w, {}).get("gpuHours") or w in used)
    assert holders == ["ml/recsys-model"]  # the demo's GPU model
    shown = table(at, ["idle GPU cost", "GPU hours"]).set_index("workload")
    assert list(shown.index) == holders
    for name in holders:
        cost = allocation[name]
        assert shown.loc[name, "GPU cost"] == pages.num(cost["gpuCost"], "$%.4f")
        assert shown.loc[name, "idle GPU cost"] == pages.num(cost["gpuIdleCost"], "$%.4f")
        assert shown.loc[name, "GPU hours"] == pages.num(cost["gpuHours"], "%.2f")
        assert shown.loc[name, "utilisation %"] == pages.num(
            used[name]["avg_utilization"] * 100, "%.1f"
        )
    idle = sum(allocation[w]["gpuIdleCost"] or 0.0 for w in holders)
    assert idle > 0
    assert metric(at, "Idle GPU cost") == ui.money(idle)


def test_cost_per_1k_predictions_equals_the_unit_costs(app_env):
    at = open_page()
    mine = model_workloads(app_env)
    rows = [
        u
        for u in app_env.get("/api/v1/unit-costs", by="version", window=WINDOW)["unit_costs"]
        if u["workload"] in mine
    ]
    assert rows and all(u["unit"] == "1k predictions" for u in rows)
    shown = table(at, ["unit", "unit cost"])
    columns = {
        "workload": ("workload", None), "version": ("version", None),
        "cost": ("cost", "$%.4f"), "units": ("count", None), "unit cost": ("unit_cost", "$%.4f"),
    }  # fmt: skip
    assert pages.shown(shown, columns) == pages.expect(rows, columns)


def test_drift_per_model_is_each_models_latest_run_with_a_link(app_env):
    at = open_page()
    latest: dict[str, dict] = {}
    for run in app_env.get("/api/v1/drift/runs")["runs"]:
        latest.setdefault(run["model"], run)
    shown = table(at, ["drift share", "features"])
    assert shown["model"].tolist() == sorted(latest)
    for row in shown.to_dict("records"):
        run = latest[row["model"]]
        assert (row["run_id"], row["status"], row["drift share"]) == (
            pages.text(run["run_id"]),
            run["status"],
            pages.text(run["drift_share"], "%.2f"),
        )
        assert row["features"] == f"/data-scientist?persona=ml&model={row['model']}"
    drifting = sum(r["status"] == "drift" for r in latest.values())
    assert metric(at, "Models drifting") == f"{drifting} of {len(latest)}"


def test_gate_decisions_are_the_models_decisions(app_env):
    at = open_page()
    decisions = app_env.get("/api/v1/gate/decisions", kind="model", limit=20)["decisions"]
    assert decisions
    shown = table(at, ["verdict", "decision_id"])
    columns = {k: (k, None) for k in ["decision_id", "workload", "version", "action", "verdict"]}
    assert pages.shown(shown, columns) == pages.expect(decisions, columns)
    blocked = shown[shown["verdict"] == "blocked"]
    assert blocked["why"].str.contains("per 1k predictions").all()


def test_a_workload_in_the_url_narrows_every_panel(app_env):
    at = open_page(workload="ml/fraud-model")
    assert at.selectbox(key="widget:workload").value == "ml/fraud-model"
    assert at.query_params["workload"] == "ml/fraud-model"
    assert table(at, ["predictions/s"])["workload"].tolist() == ["ml/fraud-model"]
    assert table(at, ["unit", "unit cost"])["workload"].tolist() == ["ml/fraud-model"]
    assert table(at, ["verdict"])["workload"].unique().tolist() == ["ml/fraud-model"]
    assert table(at, ["drift share"])["model"].tolist() == ["fraud-model"]
    assert any("held no GPU" in i.value for i in at.info)
    assert metric(at, "Idle GPU cost") == ui.money(0.0)
    stats = app_env.get("/api/v1/stats", by="model", since=WINDOW, workload="ml/fraud-model")
    assert metric(at, "Predictions") == f"{stats['groups'][0]['count']:,}"


def test_an_empty_store_says_what_to_send(start_server, monkeypatch):
    server = start_server()
    monkeypatch.setenv("ONEPANE_SERVER", server.api_url)
    at = open_page()
    assert any("No models yet" in i.value for i in at.info)
    assert any("ml.model.name" in c.value for c in at.code)
    listeners = server.get_json("/healthz")[1]["listeners"]
    assert any(listeners["otlp_http"] in c.value for c in at.code)
    assert any(c.value.startswith("Data from the Onepane API") for c in at.caption)


def test_the_latency_or_throughput_chart_is_chosen_in_the_url(app_env):
    specs = [c.proto.spec for c in open_page().get("vega_lite_chart")]
    assert any('"field": "p95_ms"' in s for s in specs)
    assert not any('"field": "rate_per_s"' in s for s in specs)
    at = open_page(chart="throughput")
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any('"field": "rate_per_s"' in s for s in specs)
    assert not any('"field": "p95_ms"' in s for s in specs)
    assert at.query_params["chart"] == "throughput"
