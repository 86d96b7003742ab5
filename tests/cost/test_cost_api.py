"""The cost API end to end: a real `onepane serve --config onepane.yaml --kube-api URL` reads
a small cluster from an in-memory Kubernetes API, rolls up its hours, imports a FOCUS bill,
and a user reads allocation (OpenCost's shape), prices, workloads and reconciliation back.

Every expected number is worked out by hand from the prices in ``CONFIG``:

* on-demand defaults: 0.03 per core-hour, 0.004 per GiB-hour; spot: 0.01, 0.001, GPU 0.5;
* ``node-a`` (m5.2xlarge, 8 cores, 32 GiB, on-demand, no rule): 0.24 + 0.128 = 0.368/h;
* ``node-b`` (m6i.2xlarge, on-demand): the rule's 0.736/h, split by the defaults' weights,
  so 0.06 per core-hour and 0.008 per GiB-hour (twice the defaults);
* ``node-g`` (g5.2xlarge, spot, 1 GPU, no rule): 0.08 + 0.032 + 0.5 = 0.612/h.

The cluster was created a day before the two whole days the tests look at (``day0``,
the day before yesterday, and ``day1``, yesterday), so every hour in them is final.
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from onepane import kubesim
from onepane.testing import LiveServer, wait_for

S = 1_000_000_000
HOUR, DAY = 3600, 86400
GIB = 1024**3
CONFIG = """
pricing:
  currency: USD
  defaults: {cpu: 0.03, spot_cpu: 0.01, ram: 0.004, spot_ram: 0.001, gpu: 1.0, spot_gpu: 0.5}
  nodes:
    - instance_type: m6i.2xlarge
      on_demand: 0.736
catalog:
  shop/checkout: {kind: app, team: payments}
cost:
  rollup_interval: 1h
