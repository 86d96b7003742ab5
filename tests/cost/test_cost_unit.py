"""Unit costs end to end: a live `onepane serve` lists a simulated cluster, receives spans
and DCGM gauges from the OpenTelemetry SDK's own OTLP/HTTP exporters, rolls up the hours
when asked, and a user reads what one request, one prediction and one pipeline run cost
from /api/v1/unit-costs, from /metrics and from `onepane cost units`.

Prices are the defaults only, so a pod's hour costs cores × 0.05 + GiB × 0.01 (+ GPUs ×
2.0): figures a user can work out by hand. Every pod has run since well before the last
complete hour, the hour the spans are sent into, so that hour is a full hour of each.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from onepane import kubesim
from onepane.testing import LiveServer, run_onepane, wait_for

S = 1_000_000_000
HOUR = 3600 * S
MS = 1_000_000
REL = 1e-9
CPU, RAM, GPU = 0.05, 0.01, 2.0  # per core-hour, GiB-hour, GPU-hour

CONFIG = """
pricing:
  defaults: {cpu: 0.05, ram: 0.01, gpu: 2.0}
catalog:
  ml/ranker: {kind: model, unit: predictions}
cost:
  rollup_interval: 1h   # only the explicit POST /api/v1/cost/rollup brings hours up to date
  final_after: 6h       # no hour of the test turns final, should the clock pass an hour
