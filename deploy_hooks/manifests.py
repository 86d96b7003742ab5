"""A release as its manifests describe it: what each pod asks for and how many run.

Reads Deployment, StatefulSet, Job, CronJob, a HorizontalPodAutoscaler that targets one of
them, and KServe InferenceService (predictor, transformer, explainer). Requests default to
limits, as the API server does; a workload that asks for nothing cannot be priced and is
an error, like any manifest the gate cannot read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import InvalidOperation
from typing import Any

from collectors.k8s.resources import effective_resources, gpu_amount, parse_quantity
from deploy_hooks import yamldoc
from onepane.errors import ConfigError

CONTROLLERS = ("Deployment", "StatefulSet", "Job", "CronJob", "InferenceService")
GIB = 1024**3
_KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
# KServe's defaults for a model container that sets no resources.
_KSERVE_DEFAULT = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "1", "memory": "2Gi"},
}
_VERSION_LABELS = ("app.kubernetes.io/version", "version", "onepane.dev/version")


class ManifestError(ConfigError):
    """A manifest the gate cannot read or price; the message names the file and line."""


@dataclass(frozen=True)
class Component:
    """Pods of one shape: what each asks for and how many run."""

    name: str
    cpu: float  # cores per pod
    memory: float  # bytes per pod
    gpus: float  # per pod
    replicas: int  # fixed, or the autoscaler's minimum
    max_replicas: int
    autoscaled: bool = False


@dataclass(frozen=True)
class Release:
    """What the gate projects from: the workload's pods, and how it runs."""

    workload: str  # namespace/name
    controller: str  # Deployment | StatefulSet | Job | CronJob | InferenceService
    version: str | None
    components: tuple[Component, ...]
    node_selector: Mapping[str, str] = field(default_factory=dict)
    schedule: str | None = None  # CronJob
    completions: int = 1  # Job: pods that must succeed per run
    read: tuple[str, ...] = ()  # what was read, from where

    @property
    def is_job(self) -> bool:
        return self.controller in ("Job", "CronJob")


def load(texts: Iterable[tuple[str, str]]) -> list[yamldoc.Doc]:
    """Every Kubernetes object in the (source, text) pairs; List kinds are opened."""
    docs = []
    for source, text in texts:
        try:
            found = yamldoc.load_all(text, source)
        except yamldoc.YamlError as exc:
            raise ManifestError(str(exc)) from None
        for doc in found:
            kind = doc.value.get("kind") if isinstance(doc.value, Mapping) else None
            if not isinstance(kind, str) or not kind:
                raise ManifestError(
                    f"{doc.where(())}: document {doc.index} is not a Kubernetes object "
                    "(a mapping with apiVersion and kind)"
                )
            if doc.value["kind"].endswith("List") and isinstance(doc.value.get("items"), list):
                for i, item in enumerate(doc.value["items"]):
                    if isinstance(item, Mapping):
                        lines = {k[2:]: v for k, v in doc.lines.items() if k[:2] == ("items", i)}
                        docs.append(yamldoc.Doc(item, doc.source, doc.index, lines))
                continue
            docs.append(doc)
    if not docs:
        raise ManifestError("the manifests hold no Kubernetes objects")
    return docs


def _meta(doc: yamldoc.Doc) -> Mapping[str, Any]:
    meta = doc.value.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _matches(doc: yamldoc.Doc, namespace: str, name: str) -> bool:
    meta = _meta(doc)
    if meta.get("namespace") not in (None, namespace):
        return False
    if doc.value.get("kind") == "InferenceService":
        return name in (meta.get("name"), f"{meta.get('name')}-predictor")
    return meta.get("name") == name