"""
NODE_HOURLY = {"node-a": 0.368, "node-b": 0.736, "node-g": 0.612}
CLUSTER_HOURLY = sum(NODE_HOURLY.values())  # 1.716
# per pod-hour, at its node's rates
WEB = 2 * 0.03 + 4 * 0.004  # node-a: 0.076
CHECKOUT = 1 * 0.06 + 2 * 0.008  # node-b, twice the defaults: 0.076
SCORER = 2 * 0.01 + 8 * 0.001 + 1 * 0.5  # node-g, spot: 0.528
ETL = 1 * 0.03 + 1 * 0.004  # node-a: 0.034
DEBUG = 0.5 * 0.03 + 0.5 * 0.004  # node-a: 0.017
TEAMS_HOURLY = {
    "storefront": WEB,
    "payments": CHECKOUT,  # the catalog's team, not the pod's label (legacy)
    "ml-platform": SCORER,
    "__unallocated__": ETL + DEBUG,  # no team anywhere
}
ALLOCATED_HOURLY = sum(TEAMS_HOURLY.values())  # 0.731
IDLE_HOURLY = CLUSTER_HOURLY - ALLOCATED_HOURLY  # 0.985

# The FOCUS bill of day0 and day1, per node and day
NODE_A_LIST = 24 * 0.368  # 8.832, billed 30% under list (a savings plan)
NODE_A_BILLED = NODE_A_LIST * 0.7
NODE_B_LIST = NODE_B_BILLED = 18.0  # list above Onepane's 24 × 0.736 = 17.664
NODE_G_BILLED = 12.0  # spot, no ListCost
NAT_BILLED = 1.08
BILLED_PER_DAY = NODE_A_BILLED + NODE_B_BILLED + NODE_G_BILLED  # 36.1824
ALLOCATED_PER_DAY = 24 * CLUSTER_HOURLY  # 41.184

OPENCOST_FIELDS = {
    "name", "properties", "window", "start", "end", "minutes", "cpuCores", "cpuCoreHours",
    "cpuCost", "cpuCostAdjustment", "cpuEfficiency", "ramByteHours", "ramCost",
    "ramCostAdjustment", "ramEfficiency", "gpuHours", "gpuCost", "gpuCostAdjustment",
    "totalCost", "totalEfficiency", "sharedCost", "gpuIdleCost", "priceSources",
    "priceVersions",
}  # fmt: skip


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-9)


def iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass
class Env:
    server: LiveServer
    day0: int  # Unix seconds of the day before yesterday, 00:00 UTC
    import_result: dict[str, Any]

    @property
    def day1(self) -> int:
        return self.day0 + DAY

    def get(self, path: str) -> dict[str, Any]:
        status, body = self.server.get_json(path)
        assert status == 200, (path, body)
        return body

    def allocation(self, query: str) -> list[dict[str, dict[str, Any]]]:
        body = self.get(f"/api/v1/allocation?{query}")
        assert (body["code"], body["status"]) == (200, "success")
        return body["data"]

    def two_days(self) -> str:
        return f"window={self.day0},{self.day0 + 2 * DAY}"


def post(url: str, data: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def build_cluster(sim: kubesim.KubeSim, created_ns: int) -> None:
    """Three nodes and five pods of several teams and kinds, all running since ``created_ns``."""
    for name, instance_type, capacity, gpus in (
        ("node-a", "m5.2xlarge", "on-demand", 0),
        ("node-b", "m6i.2xlarge", "on-demand", 0),
        ("node-g", "g5.2xlarge", "spot", 1),
    ):
        labels = {
            "node.kubernetes.io/instance-type": instance_type,
            "karpenter.sh/capacity-type": capacity,
        }
        if gpus:
            labels["nvidia.com/gpu.product"] = "NVIDIA-A10G"
        sim.put("nodes", kubesim.node(name, created_ns, gpus=gpus, labels=labels))

    def pod(name: str, namespace: str, node: str, requests: dict, **kwargs: Any) -> None:
        started = {"requests": requests, "started_ns": created_ns, **kwargs}
        sim.put("pods", kubesim.pod(name, namespace, created_ns, node_name=node, **started))

    def deployment(namespace: str, name: str, node: str, labels: dict, requests: dict) -> None:
        rs = f"{name}-7d9f8c6b5"
        owner = kubesim.owner_ref("Deployment", name)
        sim.put("replicasets", kubesim.owned("ReplicaSet", rs, namespace, owner, created_ns))
        labels = {**labels, "pod-template-hash": "7d9f8c6b5"}
        owner = kubesim.owner_ref("ReplicaSet", rs)
        pod(f"{rs}-x2x4z", namespace, node, requests, owner=owner, labels=labels)

    web = {"app": "web", "team": "storefront", "onepane.dev/kind": "app"}
    deployment("shop", "web", "node-a", web, {"cpu": "2", "memory": "4Gi"})
    checkout = {"app": "checkout", "team": "legacy"}  # the catalog says payments
    deployment("shop", "checkout", "node-b", checkout, {"cpu": "1", "memory": "2Gi"})
    scorer = {"app": "scorer", "team": "ml-platform", "onepane.dev/kind": "model"}
    gpu = {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}
    deployment("ml", "scorer", "node-g", scorer, gpu)
    cronjob = kubesim.owner_ref("CronJob", "etl")
    job = sim.put("jobs", kubesim.owned("Job", "etl-29000000", "data", cronjob, created_ns))
    owner = kubesim.owner_ref("Job", "etl-29000000", job["metadata"]["uid"])
    pod("etl-29000000-k7q2m", "data", "node-a", {"cpu": "1", "memory": "1Gi"}, owner=owner)
    pod("debug", "default", "node-a", {"cpu": "500m", "memory": "512Mi"})  # no owner, no labels


def focus_bill(day0: int) -> bytes:
    """day0 and day1 of a FOCUS export: node-a by its instance id, discounted; node-b by a
    tag only; node-g by an ARN ending in its instance id, spot without ListCost; a NAT
    gateway that is no node."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
                     "ChargePeriodEnd", "ServiceProviderName", "ServiceName", "ResourceId",
                     "ListCost", "EffectiveCost", "Tags"])  # fmt: skip
    arn = f"arn:aws:ec2:eu-west-1:123456789012:instance/{kubesim.instance_id('node-g')}"
    for day in (day0, day0 + DAY):
        month = time.gmtime(day)
        period_start = f"{month.tm_year}-{month.tm_mon:02d}-01T00:00:00Z"
        next_month = (month.tm_year + month.tm_mon // 12, month.tm_mon % 12 + 1)
        period_end = f"{next_month[0]}-{next_month[1]:02d}-01T00:00:00Z"
        common = [period_start, period_end, iso(day), iso(day + DAY), "AWS"]
        for service, resource, listed, billed, tags in (
            ("Amazon Elastic Compute Cloud", kubesim.instance_id("node-a"), NODE_A_LIST,
             NODE_A_BILLED, {"Name": "web-pool"}),
            ("Amazon Elastic Compute Cloud", "", NODE_B_LIST, NODE_B_BILLED,
             {"Name": "node-b", "team": "platform"}),
            ("Amazon Elastic Compute Cloud", arn, None, NODE_G_BILLED, {}),
            ("Amazon Virtual Private Cloud", "nat-0abc1234", NAT_BILLED, NAT_BILLED, {}),
        ):  # fmt: skip
            writer.writerow([*common, service, resource, "" if listed is None else listed,
                             billed, json.dumps(tags)])  # fmt: skip
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("cost_api")
    day0 = int(time.time()) // DAY * DAY - 2 * DAY
    sim = kubesim.KubeSim()
    build_cluster(sim, (day0 - DAY) * S)
    sim.serve()
    config = tmp / "onepane.yaml"
    config.write_text(CONFIG)
    server = LiveServer(
        tmp / "onepane.duckdb", "--decoders", "0", "--config", str(config),
        "--kube-api", sim.server.url,
    )  # fmt: skip
    try:
        wait_for(
            "pods listed",
            lambda: server.get_json("/api/v1/k8s/pods?since=30d")[1].get("pods", []),
            lambda pods: len(pods) == 5,
        )
        # The server rolls up once by itself when the inventory has synced; after that and
        # this explicit run, nothing changes the costs (the next run is an hour away).
        wait_for(
            "the server's own first rollup",
            lambda: server.get_json("/api/v1/allocation?window=1h")[1].get("data", [{}]),
            lambda data: bool(data[0]),
        )
        status, rolled = post(server.api_url + "/api/v1/cost/rollup", b"")
        assert status == 200, rolled
        status, imported = post(
            server.api_url + "/api/v1/billing/imports?filename=focus.csv", focus_bill(day0)
        )
        assert status == 201, imported
        yield Env(server, day0, imported)
    finally:
        server.stop()
        sim.close()


# -- allocation --------------------------------------------------------------------------


def test_allocation_by_team_is_opencost_shaped_and_priced_as_worked_out_by_hand(env: Env) -> None:
    (allocations,) = env.allocation(f"{env.two_days()}&aggregate=team")
    assert set(allocations) == set(TEAMS_HOURLY)
    for name, a in allocations.items():
        assert set(a) >= OPENCOST_FIELDS, name
        assert a["name"] == name and a["properties"] == {"team": name}
        assert a["window"] == {"start": iso(env.day0), "end": iso(env.day0 + 2 * DAY)}
        assert (a["start"], a["end"]) == (a["window"]["start"], a["window"]["end"])
        assert a["minutes"] == 48 * 60
        assert a["totalCost"] == approx(48 * TEAMS_HOURLY[name]), name
        assert a["totalCost"] == approx(a["cpuCost"] + a["ramCost"] + a["gpuCost"])
        assert a["sharedCost"] == 0 and a["priceVersions"] == [1]
        for adjustment in ("cpuCostAdjustment", "ramCostAdjustment", "gpuCostAdjustment"):
            assert a[adjustment] == 0
        # no usage metrics were sent: costs are on requests, usage and efficiency are 0
        assert (a["cpuEfficiency"], a["ramEfficiency"], a["totalEfficiency"]) == (0, 0, 0)

    web = allocations["storefront"]  # 2 cores and 4 GiB for 48 hours on node-a
    assert (web["cpuCores"], web["cpuCoreHours"], web["ramByteHours"]) == (2, 96, 4 * GIB * 48)
    assert web["cpuCost"] == approx(96 * 0.03)
    assert web["ramCost"] == approx(4 * 48 * 0.004)
    assert (web["gpuHours"], web["gpuCost"]) == (0, 0)
    assert web["priceSources"] == ["onepane.yaml pricing.defaults (on-demand)"]

    checkout = allocations["payments"]  # node-b is priced by its instance type's rule
    assert checkout["cpuCost"] == approx(48 * 0.06) and checkout["ramCost"] == approx(48 * 0.016)
    assert checkout["priceSources"] == ["onepane.yaml pricing.nodes[0]"]

    scorer = allocations["ml-platform"]  # spot prices, one GPU
    assert (scorer["gpuHours"], scorer["gpuCost"]) == (48, approx(48 * 0.5))
    assert scorer["cpuCost"] == approx(48 * 2 * 0.01)
    assert scorer["priceSources"] == ["onepane.yaml pricing.defaults (spot)"]
    assert scorer["gpuIdleCost"] is None  # no dcgm samples: unmeasured, not a guess
    assert scorer["gpuUtilization"] is None

    schema = env.get("/api/v1/openapi.json")["paths"]["/api/v1/allocation"]["get"]
    document = env.get(f"/api/v1/allocation?{env.two_days()}&aggregate=team")
    jsonschema.Draft202012Validator(
        schema["responses"]["200"]["content"]["application/json"]["schema"]
    ).validate(document)


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        ("workload", {"shop/web": WEB, "shop/checkout": CHECKOUT, "ml/scorer": SCORER,
                      "data/etl": ETL, "default/debug": DEBUG}),
        ("kind", {"app": WEB + CHECKOUT + DEBUG, "model": SCORER, "pipeline": ETL}),
        ("namespace", {"shop": WEB + CHECKOUT, "ml": SCORER, "data": ETL, "default": DEBUG}),
        ("label:app", {"web": WEB, "checkout": CHECKOUT, "scorer": SCORER,
                       "__unallocated__": ETL + DEBUG}),
        ("team,kind", {"storefront/app": WEB, "payments/app": CHECKOUT,
                       "ml-platform/model": SCORER, "__unallocated__/pipeline": ETL,
                       "__unallocated__/app": DEBUG}),
    ],
)  # fmt: skip
def test_allocation_aggregates(env: Env, aggregate: str, expected: dict[str, float]) -> None:
    (allocations,) = env.allocation(f"{env.two_days()}&aggregate={aggregate}")
    assert {n: a["totalCost"] for n, a in allocations.items()} == {
        n: approx(48 * hourly) for n, hourly in expected.items()
    }
    if aggregate == "label:app":
        assert allocations["web"]["properties"] == {"labels": {"app": "web"}}
    if aggregate == "team,kind":
        assert allocations["payments/app"]["properties"] == {"team": "payments", "kind": "app"}


