"""The app developer page against the demo company: every number it shows is the API's
number for the same team, workload and window."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import ui
from onepane.testing import LiveServer
from tests.dashboards import pages
from tests.dashboards.conftest import DemoApi

APPS = ["shop/checkout-api", "shop/recommendations-api", "shop/web-frontend"]
WINDOW = "6h"


def open_page(**params: str) -> AppTest:
    return pages.open_page("app", "app_developer", **params)


metrics = pages.metrics


num = pages.num
# The page's tables, each told by its columns (the slowest traces come before the failed).
TABLES = {
    "services": ("workload", "team"),
    "routes": ("route", "workload"),
    "deploys": ("time (UTC)", "workload"),
    "slowest": ("Trace", "Duration (ms)"),
    "failed": ("Trace", "Duration (ms)"),
}


def tables(at: AppTest, name: str) -> list[pd.DataFrame]:
    return [t for t in pages.tables(at) if tuple(t.columns[:2]) == TABLES[name]]


def table(at: AppTest, name: str) -> pd.DataFrame:
    found = tables(at, name)
    return found[-1] if name == "failed" else found[0]


def test_every_app_service_with_the_api_figures(app_env: DemoApi) -> None:
    at = open_page(window=WINDOW)
    by_workload = app_env.get("/api/v1/stats", by="workload", since=WINDOW)["groups"]
    mine = {g["workload"]: g for g in by_workload if g["workload"] in APPS}
    assert set(mine) == set(APPS)
    count = sum(g["count"] for g in mine.values())
    errors = sum(g["errors"] for g in mine.values())
    worst = max(mine.values(), key=lambda g: g["p95_ms"])
    shown = metrics(at)
    assert shown["Requests"] == f"{count:,}"
    assert shown["Error %"] == ui.pct(100 * errors / count, 2)
    assert shown[f"Worst p95 ({worst['workload']})"] == ui.ms(worst["p95_ms"])

    services = table(at, "services")
    assert sorted(services["workload"]) == APPS
    for row in services.to_dict("records"):
        group = mine[row["workload"]]
        assert (row["requests"], row["error %"]) == (
            num(group["count"]), num(group["error_pct"], "%.2f%%"),
        )  # fmt: skip
        assert (row["p50 (ms)"], row["p95 (ms)"], row["p99 (ms)"]) == (
            num(group["p50_ms"], "%.1f"), num(group["p95_ms"], "%.1f"),
            num(group["p99_ms"], "%.1f"),
        )  # fmt: skip

    routes = app_env.get("/api/v1/stats", by="route", since=WINDOW)["groups"]
    expected = [g for g in routes if g["workload"] in APPS]
    shown_routes = table(at, "routes")
    assert list(shown_routes["route"]) == [g["key"] for g in expected]
    assert list(shown_routes["requests"]) == [num(g["count"]) for g in expected]
    assert list(shown_routes["p95 (ms)"]) == [num(g["p95_ms"], "%.1f") for g in expected]
    assert list(shown_routes["error %"]) == [num(g["error_pct"], "%.2f%%") for g in expected]

    deploys = app_env.get("/api/v1/deployments", kind="app")["deployments"]
    shown_deploys = table(at, "deploys")
    assert list(shown_deploys["workload"]) == [d["workload"] for d in deploys]
    assert list(shown_deploys["verdict"]) == [d["verdict"] for d in deploys]


def test_team_in_the_url_shows_only_its_service(app_env: DemoApi) -> None:
    at = open_page(team="payments", window=WINDOW)
    workload = "shop/checkout-api"
    assert at.sidebar.selectbox[0].value == "payments"
    group = app_env.get("/api/v1/stats", by="workload", workload=workload, since=WINDOW)["groups"]
    unit = app_env.get("/api/v1/unit-costs", workload=workload, window=WINDOW, by="workload")
    shown = metrics(at)
    assert shown["Requests"] == f"{group[0]['count']:,}"
    assert shown["Error %"] == ui.pct(group[0]["error_pct"], 2)
    assert shown["p95 latency"] == ui.ms(group[0]["p95_ms"])
    cost = unit["unit_costs"][0]["unit_cost"]
    assert cost is not None and shown["Cost per 1k requests"] == f"${cost:.4f}"

    assert list(table(at, "services")["workload"]) == [workload]
    routes = app_env.get("/api/v1/stats", by="route", workload=workload, since=WINDOW)["groups"]
    shown_routes = table(at, "routes")
    assert set(shown_routes["workload"]) == {workload}
    assert list(shown_routes["requests"]) == [num(g["count"]) for g in routes]
    assert list(shown_routes["p99 (ms)"]) == [num(g["p99_ms"], "%.1f") for g in routes]

    deploys = app_env.get("/api/v1/deployments", workload=workload)["deployments"]
    shown_deploys = table(at, "deploys")
    assert list(shown_deploys["verdict"]) == [d["verdict"] for d in deploys] == ["pass"]
    assert list(shown_deploys["gate decision"]) == [
        f"{app_env.url}/api/v1/gate/decisions/{d['decision_id']}" for d in deploys
    ]
    decision = app_env.get(f"/api/v1/gate/decisions/{deploys[0]['decision_id']}")
    assert shown_deploys["projected cost / 1k req"][0] == num(
        decision["projection"]["unit_cost"], "%.4f"
    )

    slowest = app_env.get(
        "/api/v1/traces", workload=workload, sort="slowest", since=WINDOW, limit=10
    )["traces"]
    failed = app_env.get(
        "/api/v1/traces", workload=workload, status="error", since=WINDOW, limit=10
    )
    assert pages.trace_ids(table(at, "slowest")) == [t["trace_id"] for t in slowest]
    assert pages.trace_ids(table(at, "failed")) == [t["trace_id"] for t in failed["traces"]]
    slow_table = table(at, "slowest")
    assert list(slow_table["Where the time went"]) == [
        t["where_the_time_went"]["headline"] for t in slowest
    ]
    assert all(url.startswith("/incident?persona=app&trace=") for url in slow_table["Trace"])


def test_a_workload_and_its_route_chart(app_env: DemoApi) -> None:
    workload = "shop/recommendations-api"
    at = open_page(workload=workload, window=WINDOW, latency="p99")
    routes = app_env.get("/api/v1/stats", by="route", workload=workload, since=WINDOW)
    assert list(table(at, "routes")["route"]) == ["GET /api/recommendations"]
    assert at.query_params["latency"] == "p99"
    series = [p for p in routes["series"] if p["workload"] == workload]
    charted = chart_rows(at, "p99_ms")
    assert sorted(charted["p99_ms"]) == sorted(p["p99_ms"] for p in series)
    assert not app_env.get("/api/v1/deployments", workload=workload)["deployments"]
    assert not tables(at, "deploys")
    assert any("No release has passed the cost gate" in i.value for i in at.info)


def chart_rows(at: AppTest, field: str) -> pd.DataFrame:
    """The data of the first chart drawing ``field``."""
    for chart in at.get("vega_lite_chart"):
        if f'"field": "{field}"' in chart.proto.spec:
            data = chart.proto.datasets[0].data.data
            return pa.ipc.open_stream(data).read_all().to_pandas()
    raise AssertionError(f"no chart of {field}")


def test_empty_store_says_what_to_send(
    start_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setenv("ONEPANE_SERVER", server.api_url)
    at = open_page()
    assert "No app services yet" in at.info[0].value
    assert server.otlp_url in at.code[0].value
    assert not at.metric


def test_unreachable_server_is_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPANE_SERVER", "http://127.0.0.1:9")
    at = AppTest.from_file(str(pages.APP), default_timeout=60)
    at.query_params["persona"] = "app"
    at.run()
    assert not at.exception
    assert "cannot reach the Onepane API" in at.error[0].value


def test_the_route_chart_is_chosen_in_the_url(app_env: DemoApi) -> None:
    workload = "shop/recommendations-api"
    at = open_page(workload=workload, window=WINDOW, chart="rate")
    routes = app_env.get("/api/v1/stats", by="route", workload=workload, since=WINDOW)
    series = [p for p in routes["series"] if p["workload"] == workload]
    charted = chart_rows(at, "rate_per_s")
    assert len(charted) == len(series)
    # The demo keeps sending: its newest bucket may have grown since the page read it.
    shown = list(charted.sort_values("time")["rate_per_s"])
    assert shown[:-1] == [p["rate_per_s"] for p in sorted(series, key=lambda p: p["time"])][:-1]
    assert at.query_params["chart"] == "rate"
    assert not any('"field": "p95_ms"' in c.proto.spec for c in at.get("vega_lite_chart"))
