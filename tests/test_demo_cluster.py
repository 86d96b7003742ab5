"""The demo company's cluster: two GPU nodes, the recsys model busy by day and idle at
night, a nightly training job — read by a live server through its real collectors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from collectors.gpu import dcgm
from onepane.demo import DemoCompany, DemoConfig
from onepane.demo_cluster import TRAINER, DemoCluster
from onepane.testing import LiveServer, demo_cluster_flags

DAY_S = 600.0
NOON, MIDNIGHT, NEXT_NOON = DAY_S * 0.25, DAY_S * 0.75, DAY_S * 1.25


@pytest.fixture
def make_cluster(
    start_server: Callable[..., LiveServer],
) -> Iterator[Callable[..., DemoCluster]]:
    """A demo company sending to ``endpoint`` and its cluster served on the given ports.

    Depends on ``start_server`` so that servers stop only after the company has flushed."""
    made: list[tuple[DemoCompany, DemoCluster]] = []

    def make(endpoint: str, kube_port: int = 0, dcgm_port: int = 0) -> DemoCluster:
        config = DemoConfig(endpoint=endpoint, seed=7, day_seconds=DAY_S)
        company = DemoCompany(config)
        cluster = DemoCluster(company, config, seed=7)
        cluster.serve(kube_port=kube_port, dcgm_port=dcgm_port)
        made.append((company, cluster))
        return cluster

    yield make
    for company, cluster in made:
        company.shutdown()
        cluster.close()


@pytest.fixture
def cluster(make_cluster: Callable[..., DemoCluster], server: LiveServer) -> DemoCluster:
    return make_cluster(server.otlp_url)


def _page(cluster: DemoCluster, node: str) -> dcgm.Parsed:
    return dcgm.parse(cluster.dcgm_server.pages[f"/{node}/metrics"](), node, time.time_ns())


def _util(cluster: DemoCluster, node: str) -> tuple[float, str | None]:
    rows = _page(cluster, node).points.to_pylist()
    util = next(r["value"] for r in rows if r["metric"] == "DCGM_FI_DEV_GPU_UTIL")
    return util, rows[0]["pod"]


def test_recsys_is_busy_by_day_and_idle_at_night_and_the_trainer_runs_at_night(
    cluster: DemoCluster,
) -> None:
    cluster.tick(elapsed_s=NOON)
    day_util, day_pod = _util(cluster, "gpu-node-1")
    assert day_util > 75 and day_pod.startswith("recsys-model-")
    assert _util(cluster, "gpu-node-2") == (0, None)
    assert not [p for p in cluster.sim.objects("pods") if TRAINER in p["metadata"]["name"]]

    cluster.tick(elapsed_s=MIDNIGHT)
    night_util, _ = _util(cluster, "gpu-node-1")
    assert night_util < 20
    train_util, train_pod = _util(cluster, "gpu-node-2")
    assert train_util > 85 and train_pod.startswith(f"{TRAINER}-")
    (pod,) = [p for p in cluster.sim.objects("pods") if p["metadata"]["name"] == train_pod]
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"] == "gpu-node-2"
    job = cluster.sim.get("jobs", "ml", pod["metadata"]["ownerReferences"][0]["name"])
    assert job["metadata"]["ownerReferences"][0] == {
        **job["metadata"]["ownerReferences"][0],
        "kind": "CronJob",
        "name": TRAINER,
    }

    cluster.tick(elapsed_s=NEXT_NOON)
    pod = cluster.sim.get("pods", "ml", train_pod)
    assert pod["status"]["phase"] == "Succeeded"
    assert "finishedAt" in pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert _util(cluster, "gpu-node-2") == (0, None)


def _poll(read: Callable[[], Any], ok: Callable[[Any], bool], seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_a_live_server_reads_the_demo_cluster_through_its_collectors(
    make_cluster: Callable[..., DemoCluster], start_server: Callable[..., LiveServer]
) -> None:
    """As `onepane up --demo` wires it: the server scrapes the demo's GPU nodes and watches
    its Kubernetes API, and the demo company sends its telemetry to the server."""
    dcgm_port, kube_port, cluster_flags = demo_cluster_flags("1s")
    server = start_server(*cluster_flags)
    cluster = make_cluster(server.otlp_url, kube_port=kube_port, dcgm_port=dcgm_port)
    cluster.tick(elapsed_s=MIDNIGHT)

    def by_workload() -> dict[str, dict]:
        _, body = server.get_json("/api/v1/gpus?since=1h&by=workload")
        return {row["workload"]: row for row in body["workloads"]}

    workloads = _poll(by_workload, lambda w: {"ml/recsys-model", f"ml/{TRAINER}"} <= set(w))
    assert workloads[f"ml/{TRAINER}"]["avg_utilization"] > 0.8
    assert workloads["ml/recsys-model"]["avg_utilization"] < 0.25

    _, body = server.get_json(f"/api/v1/k8s/pods?since=1h&workload=ml/{TRAINER}")
    (trainer,) = body["pods"]
    assert (trainer["owner_kind"], trainer["node"], trainer["phase"]) == (
        "CronJob",
        "gpu-node-2",
        "Running",
    )
    assert (trainer["gpu_physical"], trainer["capacity_type"], trainer["instance_type"]) == (
        1.0,
        "spot",
        "g5.2xlarge",
    )
    assert (trainer["team"], trainer["kind"]) == ("ml-platform", "model")

    _, body = server.get_json("/api/v1/k8s/nodes")
    gpu_nodes = {n["name"]: n for n in body["nodes"] if n["gpu_capacity"]}
    assert set(gpu_nodes) == {"gpu-node-1", "gpu-node-2"}
    assert gpu_nodes["gpu-node-1"]["capacity_type"] == "on-demand"
    assert gpu_nodes["gpu-node-2"]["gpu_product"] == "NVIDIA-A10G"

    cluster.tick(elapsed_s=NEXT_NOON)  # morning: the training job completes

    def trainer_pod() -> dict:
        return server.get_json(f"/api/v1/k8s/pods?since=1h&workload=ml/{TRAINER}")[1]["pods"][0]

    done = _poll(trainer_pod, lambda p: p["end_ns"] is not None)
    assert done["phase"] == "Succeeded" and done["end_observed"] is True