def test_one_set_per_step_and_the_opencost_path_answers_the_same(env: Env) -> None:
    days = env.allocation(f"{env.two_days()}&aggregate=team&step=1d")
    assert len(days) == 2
    for i, day in enumerate(days):
        start = env.day0 + i * DAY
        assert {n: a["totalCost"] for n, a in day.items()} == {
            n: approx(24 * h) for n, h in TEAMS_HOURLY.items()
        }
        assert {(a["window"]["start"], a["window"]["end"], a["minutes"]) for a in day.values()} == {
            (iso(start), iso(start + DAY), 24 * 60)
        }

    hours = env.allocation(f"{env.two_days()}&aggregate=namespace&step=1h")
    assert len(hours) == 48
    assert [h["ml"]["window"]["start"] for h in hours] == [
        iso(env.day0 + i * HOUR) for i in range(48)
    ]
    assert all(h["ml"]["totalCost"] == approx(SCORER) for h in hours)

    assert len(env.allocation("window=24h&step=1h&aggregate=team")) == 24
    assert len(env.allocation("window=7d&step=1d")) == 7
    assert len(env.allocation(f"{env.two_days()}&step=1h&accumulate=true")) == 1

    query = f"{env.two_days()}&aggregate=team&step=1d&idle=true"
    assert env.get(f"/allocation?{query}") == env.get(f"/api/v1/allocation?{query}")
    # no window: the last seven days, as the OpenAPI document says
    assert env.get("/api/v1/allocation?aggregate=team") == env.get(
        "/api/v1/allocation?aggregate=team&window=7d"
    )


