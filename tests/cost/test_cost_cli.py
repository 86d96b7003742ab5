"""`onepane cost` against a live server running the demo company: its prices and catalog
(onepane/demo.yaml), its cluster read through the real collectors (the demo cluster's
Kubernetes API and dcgm pages, as `onepane up --demo` wires them) and its month of FOCUS
bill imported as `onepane demo` does. The command's tables, CSV and JSON must say what the
API says; the bill must reconcile the way onepane/demo_bill.py describes it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from onepane import demo_cluster
from onepane.demo import DemoCompany, DemoConfig
from onepane.demo_bill import SAVINGS_PLAN_DISCOUNT
from onepane.demo_cluster import DemoCluster
from onepane.kubesim import instance_id
from onepane.testing import LiveServer, demo_cluster_flags, free_ports, run_onepane, wait_for

HOUR, DAY = 3600, 86400
DEMO_CONFIG = Path(demo_cluster.__file__).with_name("demo.yaml")  # what `onepane up --demo` reads
ON_DEMAND = ("node-1", "node-2", "node-3", "gpu-node-1")
SPOT_NODE = "gpu-node-2"
SPOT_HOURLY = 0.5424  # onepane/demo.yaml's spot price of a g5.2xlarge
UNMATCHED = {"Amazon Elastic Block Store", "Amazon Virtual Private Cloud", "AWS Data Transfer"}
_COLUMNS = re.compile(r"\s{2,}")
RECONCILE_HEADER = ["DAY", "ALLOCATED", "BILLED", "GAP", "FACTOR", "DISCOUNTS", "PRICE DIFF",
                    "NOT BILLED"]  # fmt: skip


@dataclass
class Demo:
    server: LiveServer
    bill: bytes
    week: str  # the seven days up to the end of the current hour, as START,END Unix seconds
    month: str  # thirty days up to the end of the current hour

    @property
    def url(self) -> str:
        return self.server.api_url

    def get(self, path: str, **params: str) -> dict[str, Any]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        status, body = self.server.get_json(f"{path}?{query}")
        assert status == 200, (path, body)
        return body

    def cost(self, *args: str) -> str:
        """`onepane cost ARGS --server URL`; its standard output."""
        command = list(args)
        at = 1 if command and command[0] in ("units", "reconcile") else 0
        command[at:at] = ["--server", self.url]
        done = run_onepane("cost", *command)
        assert done.returncode == 0, done.stderr
        return done.stdout


def post(url: str, data: bytes) -> dict[str, Any]:
    request = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp: Path = tmp_path_factory.mktemp("cost_cli")
    # The demo's prices and catalog; only explicit rollups, and no scheduled drift runs (the
    # first would load Evidently in worker processes: tens of seconds of CPU).
    config = tmp / "onepane.yaml"
    settings = DEMO_CONFIG.read_text()
    assert settings.count("{every: 5m, ") == 2
    config.write_text(settings.replace("{every: 5m, ", "{") + "cost:\n  rollup_interval: 1h\n")
    dcgm_port, kube_port, cluster_flags = demo_cluster_flags("5s")
    server = LiveServer(
        tmp / "onepane.duckdb", "--decoders", "0", "--config", str(config), *cluster_flags
    )
    company_config = DemoConfig(endpoint=server.otlp_url, seed=7, day_seconds=600.0)
    company = DemoCompany(company_config)
    cluster = DemoCluster(company, company_config, seed=7)
    try:
        company.emit_pipeline_run()  # the nightly ETL's Job pod, team data
        for _ in range(20):
            company.emit_checkout()
        company.force_flush()
        cluster.tick(elapsed_s=150.0)  # the company's noon
        cluster.serve(kube_port=kube_port, dcgm_port=dcgm_port)
        wait_for(
            "the demo's pods listed",
            lambda: server.get_json("/api/v1/k8s/pods?since=30d")[1].get("pods", []),
            lambda pods: len(pods) == 6,
        )
        wait_for(
            "the checkouts stored",
            lambda: server.get_json("/api/v1/traces?service=checkout-api&limit=100&since=1h")[1],
            lambda body: len(body.get("traces", [])) == 20,
        )
        bill = cluster.bill()
        imported = post(f"{server.api_url}/api/v1/billing/imports?filename=demo.csv", bill)
        assert imported["rows"] > 0
        # The server rolls up once by itself when the inventory has synced; after that and
        # this explicit run, nothing changes the costs (the next run is an hour away).
        wait_for(
            "the server's own first rollup",
            lambda: server.get_json("/api/v1/allocation?window=1h")[1].get("data", [{}]),
            lambda data: bool(data[0]),
        )
        post(f"{server.api_url}/api/v1/cost/rollup", b"")
        end = int(time.time()) // HOUR * HOUR + HOUR
        yield Demo(server, bill, f"{end - 7 * DAY},{end}", f"{end - 30 * DAY},{end}")
    finally:
        company.shutdown()
        cluster.close()
        server.stop()


def table(stdout: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a table the CLI printed (columns apart by 2+ spaces)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    header = _COLUMNS.split(lines[0].strip())
    rows = [_COLUMNS.split(line.strip()) for line in lines[1:]]
    assert all(len(row) == len(header) for row in rows), stdout
    return header, rows


def number(cell: str) -> float | None:
    return None if cell == "-" else float(cell.replace(",", ""))


def close(cell: str, value: float | None) -> bool:
    """A table cell shows ``value`` (4 decimals, 2 from 100 up)."""
    shown = number(cell)
    if shown is None or value is None:
        return shown is value
    return abs(shown - value) <= (0.005 if abs(value) >= 100 else 0.00005)


# -- onepane cost ------------------------------------------------------------------------


def test_cost_by_team_prints_the_apis_totals_most_expensive_first(demo: Demo) -> None:
    (api,) = demo.get("/api/v1/allocation", window=demo.week, aggregate="team")["data"]
    header, rows = table(demo.cost("--by", "team", "--window", demo.week))
    assert header == ["WINDOW START", "TEAM", "CPU", "RAM", "GPU", "GPU IDLE", "SHARED", "TOTAL"]
    assert {r[1] for r in rows} == set(api)
    assert {"ml-platform", "storefront", "payments"} <= set(api)
    for row in rows:
        a = api[row[1]]
        assert row[0] == a["window"]["start"]
        assert close(row[-1], a["totalCost"]), (row, a["totalCost"])
        assert close(row[2], a["cpuCost"]) and close(row[4], a["gpuCost"]), row
    totals = [number(r[-1]) for r in rows]
    assert totals == sorted(totals, reverse=True)


def test_cost_json_is_the_api_document_and_csv_has_the_same_numbers(demo: Demo) -> None:
    api = demo.get("/api/v1/allocation", window=demo.week, aggregate="team")
    assert json.loads(demo.cost("--window", demo.week, "--json")) == api  # --by team: default

    (allocations,) = api["data"]
    header, *rows = list(csv.reader(io.StringIO(demo.cost("--window", demo.week, "--csv"))))
    assert header == ["WINDOW START", "TEAM", "CPU", "RAM", "GPU", "GPU IDLE", "SHARED", "TOTAL"]
    assert {r[1]: float(r[-1]) for r in rows} == {
        n: pytest.approx(a["totalCost"], rel=1e-12) for n, a in allocations.items()
    }
    assert {r[1]: float(r[2]) for r in rows} == {
        n: pytest.approx(a["cpuCost"], rel=1e-12) for n, a in allocations.items()
    }


def test_cost_idle_shared_idle_and_daily_steps(demo: Demo) -> None:
    def totals(*args: str) -> dict[str, float]:
        rows = list(csv.reader(io.StringIO(demo.cost("--window", demo.week, "--csv", *args))))
        return {r[1]: float(r[-1]) for r in rows[1:]}

    idle = demo.get("/api/v1/allocation", window=demo.week, aggregate="team", idle="true")
    (idle_api,) = idle["data"]
    with_idle = totals("--idle")
    assert with_idle == {n: pytest.approx(a["totalCost"]) for n, a in idle_api.items()}
    assert with_idle["__idle__"] > 0

    shared = totals("--share-idle", "even")
    assert "__idle__" not in shared and set(shared) == set(with_idle) - {"__idle__"}
    assert sum(shared.values()) == pytest.approx(sum(with_idle.values()))
    share = with_idle["__idle__"] / len(shared)  # even: the same share each
    assert shared == {n: pytest.approx(with_idle[n] + share) for n in shared}
    _, rows = table(demo.cost("--window", demo.week, "--share-idle", "even", "--by", "team"))
    assert all(close(r[6], share) for r in rows), rows

    out = demo.cost("--window", demo.week, "--csv", "--step", "1d", "--by", "team,kind")
    daily = list(csv.reader(io.StringIO(out)))
    assert daily[0][:2] == ["WINDOW START", "TEAM,KIND"]
    start = int(demo.week.split(",")[0])
    assert sorted({r[0] for r in daily[1:]}) == [
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + i * DAY)) for i in range(7)
    ]
    assert {r[1] for r in daily[1:]} >= {"ml-platform/model", "payments/app", "storefront/app"}
    by_day = [r for r in daily[1:] if r[1] == "payments/app"]
    assert len(by_day) == 7
    week_total = totals("--by", "team,kind")["payments/app"]
    assert sum(float(r[-1]) for r in by_day) == pytest.approx(week_total)


def test_cost_reconcile_and_units_print_tables(demo: Demo) -> None:
    api = demo.get("/api/v1/reconciliation", window=demo.month)
    header, rows = table(demo.cost("reconcile", "--window", demo.month))
    assert header == RECONCILE_HEADER
    assert [r[0] for r in rows] == [d["date"] for d in api["days"]]
    for row, day in zip(rows, api["days"], strict=True):
        parts = day.get("explained") or {}
        values = [day[k] for k in ("allocated", "billed", "gap", "scale_factor")]
        values += [parts.get(k) for k in ("discounts", "price_difference", "not_billed")]
        for cell, value in zip(row[1:], values, strict=True):
            assert close(cell, value), (row, day)
    assert rows[-1][2] == "-"  # today is not billed yet
    assert {r[7] for r in rows if r[2] != "-"} == {"0.0000"}  # every node is billed
    assert sum(1 for r in rows if r[2] != "-") == api["totals"]["billed_days"] >= 20

    units = demo.get("/api/v1/unit-costs", window=demo.month)["unit_costs"]
    header, rows = table(demo.cost("units", "--window", demo.month))
    assert header == ["START", "WORKLOAD", "VERSION", "KIND", "COUNT", "COST", "UNIT COST", "PER"]
    assert len(rows) == len(units)
    checkout = [r for r in rows if r[1] == "shop/checkout-api" and r[2] != "-"]
    (api_checkout,) = [u for u in units if u["workload"] == "shop/checkout-api" and u["version"]]
    assert [(r[2], r[3], r[4], r[7]) for r in checkout] == [
        (api_checkout["version"], "app", str(api_checkout["count"]), "1k requests")
    ]
    assert api_checkout["count"] >= 20
    assert close(checkout[0][6], api_checkout["unit_cost"])


def test_a_server_that_is_down_is_exit_code_2_and_one_line(demo: Demo) -> None:
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    for command in (["cost"], ["cost", "reconcile"], ["cost", "units"]):
        done = run_onepane(*command, "--server", url)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line.startswith("onepane: error: ") and url in line, line


def test_a_bad_window_fails_with_the_servers_message(demo: Demo) -> None:
    status, body = demo.server.get_json("/api/v1/allocation?window=soon")
    assert status == 400
    for command in (["cost"], ["cost", "reconcile"], ["cost", "units"]):
        done = run_onepane(*command, "--server", demo.url, "--window", "soon")
        assert done.returncode == 1, (command, done.stderr)
        assert done.stdout == ""
        assert done.stderr.strip() == f"onepane: error: {body['error']}"
    done = run_onepane("cost", "--server", demo.url, "--step", "30m")
    assert done.returncode == 1 and "step must be at least 1h" in done.stderr


# -- the demo company's costs and bill ---------------------------------------------------


def test_the_demo_costs_by_team_over_a_week(demo: Demo) -> None:
    (teams,) = demo.get("/api/v1/allocation", window="7d", aggregate="team")["data"]
    assert {"ml-platform", "storefront", "payments", "data"} <= set(teams)
    assert all(a["totalCost"] > 0 for a in teams.values())
    workloads = {w["workload"]: w for w in demo.get("/api/v1/workloads")["workloads"]}
    fraud = workloads["ml/fraud-model"]
    assert (fraud["kind"], fraud["kind_source"], fraud["unit"]) == (
        "model",
        "catalog",
        "predictions",
    )
    assert workloads["data/nightly-etl"]["team"] == "data"


def _bill_by_day(bill: bytes) -> dict[str, dict[str, dict[str, float]]]:
    """day -> node -> list and effective cost, from the demo's FOCUS CSV."""
    nodes = {instance_id(n): n for n in (*ON_DEMAND, SPOT_NODE)}
    days: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for row in csv.DictReader(io.StringIO(bill.decode())):
        if row["ResourceId"] in nodes:
            days[row["ChargePeriodStart"][:10]][nodes[row["ResourceId"]]] = {
                "list": float(row["ListCost"]),
                "effective": float(row["EffectiveCost"]),
            }
    return days


