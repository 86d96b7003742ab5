"""The deploy cost gate end to end: `onepane gate check | verify | decisions` run as real
processes against a live `onepane serve` that lists a simulated cluster, has received spans
through the OpenTelemetry SDK's own OTLP/HTTP exporter and rolled its costs up.

The cluster, priced in onepane.yaml so that a user can work every figure out by hand:

* node-a, an m5.xlarge (4 cores, 16 GiB) at 0.72 an hour: split by the default prices'
  weights (4 × 0.05 : 16 × 0.01), 0.10 per core-hour and 0.02 per GiB-hour;
* gpu-a, a g5.xlarge (8 cores, 32 GiB, one A10G) at 1.92 an hour, its GPU at 1.20 by a GPU
  rule: the other 0.72 split as above, 0.05 per core-hour and 0.01 per GiB-hour;
* shop/checkout (team payments), a Deployment of two pods asking 500m and 1Gi on node-a:
  0.07 a pod-hour. Pod A serves 1.4.0 throughout; pod B served 1.4.0 and, for the last 25
  minutes, the canary 1.5.0;
* ml/ranker (team ml-platform), one pod asking 2 cores, 8Gi and one GPU on gpu-a: 1.38 an
  hour. It served 2.0.0 and, for the last 25 minutes, the canary 3.0.0.

The policy: 0.25 USD per 1k requests for apps, 2.00 USD per 1k predictions for models, at
most 25 % over the current release for all, 500 USD a month for payments.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from deploy_hooks import cli
from onepane import kubesim
from onepane.testing import LiveServer, run_onepane, wait_for
from tests.cost.test_cost_unit import send_spans

S = 1_000_000_000
MINUTE = 60 * S
HOUR = 3600 * S
REL = 1e-9

CONFIG = """\
pricing:
  defaults: {cpu: 0.05, ram: 0.01, gpu: 2.0}
  nodes:
    - instance_type: m5.xlarge
      hourly: 0.72
    - instance_type: g5.xlarge
      hourly: 1.92
  gpus:
    - product: NVIDIA-A10G
      hourly: 1.20
catalog:
  shop/checkout: {kind: app, team: payments}
  ml/ranker: {kind: model, team: ml-platform, unit: predictions}
cost:
  rollup_interval: 1h   # only POST /api/v1/cost/rollup (and gate verify) bring hours up to date
  final_after: 6h
gate:
  environment: production
  min_units: 100
  policy:
    all:
      max_increase: 25%
    kinds:
      app: {max_unit_cost: 0.25 USD per 1k requests}
      model: {max_unit_cost: 2.00 USD per 1k predictions}
    teams:
      payments: {max_monthly_cost: 500 USD}
      ml-platform: {max_monthly_cost: 2000 USD}