def test_idle_is_what_the_nodes_cost_beyond_the_allocations(env: Env) -> None:
    (allocations,) = env.allocation(f"{env.two_days()}&aggregate=team&idle=true")
    assert set(allocations) == {*TEAMS_HOURLY, "__idle__"}
    idle = allocations["__idle__"]
    assert idle["totalCost"] == approx(48 * IDLE_HOURLY)
    # node-g's GPU is fully requested; its idle is CPU and memory only
    assert idle["gpuCost"] == approx(0)
    assert idle["cpuCost"] == approx(48 * ((8 - 3.5) * 0.03 + (8 - 1) * 0.06 + (8 - 2) * 0.01))
    assert sum(a["totalCost"] for a in allocations.values()) == approx(48 * CLUSTER_HOURLY)
    (with_include,) = env.allocation(f"{env.two_days()}&aggregate=team&includeIdle=true")
    assert with_include["__idle__"]["totalCost"] == approx(idle["totalCost"])


@pytest.mark.parametrize("share", ["even", "weighted"])
def test_shared_idle_leaves_the_total_unchanged(env: Env, share: str) -> None:
    (allocations,) = env.allocation(f"{env.two_days()}&aggregate=team&shareIdle={share}")
    assert set(allocations) == set(TEAMS_HOURLY)  # no __idle__ left
    idle = 48 * IDLE_HOURLY
    for name, a in allocations.items():
        own = 48 * TEAMS_HOURLY[name]
        part = idle / 4 if share == "even" else idle * TEAMS_HOURLY[name] / ALLOCATED_HOURLY
        assert a["sharedCost"] == approx(part), name
        assert a["totalCost"] == approx(own + part), name
    assert sum(a["totalCost"] for a in allocations.values()) == approx(48 * CLUSTER_HOURLY)