def test_the_demo_bill_reconciles_as_its_story_says(demo: Demo) -> None:
    report = demo.get("/api/v1/reconciliation", window="30d")
    bill = _bill_by_day(demo.bill)
    billed_days = [d for d in report["days"] if d["billed"] is not None]
    assert [d["date"] for d in billed_days] == sorted(bill)
    assert report["days"][-1]["billed"] is None  # today: bills lag a day

    for day in billed_days:
        nodes = {n["node"]: n for n in day["nodes"]}
        for name in ON_DEMAND:  # a Compute Savings Plan: 28% under list
            assert nodes[name]["gap_pct"] == pytest.approx(-100 * SAVINGS_PLAN_DISCOUNT), name
        spot = nodes[SPOT_NODE]  # the day's spot price, around demo.yaml's
        assert 0.88 <= spot["scale_factor"] <= 1.14
        assert spot["billed"] == pytest.approx(24 * SPOT_HOURLY * spot["scale_factor"])

        parts, billed = day["explained"], bill[day["date"]]
        assert sum(parts.values()) == pytest.approx(day["gap"])
        on_demand_list = sum(billed[n]["list"] for n in ON_DEMAND)
        spot_discount = billed[SPOT_NODE]["effective"] - billed[SPOT_NODE]["list"]
        assert parts["discounts"] - spot_discount == pytest.approx(
            -SAVINGS_PLAN_DISCOUNT * on_demand_list, rel=1e-6
        )
        # the spot node's ListCost is the on-demand price; Onepane priced it as spot
        assert parts["price_difference"] == pytest.approx(
            billed[SPOT_NODE]["list"] - 24 * SPOT_HOURLY, rel=1e-6
        )
        assert parts["not_billed"] == pytest.approx(0, abs=1e-9)

    assert {u["service"] for u in report["unmatched_billing"]} == UNMATCHED
    for unmatched in report["unmatched_billing"]:
        assert unmatched["rows"] == len(bill)  # one a day


