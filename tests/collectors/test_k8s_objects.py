"""Pods and nodes as `kubectl get -o json` shows them, turned into Onepane's inventory rows:
what a pod asked for as the scheduler counts it, when it ran, whose it is, and what kind of
machine a node is."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from collectors.k8s import objects
from onepane import kubesim

CREATED_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
SECOND = 1_000_000_000
OBSERVED_NS = CREATED_NS + 3600 * SECOND
GI = 1024**3
MI = 1024**2


def a_pod(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("node_name", "gpu-node-1")
    kwargs.setdefault("started_ns", CREATED_NS + 5 * SECOND)
    return kubesim.pod("checkout-7d9f8b6c5d-x2x4q", "shop", CREATED_NS, **kwargs)


def row(pod: dict[str, Any], owner: tuple[str, str] = ("Deployment", "checkout"), **kw: Any):
    return objects.pod_row(pod, owner, OBSERVED_NS, **kw)


def add_container(pod: dict[str, Any], name: str, resources: dict[str, Any]) -> None:
    pod["spec"]["containers"].append(
        {"name": name, "image": f"registry.example.com/{name}:1", "resources": resources}
    )


# -- what a pod asks for -----------------------------------------------------------------


def test_pod_request_is_the_sum_of_its_containers() -> None:
    pod = a_pod(requests={"cpu": "250m", "memory": "512Mi"})
    add_container(pod, "envoy", {"requests": {"cpu": "1.5", "memory": "2Gi"}})

    got = row(pod)

    assert got["cpu_request"] == pytest.approx(1.75)
    assert got["memory_request"] == 512 * MI + 2 * GI
    assert got["gpu_request"] is None and got["gpu_resource"] is None


def test_an_init_container_bigger_than_the_containers_sets_the_request() -> None:
    pod = a_pod(requests={"cpu": "500m", "memory": "1Gi"}, init_requests={"cpu": "4"})
    add_container(pod, "worker", {"requests": {"cpu": "1", "memory": "1Gi"}})

    got = row(pod)

    assert got["cpu_request"] == 4.0  # the init container's 4 cores beat 0.5 + 1
    assert got["memory_request"] == 2 * GI  # the init container asks no memory: the sum wins


def test_an_init_container_smaller_than_the_containers_changes_nothing() -> None:
    pod = a_pod(requests={"cpu": "2"}, init_requests={"cpu": "100m"})
    assert row(pod)["cpu_request"] == 2.0


def test_a_sidecar_init_container_adds_to_the_containers_and_to_later_inits() -> None:
    pod = a_pod(requests={"cpu": "1", "memory": "1Gi"})
    pod["spec"]["initContainers"] = [
        {
            "name": "log-shipper",
            "image": "fluent-bit:3",
            "restartPolicy": "Always",
            "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
        },
        {"name": "migrate", "image": "migrate:1", "resources": {"requests": {"cpu": "2"}}},
    ]

    got = row(pod)

    # cpu: the migration runs beside the sidecar (2 + 0.5) which beats 1 + 0.5
    assert got["cpu_request"] == pytest.approx(2.5)
    # memory: the sidecar keeps running next to the app container
    assert got["memory_request"] == 1 * GI + 256 * MI


def test_a_sidecar_alone_adds_to_the_app_containers() -> None:
    pod = a_pod(requests={"cpu": "1"})
    pod["spec"]["initContainers"] = [
        {
            "name": "proxy",
            "image": "envoy:1",
            "restartPolicy": "Always",
            "resources": {"requests": {"cpu": "250m"}},
        }
    ]
    assert row(pod)["cpu_request"] == pytest.approx(1.25)


def test_pod_overhead_adds_to_the_request() -> None:
    pod = a_pod(requests={"cpu": "1", "memory": "1Gi"})
    pod["spec"]["runtimeClassName"] = "kata"
    pod["spec"]["overhead"] = {"cpu": "250m", "memory": "120Mi"}

    got = row(pod)

    assert got["cpu_request"] == pytest.approx(1.25)
    assert got["memory_request"] == 1 * GI + 120 * MI


def test_a_pod_limit_exists_only_when_every_container_sets_one() -> None:
    pod = a_pod(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "2", "memory": "1Gi"})
    add_container(pod, "envoy", {"requests": {"cpu": "100m"}, "limits": {"cpu": "500m"}})

    got = row(pod)

    assert got["cpu_limit"] == pytest.approx(2.5)
    assert got["memory_limit"] is None  # envoy may use any memory: the pod has no limit


def test_a_pod_without_limits_has_none() -> None:
    got = row(a_pod(requests={"cpu": "1"}))
    assert got["cpu_limit"] is None and got["memory_limit"] is None
    assert got["qos_class"] == "Burstable"


@pytest.mark.parametrize(
    ("resource", "text", "value"),
    [
        ("cpu", "250m", 0.25),
        ("cpu", "1.5", 1.5),
        ("cpu", "1e3", 1000.0),
        ("memory", "2Gi", 2 * GI),
        ("memory", "512Mi", 512 * MI),
        ("memory", "1e3", 1000.0),
        ("memory", "128M", 128_000_000.0),
    ],
)
def test_quantities_are_read_as_kubernetes_writes_them(resource: str, text: str, value) -> None:
    assert objects.quantity(text) == pytest.approx(value)
    assert row(a_pod(requests={resource: text}))[f"{resource}_request"] == pytest.approx(value)


@pytest.mark.parametrize("text", [None, "", "lots", "1.5.5", "2Gb"])
def test_an_unreadable_quantity_is_unknown_not_an_error(text) -> None:
    assert objects.quantity(text) is None


def test_an_unreadable_request_is_skipped_and_the_rest_kept() -> None:
    got = row(a_pod(requests={"cpu": "lots", "memory": "1Gi"}))
    assert got["cpu_request"] is None
    assert got["memory_request"] == GI


@pytest.mark.parametrize(
    ("resource", "amount", "gpus"),
    [
        ("nvidia.com/gpu", "1", 1.0),
        ("nvidia.com/gpu", "8", 8.0),
        ("nvidia.com/gpu.shared", "2", 2.0),
        ("nvidia.com/mig-1g.10gb", "1", 1.0),
        ("nvidia.com/mig-3g.40gb", "2", 2.0),
    ],
)
def test_gpu_requests_whole_shared_and_mig(resource: str, amount: str, gpus: float) -> None:
    pod = a_pod(requests={"cpu": "4", resource: amount}, limits={resource: amount})

    got = row(pod)

    assert got["gpu_request"] == gpus
    assert got["gpu_limit"] == gpus
    assert got["gpu_resource"] == resource


def test_gpus_of_several_kinds_add_up_and_all_are_named() -> None:
    pod = a_pod(requests={"nvidia.com/gpu": "1"})
    add_container(pod, "embedder", {"requests": {"nvidia.com/mig-1g.10gb": "1"}})

    got = row(pod)

    assert got["gpu_request"] == 2.0
    assert got["gpu_resource"] == "nvidia.com/gpu,nvidia.com/mig-1g.10gb"


def test_a_gpu_given_only_as_a_limit_is_still_named() -> None:
    got = row(a_pod(limits={"nvidia.com/gpu": "1"}))
    assert got["gpu_request"] is None
    assert got["gpu_limit"] == 1.0
    assert got["gpu_resource"] == "nvidia.com/gpu"


def test_other_extended_resources_are_not_gpus() -> None:
    got = row(a_pod(requests={"example.com/fpga": "1", "hugepages-2Mi": "1Gi"}))
    assert got["gpu_request"] is None and got["gpu_resource"] is None


# -- when a pod ran ----------------------------------------------------------------------


def test_a_running_pod_has_a_start_and_no_end() -> None:
    got = row(a_pod())
    assert got["created"] == CREATED_NS
    assert got["start_time"] == CREATED_NS + 5 * SECOND
    assert got["end_time"] is None and got["end_observed"] is None
    assert got["phase"] == "Running"
    assert got["node"] == "gpu-node-1"


def test_a_pending_pod_has_no_start_and_no_node() -> None:
    got = row(a_pod(phase="Pending", node_name=None, started_ns=None))
    assert got["start_time"] is None and got["node"] is None and got["end_time"] is None


def test_a_succeeded_pod_ends_when_its_last_container_finished() -> None:
    pod = a_pod(phase="Succeeded", finished_ns=CREATED_NS + 60 * SECOND)
    uploader = copy.deepcopy(pod["status"]["containerStatuses"][0])
    uploader["name"] = "uploader"
    uploader["state"]["terminated"]["finishedAt"] = "2026-01-01T00:01:35Z"
    pod["status"]["containerStatuses"].insert(0, uploader)

    got = row(pod)

    assert got["end_time"] == CREATED_NS + 95 * SECOND
    assert got["end_observed"] is True
    assert got["start_time"] == CREATED_NS + 5 * SECOND


def test_a_failed_pod_ends_too() -> None:
    got = row(a_pod(phase="Failed", finished_ns=CREATED_NS + 30 * SECOND))
    assert got["end_time"] == CREATED_NS + 30 * SECOND
    assert got["phase"] == "Failed"


def test_a_running_pod_deleted_ends_when_the_deletion_was_seen() -> None:
    got = row(a_pod(), deleted=True)
    assert got["end_time"] == OBSERVED_NS
    assert got["end_observed"] is True


def test_a_finished_pod_deleted_later_keeps_its_real_end() -> None:
    finished = CREATED_NS + 30 * SECOND
    got = row(a_pod(phase="Succeeded", finished_ns=finished), deleted=True)
    assert got["end_time"] == finished


def test_fractional_api_timestamps_keep_their_microseconds() -> None:
    assert objects.timestamp_ns("2026-01-01T00:00:00.250000Z") == CREATED_NS + SECOND // 4
    assert objects.timestamp_ns("2026-01-01T01:00:00+01:00") == CREATED_NS
    assert objects.timestamp_ns("yesterday") is None
    assert objects.timestamp_ns(None) is None


# -- whose a pod is ----------------------------------------------------------------------


def test_the_row_names_the_workload_and_its_owner() -> None:
    got = row(a_pod(labels={"app": "checkout"}), owner=("StatefulSet", "checkout-db"))
    assert got["namespace"] == "shop"
    assert got["name"] == "checkout-7d9f8b6c5d-x2x4q"
    assert got["workload"] == "shop/checkout-db"
    assert (got["owner_kind"], got["owner_name"]) == ("StatefulSet", "checkout-db")
    assert json.loads(got["labels"]) == {"app": "checkout"}
    assert got["updated"] == OBSERVED_NS


@pytest.mark.parametrize(
    ("labels", "team"),
    [
        ({"onepane.dev/team": "payments", "team": "platform"}, "payments"),
        ({"team": "platform"}, "platform"),
        ({"onepane.dev/team": "", "team": "platform"}, "platform"),
        ({"app": "checkout"}, None),
    ],
)
def test_team_comes_from_onepane_label_before_the_plain_one(labels, team) -> None:
    assert row(a_pod(labels=labels))["team"] == team


@pytest.mark.parametrize(
    ("value", "kind"),
    [("app", "app"), ("model", "model"), ("pipeline", "pipeline"), ("batch", None), ("", None)],
)
def test_kind_label_only_app_model_or_pipeline(value: str, kind: str | None) -> None:
    assert row(a_pod(labels={"onepane.dev/kind": value}))["kind"] == kind


def test_a_pod_without_namespace_is_in_default() -> None:
    pod = a_pod()
    del pod["metadata"]["namespace"]
    got = row(pod, owner=("Pod", pod["metadata"]["name"]))
    assert got["namespace"] == "default"
    assert got["workload"] == "default/checkout-7d9f8b6c5d-x2x4q"


def test_controller_ref_prefers_the_controlling_owner() -> None:
    pod = a_pod()
    plain = kubesim.owner_ref("ConfigMap", "settings")
    plain["controller"] = False
    pod["metadata"]["ownerReferences"] = [plain, kubesim.owner_ref("ReplicaSet", "checkout-7d9")]
    assert objects.controller_ref(pod) == ("ReplicaSet", "checkout-7d9")

    del pod["metadata"]["ownerReferences"][1]["controller"]
    assert objects.controller_ref(pod) == ("ConfigMap", "settings")  # none controls: first

    pod["metadata"]["ownerReferences"] = []
    assert objects.controller_ref(pod) is None
    del pod["metadata"]["ownerReferences"]
    assert objects.controller_ref(pod) is None


@pytest.mark.parametrize(
    ("kind", "name", "labels", "owner"),
    [
        (
            "ReplicaSet",
            "checkout-7d9f8b6c5d",
            {"pod-template-hash": "7d9f8b6c5d"},
            ("Deployment", "checkout"),
        ),
        (
            "ReplicaSet",
            "fraud-model-v2-5c8f7",
            {"pod-template-hash": "5c8f7"},
            ("Deployment", "fraud-model-v2"),
        ),
        # a ReplicaSet made by hand: no template hash, or one that is not its suffix
        ("ReplicaSet", "checkout-7d9f8b6c5d", {}, ("ReplicaSet", "checkout-7d9f8b6c5d")),
        (
            "ReplicaSet",
            "checkout-7d9f8b6c5d",
            {"pod-template-hash": "abc"},
            ("ReplicaSet", "checkout-7d9f8b6c5d"),
        ),
        ("Job", "nightly-etl-29381040", {}, ("CronJob", "nightly-etl")),
        ("Job", "feature-backfill-hourly-29381100", {}, ("CronJob", "feature-backfill-hourly")),
        ("Job", "migrate-db", {}, ("Job", "migrate-db")),
        ("Job", "report-2025", {}, ("Job", "report-2025")),
        ("StatefulSet", "postgres", {}, ("StatefulSet", "postgres")),
    ],
)
def test_guess_owner_from_names_when_the_api_cannot_say(kind, name, labels, owner) -> None:
    assert objects.guess_owner(kind, name, labels) == owner


# -- nodes -------------------------------------------------------------------------------


def a_node(labels: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    return kubesim.node("gpu-node-1", CREATED_NS, labels=labels, **kwargs)


def test_node_row_describes_the_machine() -> None:
    node = a_node(
        {
            "node.kubernetes.io/instance-type": "p4d.24xlarge",
            "topology.kubernetes.io/region": "eu-west-1",
            "topology.kubernetes.io/zone": "eu-west-1a",
            "karpenter.sh/capacity-type": "spot",
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
        },
        cpu="96",
        memory="1152Gi",
        gpus=8,
    )

    got = objects.node_row(node, OBSERVED_NS)

    assert got["name"] == "gpu-node-1"
    assert got["uid"] == node["metadata"]["uid"]
    assert got["created"] == CREATED_NS
    assert got["deleted"] is None
    assert got["instance_type"] == "p4d.24xlarge"
    assert (got["region"], got["zone"]) == ("eu-west-1", "eu-west-1a")
    assert got["capacity_type"] == "spot"
    assert got["gpu_product"] == "NVIDIA-A100-SXM4-40GB"
    assert got["gpu_replicas"] is None
    assert got["cpu_capacity"] == 96.0
    assert got["cpu_allocatable"] == pytest.approx(95.9)  # the kubelet keeps 100m
    assert got["memory_capacity"] == got["memory_allocatable"] == 1152 * GI
    assert got["gpu_capacity"] == got["gpu_allocatable"] == 8.0


def test_allocatable_is_read_apart_from_capacity() -> None:
    node = a_node(cpu="16", memory="64Gi", gpus=4)
    node["status"]["allocatable"].update({"memory": "60Gi", "nvidia.com/gpu": "3"})

    got = objects.node_row(node, OBSERVED_NS)

    assert (got["cpu_capacity"], got["cpu_allocatable"]) == (16.0, pytest.approx(15.9))
    assert (got["memory_capacity"], got["memory_allocatable"]) == (64 * GI, 60 * GI)
    assert (got["gpu_capacity"], got["gpu_allocatable"]) == (4.0, 3.0)


def test_a_cpu_node_has_no_gpus() -> None:
    got = objects.node_row(a_node(), OBSERVED_NS)
    assert got["gpu_capacity"] is None and got["gpu_allocatable"] is None
    assert got["gpu_product"] is None


def test_shared_gpus_count_as_capacity() -> None:
    node = a_node()
    node["status"]["capacity"]["nvidia.com/gpu.shared"] = "4"
    node["status"]["allocatable"]["nvidia.com/gpu.shared"] = "4"
    assert objects.node_row(node, OBSERVED_NS)["gpu_capacity"] == 4.0


def test_older_beta_labels_still_give_instance_type_region_and_zone() -> None:
    got = objects.node_row(
        a_node(
            {
                "beta.kubernetes.io/instance-type": "g5.xlarge",
                "failure-domain.beta.kubernetes.io/region": "us-east-1",
                "failure-domain.beta.kubernetes.io/zone": "us-east-1b",
            }
        ),
        OBSERVED_NS,
    )
    assert got["instance_type"] == "g5.xlarge"
    assert (got["region"], got["zone"]) == ("us-east-1", "us-east-1b")


def test_the_current_instance_type_label_wins_over_the_beta_one() -> None:
    got = objects.node_row(
        a_node(
            {
                "beta.kubernetes.io/instance-type": "old",
                "node.kubernetes.io/instance-type": "g5.xlarge",
            }
        ),
        OBSERVED_NS,
    )
    assert got["instance_type"] == "g5.xlarge"


@pytest.mark.parametrize(
    ("labels", "capacity"),
    [
        ({"karpenter.sh/capacity-type": "spot"}, "spot"),
        ({"karpenter.sh/capacity-type": "on-demand"}, "on-demand"),
        ({"eks.amazonaws.com/capacityType": "SPOT"}, "spot"),
        ({"eks.amazonaws.com/capacityType": "ON_DEMAND"}, "on-demand"),
        ({"cloud.google.com/gke-spot": "true"}, "spot"),
        ({"cloud.google.com/gke-preemptible": "true"}, "spot"),
        ({"kubernetes.azure.com/scalesetpriority": "spot"}, "spot"),
        ({"kubernetes.azure.com/scalesetpriority": "regular"}, "on-demand"),
        ({"node.kubernetes.io/lifecycle": "spot"}, "spot"),
        ({"karpenter.sh/capacity-type": "reserved"}, None),
        ({"cloud.google.com/gke-spot": "false"}, None),
        ({}, None),
    ],
)
def test_capacity_type_from_each_provisioner(labels: dict[str, str], capacity) -> None:
    assert objects.node_row(a_node(labels), OBSERVED_NS)["capacity_type"] == capacity


@pytest.mark.parametrize(("value", "replicas"), [("4", 4), ("1", 1), ("four", None), ("", None)])
def test_time_slicing_replicas_from_the_gpu_operator_label(value: str, replicas) -> None:
    node = a_node({"nvidia.com/gpu.replicas": value}, gpus=1)
    assert objects.node_row(node, OBSERVED_NS)["gpu_replicas"] == replicas


def test_a_deleted_node_is_marked_deleted_when_seen() -> None:
    got = objects.node_row(a_node(), OBSERVED_NS, deleted=True)
    assert got["deleted"] == OBSERVED_NS
    assert json.loads(got["labels"]) == {"kubernetes.io/hostname": "gpu-node-1"}