def test_catalog_team_beats_the_label_and_no_team_is_unallocated(env: Env) -> None:
    (by_workload,) = env.allocation(f"{env.two_days()}&aggregate=workload,team")
    assert set(by_workload) == {
        "shop/web/storefront", "shop/checkout/payments", "ml/scorer/ml-platform",
        "data/etl/__unallocated__", "default/debug/__unallocated__",
    }  # fmt: skip
    (by_label,) = env.allocation(f"{env.two_days()}&aggregate=label:team")
    assert "legacy" in by_label  # the label is still there to aggregate by


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("window=soon", "window 'soon' is not a duration"),
        ("window=2026-11-01T00:00:00Z,yesterday", "window end 'yesterday' is not a time"),
        ("window=7d&step=30m", "step must be at least 1h"),
        ("window=7d&aggregate=colour", "cannot aggregate by 'colour'"),
        ("window=7d&aggregate=team,label:", "cannot aggregate by 'label:'"),
        ("window=7d&team=payments", "unknown parameter 'team'"),
        ("window=7d&shareIdle=bogus", "shareIdle must be none, even or weighted, got 'bogus'"),
        ("window=7d&idle=maybe", "idle must be true or false, got 'maybe'"),
    ],
)
def test_bad_allocation_queries_are_400_with_what_to_do(env: Env, query: str, message: str) -> None:
    status, body = env.server.get_json(f"/api/v1/allocation?{query}")
    assert status == 400, body
    assert set(body) == {"error"}
    assert message in body["error"]
    if "aggregate" in query:
        assert "team" in body["error"] and "label:KEY" in body["error"]
    if "team=payments" in query:
        assert "window" in body["error"] and "shareIdle" in body["error"]


# -- prices and workloads ------------------------------------------------------------------


def test_prices_list_the_version_and_its_rules_with_sources(env: Env) -> None:
    (version,) = env.get("/api/v1/prices")["versions"]
    assert (version["version"], version["currency"]) == (1, "USD")
    keys = ("asset_class", "match_field", "match_value", "capacity_type")
    rules = {tuple(r[k] for k in keys): (r["hourly"], r["source"]) for r in version["rules"]}
    rule = rules[("node", "instance_type", "m6i.2xlarge", "on-demand")]
    assert rule == (0.736, "onepane.yaml pricing.nodes[0]")
    defaults = "onepane.yaml pricing.defaults"
    assert rules[("cpu", None, None, "on-demand")] == (0.03, defaults)
    assert rules[("ram", None, None, "spot")] == (0.001, defaults)
    assert rules[("gpu", None, None, "spot")] == (0.5, defaults)
    assert len(rules) == 7