# -- the demo's release history through the gate (onepane/demo_gate.py) --------------------


def test_the_demos_releases_pass_block_and_override_as_its_policy_says(demo: Demo) -> None:
    from onepane.demo_gate import RELEASES, send

    decisions = send(demo.url)
    verdicts = {d["workload"]: d["verdict"] for d in decisions}
    assert verdicts == {
        "shop/web-frontend": "pass",
        "shop/checkout-api": "pass",
        "ml/fraud-model": "blocked",
        "ml/recsys-model": "overridden",
    }
    by_name = {d["workload"]: d for d in decisions}

    # The GPU fraud model: 2 pods of 2 cores, 8 GiB and an A10G each, on g5.2xlarge nodes,
    # over the 500 USD a month demo.yaml allows it.
    fraud = by_name["ml/fraud-model"]
    rates = fraud["rates"]
    pod = 2 * rates["cpu_core_hour"] + 8 * rates["ram_gib_hour"] + rates["gpu_hour"]
    [monthly] = [c for c in fraud["checks"] if c["threshold"] == "max_monthly_cost"]
    assert monthly["value"] == pytest.approx(2 * pod * 730)
    assert (monthly["limit"], monthly["passed"]) == (500.0, False)
    assert "g5.2xlarge" in rates["source"]

    # recsys: a second replica doubles its cost, over the 30 % increase; the override holds.
    recsys = by_name["ml/recsys-model"]
    [increase] = [c for c in recsys["checks"] if c["threshold"] == "max_increase"]
    assert increase["value"] == pytest.approx(100.0)
    assert recsys["approver"] == RELEASES[3].override["approver"]

    listed = demo.get("/api/v1/deployments", limit="10")["deployments"]
    assert [(d["workload"], d["version"], d["verdict"]) for d in listed[:4]] == [
        (r.workload, r.version, verdicts[r.workload]) for r in reversed(RELEASES)
    ]
    shown = run_onepane("gate", "decisions", "--server", demo.url)
    assert shown.returncode == 0, shown.stderr
    assert "overridden" in shown.stdout and "ml/fraud-model" in shown.stdout


# -- the demo's drift references (onepane/demo_drift.py) ----------------------------------


def test_the_demos_models_get_their_training_data_as_drift_references(demo: Demo) -> None:
    from onepane.demo_drift import REFERENCE_ROWS, send

    fraud, recsys = send(demo.url, seed=7)  # what `onepane demo` sends on start
    types = {c["name"]: (c["type"], c["type_source"]) for c in fraud["columns"]}
    assert (fraud["model"], fraud["version"], fraud["rows"]) == ("fraud-model", "3.2.0", 5000)
    assert REFERENCE_ROWS == 5000
    assert types == {
        "amount": ("numerical", "inferred"),
        "country": ("categorical", "inferred"),
        "account_age_days": ("numerical", "inferred"),
    }
    assert (recsys["model"], recsys["version"]) == ("recsys-model", "2.1.0")
    assert {c["name"] for c in recsys["columns"]} == {"items_viewed_7d", "user_segment"}
    [listed] = demo.get("/api/v1/drift/references", model="fraud-model")["references"]
    assert (listed["reference_id"], listed["active"]) == (fraud["reference_id"], True)
    assert listed["source"] == "fraud-model-3.2.0-training.csv"