def release(docs: Sequence[yamldoc.Doc], workload: str, version: str | None = None) -> Release:
    """The release of ``workload`` (namespace/name) that ``docs`` describe."""
    namespace, _, name = workload.partition("/")
    if not namespace or not name:
        raise ManifestError(f"workload {workload!r} must be namespace/name, e.g. prod/checkout")
    candidates = [d for d in docs if d.value.get("kind") in CONTROLLERS]
    found = [d for d in candidates if _matches(d, namespace, name)]
    if not found:
        seen = ", ".join(f"{d.value['kind']} {_meta(d).get('name')}" for d in candidates[:5])
        raise ManifestError(
            f"no {', '.join(CONTROLLERS[:-1])} or InferenceService named {name!r}"
            f"{f' in namespace {namespace}' if namespace else ''} in the manifests "
            f"(found: {seen or 'none of these kinds'}); check --workload"
        )
    if len(found) > 1:
        raise ManifestError(f"{len(found)} objects named {name!r} in the manifests; give one")
    doc = found[0]
    kind = doc.value["kind"]
    spec = _mapping(doc, ("spec",), "spec")
    hpa = _autoscaler(docs, kind, _meta(doc).get("name"), namespace)
    read = [f"{kind} {workload} ({doc.where(())})"]
    schedule, completions = None, 1
    if kind == "InferenceService":
        components = _kserve(doc, spec, read)
        pod_meta = _meta(doc)
        selector = _selector(doc, ("spec", "predictor"))
    else:
        template_path = ("spec", "jobTemplate", "spec", "template") if kind == "CronJob" else (
            "spec", "template")  # fmt: skip
        template = _mapping(doc, template_path, ".".join(template_path))
        pod_meta = template.get("metadata") or {}
        pod_spec = _mapping(doc, (*template_path, "spec"), ".".join((*template_path, "spec")))
        selector = _selector(doc, (*template_path, "spec"))
        job = spec.get("jobTemplate", {}).get("spec", {}) if kind == "CronJob" else spec
        if kind in ("Job", "CronJob"):
            replicas = _count(doc, job.get("parallelism", 1), "parallelism")
            completions = _count(doc, job.get("completions") or 1, "completions")
            schedule = str(spec.get("schedule")) if kind == "CronJob" else None
            if kind == "CronJob" and not spec.get("schedule"):
                raise ManifestError(f"{doc.where(('spec',))}: CronJob {name} has no schedule")
        else:
            replicas = _count(doc, spec.get("replicas", 1), "replicas")
        shape = _pod_shape(doc, pod_spec, (*template_path, "spec"), f"{kind} {workload}")
        low, high, scaled = replicas, replicas, False
        if hpa is not None:
            low, high = _hpa_range(hpa)
            scaled = True
            read.append(f"HorizontalPodAutoscaler: {low} to {high} replicas ({hpa.where(())})")
        components = [Component(f"{kind} {workload}", *shape, low, high, scaled)]
    return Release(
        workload=workload,
        controller=kind,
        version=version or _version(_meta(doc), pod_meta, doc.value),
        components=tuple(components),
        node_selector=selector,
        schedule=schedule,
        completions=completions,
        read=tuple(read),
    )


def _mapping(doc: yamldoc.Doc, path: tuple[str, ...], label: str) -> Mapping[str, Any]:
    value: Any = doc.value
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    if not isinstance(value, Mapping):
        raise ManifestError(f"{doc.where(path)}: {doc.value['kind']} has no {label} mapping")
    return value