def test_workloads_show_kind_team_and_where_the_kind_came_from(env: Env) -> None:
    rows = {w["workload"]: w for w in env.get("/api/v1/workloads")["workloads"]}
    assert {n: (w["kind"], w["kind_source"], w["team"]) for n, w in rows.items()} == {
        "shop/web": ("app", "label", "storefront"),
        "shop/checkout": ("app", "catalog", "payments"),
        "ml/scorer": ("model", "label", "ml-platform"),
        "data/etl": ("pipeline", "inferred", None),  # run by a CronJob's Job
        "default/debug": ("app", "default", None),
    }


# -- FOCUS bill and reconciliation ---------------------------------------------------------


def test_the_import_is_listed(env: Env) -> None:
    assert env.import_result["rows"] == 8 and env.import_result["replaced_rows"] == 0
    assert env.import_result["effective_cost"] == approx(2 * (BILLED_PER_DAY + NAT_BILLED))
    (listed,) = env.get("/api/v1/billing/imports")["imports"]
    assert (listed["file"], listed["rows"], listed["rows_kept"]) == ("focus.csv", 8, 8)


def test_reconciliation_per_day_with_the_gap_explained(env: Env) -> None:
    start, end = env.day0 - DAY, env.day0 + 2 * DAY
    report = env.get(f"/api/v1/reconciliation?window={start},{end}")
    assert report["window"] == {"start": iso(start), "end": iso(end)}
    unbilled, *billed_days = report["days"]
    assert [d["date"] for d in report["days"]] == [iso(d)[:10] for d in range(start, end, DAY)]

    assert unbilled["allocated"] == approx(ALLOCATED_PER_DAY)
    assert (unbilled["billed"], unbilled["gap"], unbilled["scale_factor"]) == (None, None, None)
    assert "explained" not in unbilled
    assert sorted(unbilled["unbilled_nodes"]) == ["node-a", "node-b", "node-g"]

    gap = BILLED_PER_DAY - ALLOCATED_PER_DAY
    for day in billed_days:
        assert day["allocated"] == approx(ALLOCATED_PER_DAY)
        assert day["billed"] == approx(BILLED_PER_DAY)  # the NAT gateway is no node's
        assert day["gap"] == approx(gap)
        assert day["scale_factor"] == approx(BILLED_PER_DAY / ALLOCATED_PER_DAY)
        parts = day["explained"]
        assert sum(parts.values()) == approx(day["gap"])
        assert parts["discounts"] == approx(NODE_A_BILLED - NODE_A_LIST)
        assert parts["price_difference"] == approx(NODE_B_LIST - 24 * 0.736)
        assert parts["not_billed"] == approx(0)
        assert parts["other"] == approx(NODE_G_BILLED - 24 * 0.612)  # no ListCost
        nodes = {n["node"]: n for n in day["nodes"]}
        assert {n: v["billed"] for n, v in nodes.items()} == {
            "node-a": approx(NODE_A_BILLED),  # by ResourceId
            "node-b": approx(NODE_B_BILLED),  # by a tag value only
            "node-g": approx(NODE_G_BILLED),  # by the instance id at the end of an ARN
        }
        assert nodes["node-a"]["gap_pct"] == approx(-30.0)

    totals = report["totals"]
    assert totals["billed_days"] == 2
    assert totals["billed"] == approx(2 * BILLED_PER_DAY)
    assert totals["allocated"] == approx(2 * ALLOCATED_PER_DAY)
    assert totals["allocated_unbilled_days"] == approx(ALLOCATED_PER_DAY)
    assert report["unmatched_billing"] == [
        {"service": "Amazon Virtual Private Cloud", "rows": 2, "effective_cost": approx(2.16)}
    ]


