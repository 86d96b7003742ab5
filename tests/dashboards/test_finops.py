"""The Platform / FinOps page against the demo server: every figure it shows equals what
the API returns for the same filters, its filters live in the URL, and an empty store
shows what to send instead of an error."""

from __future__ import annotations

import csv
import io
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from onepane.testing import LiveServer
from tests.dashboards import pages


def run_page(**params: str) -> AppTest:
    return pages.open_page("finops", **params)


metrics = pages.metrics


def dollars(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


def per(api: Any, aggregate: str, window: str, **extra: str) -> dict[str, dict[str, float]]:
    """The allocation summed per name over its steps, as the page sums it."""
    step = "1h" if window in ("1h", "6h", "24h") else "1d"
    doc = api.get("/api/v1/allocation", window=window, aggregate=aggregate, step=step, **extra)
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for step_set in doc["data"]:
        for name, allocation in step_set.items():
            for field in ("totalCost", "gpuCost", "gpuIdleCost"):
                sums[name][field] += allocation[field] or 0.0
    return sums


def frame_rows(at: AppTest, index: int) -> list[dict[str, Any]]:
    """The cells of the page's ``index``-th table."""
    return pages.tables(at)[index].to_dict("records")


FORMATS = {"unit_cost": "$%.4f", "cost": "$%.2f", "drift_share": "%.2f"}


def as_shown(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """API rows as the FinOps tables show them (same columns, their formats)."""
    return pages.expect(rows, {k: (k, FORMATS.get(k)) for k in rows[0]})


def test_team_totals_idle_and_bill_equal_the_api(app_env: Any) -> None:
    at = run_page(window="24h")
    shown = metrics(at)
    teams = per(app_env, "team", "24h")
    for team, sums in teams.items():
        assert dollars(shown[team]) == pytest.approx(sums["totalCost"], abs=0.006), team
    assert dollars(shown["Total (every team)"]) == pytest.approx(
        sum(s["totalCost"] for s in teams.values()), abs=0.006
    )
    table = {r["team"]: dollars(r["cost"]) for r in frame_rows(at, 0)}
    assert table == pytest.approx({t: s["totalCost"] for t, s in teams.items()}, abs=0.006)

    idle = per(app_env, "team", "24h", idle="true")["__idle__"]
    assert dollars(shown["Idle capacity (__idle__)"]) == pytest.approx(idle["totalCost"], abs=0.006)
    assert dollars(shown["of which GPUs"]) == pytest.approx(idle["gpuCost"], abs=0.006)
    gpu_idle = sum(s["gpuIdleCost"] for s in teams.values())
    assert dollars(shown["GPU idle in allocations"]) == pytest.approx(gpu_idle, abs=0.006)

    bill = app_env.get("/api/v1/reconciliation", window="30d")["totals"]
    assert dollars(shown["Billed"]) == pytest.approx(bill["billed"], abs=0.006)
    assert dollars(shown["Allocated"]) == pytest.approx(bill["allocated"], abs=0.006)
    assert dollars(shown["Gap"]) == pytest.approx(bill["gap"], abs=0.006)


def test_by_kind_and_team_from_the_url(app_env: Any) -> None:
    at = run_page(window="7d", by="kind", team="ml-platform")
    assert at.query_params["by"] == "kind" and at.query_params["team"] == "ml-platform"
    shown = metrics(at)
    both = per(app_env, "team,kind", "7d")
    kinds = {n.split("/")[-1]: s["totalCost"] for n, s in both.items() if "ml-platform" in n}
    assert kinds, both.keys()
    for kind, total in kinds.items():
        assert dollars(shown[kind]) == pytest.approx(total, abs=0.006), kind
    team = per(app_env, "team", "7d")["ml-platform"]["totalCost"]
    assert dollars(shown["Total (team ml-platform)"]) == pytest.approx(team, abs=0.006)
    assert "payments" not in shown and "storefront" not in shown

    models = app_env.get("/api/v1/models", team="ml-platform")["models"]
    assert frame_rows(at, 2) == as_shown(models)
    decisions = app_env.get("/api/v1/gate/decisions", team="ml-platform", limit=200)["decisions"]
    gate = frame_rows(at, 3)
    assert [r["decision_id"] for r in gate] == [str(d["decision_id"]) for d in decisions]


def test_inventory_and_its_csv_equal_the_api(app_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table is GET /api/v1/models; the download carries ?format=csv's rows."""
    carried: dict[str, bytes] = {}
    keep = MemoryMediaFileStorage.load_and_get_id

    def record(self: Any, data: Any, mimetype: str, kind: Any, filename: str | None = None) -> str:
        if filename:
            carried[filename] = data
        return keep(self, data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    at = run_page(window="24h")
    models = app_env.get("/api/v1/models")["models"]
    assert len(models) == 2
    inventory = [t for t in pages.tables(at) if "drift_status" in t.columns]
    assert len(inventory) == 1
    assert inventory[0].to_dict("records") == as_shown(models)

    assert at.download_button[0].label == "Download CSV"
    with urllib.request.urlopen(f"{app_env.url}/api/v1/models?format=csv") as response:
        api_csv = response.read()
    button_csv = carried["onepane-models.csv"]
    assert list(csv.reader(io.StringIO(button_csv.decode()))) == list(
        csv.reader(io.StringIO(api_csv.decode()))
    )
    rows = list(csv.DictReader(io.StringIO(button_csv.decode())))
    assert [(r["model"], r["version"], r["drift_status"]) for r in rows] == [
        (m["model"], m["version"], m["drift_status"]) for m in models
    ]


def test_gate_log_filters_and_order(app_env: Any) -> None:
    at = run_page(verdict="blocked")
    assert at.query_params["verdict"] == "blocked"
    want = app_env.get("/api/v1/gate/decisions", verdict="blocked", limit=200)["decisions"]
    gate = next(t for t in pages.tables(at) if "verdict" in t.columns)
    assert list(gate["decision_id"]) == [str(d["decision_id"]) for d in want] != []
    assert set(gate["verdict"]) == {"blocked"}

    at = run_page(workload="shop/checkout-api")
    want = app_env.get("/api/v1/gate/decisions", workload="shop/checkout-api")["decisions"]
    gate = next(t for t in pages.tables(at) if "verdict" in t.columns)
    assert list(gate["workload"]) == ["shop/checkout-api"] * len(want) and len(want) == 1
    all_decisions = app_env.get("/api/v1/gate/decisions")["decisions"]
    times = [d["time"] for d in all_decisions]
    assert times == sorted(times, reverse=True)  # newest first, as the page shows them


def test_gpu_heatmap_names_the_idle_gpu(app_env: Any) -> None:
    """The demo's trainer GPU is idle at its noon, the recsys GPU busy: the sentence names
    the first only, with the hours the API measured."""
    at = run_page()
    cells = app_env.get("/api/v1/gpus/heatmap", since="7d")["cells"]
    idle_hours = {c["hour"] for c in cells if c["hostname"] == "gpu-node-2"}
    assert idle_hours and all(
        c["avg_utilization"] < 0.2 for c in cells if c["hostname"] == "gpu-node-2"
    )
    sentence = [m.value for m in at.markdown if "Idle hours" in m.value]
    assert len(sentence) == 1
    assert "gpu-node-2 · GPU 0" in sentence[0] and "gpu-node-1" not in sentence[0]
    first = min(idle_hours)
    assert f"{first:02d}:00–" in sentence[0]


def test_an_empty_store_says_what_to_send(
    start_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setenv("ONEPANE_SERVER", server.api_url)
    at = run_page()
    notes = " ".join(i.value for i in at.info)
    for what in ("No cost yet", "No GPU samples yet", "No bill imported yet",
                 "No models seen yet", "No gate decisions"):  # fmt: skip
        assert what in notes, what
    assert any("OTEL_EXPORTER_OTLP_ENDPOINT=" + server.otlp_url in c.value for c in at.code)
    assert any("page rendered in" in c.value for c in at.caption)
