"""Identity and span roles from OpenTelemetry semantic conventions.

A span's *workload* is ``namespace/name``: the Kubernetes controller that runs it, else its
``service.name``. A span's *role* says which part of a request it is: the incoming
``request``, an ``api`` hop, a model ``inference``, a ``db`` query, a ``pipeline`` step, or
``internal`` work. Both the current and the older semantic-convention names are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROLES = ("request", "api", "inference", "db", "pipeline", "internal")

# Kubernetes controllers in order of preference: a CronJob names the workload better than
# the Job it spawned (Job names carry a per-run suffix).
_K8S_WORKLOAD_KEYS = (
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
)
_BATCH_KEYS = ("k8s.cronjob.name", "k8s.job.name")

SPAN_KIND_SERVER = 2


def first(attrs: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` present in ``attrs`` (current name first), or None."""
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return value
    return None


def resource_identity(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Columns that come from a resource: service, environment, workload, Kubernetes place."""
    service = attrs.get("service.name") or "unknown_service"
    namespace = first(attrs, "k8s.namespace.name", "service.namespace") or "default"
    name = first(attrs, *_K8S_WORKLOAD_KEYS) or service
    return {
        "service_name": str(service),
        "service_version": _str_or_none(attrs.get("service.version")),
        "environment": _str_or_none(
            first(attrs, "deployment.environment.name", "deployment.environment")
        ),
        "workload": f"{namespace}/{name}",
        "k8s_namespace": _str_or_none(attrs.get("k8s.namespace.name")),
        "k8s_pod": _str_or_none(attrs.get("k8s.pod.name")),
        "is_batch": any(key in attrs for key in _BATCH_KEYS),
    }


def span_role(attrs: Mapping[str, Any], kind: int, is_root: bool, is_batch: bool) -> str:
    """The role of one span; the most specific signal wins."""
    keys = "\n" + "\n".join(attrs)
    if "\nml.model.name" in keys or "\ngen_ai." in keys:
        return "inference"
    if "\ndb.system" in keys:
        return "db"
    if kind == SPAN_KIND_SERVER:
        return "request" if is_root else "api"
    if "http.route" in attrs:
        return "api"
    if is_batch or "\npipeline." in keys:
        return "pipeline"
    return "internal"


def span_columns(attrs: Mapping[str, Any]) -> tuple[Any, ...]:
    """The attribute-derived columns of a span, in ``SPAN_ATTRIBUTE_COLUMNS`` order."""
    get = attrs.get
    method = get("http.request.method") or get("http.method")
    status = get("http.response.status_code") or get("http.status_code")
    system = get("db.system.name") or get("db.system")
    operation = get("db.operation.name") or get("db.operation")
    query = get("db.query.text") or get("db.statement")
    model = get("ml.model.name") or get("gen_ai.request.model") or get("gen_ai.response.model")
    return (
        _str_or_none(get("http.route")),
        _str_or_none(method),
        _int_or_none(status),
        _str_or_none(system),
        _str_or_none(operation),
        _str_or_none(query),
        _str_or_none(model),
        _str_or_none(get("ml.model.version")),
    )


SPAN_ATTRIBUTE_COLUMNS = (
    "http_route",
    "http_method",
    "http_status_code",
    "db_system",
    "db_operation",
    "db_query_text",
    "model_name",
    "model_version",
)


def _str_or_none(value: Any) -> str | None:
    return value if value is None or value.__class__ is str else str(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
