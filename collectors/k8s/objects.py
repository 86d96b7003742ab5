"""Kubernetes objects (the API's JSON) as inventory rows: pure functions, no I/O.

A pod's row says where it ran, from when to when, what it asked for (the effective pod
request, as the scheduler counts it) and which workload it belongs to. A node's row says
what it is (instance type, GPU product, spot or on-demand) and what it offers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from collectors.k8s.resources import (
    GPU_RESOURCES,
    effective_resources,
    gpu_amount,
    quantity,
)

Obj = Mapping[str, Any]

TEAM_LABELS = ("onepane.dev/team", "team")
KIND_LABEL = "onepane.dev/kind"
KINDS = ("app", "model", "pipeline")
_TERMINAL = ("Succeeded", "Failed")

# Spot / on-demand as Karpenter, EKS, GKE, AKS and kops label it.
_CAPACITY_LABELS: tuple[tuple[str, dict[str, str]], ...] = (
    ("karpenter.sh/capacity-type", {"spot": "spot", "on-demand": "on-demand"}),
    ("eks.amazonaws.com/capacityType", {"SPOT": "spot", "ON_DEMAND": "on-demand"}),
    ("cloud.google.com/gke-spot", {"true": "spot"}),
    ("cloud.google.com/gke-preemptible", {"true": "spot"}),
    ("kubernetes.azure.com/scalesetpriority", {"spot": "spot", "regular": "on-demand"}),
    ("node.kubernetes.io/lifecycle", {"spot": "spot", "normal": "on-demand"}),
)


def timestamp_ns(text: str | None) -> int | None:
    """An RFC 3339 time from the API as Unix nanoseconds."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def _first(labels: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return None


# -- pods -------------------------------------------------------------------------------


def _limit(spec: Obj, limits: Mapping[str, Decimal], name: str) -> float | None:
    """A pod limit only exists when every app container sets one."""
    containers = spec.get("containers") or []
    if not containers or any(
        name not in ((c.get("resources") or {}).get("limits") or {}) for c in containers
    ):
        return None
    return float(limits[name]) if name in limits else None


def _end_ns(pod: Obj) -> int | None:
    """When a finished pod's last container stopped."""
    status = pod.get("status") or {}
    if status.get("phase") not in _TERMINAL:
        return None
    finished = [
        timestamp_ns(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for cs in status.get("containerStatuses") or []
    ]
    known = [f for f in finished if f is not None]
    return max(known) if known else None


def pod_row(
    pod: Obj, owner: tuple[str, str], observed_ns: int, deleted: bool = False
) -> dict[str, Any]:
    """The k8s_pods row of ``pod`` owned (at the top) by ``owner`` = (kind, name)."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    labels = meta.get("labels") or {}
    requests = effective_resources(spec, "requests")
    limits = effective_resources(spec, "limits")
    gpu_request, gpu_resource = gpu_amount(requests)
    gpu_limit, limit_resource = gpu_amount(limits)
    end = _end_ns(pod)
    if deleted and end is None:
        end = observed_ns
    kind = labels.get(KIND_LABEL)
    return {
        "uid": meta["uid"],
        "namespace": meta.get("namespace") or "default",
        "name": meta["name"],
        "node": spec.get("nodeName"),
        "phase": status.get("phase"),
        "qos_class": status.get("qosClass"),
        "workload": f"{meta.get('namespace') or 'default'}/{owner[1]}",
        "owner_kind": owner[0],
        "owner_name": owner[1],
        "team": _first(labels, TEAM_LABELS),
        "kind": kind if kind in KINDS else None,
        "created": timestamp_ns(meta.get("creationTimestamp")),
        "start_time": timestamp_ns(status.get("startTime")),
        "end_time": end,
        "end_observed": True if end is not None else None,
        "cpu_request": _float(requests.get("cpu")),
        "cpu_limit": _limit(spec, limits, "cpu"),
        "memory_request": _float(requests.get("memory")),
        "memory_limit": _limit(spec, limits, "memory"),
        "gpu_request": gpu_request,
        "gpu_limit": gpu_limit,
        "gpu_resource": gpu_resource or limit_resource,
        "labels": orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode(),
        "updated": observed_ns,
    }


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def controller_ref(obj: Obj) -> tuple[str, str] | None:
    """(kind, name) of the object's controlling owner, if any."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref.get("kind", ""), ref.get("name", "")
    return (refs[0].get("kind", ""), refs[0].get("name", "")) if refs else None


_CRONJOB_RUN = re.compile(r"^(?P<cronjob>.+)-\d{8,}$")


def guess_owner(kind: str, name: str, pod_labels: Mapping[str, str]) -> tuple[str, str]:
    """The top owner of a ReplicaSet or Job that could not be read from the API: a
    Deployment's ReplicaSet is named <deployment>-<pod-template-hash>; a CronJob's Job is
    <cronjob>-<scheduled minute>."""
    if kind == "ReplicaSet":
        template_hash = pod_labels.get("pod-template-hash")
        if template_hash and name.endswith(f"-{template_hash}"):
            return "Deployment", name.removesuffix(f"-{template_hash}")
    if kind == "Job" and (match := _CRONJOB_RUN.match(name)):
        return "CronJob", match["cronjob"]
    return kind, name


# -- nodes ------------------------------------------------------------------------------


def capacity_type(labels: Mapping[str, str]) -> str | None:
    """``spot`` or ``on-demand`` from whichever provisioner labelled the node."""
    for key, values in _CAPACITY_LABELS:
        if key in labels:
            found = values.get(labels[key])
            if found:
                return found
    return None


def _gpus(amounts: Mapping[str, Any]) -> float | None:
    found = [quantity(amounts[name]) for name in GPU_RESOURCES if name in amounts]
    known = [f for f in found if f is not None]
    return sum(known) if known else None


def node_row(node: Obj, observed_ns: int, deleted: bool = False) -> dict[str, Any]:
    """The k8s_nodes row of ``node``."""
    meta, status = node["metadata"], node.get("status") or {}
    labels = meta.get("labels") or {}
    capacity, allocatable = status.get("capacity") or {}, status.get("allocatable") or {}
    replicas = labels.get("nvidia.com/gpu.replicas", "")
    return {
        "uid": meta["uid"],
        "name": meta["name"],
        "created": timestamp_ns(meta.get("creationTimestamp")),
        "deleted": observed_ns if deleted else None,
        "instance_type": _first(
            labels, ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
        ),
        "region": _first(
            labels, ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
        ),
        "zone": _first(
            labels, ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
        ),
        "capacity_type": capacity_type(labels),
        "gpu_product": labels.get("nvidia.com/gpu.product"),
        "gpu_replicas": int(replicas) if replicas.isascii() and replicas.isdigit() else None,
        "cpu_capacity": quantity(capacity.get("cpu")),
        "memory_capacity": quantity(capacity.get("memory")),
        "gpu_capacity": _gpus(capacity),
        "cpu_allocatable": quantity(allocatable.get("cpu")),
        "memory_allocatable": quantity(allocatable.get("memory")),
        "gpu_allocatable": _gpus(allocatable),
        "labels": orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode(),
        "updated": observed_ns,
        "provider_id": (node.get("spec") or {}).get("providerID"),
    }