def test_reconciled_allocation_adds_up_to_the_bill(env: Env) -> None:
    query = f"window={env.day0},{env.day0 + 2 * DAY}&step=1d&aggregate=team&reconcile=true"
    for day in env.allocation(f"{query}&idle=true"):
        assert sum(a["totalCost"] for a in day.values()) == approx(BILLED_PER_DAY)
        adjustments = sum(
            a[f"{r}CostAdjustment"] for a in day.values() for r in ("cpu", "ram", "gpu")
        )
        assert adjustments == approx(BILLED_PER_DAY - ALLOCATED_PER_DAY)
        web = day["storefront"]  # all on node-a, billed 30% under list
        assert web["totalCost"] == approx(24 * WEB * 0.7)
        assert web["cpuCostAdjustment"] == approx(-0.3 * 24 * 2 * 0.03)
        assert web["ramCostAdjustment"] == approx(-0.3 * 24 * 4 * 0.004)
        scorer = day["ml-platform"]  # node-g, billed 12.0 for 14.688
        assert scorer["totalCost"] == approx(24 * SCORER * NODE_G_BILLED / (24 * 0.612))
    for day in env.allocation(f"{query}&shareIdle=weighted"):
        assert set(day) == set(TEAMS_HOURLY)
        assert sum(a["totalCost"] for a in day.values()) == approx(BILLED_PER_DAY)

    # the unbilled day is left as it was
    before = f"window={env.day0 - DAY},{env.day0}&aggregate=team&idle=true"
    (plain,) = env.allocation(before)
    (scaled,) = env.allocation(f"{before}&reconcile=true")
    assert sum(a["totalCost"] for a in scaled.values()) == approx(ALLOCATED_PER_DAY)
    assert scaled == plain


def test_a_window_that_cuts_days_scales_each_hour_by_its_whole_day(env: Env) -> None:
    """From noon of day0 to noon of day1: half of each billed day, so half of each bill."""
    noon = env.day0 + 12 * HOUR
    (allocations,) = env.allocation(
        f"window={noon},{noon + DAY}&aggregate=team&idle=true&reconcile=true"
    )
    assert sum(a["totalCost"] for a in allocations.values()) == approx(BILLED_PER_DAY)
    assert allocations["storefront"]["totalCost"] == approx(24 * WEB * 0.7)

    report = env.get(f"/api/v1/reconciliation?window={noon},{noon + DAY}")
    assert [(d["date"], d["allocated"], d["billed"]) for d in report["days"]] == [
        (iso(day)[:10], approx(ALLOCATED_PER_DAY), approx(BILLED_PER_DAY))
        for day in (env.day0, env.day1)
    ]


# -- OpenAPI -------------------------------------------------------------------------------


VALID = {"aggregate": "team", "step": "1d", "by": "workload", "shareIdle": "even",
         "workload": "shop/web"}  # fmt: skip


def test_openapi_documents_the_cost_routes(env: Env) -> None:
    paths = env.get("/api/v1/openapi.json")["paths"]
    methods = {
        "/api/v1/allocation": {"get"},
        "/api/v1/unit-costs": {"get"},
        "/api/v1/reconciliation": {"get"},
        "/api/v1/billing/imports": {"get", "post"},
        "/api/v1/prices": {"get"},
        "/api/v1/workloads": {"get"},
        "/api/v1/cost/rollup": {"post"},
    }
    assert {p: set(paths[p]) for p in methods if p in paths} == methods
    for path in ("/api/v1/allocation", "/api/v1/unit-costs", "/api/v1/reconciliation"):
        documented = {p["name"] for p in paths[path]["get"]["parameters"]}
        assert "window" in documented, path
        for name in documented:  # every documented parameter is accepted
            value = VALID.get(name, "true")
            query = f"window=7d&{name}={value}" if name != "window" else "window=7d"
            status, body = env.server.get_json(f"{path}?{query}")
            assert status == 200, (path, name, body)
    allocation = {p["name"]: p for p in paths["/api/v1/allocation"]["get"]["parameters"]}
    assert {"aggregate", "step", "idle", "shareIdle", "reconcile"} <= set(allocation)
    assert "(7d)" in allocation["window"]["description"]
    assert "400" in paths["/api/v1/billing/imports"]["post"]["responses"]
