"""The Kubernetes inventory end to end: a real `onepane serve --kube-api URL` lists and watches
an in-memory Kubernetes API (real wire format, real kubernetes client) and a user reads the
pods and nodes back from /api/v1/k8s/*, /api/v1/collectors and /metrics.

Each test polls with a deadline: watch events reach the store about once a second.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from onepane import kubesim
from onepane.testing import LiveServer, wait_for

SECOND = 1_000_000_000
Row = dict[str, Any]


class Cluster:
    """The in-memory API plus what a test did to it: every pod ever created, by uid."""

    def __init__(self) -> None:
        self.sim = kubesim.KubeSim()
        self.sim.serve()
        self.url = self.sim.server.url
        # Kubernetes times have whole seconds; start ten minutes ago
        self.t0 = (time.time_ns() // SECOND - 600) * SECOND
        self.created: dict[str, str] = {}  # uid -> namespace/name

    def node(self, name: str, **kwargs: Any) -> Row:
        return self.sim.put("nodes", kubesim.node(name, self.t0, **kwargs))

    def owned(self, kind: str, name: str, namespace: str, owner: Row | None) -> Row:
        resource = {"ReplicaSet": "replicasets", "Job": "jobs"}[kind]
        return self.sim.put(resource, kubesim.owned(kind, name, namespace, owner, self.t0))

    def pod(self, name: str, namespace: str = "shop", **kwargs: Any) -> Row:
        kwargs.setdefault("node_name", "cpu-node-1")
        kwargs.setdefault("started_ns", self.t0 + 5 * SECOND)
        pod = self.sim.put("pods", kubesim.pod(name, namespace, self.t0, **kwargs))
        self.created[pod["metadata"]["uid"]] = f"{namespace}/{name}"
        return pod

    def finish(self, pod: Row, finished_ns: int, phase: str = "Succeeded") -> Row:
        """The same pod (same uid) after its container exited."""
        meta = pod["metadata"]
        done = kubesim.pod(
            meta["name"],
            meta["namespace"],
            self.t0,
            node_name=pod["spec"].get("nodeName"),
            phase=phase,
            started_ns=self.t0 + 5 * SECOND,
            finished_ns=finished_ns,
        )
        done["metadata"] = copy.deepcopy(meta)
        return self.sim.put("pods", done)

    def delete_pod(self, pod: Row) -> None:
        self.sim.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])

    def close(self) -> None:
        self.sim.close()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    c.node(
        "cpu-node-1",
        cpu="8",
        memory="32Gi",
        labels={
            "node.kubernetes.io/instance-type": "m7i.2xlarge",
            "eks.amazonaws.com/capacityType": "ON_DEMAND",
            "topology.kubernetes.io/region": "eu-west-1",
            "topology.kubernetes.io/zone": "eu-west-1a",
        },
    )
    c.node(
        "gpu-node-1",
        cpu="48",
        memory="192Gi",
        gpus=4,
        labels={
            "node.kubernetes.io/instance-type": "g5.12xlarge",
            "karpenter.sh/capacity-type": "spot",
            "nvidia.com/gpu.product": "NVIDIA-A10G",
            "topology.kubernetes.io/region": "eu-west-1",
            "topology.kubernetes.io/zone": "eu-west-1b",
        },
    )
    yield c
    c.close()


@pytest.fixture
def serve(start_server: Callable[..., LiveServer], cluster: Cluster) -> Callable[..., LiveServer]:
    """`onepane serve --kube-api <the in-memory API>`, waiting until pods and nodes are listed."""

    def start(db: Path | None = None) -> LiveServer:
        server = start_server("--kube-api", cluster.url, db=db)
        wait_for(
            "pods and nodes listed",
            lambda: kube_status(server),
            lambda s: s["pods"]["synced"] and s["nodes"]["synced"],
        )
        return server

    return start


def pods(server: LiveServer) -> list[Row]:
    status, body = server.get_json("/api/v1/k8s/pods?since=30d")
    assert status == 200, body
    return body["pods"]


def pods_by_name(server: LiveServer) -> dict[str, Row]:
    rows = pods(server)
    names = Counter(f"{p['namespace']}/{p['name']}" for p in rows)
    assert all(n == 1 for n in names.values()), names
    return {f"{p['namespace']}/{p['name']}": p for p in rows}


def nodes_by_name(server: LiveServer) -> dict[str, Row]:
    status, body = server.get_json("/api/v1/k8s/nodes?since=30d")
    assert status == 200, body
    return {n["name"]: n for n in body["nodes"]}


def kube_status(server: LiveServer) -> dict[str, Row]:
    status, body = server.get_json("/api/v1/collectors")
    assert status == 200, body
    return body["kubernetes"]


def wait_for_pods(server: LiveServer, what: str, ok: Callable[[dict[str, Row]], Any]):
    return wait_for(what, lambda: pods_by_name(server), ok)


def assert_each_pod_once(server: LiveServer, cluster: Cluster) -> list[Row]:
    rows = pods(server)
    uids = Counter(p["uid"] for p in rows)
    assert [uid for uid, n in uids.items() if n > 1] == []
    assert set(uids) == set(cluster.created)
    assert len(rows) == len(cluster.created)
    return rows


def output(server: LiveServer) -> str:
    return "".join(server.output)


# -- the first list ----------------------------------------------------------------------


def test_the_first_list_stores_nodes_and_pods_with_their_top_owners(serve, cluster) -> None:
    cluster.owned(
        "ReplicaSet", "checkout-7d9f8b6c5d", "shop", kubesim.owner_ref("Deployment", "checkout")
    )
    rollout = kubesim.owner_ref("Rollout", "fraud-model")
    rollout["apiVersion"] = "argoproj.io/v1alpha1"
    cluster.owned("ReplicaSet", "fraud-model-6b7c9d", "ml", rollout)
    cluster.owned(
        "Job", "nightly-etl-29381040", "data", kubesim.owner_ref("CronJob", "nightly-etl")
    )
    cluster.owned("Job", "backfill-20260101", "data", None)  # a Job run by hand

    cluster.pod(
        "checkout-7d9f8b6c5d-x2x4q",
        owner=kubesim.owner_ref("ReplicaSet", "checkout-7d9f8b6c5d"),
        labels={
            "pod-template-hash": "7d9f8b6c5d",
            "onepane.dev/team": "payments",
            "onepane.dev/kind": "app",
        },
        requests={"cpu": "500m", "memory": "512Mi"},
        limits={"cpu": "1", "memory": "512Mi"},
    )
    cluster.pod(
        "fraud-model-6b7c9d-k8s7p",
        "ml",
        node_name="gpu-node-1",
        owner=kubesim.owner_ref("ReplicaSet", "fraud-model-6b7c9d"),
        labels={"pod-template-hash": "6b7c9d", "team": "risk", "onepane.dev/kind": "model"},
        requests={"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
        limits={"nvidia.com/gpu": "1"},
    )
    cluster.pod(
        "nightly-etl-29381040-5vq2l",
        "data",
        owner=kubesim.owner_ref("Job", "nightly-etl-29381040"),
        labels={"onepane.dev/kind": "pipeline"},
    )
    cluster.pod(
        "backfill-20260101-q9z8x", "data", owner=kubesim.owner_ref("Job", "backfill-20260101")
    )
    cluster.pod("postgres-0", owner=kubesim.owner_ref("StatefulSet", "postgres"))
    cluster.pod(
        "dcgm-exporter-7xk2p",
        "gpu-operator",
        node_name="gpu-node-1",
        owner=kubesim.owner_ref("DaemonSet", "nvidia-dcgm-exporter"),
    )
    cluster.pod("debug-shell", "default", phase="Pending", node_name=None, started_ns=None)

    server = serve()
    got = wait_for_pods(server, "seven pods", lambda p: len(p) == 7)

    owners = {name: (p["owner_kind"], p["owner_name"], p["workload"]) for name, p in got.items()}
    assert owners == {
        "shop/checkout-7d9f8b6c5d-x2x4q": ("Deployment", "checkout", "shop/checkout"),
        "ml/fraud-model-6b7c9d-k8s7p": ("Rollout", "fraud-model", "ml/fraud-model"),
        "data/nightly-etl-29381040-5vq2l": ("CronJob", "nightly-etl", "data/nightly-etl"),
        "data/backfill-20260101-q9z8x": ("Job", "backfill-20260101", "data/backfill-20260101"),
        "shop/postgres-0": ("StatefulSet", "postgres", "shop/postgres"),
        "gpu-operator/dcgm-exporter-7xk2p": (
            "DaemonSet",
            "nvidia-dcgm-exporter",
            "gpu-operator/nvidia-dcgm-exporter",
        ),
        "default/debug-shell": ("Pod", "debug-shell", "default/debug-shell"),
    }
    # the ReplicaSets and Jobs came from one list each, not one read per pod
    assert cluster.sim.get_requests == 0
    assert cluster.sim.list_requests == {"nodes": 1, "pods": 1, "replicasets": 1, "jobs": 1}

    checkout = got["shop/checkout-7d9f8b6c5d-x2x4q"]
    assert (checkout["team"], checkout["kind"], checkout["phase"]) == ("payments", "app", "Running")
    assert (checkout["cpu_request"], checkout["cpu_limit"]) == (0.5, 1.0)
    assert checkout["memory_request"] == checkout["memory_limit"] == 512 * 1024**2
    assert checkout["start_ns"] == cluster.t0 + 5 * SECOND
    assert checkout["end_ns"] is None and checkout["end_observed"] is None
    assert (checkout["node"], checkout["instance_type"], checkout["capacity_type"]) == (
        "cpu-node-1",
        "m7i.2xlarge",
        "on-demand",
    )
    model = got["ml/fraud-model-6b7c9d-k8s7p"]
    assert (model["team"], model["kind"]) == ("risk", "model")
    assert (model["gpu_request"], model["gpu_physical"], model["gpu_resource"]) == (
        1.0,
        1.0,
        "nvidia.com/gpu",
    )
    assert (model["instance_type"], model["capacity_type"], model["gpu_product"]) == (
        "g5.12xlarge",
        "spot",
        "NVIDIA-A10G",
    )
    assert got["data/nightly-etl-29381040-5vq2l"]["kind"] == "pipeline"
    pending = got["default/debug-shell"]
    assert (pending["phase"], pending["node"], pending["start_ns"]) == ("Pending", None, None)

    nodes = nodes_by_name(server)
    assert sorted(nodes) == ["cpu-node-1", "gpu-node-1"]
    gpu = nodes["gpu-node-1"]
    assert (gpu["instance_type"], gpu["capacity_type"], gpu["gpu_product"]) == (
        "g5.12xlarge",
        "spot",
        "NVIDIA-A10G",
    )
    assert (gpu["region"], gpu["zone"]) == ("eu-west-1", "eu-west-1b")
    assert (gpu["gpu_capacity"], gpu["gpu_allocatable"]) == (4.0, 4.0)
    assert (gpu["cpu_capacity"], gpu["cpu_allocatable"]) == (48.0, pytest.approx(47.9))
    assert gpu["created_ns"] == cluster.t0 and gpu["deleted_ns"] is None
    assert nodes["cpu-node-1"]["capacity_type"] == "on-demand"

    status = kube_status(server)
    assert (status["pods"]["objects"], status["nodes"]["objects"]) == (7, 2)
    assert status["pods"]["lists"] == 1 and status["pods"]["last_error"] is None


def test_an_owner_the_api_does_not_have_is_guessed_from_its_name(serve, cluster) -> None:
    cluster.pod(
        "recommender-5f6d7c8b9-abcde",
        owner=kubesim.owner_ref("ReplicaSet", "recommender-5f6d7c8b9"),
        labels={"pod-template-hash": "5f6d7c8b9"},
    )
    cluster.pod(
        "nightly-report-29381040-zz9kq",
        "data",
        owner=kubesim.owner_ref("Job", "nightly-report-29381040"),
    )

    server = serve()
    got = wait_for_pods(server, "two pods", lambda p: len(p) == 2)

    assert (
        got["shop/recommender-5f6d7c8b9-abcde"]["owner_kind"],
        got["shop/recommender-5f6d7c8b9-abcde"]["workload"],
    ) == ("Deployment", "shop/recommender")
    assert (
        got["data/nightly-report-29381040-zz9kq"]["owner_kind"],
        got["data/nightly-report-29381040-zz9kq"]["workload"],
    ) == ("CronJob", "data/nightly-report")
    assert cluster.sim.get_requests >= 2  # each was asked for and answered 404


# -- watch events ------------------------------------------------------------------------


def test_watch_events_add_finish_and_end_pods_and_nodes(serve, cluster) -> None:
    job_pod = cluster.pod("train-29381040-4k2mn", "ml", owner=kubesim.owner_ref("Job", "train"))
    web = cluster.pod("web-0", owner=kubesim.owner_ref("StatefulSet", "web"))
    server = serve()
    wait_for_pods(server, "two pods", lambda p: len(p) == 2)

    cluster.pod("web-1", owner=kubesim.owner_ref("StatefulSet", "web"))
    got = wait_for_pods(server, "web-1 from the watch", lambda p: "shop/web-1" in p)
    assert got["shop/web-1"]["workload"] == "shop/web"
    assert got["shop/web-1"]["phase"] == "Running"

    finished = cluster.t0 + 300 * SECOND
    cluster.finish(job_pod, finished)
    got = wait_for_pods(
        server, "the training pod finished", lambda p: p["ml/train-29381040-4k2mn"]["end_ns"]
    )
    train = got["ml/train-29381040-4k2mn"]
    assert train["phase"] == "Succeeded"
    assert train["end_ns"] == finished  # when its container finished, not when Onepane saw it
    assert train["end_observed"] is True

    before = time.time_ns()
    cluster.delete_pod(web)
    got = wait_for_pods(server, "web-0 ended", lambda p: p["shop/web-0"]["end_ns"])
    assert before <= got["shop/web-0"]["end_ns"] <= time.time_ns()
    assert got["shop/web-0"]["end_observed"] is True
    assert got["shop/web-1"]["end_ns"] is None

    before = time.time_ns()
    cluster.sim.delete("nodes", "", "cpu-node-1")
    nodes = wait_for(
        "cpu-node-1 deleted",
        lambda: nodes_by_name(server),
        lambda n: n["cpu-node-1"]["deleted_ns"],
    )
    assert before <= nodes["cpu-node-1"]["deleted_ns"] <= time.time_ns()
    assert nodes["gpu-node-1"]["deleted_ns"] is None

    assert cluster.sim.list_requests["pods"] == 1  # all of it from the one watch
    status = kube_status(server)
    assert status["pods"]["events"] == 3
    assert status["nodes"]["events"] == 1
    assert_each_pod_once(server, cluster)


def test_a_time_sliced_gpu_counts_a_fraction_of_a_gpu(serve, cluster) -> None:
    cluster.node(
        "gpu-shared-1",
        gpus=4,  # one physical GPU advertised four times by the device plugin
        labels={
            "nvidia.com/gpu.replicas": "4",
            "nvidia.com/gpu.product": "NVIDIA-L4-SHARED",
            "node.kubernetes.io/instance-type": "g6.xlarge",
        },
    )
    cluster.pod(
        "notebook-a", "research", node_name="gpu-shared-1", requests={"nvidia.com/gpu": "1"}
    )
    cluster.pod("trainer", "research", node_name="gpu-node-1", requests={"nvidia.com/gpu": "2"})
    server = serve()
    wait_for_pods(server, "two pods", lambda p: len(p) == 2)

    cluster.pod(
        "notebook-b", "research", node_name="gpu-shared-1", requests={"nvidia.com/gpu": "2"}
    )
    got = wait_for_pods(server, "notebook-b", lambda p: "research/notebook-b" in p)

    assert got["research/notebook-a"]["gpu_request"] == 1.0
    assert got["research/notebook-a"]["gpu_physical"] == 0.25
    assert got["research/notebook-b"]["gpu_physical"] == 0.5
    assert got["research/notebook-a"]["gpu_product"] == "NVIDIA-L4-SHARED"
    assert got["research/trainer"]["gpu_physical"] == 2.0  # a whole-GPU node: no slicing
    assert nodes_by_name(server)["gpu-shared-1"]["gpu_replicas"] == 4


# -- dropped and expired watches ---------------------------------------------------------


def test_a_dropped_watch_resumes_where_it_was_without_listing_again(serve, cluster) -> None:
    web = [cluster.pod(f"web-{i}", owner=kubesim.owner_ref("StatefulSet", "web")) for i in range(3)]
    batch = cluster.pod("report-1", "data")
    server = serve()
    wait_for_pods(server, "four pods", lambda p: len(p) == 4)

    cluster.sim.drop_watches()  # e.g. the API server restarted
    cluster.delete_pod(web[0])
    cluster.pod("web-3", owner=kubesim.owner_ref("StatefulSet", "web"))
    cluster.finish(batch, cluster.t0 + 120 * SECOND)
    cluster.sim.put("nodes", kubesim.node("gpu-node-2", cluster.t0, gpus=8))

    got = wait_for_pods(
        server,
        "the changes made while the watch was down",
        lambda p: "shop/web-3" in p and p["shop/web-0"]["end_ns"] and p["data/report-1"]["end_ns"],
    )
    assert got["shop/web-0"]["end_observed"] is True  # its DELETED event was replayed
    assert got["data/report-1"]["end_ns"] == cluster.t0 + 120 * SECOND
    assert got["data/report-1"]["phase"] == "Succeeded"
    assert [got[f"shop/web-{i}"]["end_ns"] for i in (1, 2, 3)] == [None, None, None]
    wait_for("gpu-node-2", lambda: nodes_by_name(server), lambda n: "gpu-node-2" in n)

    assert cluster.sim.list_requests["pods"] == 1
    assert cluster.sim.list_requests["nodes"] == 1
    status = kube_status(server)
    assert status["pods"]["watch_restarts"] >= 1
    assert status["pods"]["relists_after_410"] == 0
    assert status["pods"]["lists"] == 1
    assert "Kubernetes pods sync failed" in output(server)
    assert_each_pod_once(server, cluster)


def test_an_expired_watch_lists_again_and_ends_pods_deleted_meanwhile(serve, cluster) -> None:
    web = [cluster.pod(f"web-{i}", owner=kubesim.owner_ref("StatefulSet", "web")) for i in range(3)]
    server = serve()
    wait_for_pods(server, "three pods", lambda p: len(p) == 3)

    cluster.sim.drop_watches()
    before = time.time_ns()
    cluster.delete_pod(web[0])
    cluster.delete_pod(web[1])
    cluster.pod("web-3", owner=kubesim.owner_ref("StatefulSet", "web"))
    cluster.sim.delete("nodes", "", "cpu-node-1")
    cluster.sim.compact()  # the history the watch would resume from is gone: 410

    got = wait_for_pods(
        server,
        "the list after 410 Gone",
        lambda p: "shop/web-3" in p and p["shop/web-0"]["end_ns"] and p["shop/web-1"]["end_ns"],
    )
    for name in ("shop/web-0", "shop/web-1"):
        # nobody saw them go: ended at the new list, and marked as not observed
        assert got[name]["end_observed"] is False
        assert before <= got[name]["end_ns"] <= time.time_ns()
    assert got["shop/web-2"]["end_ns"] is None
    assert got["shop/web-3"]["end_ns"] is None
    nodes = wait_for(
        "cpu-node-1 ended", lambda: nodes_by_name(server), lambda n: n["cpu-node-1"]["deleted_ns"]
    )
    assert nodes["gpu-node-1"]["deleted_ns"] is None

    status = kube_status(server)
    assert status["pods"]["relists_after_410"] >= 1
    assert status["pods"]["lists"] == 2
    assert cluster.sim.list_requests["pods"] == 2
    assert "Kubernetes pods watch expired (410 Gone); listing again" in output(server)
    assert_each_pod_once(server, cluster)


def test_no_pod_is_counted_twice_across_drops_relists_and_events(serve, cluster) -> None:
    web = [cluster.pod(f"web-{i}", owner=kubesim.owner_ref("StatefulSet", "web")) for i in range(4)]
    server = serve()
    wait_for_pods(server, "four pods", lambda p: len(p) == 4)

    # a dropped watch: the same events replayed from the last resource version
    cluster.sim.drop_watches()
    cluster.pod("web-4", owner=kubesim.owner_ref("StatefulSet", "web"))
    web[0] = cluster.finish(web[0], cluster.t0 + 60 * SECOND, phase="Failed")
    wait_for_pods(server, "web-4", lambda p: "shop/web-4" in p)

    # an expired watch: everything listed again
    cluster.sim.drop_watches()
    cluster.delete_pod(web[1])
    cluster.pod("web-5", owner=kubesim.owner_ref("StatefulSet", "web"))
    cluster.sim.compact()
    wait_for_pods(server, "web-5 after the relist", lambda p: "shop/web-5" in p)

    # and plain events after it
    cluster.delete_pod(web[2])
    cluster.pod("web-6", owner=kubesim.owner_ref("StatefulSet", "web"))
    got = wait_for_pods(
        server, "web-6 and web-2's end", lambda p: "shop/web-6" in p and p["shop/web-2"]["end_ns"]
    )

    rows = assert_each_pod_once(server, cluster)
    assert len(rows) == 7
    ended = {name: (p["end_ns"] is not None, p["end_observed"]) for name, p in got.items()}
    assert ended == {
        "shop/web-0": (True, True),  # Failed: its container's finish time
        "shop/web-1": (True, False),  # deleted while nobody watched
        "shop/web-2": (True, True),
        "shop/web-3": (False, None),
        "shop/web-4": (False, None),
        "shop/web-5": (False, None),
        "shop/web-6": (False, None),
    }
    assert got["shop/web-0"]["end_ns"] == cluster.t0 + 60 * SECOND

    samples = server.samples()
    assert samples[("onepane_k8s_synced", frozenset({("resource", "pods")}))] == 1.0
    assert samples[("onepane_k8s_synced", frozenset({("resource", "nodes")}))] == 1.0
    relists = ("onepane_k8s_relists_after_gone_total", frozenset({("resource", "pods")}))
    assert samples[relists] >= 1.0
    status = kube_status(server)
    assert status["pods"]["relists_after_410"] >= 1 and status["pods"]["watch_restarts"] >= 2


# -- restarts ----------------------------------------------------------------------------


def test_a_restart_on_the_same_store_catches_up_with_what_changed_meanwhile(
    serve, cluster, tmp_path: Path
) -> None:
    db = tmp_path / "inventory.duckdb"
    web = [cluster.pod(f"web-{i}", owner=kubesim.owner_ref("StatefulSet", "web")) for i in range(3)]
    job = cluster.pod("etl-29381040-8xv2c", "data", owner=kubesim.owner_ref("Job", "etl"))
    first = serve(db)
    wait_for_pods(first, "four pods", lambda p: len(p) == 4)
    assert first.stop() == 0
    assert "sync failed" not in output(first)  # a clean stop is not a failure

    stopped = time.time_ns()
    cluster.delete_pod(web[0])
    cluster.finish(job, cluster.t0 + 200 * SECOND)
    cluster.pod("web-3", owner=kubesim.owner_ref("StatefulSet", "web"))
    cluster.sim.delete("nodes", "", "cpu-node-1")

    second = serve(db)
    got = wait_for_pods(second, "the state after the restart", lambda p: "shop/web-3" in p)

    assert got["shop/web-0"]["end_observed"] is False
    assert stopped <= got["shop/web-0"]["end_ns"] <= time.time_ns()
    assert got["data/etl-29381040-8xv2c"]["end_ns"] == cluster.t0 + 200 * SECOND
    assert got["data/etl-29381040-8xv2c"]["end_observed"] is True
    assert [got[f"shop/web-{i}"]["end_ns"] for i in (1, 2, 3)] == [None, None, None]
    assert stopped <= nodes_by_name(second)["cpu-node-1"]["deleted_ns"] <= time.time_ns()
    assert_each_pod_once(second, cluster)
