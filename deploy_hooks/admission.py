"""The Kubernetes ValidatingAdmissionWebhook: AdmissionReview v1 in, allowed or denied out.

Deployments, StatefulSets, Jobs, CronJobs and KServe InferenceServices are checked with
the same policy as ``onepane gate check``; the denial message is what ``kubectl`` prints.
An UPDATE that changes neither the pod template nor the replicas passes unchecked, as do
Jobs a CronJob started (the CronJob was checked). Break-glass: the annotation
``onepane.dev/override-reason`` lets a blocked release through, with the requesting user
recorded as the approver. When the gate cannot decide (an unknown workload, an error),
``failure: open`` allows with a warning and ``failure: closed`` denies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from deploy_hooks import gate, yamldoc
from onepane.errors import BadRequest, OnepaneError

log = logging.getLogger(__name__)

GATED = ("Deployment", "StatefulSet", "Job", "CronJob", "InferenceService")
OVERRIDE_ANNOTATION = "onepane.dev/override-reason"
_WATCHED = ("replicas", "template", "jobTemplate", "predictor", "transformer", "explainer",
            "parallelism", "completions", "schedule")  # fmt: skip

# (object, workload, version override, who asked, dry run) → decision document
Decide = Callable[[yamldoc.Doc, str, "gate.Override | None", str | None, bool], dict[str, Any]]


def _response(uid: str, allowed: bool, message: str = "", warnings: list[str] | None = None,
              code: int = 403) -> dict[str, Any]:  # fmt: skip
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if message and not allowed:
        response["status"] = {"code": code, "message": message}
    if warnings:
        response["warnings"] = [w[:512] for w in warnings]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def _unchanged(request: Mapping[str, Any]) -> bool:
    if request.get("operation") != "UPDATE" or not isinstance(request.get("oldObject"), Mapping):
        return False
    new, old = request["object"].get("spec") or {}, request["oldObject"].get("spec") or {}
    return all(new.get(k) == old.get(k) for k in _WATCHED)


def review(body: bytes, decide: Decide, fail_open: bool) -> dict[str, Any]:
    """Answer one AdmissionReview; BadRequest when the body is not one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    request = document.get("request") if isinstance(document, dict) else None
    if not isinstance(request, dict) or document.get("kind") != "AdmissionReview" or (
        not request.get("uid")):  # fmt: skip
        raise BadRequest("the body is not an AdmissionReview with a request and its uid")
    uid = str(request["uid"])
    gvk = request.get("kind") or {}
    if not isinstance(gvk, dict):
        raise BadRequest("request.kind must be {group, version, kind}, the object's kind")
    kind = gvk.get("kind")
    obj = request.get("object")
    if kind not in GATED or request.get("operation") not in ("CREATE", "UPDATE"):
        return _response(uid, True)
    if not isinstance(obj, dict) or _unchanged(request):
        return _response(uid, True)
    meta = obj.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    if kind == "Job" and any(o.get("kind") == "CronJob" for o in owners):
        return _response(uid, True)
    namespace = request.get("namespace") or meta.get("namespace") or "default"
    name = meta.get("name") or meta.get("generateName") or ""
    workload = f"{namespace}/{name}"
    user = (request.get("userInfo") or {}).get("username")
    reason = (meta.get("annotations") or {}).get(OVERRIDE_ANNOTATION)
    override = gate.Override(reason, user or "unknown") if reason else None
    source = f"{kind} {workload} (AdmissionReview {uid})"
    try:
        decision = decide(yamldoc.Doc(obj, source), workload, override, user,
                          bool(request.get("dryRun")))  # fmt: skip
    except Exception as exc:  # OnepaneError: it says why; anything else is a bug, logged
        if not isinstance(exc, OnepaneError):
            log.exception("admission of %s failed", source)
            exc = OnepaneError(f"internal error: {type(exc).__name__}: {exc}")
        message = f"Onepane gate could not decide on {workload}: {exc}"
        if fail_open:
            return _response(uid, True, warnings=[f"{message} (allowed: the gate fails open)"])
        return _response(uid, False, f"{message} (denied: the gate fails closed)", code=500)
    return _answer(uid, decision)


def _answer(uid: str, decision: dict[str, Any]) -> dict[str, Any]:
    workload, version = decision["workload"], decision.get("version") or "?"
    failed = [c for c in decision["checks"] if c["passed"] is False]
    why = "; ".join(f"{c['detail']} is over the limit of {c['limit_text']} ({c['source']})"
                    for c in failed)  # fmt: skip
    decision_id = decision.get("decision_id")
    ref = f"decision {decision_id}" if decision_id is not None else "a dry run: not recorded"
    if decision["verdict"] == gate.BLOCKED:
        return _response(
            uid,
            False,
            f"Onepane gate blocked {workload} {version}: {why}. To override, annotate the "
            f'object with {OVERRIDE_ANNOTATION}="<why>" ({ref}).',
        )
    if decision["verdict"] == gate.OVERRIDDEN:
        warning = f"Onepane gate: {workload} {version} is over its policy ({why}); let through by"
        return _response(uid, True, warnings=[f"{warning} override ({ref})"])
    return _response(uid, True)