"""
APP_LIMIT, MODEL_LIMIT, MAX_INCREASE, PAYMENTS_MONTHLY = 0.25, 2.00, 25.0, 500.0
MONTH_HOURS = 730

# The default prices: their weights split a whole node's price into CPU and memory.
CPU_D, RAM_D = 0.05, 0.01


def node_rates(cores: float, gib: float, hourly: float, gpu_part: float = 0.0) -> dict[str, float]:
    """Per core-hour and GiB-hour of a node priced whole, as pricing.py splits it."""
    rest = hourly - gpu_part
    weights = cores * CPU_D + gib * RAM_D
    return {
        "cpu": rest * cores * CPU_D / weights / cores,
        "ram": rest * gib * RAM_D / weights / gib,
    }


M5 = node_rates(4, 16, 0.72)  # 0.10 per core-hour, 0.02 per GiB-hour
G5 = {**node_rates(8, 32, 1.92, gpu_part=1.20), "gpu": 1.20}  # 0.05, 0.01, 1.20


def pod_hourly(rates: dict[str, float], cpu: float, gib: float, gpus: float = 0) -> float:
    return cpu * rates["cpu"] + gib * rates["ram"] + gpus * rates.get("gpu", 0.0)


CHECKOUT_POD = pod_hourly(M5, 0.5, 1)  # 0.07
RANKER_POD = pod_hourly(G5, 2, 8, 1)  # 1.38

# (namespace, pod, ReplicaSet, node, cpu, memory, GPUs)
CHECKOUT_A = ("shop", "checkout-6d5f7c8b9-x2k4m", "checkout-6d5f7c8b9", "node-a", "500m", "1Gi", 0)
CHECKOUT_B = ("shop", "checkout-6d5f7c8b9-q8w3e", "checkout-6d5f7c8b9", "node-a", "500m", "1Gi", 0)
RANKER = ("ml", "ranker-5c4b3a2d1-h7j9k", "ranker-5c4b3a2d1", "gpu-a", "2", "8Gi", 1)
# Every variable the gate CLI reads for who and where: cleared so the tests set them.
ACTOR_ENV = (*cli.ACTOR_ENV, *cli.CI_ENV, "LOGNAME", "GITHUB_STEP_SUMMARY", "ONEPANE_SERVER")


def line_of(text: str) -> int:
    """The line of CONFIG that holds ``text``."""
    [line] = [i for i, line in enumerate(CONFIG.splitlines(), start=1) if text in line]
    return line


def money(value: float) -> str:
    """As the report writes an amount."""
    return f"{value:,.{2 if abs(value) >= 100 else 4}f} USD"


@dataclass
class Scenario:
    server: LiveServer
    directory: Path
    config: Path
    checkout: list[int]  # when each request of shop/checkout started
    ranker: list[int]  # when each prediction of ml/ranker started
    stable_a: list[int]  # pod A's requests (1.4.0)
    canary_checkout: list[int]  # pod B's 1.5.0 requests
    canary_ranker: list[int]  # the ranker's 3.0.0 predictions

    @property
    def url(self) -> str:
        return self.server.api_url

    def throughput(self, times: list[int]) -> float:
        """Units an hour over the time it served: its spans ÷ first to last span."""
        return len(times) / ((max(times) - min(times)) / HOUR)

    def source(self, key: str, label: str) -> str:
        """Where onepane.yaml sets a threshold, as the gate names it."""
        return f"{self.config} line {line_of(key)} ({label})"

    def get(self, path: str, **query: str) -> Any:
        status, body = self.server.get_json(f"{path}?{urlencode(query)}")
        assert status == 200, body
        return body

    def file(self, name: str, text: str) -> Path:
        path = self.directory / name
        path.write_text(text)
        return path

    def gate(self, *args: str, env: dict[str, str] | None = None, server: str | None = None) -> Any:
        """`onepane gate ARGS --server URL` as a process; stdin closed, a CI-like env."""
        return run_onepane(
            "gate", *args, "--server", server or self.url, env=env if env is not None else ci_env()
        )

    def decide(self, command: str, *args: str, **kw: Any) -> tuple[Any, dict[str, Any]]:
        """Run `onepane gate COMMAND ARGS --json FILE`; the process and the decision."""
        out = self.directory / f"decision-{time.monotonic_ns()}.json"
        done = self.gate(command, *args, "--json", str(out), **kw)
        assert out.exists(), done.stderr
        return done, json.loads(out.read_text())


def ci_env(**extra: str) -> dict[str, str]:
    """This process's environment without any actor, CI or summary variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ACTOR_ENV}
    return {**env, "ONEPANE_ACTOR": "release-bot", **extra}


def cluster(sim: kubesim.KubeSim, created: int) -> None:
    it = "node.kubernetes.io/instance-type"
    sim.put(
        "nodes", kubesim.node("node-a", created, cpu="4", memory="16Gi", labels={it: "m5.xlarge"})
    )
    gpu_labels = {it: "g5.xlarge", "nvidia.com/gpu.product": "NVIDIA-A10G"}
    sim.put(
        "nodes", kubesim.node("gpu-a", created, cpu="8", memory="32Gi", gpus=1, labels=gpu_labels)
    )
    for top, pods in (("checkout", [CHECKOUT_A, CHECKOUT_B]), ("ranker", [RANKER])):
        namespace, _, owner = pods[0][:3]
        sim.put(
            "replicasets",
            kubesim.owned(
                "ReplicaSet", owner, namespace, kubesim.owner_ref("Deployment", top), created
            ),
        )
        for _, name, _, node, cpu, memory, gpus in pods:
            requests = {"cpu": cpu, "memory": memory}
            if gpus:
                requests["nvidia.com/gpu"] = str(gpus)
            sim.put(
                "pods",
                kubesim.pod(
                    name,
                    namespace,
                    created,
                    node_name=node,
                    owner=kubesim.owner_ref("ReplicaSet", owner),
                    requests=requests,
                    started_ns=created,
                ),
            )