def _count(doc: yamldoc.Doc, value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ManifestError(f"{doc.where(('spec', name))}: {name} must be a whole number ≥ 0, "
                            f"got {value!r}")  # fmt: skip
    return value


def _selector(doc: yamldoc.Doc, path: tuple[str, ...]) -> dict[str, str]:
    value: Any = doc.value
    for key in (*path, "nodeSelector"):
        value = value.get(key) if isinstance(value, Mapping) else None
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _checked_containers(
    doc: yamldoc.Doc, spec: Mapping[str, Any], path: tuple[str | int, ...]
) -> dict[str, Any]:
    """``spec`` with every container's requests defaulted from its limits, checked."""
    out = dict(spec)
    for group in ("containers", "initContainers"):
        items = spec.get(group) or []
        if not isinstance(items, list):
            raise ManifestError(f"{doc.where((*path, group))}: {group} must be a list")
        fixed = []
        for i, container in enumerate(items):
            where = (*path, group, i, "resources")
            if not isinstance(container, Mapping):
                raise ManifestError(
                    f"{doc.where((*path, group, i))}: a container must be a mapping"
                )
            resources = container.get("resources") or {}
            if not isinstance(resources, Mapping):
                raise ManifestError(f"{doc.where(where)}: resources must be a mapping")
            for which in ("requests", "limits"):
                amounts = resources.get(which) or {}
                if not isinstance(amounts, Mapping):
                    raise ManifestError(f"{doc.where((*where, which))}: resources.{which} must be "
                                        "a mapping of resource names to quantities")  # fmt: skip
                for rname, text in amounts.items():
                    try:
                        amount = parse_quantity(text)
                    except (ValueError, InvalidOperation):
                        raise ManifestError(
                            f"{doc.where((*where, which, rname))}: {which}.{rname} {text!r} is "
                            "not a quantity (like 500m, 2Gi, 1)"
                        ) from None
                    if amount < 0:
                        raise ManifestError(f"{doc.where((*where, which, rname))}: {which}."
                                            f"{rname} {text!r} must be 0 or more")  # fmt: skip
            requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
            fixed.append({**container, "resources": {**resources, "requests": requests}})
        out[group] = fixed
    return out


def _pod_shape(
    doc: yamldoc.Doc, spec: Mapping[str, Any], path: tuple[str | int, ...], label: str
) -> tuple[float, float, float]:
    """(cores, bytes, GPUs) one pod asks for; an error when it asks for nothing."""
    if not spec.get("containers"):
        raise ManifestError(f"{doc.where(path)}: {label} has no containers")
    requests = effective_resources(_checked_containers(doc, spec, path), "requests")
    gpus, _ = gpu_amount(requests)
    cpu, memory = float(requests.get("cpu", 0)), float(requests.get("memory", 0))
    if cpu <= 0 and memory <= 0 and not gpus:
        raise ManifestError(
            f"{doc.where(path)}: {label} sets no resources.requests (or limits) in any "
            "container, so the gate cannot price it; add resources.requests.cpu and .memory"
        )
    return cpu, memory, gpus or 0.0


def _autoscaler(
    docs: Sequence[yamldoc.Doc], kind: str, name: Any, namespace: str
) -> yamldoc.Doc | None:
    for doc in docs:
        if doc.value.get("kind") != "HorizontalPodAutoscaler":
            continue
        target = (doc.value.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") == kind and target.get("name") == name and _meta(doc).get(
            "namespace") in (None, namespace):  # fmt: skip
            return doc
    return None


def _hpa_range(doc: yamldoc.Doc) -> tuple[int, int]:
    spec = doc.value.get("spec") or {}
    low = _count(doc, spec.get("minReplicas", 1), "minReplicas")
    if "maxReplicas" not in spec:
        raise ManifestError(f"{doc.where(('spec',))}: HorizontalPodAutoscaler has no maxReplicas")
    high = _count(doc, spec["maxReplicas"], "maxReplicas")
    if high < low:
        raise ManifestError(f"{doc.where(('spec', 'maxReplicas'))}: maxReplicas {high} is "
                            f"below minReplicas {low}")  # fmt: skip
    return low, high


def _kserve(doc: yamldoc.Doc, spec: Mapping[str, Any], read: list[str]) -> list[Component]:
    """One component per InferenceService part: its containers, min and max replicas."""
    components = []
    name = _meta(doc).get("name")
    for part in _KSERVE_COMPONENTS:
        body = spec.get(part)
        if not isinstance(body, Mapping):
            if part == "predictor":
                raise ManifestError(f"{doc.where(('spec',))}: InferenceService has no predictor")
            continue
        listed = body.get("containers") or []
        if not isinstance(listed, list):
            raise ManifestError(f"{doc.where(('spec', part, 'containers'))}: containers must be "
                                "a list")  # fmt: skip
        # Copies: the defaults below must not be written into the caller's manifest.
        containers = [dict(c) if isinstance(c, Mapping) else c for c in listed]
        for key, value in body.items():  # model: / sklearn: / pytorch: …
            if isinstance(value, Mapping) and {"resources", "storageUri", "modelFormat",
                                               "runtime", "image"} & set(value):  # fmt: skip
                containers.insert(0, {**value, "name": key})
        for container in containers:
            if not isinstance(container, Mapping):
                continue  # _checked_containers names it
            resources = container.get("resources") or {}
            if isinstance(resources, Mapping) and not resources.get("requests") and not (
                resources.get("limits")):  # fmt: skip
                container["resources"] = _KSERVE_DEFAULT
                read.append(f"{part} {container.get('name')}: no resources, KServe's default "
                            "1 CPU and 2Gi assumed")  # fmt: skip
        pod = {**body, "containers": containers}
        shape = _pod_shape(doc, pod, ("spec", part), f"InferenceService {name} {part}")
        low = _count(doc, body.get("minReplicas", 1), "minReplicas")
        high = max(low, _count(doc, body.get("maxReplicas") or low, "maxReplicas"))
        components.append(
            Component(f"InferenceService {name} {part}", *shape, low, high, high > low)
        )
    return components


def _version(
    meta: Mapping[str, Any], pod_meta: Mapping[str, Any], obj: Mapping[str, Any]
) -> str | None:
    """The release's version from its labels, else the first container image's tag."""
    for source in (meta, pod_meta):
        labels = source.get("labels") or {}
        for key in _VERSION_LABELS:
            if labels.get(key):
                return str(labels[key])
    spec = obj.get("spec") or {}
    template = (spec.get("jobTemplate") or {}).get("spec", spec).get("template") or {}
    for container in (template.get("spec") or {}).get("containers") or []:
        image = str(container.get("image") or "")
        tail = image.rsplit("/", 1)[-1]
        if ":" in tail and "@" not in tail:
            return tail.rsplit(":", 1)[1]
    return None