"""

# The pods: (namespace, pod, ReplicaSet or Job, node, cores, GiB, GPUs)
CHECKOUT_V1 = ("shop", "checkout-6d5f7c8b9-x2k4m", "checkout-6d5f7c8b9", "node-a", 2, 4, 0)
CHECKOUT_V2 = ("shop", "checkout-7f8e9d6c5-q8w3e", "checkout-7f8e9d6c5", "node-a", 1, 2, 0)
RANKER = ("ml", "ranker-5c4b3a2d1-h7j9k", "ranker-5c4b3a2d1", "gpu-a", 4, 16, 1)
ETL = ("data", "nightly-etl-29500000-p5r6t", "nightly-etl-29500000", "node-a", 1, 2, 0)
SEARCH = ("shop", "search-8b7a6c5d4-z9y8x", "search-8b7a6c5d4", "node-a", 1, 1, 0)


def hourly(pod: tuple[Any, ...]) -> float:
    """What one full hour of ``pod`` costs at the default prices."""
    cores, gib, gpus = pod[4:]
    return cores * CPU + gib * RAM + gpus * GPU


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Scenario:
    server: LiveServer
    start: int  # the last complete hour, [start, end)
    end: int
    rollup: dict[str, Any]

    @property
    def window(self) -> str:
        return f"{iso(self.start)},{iso(self.end)}"

    def get(self, path: str, **query: str) -> dict[str, Any]:
        return get(self.server, path, **query)

    def unit_costs(self, **query: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/unit-costs", **query)["unit_costs"]


# -- the cluster and its telemetry ---------------------------------------------------------


def cluster(sim: kubesim.KubeSim, created: int, etl_start: int, etl_end: int) -> None:
    """Two nodes; a Deployment mid-rollout (two ReplicaSets, one pod each), a model on a GPU
    node, and a CronJob whose Job pod ran for half an hour."""
    sim.put("nodes", kubesim.node("node-a", created, cpu="16", memory="64Gi"))
    sim.put(
        "nodes",
        kubesim.node(
            "gpu-a",
            created,
            cpu="8",
            memory="32Gi",
            gpus=2,
            labels={"nvidia.com/gpu.product": "NVIDIA-A10G"},
        ),
    )
    owners = {
        CHECKOUT_V1: ("replicasets", "ReplicaSet", kubesim.owner_ref("Deployment", "checkout")),
        CHECKOUT_V2: ("replicasets", "ReplicaSet", kubesim.owner_ref("Deployment", "checkout")),
        RANKER: ("replicasets", "ReplicaSet", kubesim.owner_ref("Deployment", "ranker")),
        SEARCH: ("replicasets", "ReplicaSet", kubesim.owner_ref("Deployment", "search")),
        ETL: ("jobs", "Job", kubesim.owner_ref("CronJob", "nightly-etl")),
    }
    for pod, (resource, kind, top) in owners.items():
        namespace, name, owner, node, cores, gib, gpus = pod
        sim.put(resource, kubesim.owned(kind, owner, namespace, top, created))
        requests = {"cpu": str(cores), "memory": f"{gib}Gi"}
        if gpus:
            requests["nvidia.com/gpu"] = str(gpus)
        timing: dict[str, Any] = {"started_ns": created}
        if pod is ETL:
            timing = {"started_ns": etl_start, "finished_ns": etl_end, "phase": "Succeeded"}
        sim.put(
            "pods",
            kubesim.pod(
                name,
                namespace,
                timing["started_ns"],
                node_name=node,
                owner=kubesim.owner_ref(kind, owner),
                requests=requests,
                **timing,
            ),
        )


def send_spans(
    server: LiveServer,
    pod: tuple[Any, ...],
    version: str,
    spans: list[dict],
    pod_name: bool = True,
) -> None:
    """Spans of one pod through the SDK's OTLP/HTTP exporter: each dict gives start (ns),
    kind and attributes; a request gets an INTERNAL child span, which counts as nothing.
    ``pod_name=False``: the resource says which Deployment, not which pod."""
    namespace, name, owner = pod[:3]
    deployment = owner.rsplit("-", 1)[0]
    resource = {
        "service.name": deployment,
        "service.version": version,
        "k8s.namespace.name": namespace,
        "k8s.deployment.name": deployment,
    }
    if pod_name:
        resource["k8s.pod.name"] = name
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{server.otlp_url}/v1/traces"),
            max_export_batch_size=512,
            schedule_delay_millis=60_000,
        )
    )
    tracer = provider.get_tracer("cost-unit-test")
    for spec in spans:
        span = tracer.start_span(
            spec.get("name", "POST /checkout"),
            kind=spec.get("kind", SpanKind.SERVER),
            start_time=spec["start"],
            attributes=spec.get("attributes", {}),
        )
        if spec.get("child"):
            child = tracer.start_span(
                "render",
                context=trace.set_span_in_context(span),
                kind=SpanKind.INTERNAL,
                start_time=spec["start"] + MS,
            )
            child.end(end_time=spec["start"] + 5 * MS)
        span.end(end_time=spec["start"] + 20 * MS)
    assert provider.force_flush(30_000), "the span export did not finish"
    provider.shutdown()


GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"


def send_gpu_utilisation(server: LiveServer, pod: tuple[Any, ...], percents: list[float]) -> None:
    """DCGM's GPU_UTIL gauge for the GPU ``pod`` holds, one export per reading, as an
    OpenTelemetry Collector relaying dcgm-exporter sends it."""
    namespace, name = pod[:2]
    reading: list[float | None] = []

    def observe(options: CallbackOptions) -> list[Observation]:
        if reading[-1] is None:
            return []
        labels = {"gpu": "0", "UUID": "GPU-5e1f0c2a-0d1b-4c55-9f0e-7a1b2c3d4e5f",
                  "device": "nvidia0", "modelName": "NVIDIA A10G", "Hostname": "gpu-a",
                  "pod": name, "namespace": namespace, "container": "main"}  # fmt: skip
        return [Observation(reading[-1], labels)]

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{server.otlp_url}/v1/metrics"),
        export_interval_millis=3_600_000,
    )
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "dcgm-exporter"}),
        views=[View(instrument_name=GPU_UTIL, name=GPU_UTIL)],  # keep dcgm-exporter's name
    )
    provider.get_meter("otelcol/prometheusreceiver").create_observable_gauge(
        GPU_UTIL, [observe], unit="%"
    )
    for percent in percents:
        reading.append(percent)
        assert provider.force_flush(30_000), "the metric export failed"
    reading.append(None)  # shutting down collects once more: report nothing then
    provider.shutdown()


def get(server: LiveServer, path: str, **query: str) -> dict[str, Any]:
    status, body = server.get_json(f"{path}?{urlencode(query)}")
    assert status == 200, body
    return body


def post(server: LiveServer, path: str) -> dict[str, Any]:
    request = urllib.request.Request(server.api_url + path, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    directory = tmp_path_factory.mktemp("unit-costs")
    config = directory / "onepane.yaml"
    config.write_text(CONFIG)
    now = time.time_ns()
    end = now // HOUR * HOUR  # the last complete hour is [start, end)
    start = end - HOUR
    sim = kubesim.KubeSim()
    sim.serve()
    server = None
    try:
        cluster(sim, created=start - 2 * HOUR, etl_start=start + 600 * S, etl_end=start + 2400 * S)
        server = LiveServer(
            directory / "onepane.duckdb",
            *("--decoders", "1", "--kube-api", sim.server.url, "--config", str(config)),
        )
        wait_for(
            "pods listed with their workloads",
            lambda: sorted(
                (p["name"], p["workload"], p["owner_kind"])
                for p in get(server, "/api/v1/k8s/pods", since="30d")["pods"]
            ),
            lambda pods: (
                pods
                == [
                    (CHECKOUT_V1[1], "shop/checkout", "Deployment"),
                    (CHECKOUT_V2[1], "shop/checkout", "Deployment"),
                    (ETL[1], "data/nightly-etl", "CronJob"),
                    (RANKER[1], "ml/ranker", "Deployment"),
                    (SEARCH[1], "shop/search", "Deployment"),
                ]
            ),
        )
        second = [start + (i * 60 + 1) * S for i in range(59)]
        # checkout 1.4.0: 40 requests in the hour, and 5 in the hour before (not counted)
        send_spans(
            server,
            CHECKOUT_V1,
            "1.4.0",
            [{"start": t, "child": True} for t in second[:40]]
            + [{"start": start - HOUR + i * 60 * S} for i in range(5)],
        )
        # checkout 1.5.0, the new ReplicaSet's pod: 10 requests
        send_spans(server, CHECKOUT_V2, "1.5.0", [{"start": t} for t in second[40:50]])
        # search 3.1.0: 20 requests from spans that do not name their pod
        send_spans(server, SEARCH, "3.1.0", [{"start": t} for t in second[:20]], pod_name=False)
        # the ranker: 15 predictions with ml.model.*, 10 with gen_ai.* and token counts
        predictions = [
            {"start": t, "attributes": {"ml.model.name": "ranker", "ml.model.version": "2.0.0"}}
            for t in second[:15]
        ] + [
            {
                "start": t,
                "name": "chat ranker-llm",
                "attributes": {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "ranker-llm",
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 20,
                },
            }
            for t in second[15:25]
        ]
        send_spans(server, RANKER, "2.0.0", predictions)
        # its GPU, busy 20 % and then 60 % of the time: 40 % on average, now
        send_gpu_utilisation(server, RANKER, [20.0, 60.0])
        rolled = post(server, "/api/v1/cost/rollup")
        yield Scenario(server, start, end, rolled)
    finally:
        if server is not None:
            code = server.stop()
            assert code == 0, "".join(server.output)
        sim.close()


# -- what a user checks --------------------------------------------------------------------


def test_the_rollup_on_request_computes_every_pending_hour(scenario: Scenario) -> None:
    rolled = scenario.rollup
    # from the hour the nodes and pods came, through the current hour
    assert rolled["start_ns"] == scenario.start - 2 * HOUR
    assert rolled["end_ns"] >= scenario.end + HOUR
    hours = (rolled["end_ns"] - rolled["start_ns"]) // HOUR
    # four pods in every hour, the Job pod in one; two nodes in every hour
    assert (rolled["pod_hours"], rolled["node_hours"]) == (4 * hours + 1, 2 * hours)


def test_an_apps_cost_per_1k_requests_splits_by_the_version_each_pod_served(
    scenario: Scenario,
) -> None:
    rows = scenario.unit_costs(window=scenario.window, workload="shop/checkout")
    by_version = {row["version"]: row for row in rows}
    assert sorted(by_version) == ["1.4.0", "1.5.0"]
    for version, pod, count in (("1.4.0", CHECKOUT_V1, 40), ("1.5.0", CHECKOUT_V2, 10)):
        row = by_version[version]
        assert (row["workload"], row["kind"], row["unit"]) == (
            "shop/checkout",
            "app",
            "1k requests",
        )
        assert (row["start"], row["end"]) == (iso(scenario.start), iso(scenario.end))
        assert row["count"] == count
        assert row["cost"] == pytest.approx(hourly(pod), rel=REL)
        assert row["unit_cost"] == pytest.approx(hourly(pod) / count * 1000, rel=REL)
    # by hand: 0.14 for 40 requests, 0.07 for 10
    assert by_version["1.4.0"]["unit_cost"] == pytest.approx(3.5, rel=REL)
    assert by_version["1.5.0"]["unit_cost"] == pytest.approx(7.0, rel=REL)


def test_by_workload_merges_the_versions(scenario: Scenario) -> None:
    [row] = scenario.unit_costs(window=scenario.window, workload="shop/checkout", by="workload")
    assert "version" not in row
    assert row["count"] == 50
    assert row["cost"] == pytest.approx(0.14 + 0.07, rel=REL)
    assert row["unit_cost"] == pytest.approx(0.21 / 50 * 1000, rel=REL)


def test_spans_that_name_no_pod_still_give_their_version_a_unit_cost(
    scenario: Scenario,
) -> None:
    # the search pod's spans carry no k8s.pod.name; they all say 3.1.0, so its pod served it
    [row] = scenario.unit_costs(window=scenario.window, workload="shop/search")
    assert (row["version"], row["count"]) == ("3.1.0", 20)
    assert row["cost"] == pytest.approx(hourly(SEARCH), rel=REL)  # 0.05 + 0.01
    assert row["unit_cost"] == pytest.approx(0.06 / 20 * 1000, rel=REL)


def test_a_models_cost_per_1k_predictions_and_per_1m_tokens(scenario: Scenario) -> None:
    [row] = scenario.unit_costs(window=scenario.window, workload="ml/ranker")
    cost = hourly(RANKER)  # 4 × 0.05 + 16 × 0.01 + 1 × 2.0 = 2.36
    assert cost == pytest.approx(2.36, rel=REL)
    assert (row["kind"], row["unit"], row["version"]) == ("model", "1k predictions", "2.0.0")
    assert row["count"] == 25
    assert row["cost"] == pytest.approx(cost, rel=REL)
    assert row["unit_cost"] == pytest.approx(cost / 25 * 1000, rel=REL)
    assert row["tokens"] == 10 * (100 + 20)
    assert row["cost_per_1m_tokens"] == pytest.approx(cost / 1200 * 1e6, rel=REL)


def test_a_pipeline_without_spans_costs_per_run_of_its_job_pods(scenario: Scenario) -> None:
    [row] = scenario.unit_costs(window=scenario.window, workload="data/nightly-etl")
    cost = 0.5 * hourly(ETL)  # half an hour of 1 core and 2 GiB
    assert (row["kind"], row["unit"], row["version"]) == ("pipeline", "run", None)
    assert row["count"] == 1
    assert row["cost"] == pytest.approx(cost, rel=REL)
    assert row["unit_cost"] == pytest.approx(cost, rel=REL)


def test_the_window_holds_every_workload_and_nothing_else(scenario: Scenario) -> None:
    rows = scenario.unit_costs(window=scenario.window, by="workload")
    assert {row["workload"]: row["count"] for row in rows} == {
        "data/nightly-etl": 1,
        "ml/ranker": 25,
        "shop/checkout": 50,
        "shop/search": 20,
    }
    # the hour before: only checkout's 5 early requests, a full hour of its two pods
    before = iso(scenario.start - HOUR) + "," + iso(scenario.start)
    [row] = scenario.unit_costs(window=before, workload="shop/checkout", by="workload")
    assert row["count"] == 5
    assert row["cost"] == pytest.approx(0.21, rel=REL)
    # by version: the pod that sent no spans then is counted under version null, unpriced
    rows = scenario.unit_costs(window=before, workload="shop/checkout")
    assert [(r["version"], r["count"], r["unit_cost"] is None) for r in rows] == [
        ("1.4.0", 5, False),
        (None, 0, True),
    ]
    assert rows[0]["cost"] == pytest.approx(0.14, rel=REL)
    assert rows[1]["cost"] == pytest.approx(0.07, rel=REL)


def test_the_prometheus_gauges_show_what_the_api_gives(scenario: Scenario) -> None:
    samples = scenario.server.samples()
    gauges = {
        dict(labels)["workload"]: (dict(labels), value)
        for (name, labels), value in samples.items()
        if name == "onepane_unit_cost"
    }
    api = {row["workload"]: row for row in scenario.unit_costs(window="24h", by="workload")}
    assert sorted(gauges) == sorted(api)
    assert sorted(api) == ["data/nightly-etl", "ml/ranker", "shop/checkout", "shop/search"]
    for workload, (labels, value) in gauges.items():
        row = api[workload]
        assert (labels["kind"], labels["unit"]) == (row["kind"], row["unit"])
        assert value == pytest.approx(row["unit_cost"], rel=REL), workload

    # the GPU samples came in this hour: 40 % busy, so 60 % of its GPU cost paid for idle
    idle = {dict(labels)["workload"]: v for (n, labels), v in samples.items()
            if n == "onepane_gpu_idle_share"}  # fmt: skip
    assert idle == {"ml/ranker": pytest.approx(0.6, rel=REL)}
    [allocations] = scenario.get("/api/v1/allocation", window="24h", aggregate="workload")["data"]
    ranker = allocations["ml/ranker"]
    assert ranker["gpuUtilization"] == pytest.approx(0.4, rel=REL)
    assert idle["ml/ranker"] == pytest.approx(1 - ranker["gpuUtilization"], rel=REL)


def test_onepane_cost_units_prints_the_same_figures(scenario: Scenario) -> None:
    server = scenario.server.api_url
    done = run_onepane("cost", "units", "--server", server, "--window", scenario.window, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"unit_costs": scenario.unit_costs(window=scenario.window)}

    done = run_onepane("cost", "units", "--server", server, "--window", scenario.window)
    assert done.returncode == 0, done.stderr
    header, *lines = [re.split(r"\s{2,}", line.strip()) for line in done.stdout.splitlines()]
    assert header == ["START", "WORKLOAD", "VERSION", "KIND", "COUNT", "COST", "UNIT COST", "PER"]
    table = {(cells[1], cells[2]): cells for cells in lines}
    hour = iso(scenario.start)
    assert table == {
        ("data/nightly-etl", "-"): [hour, "data/nightly-etl", "-", "pipeline", "1", "0.0350",
                                    "0.0350", "run"],
        ("ml/ranker", "2.0.0"): [hour, "ml/ranker", "2.0.0", "model", "25", "2.3600",
                                 "94.4000", "1k predictions"],
        ("shop/checkout", "1.4.0"): [hour, "shop/checkout", "1.4.0", "app", "40", "0.1400",
                                     "3.5000", "1k requests"],
        ("shop/checkout", "1.5.0"): [hour, "shop/checkout", "1.5.0", "app", "10", "0.0700",
                                     "7.0000", "1k requests"],
        ("shop/search", "3.1.0"): [hour, "shop/search", "3.1.0", "app", "20", "0.0600",
                                   "3.0000", "1k requests"],
    }  # fmt: skip