def every(start: int, end: int, step_s: float) -> list[int]:
    return list(range(start, end, int(step_s * S)))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    directory = tmp_path_factory.mktemp("gate")
    config = directory / "onepane.yaml"
    config.write_text(CONFIG)
    now = time.time_ns()
    created = now // HOUR * HOUR - 3 * HOUR  # on the hour, three hours before this one
    sim = kubesim.KubeSim()
    sim.serve()
    server = None
    try:
        cluster(sim, created)
        server = LiveServer(
            directory / "onepane.duckdb",
            *("--decoders", "1", "--kube-api", sim.server.url, "--config", str(config)),
        )
        wait_for(
            "pods listed with their workloads",
            lambda: sorted(
                (p["name"], p["workload"])
                for p in server.get_json("/api/v1/k8s/pods?since=30d")[1]["pods"]
            ),
            lambda pods: (
                pods
                == sorted(
                    (p[1], f"{p[0]}/{p[2].split('-')[0]}") for p in (CHECKOUT_A, CHECKOUT_B, RANKER)
                )
            ),
        )
        first, canary_from, stable_until, last = (
            now - 90 * MINUTE,
            now - 25 * MINUTE,
            now - 35 * MINUTE,
            now - MINUTE,
        )
        stable_a = every(first, last, 6)
        stable_b = every(first + 3 * S, stable_until, 6)
        canary_checkout = every(canary_from, last, 4)
        send_spans(server, CHECKOUT_A, "1.4.0", [{"start": t} for t in stable_a])
        send_spans(server, CHECKOUT_B, "1.4.0", [{"start": t} for t in stable_b])
        send_spans(server, CHECKOUT_B, "1.5.0", [{"start": t} for t in canary_checkout])
        model = {"ml.model.name": "ranker"}
        ranker_stable = every(first, stable_until, 3)
        canary_ranker = every(canary_from, last, 6)
        for version, times in (("2.0.0", ranker_stable), ("3.0.0", canary_ranker)):
            spans = [
                {
                    "start": t,
                    "name": "predict",
                    "attributes": {**model, "ml.model.version": version},
                }
                for t in times
            ]
            send_spans(server, RANKER, version, spans)
        request = urllib.request.Request(server.api_url + "/api/v1/cost/rollup", b"", method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200
        yield Scenario(
            server,
            directory,
            config,
            sorted(stable_a + stable_b + canary_checkout),
            sorted(ranker_stable + canary_ranker),
            stable_a,
            canary_checkout,
            canary_ranker,
        )
    finally:
        if server is not None:
            code = server.stop()
            assert code == 0, "".join(server.output)
        sim.close()


# -- manifests ------------------------------------------------------------------------------


def deployment(
    name: str = "checkout",
    namespace: str = "shop",
    replicas: int = 2,
    cpu: str = "500m",
    memory: str = "1Gi",
    gpus: int = 0,
    instance_type: str | None = "m5.xlarge",
    version: str = "1.6.0",
    resources: bool = True,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": f"registry.example.com/{name}:{version}"}
    if resources:
        container["resources"] = {"requests": {"cpu": cpu, "memory": memory}}
        if gpus:
            container["resources"]["limits"] = {"nvidia.com/gpu": gpus}
    pod: dict[str, Any] = {"containers": [container]}
    if instance_type:
        pod["nodeSelector"] = {"node.kubernetes.io/instance-type": instance_type}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/version": version},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    }


def hpa(low: int, high: int, name: str = "checkout", namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": low,
            "maxReplicas": high,
        },
    }


def manifest(scenario: Scenario, name: str, *docs: dict[str, Any]) -> str:
    return str(scenario.file(name, yaml.safe_dump_all(docs, sort_keys=False)))


# four pods of 1 core and 2 GiB: 0.56 an hour, four times what runs now, over every unit limit
BIG: dict[str, Any] = {"replicas": 4, "cpu": "1", "memory": "2Gi"}


def checks(decision: dict[str, Any]) -> dict[str, Any]:
    return {c["threshold"]: c for c in decision["checks"]}


# -- check: over and under the thresholds ---------------------------------------------------


def test_a_release_over_the_threshold_is_blocked_with_exit_1(scenario: Scenario) -> None:
    # four pods of 1 core and 2 GiB on m5.xlarge: 4 × (0.10 + 2 × 0.02) = 0.56 an hour
    path = manifest(scenario, "big.yaml", deployment(**BIG))
    done, decision = scenario.decide("check", "--workload", "shop/checkout", "--manifest", path)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""

    hourly = 4 * pod_hourly(M5, 1, 2)
    assert hourly == pytest.approx(0.56, rel=REL)
    unit_cost = hourly / scenario.throughput(scenario.checkout) * 1000
    assert unit_cost > APP_LIMIT
    assert (decision["verdict"], decision["exit_code"], decision["action"]) == (
        "blocked",
        1,
        "check",
    )
    assert (decision["workload"], decision["version"], decision["kind"], decision["team"]) == (
        "shop/checkout",
        "1.6.0",
        "app",
        "payments",
    )
    assert (decision["unit"], decision["environment"]) == ("1k requests", "production")
    assert decision["actor"] == "release-bot"
    assert isinstance(decision["decision_id"], int)
    rates = decision["rates"]
    assert rates["cpu_core_hour"] == pytest.approx(0.10, rel=REL)
    assert rates["ram_gib_hour"] == pytest.approx(0.02, rel=REL)
    assert "m5.xlarge" in rates["source"]
    proj = decision["projection"]
    assert proj["hourly"] == pytest.approx(hourly, rel=REL)
    assert proj["monthly"] == pytest.approx(hourly * MONTH_HOURS, rel=REL)
    assert proj["current_hourly"] == pytest.approx(2 * CHECKOUT_POD, rel=REL)
    assert proj["unit_cost"] == pytest.approx(unit_cost, rel=1e-6)
    assert proj["increase_pct"] == pytest.approx(300.0, rel=1e-6)  # 0.56 vs 0.14 an hour
    assert decision["observed"]["units"] == len(scenario.checkout)

    found = checks(decision)
    assert {name: c["passed"] for name, c in found.items()} == {
        "max_unit_cost": False,
        "max_increase": False,
        "max_monthly_cost": True,  # 408.80 a month, under payments' 500
    }
    assert found["max_unit_cost"]["value"] == pytest.approx(unit_cost, rel=1e-6)
    assert found["max_unit_cost"]["limit"] == APP_LIMIT
    assert found["max_unit_cost"]["source"] == scenario.source(
        "app: {max_unit_cost", "gate.policy.kinds.app"
    )
    assert found["max_increase"]["source"] == scenario.source(
        "max_increase: 25%", "gate.policy.all"
    )
    assert found["max_monthly_cost"]["value"] == pytest.approx(408.8, rel=REL)
    assert found["max_monthly_cost"]["limit"] == PAYMENTS_MONTHLY
    assert found["max_monthly_cost"]["source"] == scenario.source(
        "payments: {max_monthly_cost", "gate.policy.teams.payments"
    )

    report = done.stdout
    assert "## Onepane gate check: ❌ blocked — `shop/checkout` 1.6.0 (production)" in report
    assert f"| Unit cost | {money(unit_cost)} | ≤ 0.25 USD per 1k requests | " in report
    assert found["max_unit_cost"]["source"] in report
    assert "| Unit cost increase | +300.0% | ≤ 25% over the current release |" in report
    assert f"| Monthly cost | {money(408.8)} | ≤ 500 USD |" in report
    assert "| Cost per hour | 0.1400 USD | 0.5600 USD |" in report
    assert "- Deployment shop/checkout: 4 × (1 CPU, 2 GiB, 0 GPU) at 0.1400 USD" in report
    assert f"**Blocked by policy** (decision {decision['decision_id']})" in report
    assert f"onepane gate check --workload shop/checkout --manifest {path}" in report
    assert '--override-reason "why" --approver NAME' in report


def test_a_release_under_the_thresholds_passes_and_unchanged_projects_0_percent(
    scenario: Scenario,
) -> None:
    path = manifest(scenario, "same.yaml", deployment())  # what runs now: 2 × 500m, 1Gi
    done, decision = scenario.decide("check", "--workload", "shop/checkout", "--manifest", path)
    assert done.returncode == 0, done.stderr
    assert (decision["verdict"], decision["exit_code"]) == ("pass", 0)
    proj = decision["projection"]
    hourly = 2 * CHECKOUT_POD
    assert proj["hourly"] == pytest.approx(hourly, rel=REL)
    assert proj["current_hourly"] == pytest.approx(hourly, rel=REL)
    assert proj["increase_pct"] == pytest.approx(0.0, abs=1e-9)
    unit_cost = hourly / scenario.throughput(scenario.checkout) * 1000
    assert proj["unit_cost"] == pytest.approx(unit_cost, rel=1e-6)
    assert proj["current_unit_cost"] == pytest.approx(unit_cost, rel=1e-6)
    assert decision["observed"]["throughput_per_hour"] == pytest.approx(
        scenario.throughput(scenario.checkout), rel=1e-6
    )
    assert decision["rates"]["source"].startswith(
        "nodes matching nodeSelector {'node.kubernetes.io/instance-type': 'm5.xlarge'} (m5.xlarge)"
    )
    assert all(c["passed"] is True for c in decision["checks"])
    assert checks(decision)["max_increase"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert "## Onepane gate check: ✅ pass" in done.stdout
    assert "| Unit cost increase | +0.0% |" in done.stdout
    assert f"**Passed** (decision {decision['decision_id']})." in done.stdout


def test_a_model_is_priced_at_the_gpu_nodes_its_node_selector_picks(scenario: Scenario) -> None:
    path = manifest(
        scenario,
        "ranker.yaml",
        deployment(
            "ranker", "ml", 1, "2", "8Gi", gpus=1, instance_type="g5.xlarge", version="2.1.0"
        ),
    )
    done, decision = scenario.decide("check", "--workload", "ml/ranker", "--manifest", path)
    assert done.returncode == 0, done.stdout + done.stderr
    rates = decision["rates"]
    assert (rates["cpu_core_hour"], rates["ram_gib_hour"], rates["gpu_hour"]) == (
        pytest.approx(0.05, rel=REL),
        pytest.approx(0.01, rel=REL),
        pytest.approx(1.2, rel=REL),
    )
    assert "g5.xlarge" in rates["source"]
    assert (decision["kind"], decision["team"], decision["unit"]) == (
        "model",
        "ml-platform",
        "1k predictions",
    )
    proj = decision["projection"]
    assert proj["hourly"] == pytest.approx(RANKER_POD, rel=REL)  # 2 × 0.05 + 8 × 0.01 + 1.20
    assert round(RANKER_POD, 9) == 1.38
    unit_cost = RANKER_POD / scenario.throughput(scenario.ranker) * 1000
    assert unit_cost < MODEL_LIMIT
    assert proj["unit_cost"] == pytest.approx(unit_cost, rel=1e-6)
    assert proj["increase_pct"] == pytest.approx(0.0, abs=1e-9)
    found = checks(decision)
    assert found["max_unit_cost"]["source"] == scenario.source(
        "model: {max_unit_cost", "gate.policy.kinds.model"
    )
    assert found["max_monthly_cost"]["value"] == pytest.approx(1.38 * MONTH_HOURS, rel=REL)
    assert decision["verdict"] == "pass"
    assert f"| Unit cost | {money(unit_cost)} | ≤ 2 USD per 1k predictions |" in done.stdout


def test_report_when_prints_nothing_for_a_pass_without_increase(scenario: Scenario) -> None:
    path = manifest(scenario, "quiet.yaml", deployment())
    for when in ("blocked", "increase"):
        done = scenario.gate(
            "check", "--workload", "shop/checkout", "--manifest", path, "--report-when", when
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    big = manifest(scenario, "loud.yaml", deployment(**BIG))
    done = scenario.gate(
        "check", "--workload", "shop/checkout", "--manifest", big, "--report-when", "blocked"
    )
    assert done.returncode == 1
    assert "❌ blocked" in done.stdout


# -- check: undecided ------------------------------------------------------------------------

GARBAGE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout, namespace: shop
spec:
  replicas: 2
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "case",
    ["unknown workload", "garbage YAML", "no resources", "server down"],
)
def test_what_the_gate_cannot_decide_exits_2_with_one_line(scenario: Scenario, case: str) -> None:
    workload, server = "shop/checkout", None
    if case == "unknown workload":
        workload = "shop/chekout"
        path = manifest(scenario, "typo.yaml", deployment("chekout"))
        expect = ["unknown workload 'shop/chekout'", "Did you mean shop/checkout?"]
    elif case == "garbage YAML":
        path = str(scenario.file("garbage.yaml", GARBAGE))
        expect = [f"{path} line 4: not valid YAML"]
    elif case == "no resources":
        path = manifest(scenario, "bare.yaml", deployment(resources=False))
        expect = [f"{path} line ", "Deployment shop/checkout sets no resources.requests"]
    else:
        path = manifest(scenario, "fine.yaml", deployment())
        server = f"http://127.0.0.1:{closed_port()}"
        expect = [f"cannot reach the Onepane server at {server}"]
    args = ("check", "--workload", workload, "--manifest", path)

    done, decision = scenario.decide(*args, server=server)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("onepane gate: cannot decide: ")
    for text in expect:
        assert text in line
    assert (decision["verdict"], decision["exit_code"]) == ("undecided", 2)
    assert "the release is held (exit 2)" in done.stdout

    done = scenario.gate(*args, "--fail-open", server=server)
    assert done.returncode == 0, done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "failing open: the release goes on" in done.stdout


# -- check: break-glass overrides -----------------------------------------------------------


def test_an_override_lets_a_blocked_release_through_and_is_audited(scenario: Scenario) -> None:
    path = manifest(scenario, "override.yaml", deployment(**BIG, version="1.7.0"))
    reason = "Black Friday capacity, approved in INC-4211"
    env = ci_env(GITHUB_REPOSITORY="acme/shop", GITHUB_SHA="9f3c2a1", GITHUB_RUN_ID="77")
    done, decision = scenario.decide(
        "check",
        "--workload",
        "shop/checkout",
        "--manifest",
        path,
        "--override-reason",
        reason,
        "--approver",
        "alice",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert (decision["verdict"], decision["exit_code"]) == ("overridden", 0)
    assert (decision["override_reason"], decision["approver"]) == (reason, "alice")
    assert decision["ci"] == {
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_SHA": "9f3c2a1",
        "GITHUB_RUN_ID": "77",
    }
    found = checks(decision)  # still over: that is what was let through, and recorded
    assert (found["max_unit_cost"]["passed"], found["max_increase"]["passed"]) == (False, False)
    assert "⚠️ overridden" in done.stdout
    assert f"**Overridden** by alice: {reason} (decision {decision['decision_id']})" in done.stdout

    listed = scenario.get("/api/v1/gate/decisions", workload="shop/checkout", verdict="overridden")[
        "decisions"
    ]
    [mine] = [d for d in listed if d["decision_id"] == decision["decision_id"]]
    assert (mine["action"], mine["version"], mine["override_reason"], mine["approver"]) == (
        "check",
        "1.7.0",
        reason,
        "alice",
    )
    assert mine["actor"] == "release-bot"
    assert mine["time"].endswith("Z")

    one = scenario.get(f"/api/v1/gate/decisions/{decision['decision_id']}")
    assert one == mine
    assert one["projection"] == decision["projection"]

    [deployed] = scenario.get("/api/v1/deployments", workload="shop/checkout", version="1.7.0")[
        "deployments"
    ]
    assert (deployed["verdict"], deployed["action"], deployed["decision_id"]) == (
        "overridden",
        "check",
        decision["decision_id"],
    )
    assert (deployed["kind"], deployed["team"], deployed["environment"]) == (
        "app",
        "payments",
        "production",
    )

    status, body = scenario.server.get_json("/api/v1/gate/decisions/999999")
    assert status == 404
    assert "no gate decision 999999" in body["error"]

    table = scenario.gate("decisions", "--workload", "shop/checkout", "--verdict", "overridden")
    assert table.returncode == 0, table.stderr
    row = next(
        line
        for line in table.stdout.splitlines()[1:]
        if line.split()[0] == str(decision["decision_id"])
    )
    assert row.split()[2:] == ["check", "overridden", "shop/checkout", "1.7.0"]


def test_an_override_without_an_approver_exits_2(scenario: Scenario) -> None:
    path = manifest(scenario, "anon.yaml", deployment(**BIG, version="1.8.0"))
    env = {k: v for k, v in ci_env().items() if k != "ONEPANE_ACTOR"}  # nobody is known
    done = scenario.gate(
        "check",
        "--workload",
        "shop/checkout",
        "--manifest",
        path,
        "--override-reason",
        "hotfix",
        env=env,
    )
    assert done.returncode == 2, done.stdout
    [line] = done.stderr.splitlines()
    assert line == (
        "onepane gate: cannot decide: an override needs the approver's identity: --approver NAME"
    )
    done = scenario.gate(
        "check",
        "--workload",
        "shop/checkout",
        "--manifest",
        path,
        "--override-reason",
        "  ",
        "--approver",
        "alice",
    )
    assert done.returncode == 2
    assert "--override-reason needs the reason, in words" in done.stderr
    assert scenario.get("/api/v1/gate/decisions", version="1.8.0")["decisions"] == []


# -- check: where the report goes, which policy, dry runs -----------------------------------


def test_the_report_is_appended_to_the_github_step_summary(scenario: Scenario) -> None:
    summary = scenario.file("summary.md", "# Deploy shop\n\n")
    path = manifest(scenario, "summary.yaml", deployment())
    env = ci_env(GITHUB_STEP_SUMMARY=str(summary))
    done = scenario.gate("check", "--workload", "shop/checkout", "--manifest", path, env=env)
    assert done.returncode == 0, done.stderr
    assert summary.read_text() == "# Deploy shop\n\n" + done.stdout + "\n"

    down = f"http://127.0.0.1:{closed_port()}"
    again = scenario.gate(
        "check", "--workload", "shop/checkout", "--manifest", path, env=env, server=down
    )
    assert again.returncode == 2
    assert summary.read_text() == ("# Deploy shop\n\n" + done.stdout + "\n" + again.stdout + "\n")
    assert "## Onepane gate: ❔ undecided" in again.stdout


def test_a_malformed_policy_file_exits_2_naming_file_and_line(scenario: Scenario) -> None:
    path = manifest(scenario, "policy-check.yaml", deployment())
    bad = scenario.file(
        "bad-policy.yaml", "policy:\n  kinds:\n    app:\n      max_unit_cost: cheap\n"
    )
    done = scenario.gate(
        "check", "--workload", "shop/checkout", "--manifest", path, "--policy", str(bad)
    )
    assert done.returncode == 2, done.stdout
    [line] = done.stderr.splitlines()
    assert f"{bad} line 4: policy.kinds.app.max_unit_cost: 'cheap' is not an amount of money" in (
        line
    )

    broken = scenario.file("broken-policy.yaml", "policy:\n  all: {max_increase: 10%\n")
    done = scenario.gate(
        "check",
        "--workload",
        "shop/checkout",
        "--manifest",
        path,
        "--policy",
        str(broken),
        "--fail-open",
    )
    assert done.returncode == 0
    [line] = done.stderr.splitlines()
    assert f"{broken} line 3: not valid YAML" in line


def test_a_policy_file_replaces_the_servers_policy(scenario: Scenario) -> None:
    big = manifest(scenario, "big-with-policy.yaml", deployment(**BIG))
    lenient = scenario.file(
        "lenient.yaml", "policy:\n  kinds:\n    app: {max_unit_cost: 1.00 USD per 1k requests}\n"
    )
    done, decision = scenario.decide(
        "check", "--workload", "shop/checkout", "--manifest", big, "--policy", str(lenient)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert decision["verdict"] == "pass"
    assert decision["policy_source"] == str(lenient)
    [check] = decision["checks"]  # no increase or monthly limit in the file: none applies
    assert (check["threshold"], check["limit"], check["passed"]) == ("max_unit_cost", 1.0, True)
    assert check["source"] == f"{lenient} line 3 (policy.kinds.app)"
    assert decision["projection"]["increase_pct"] == pytest.approx(300.0, rel=1e-6)

    strict = scenario.file(
        "strict.yaml",
        "gate:\n  policy:\n    workloads:\n      "
        "shop/checkout: {max_unit_cost: 0.01 USD per 1k requests}\n",
    )
    same = manifest(scenario, "same-with-policy.yaml", deployment())
    done, decision = scenario.decide(
        "check", "--workload", "shop/checkout", "--manifest", same, "--policy", str(strict)
    )
    assert done.returncode == 1
    assert [c["source"] for c in decision["checks"]] == [
        f"{strict} line 4 (gate.policy.workloads.shop/checkout)"
    ]


def test_a_dry_run_answers_but_records_nothing(scenario: Scenario) -> None:
    path = manifest(scenario, "dry.yaml", deployment(**BIG, version="dry-1"))
    done, decision = scenario.decide(
        "check", "--workload", "shop/checkout", "--manifest", path, "--dry-run"
    )
    assert done.returncode == 1, done.stderr
    assert decision["verdict"] == "blocked"
    assert decision["decision_id"] is None
    assert "not recorded (dry run)" in done.stdout
    assert scenario.get("/api/v1/gate/decisions", version="dry-1")["decisions"] == []
    assert scenario.get("/api/v1/deployments", version="dry-1")["deployments"] == []


@pytest.mark.parametrize(
    ("low", "high", "replicas", "basis"),
    [(1, 10, 2, "its observed average replicas"), (3, 6, 3, "min; {avg:.1f} observed on average")],
)
def test_an_autoscaled_release_is_projected_within_min_and_max(
    scenario: Scenario, low: int, high: int, replicas: int, basis: str
) -> None:
    path = manifest(scenario, f"hpa-{low}-{high}.yaml", deployment(), hpa(low, high))
    done, decision = scenario.decide("check", "--workload", "shop/checkout", "--manifest", path)
    # two pods ran every hour: observed 2 replicas on average, kept within min and max
    avg = decision["observed"]["avg_replicas"]
    assert round(avg) == 2
    basis = basis.format(avg=avg)
    proj = decision["projection"]
    [component] = proj["components"]
    assert (component["replicas"], component["min_replicas"], component["max_replicas"]) == (
        replicas,
        low,
        high,
    )
    assert component["autoscaled"] is True
    assert proj["hourly"] == pytest.approx(replicas * CHECKOUT_POD, rel=REL)
    assert proj["hourly_min"] == pytest.approx(low * CHECKOUT_POD, rel=REL)
    assert proj["hourly_max"] == pytest.approx(high * CHECKOUT_POD, rel=REL)
    assert proj["monthly_max"] == pytest.approx(high * CHECKOUT_POD * MONTH_HOURS, rel=REL)
    note = f"Deployment shop/checkout autoscales {low}–{high}: projected at {replicas} ({basis})"
    assert note in decision["notes"]
    report = done.stdout
    assert f"HorizontalPodAutoscaler: {low} to {high} replicas" in report
    assert f"autoscales {low}–{high}: projected at {replicas}" in report
    monthly = checks(decision)["max_monthly_cost"]
    assert monthly["value"] == pytest.approx(replicas * CHECKOUT_POD * MONTH_HOURS, rel=REL)
    at_max = money(high * CHECKOUT_POD * MONTH_HOURS)
    assert f"up to {at_max} at max replicas" in monthly["detail"]
    increase = (replicas / 2 - 1) * 100
    assert proj["increase_pct"] == pytest.approx(increase, abs=1e-6)
    assert done.returncode == (0 if increase <= MAX_INCREASE else 1), report


# -- verify: a canary's observed unit cost ----------------------------------------------------


def window_count(times: list[int], window: dict[str, int]) -> int:
    return sum(window["start_ns"] <= t < window["end_ns"] for t in times)


def test_verify_passes_a_canary_within_the_policy(scenario: Scenario) -> None:
    done, decision = scenario.decide(
        "verify", "--workload", "shop/checkout", "--version", "1.5.0", "--window", "30m"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (decision["action"], decision["verdict"], decision["exit_code"]) == ("verify", "pass", 0)
    window = decision["window"]
    assert window["end_ns"] - window["start_ns"] == 30 * MINUTE
    seen = decision["observed"]
    units = len(scenario.canary_checkout)  # pod B's 1.5.0 requests, all in the window
    assert window_count(scenario.canary_checkout, window) == units
    assert seen["units"] == units
    assert seen["pods"] == 1
    cost = CHECKOUT_POD * 0.5  # pod B, half an hour
    assert seen["cost"] == pytest.approx(cost, rel=1e-6)
    assert seen["unit_cost"] == pytest.approx(cost / units * 1000, rel=1e-6)
    # the baseline: pod A, 1.4.0, in the same half hour
    baseline = CHECKOUT_POD * 0.5 / window_count(scenario.stable_a, window) * 1000
    assert seen["baseline_unit_cost"] == pytest.approx(baseline, rel=1e-6)
    assert seen["baseline"] == "versions 1.4.0 in the same window"
    found = checks(decision)
    assert sorted(found) == ["max_increase", "max_unit_cost"]  # monthly: gate check's
    assert found["max_unit_cost"]["value"] == pytest.approx(cost / units * 1000, rel=1e-6)
    assert found["max_increase"]["value"] == pytest.approx(
        (cost / units * 1000 / baseline - 1) * 100, rel=1e-6
    )
    assert all(c["passed"] for c in decision["checks"])
    assert "max_monthly_cost is checked by `onepane gate check`, not verify" in decision["notes"]
    assert "## Onepane gate verify: ✅ pass — `shop/checkout` 1.5.0 (production)" in done.stdout

    [recorded] = [
        d
        for d in scenario.get("/api/v1/gate/decisions", action="verify", workload="shop/checkout")[
            "decisions"
        ]
        if d["decision_id"] == decision["decision_id"]
    ]
    assert (recorded["verdict"], recorded["version"]) == ("pass", "1.5.0")
    # a verification is not a release
    assert scenario.get("/api/v1/deployments", version="1.5.0")["deployments"] == []


def test_verify_blocks_a_canary_over_the_policy(scenario: Scenario) -> None:
    done, decision = scenario.decide(
        "verify", "--workload", "ml/ranker", "--version", "3.0.0", "--window", "30m"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert decision["verdict"] == "blocked"
    units = len(scenario.canary_ranker)
    cost = RANKER_POD * 0.5  # its only pod served 3.0.0 all the half hour
    unit_cost = cost / units * 1000  # 0.69 for 240 predictions: 2.875 per 1k
    assert unit_cost > MODEL_LIMIT
    seen = decision["observed"]
    assert (seen["units"], seen["pods"]) == (units, 1)
    assert seen["cost"] == pytest.approx(cost, rel=1e-6)
    found = checks(decision)
    assert found["max_unit_cost"]["passed"] is False
    assert found["max_unit_cost"]["value"] == pytest.approx(unit_cost, rel=1e-6)
    assert found["max_unit_cost"]["limit"] == MODEL_LIMIT
    # no other version in the window: the baseline is the workload before it
    assert seen["baseline"] == "the workload over the 7d before"
    assert seen["baseline_unit_cost"] > 0
    assert found["max_increase"]["value"] == pytest.approx(
        (unit_cost / seen["baseline_unit_cost"] - 1) * 100, rel=1e-6
    )
    assert "## Onepane gate verify: ❌ blocked — `ml/ranker` 3.0.0 (production)" in done.stdout
    assert "roll it back, or fix it and verify again" in done.stdout
    assert "--override-reason" not in done.stdout  # verify takes no override
    assert f"- observed: {money(unit_cost)} per 1k predictions from {units:,} units" in done.stdout


def test_verify_with_too_few_units_is_undecided(scenario: Scenario) -> None:
    done, decision = scenario.decide(
        "verify", "--workload", "shop/checkout", "--version", "1.5.0", "--min-units", "1000"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert (decision["verdict"], decision["exit_code"], decision["checks"]) == ("undecided", 2, [])
    units = len(scenario.canary_checkout)
    assert f"too little to judge: {units} of 1.5.0 in the window (need 1000)" in " ".join(
        decision["notes"]
    )
    assert "**Undecided**" in done.stdout
    # a version nobody served: nothing to judge either; --fail-open lets it go on
    done = scenario.gate(
        "verify", "--workload", "shop/checkout", "--version", "9.9.9", "--fail-open"
    )
    assert done.returncode == 0, done.stderr
    assert "❔ undecided" in done.stdout
    undecided = scenario.get("/api/v1/gate/decisions", action="verify", verdict="undecided")
    assert {d["version"] for d in undecided["decisions"]} >= {"1.5.0", "9.9.9"}


def test_the_verify_api_answers_a_verdict_for_argo_rollouts(scenario: Scenario) -> None:
    body = scenario.get(
        "/api/v1/gate/verify", workload="shop/checkout", version="1.5.0", window="30m"
    )
    assert body["verdict"] == "pass"
    assert body["exit_code"] == 0
    assert body["action"] == "verify"
    body = scenario.get("/api/v1/gate/verify", workload="ml/ranker", version="3.0.0")
    assert body["verdict"] == "blocked"  # the server's verify window, 30m
    status, error = scenario.server.get_json(
        "/api/v1/gate/verify?" + urlencode({"workload": "shop/nothing", "version": "1"})
    )
    assert status == 404
    assert "unknown workload 'shop/nothing'" in error["error"]
    done = scenario.gate("verify", "--workload", "shop/nothing", "--version", "1")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "unknown workload 'shop/nothing'" in line
