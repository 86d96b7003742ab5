"""The gate in the server: checks, canary verification, the admission webhook and the audit.

``POST /api/v1/gate/check`` takes the release's manifests (their text) and answers the
decision; ``GET /api/v1/gate/verify`` answers a canary's verdict from what it was observed
to cost; ``POST /api/v1/gate/admission`` (and the TLS listener's ``/validate``) answers an
AdmissionReview. Every decision is stored before it is answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cost import observed, pricing
from cost import window as cost_window
from deploy_hooks import admission, gate, manifests, policy, projection, yamldoc
from onepane.costapi import whole_param
from onepane.errors import BadRequest, NotFound
from store import gate as gate_store
from store.window import parse_duration

VERIFY_PARAMS = {"workload", "version", "window", "environment", "min_units", "actor"}
DECISION_FILTERS = {"workload", "version", "verdict", "action", "environment", "team", "kind"}
_LIST_PARAMS = {*DECISION_FILTERS, "since", "limit"}
_CHECK_KEYS = {
    "workload",
    "version",
    "environment",
    "manifests",
    "policy",
    "observe",
    "actor",
    "ci",
    "override",
    "dry_run",
}


@dataclass(frozen=True)
class AdmissionConfig:
    """The TLS listener for the Kubernetes API server."""

    host: str
    port: int
    cert: Path
    key: Path
    fail_open: bool = False


@dataclass(frozen=True)
class GateConfig:
    """The ``gate`` section of onepane.yaml."""

    policy: policy.Policy = policy.EMPTY
    environment: str = "production"
    observe: str = "7d"  # throughput and current release: this far back
    verify_window: str = "30m"
    min_units: int = 100  # verify: fewer units than this is too few to judge
    admission: AdmissionConfig | None = None
    fail_open: bool = False  # admission: allow when the gate cannot decide


@dataclass
class GateService:
    """Decides, records and lists; reads through ``cursor()``, writes through ``apply``."""

    config: GateConfig
    prices: pricing.PriceSet
    cursor: Callable[[], Any]
    apply: Callable[[Callable[[Any], Any], int], Any]
    rollup: Callable[[], Any] | None = None
    now: Callable[[], int] = field(default=time.time_ns)

    # -- check -----------------------------------------------------------------------

    def check(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/gate/check``: the decision on a release given as manifests."""
        unknown = set(body) - _CHECK_KEYS
        if unknown:
            raise BadRequest(
                f"unknown field {sorted(unknown)[0]!r}; use {', '.join(sorted(_CHECK_KEYS))}"
            )
        workload = _text(body, "workload", required=True)
        texts = body.get("manifests")
        if (
            not isinstance(texts, list)
            or not texts
            or not all(isinstance(m, dict) and isinstance(m.get("text"), str) for m in texts)
        ):
            raise BadRequest("manifests must be a list of {source, text}: the files' YAML")
        docs = manifests.load((str(m.get("source") or "manifest"), m["text"]) for m in texts)
        release = manifests.release(docs, workload, _text(body, "version"))
        rules = self.config.policy
        if body.get("policy") is not None:
            given = body["policy"]
            if not isinstance(given, dict) or not isinstance(given.get("text"), str):
                raise BadRequest("policy must be {source, text}: a policy file's YAML")
            rules = policy.from_file_text(given["text"], str(given.get("source") or "policy"))
        return self._decide(
            release,
            action="check",
            environment=_text(body, "environment") or self.config.environment,
            rules=rules,
            observe=_text(body, "observe") or self.config.observe,
            override=_override(body.get("override")),
            actor=_text(body, "actor"),
            extra={"ci": body.get("ci")} if isinstance(body.get("ci"), dict) else {},
            record=not body.get("dry_run"),
        )

    def _decide(
        self,
        release: manifests.Release,
        action: str,
        environment: str,
        rules: policy.Policy,
        observe: str,
        override: gate.Override | None,
        actor: str | None,
        extra: dict[str, Any],
        record: bool = True,
    ) -> dict[str, Any]:
        now = self.now()
        window = cost_window.parse(observe, None, now)
        cursor = self.cursor()
        try:
            who = observed.identity(cursor, release.workload)
            seen = observed.observe(cursor, who, window)
            rates = observed.rates(
                cursor,
                self.prices,
                release.workload,
                dict(release.node_selector),
                now,
                window.start_ns,
            )
        finally:
            cursor.close()
        proj = projection.project(release, seen, rates)
        figures = gate.Figures(
            who.unit,
            proj.unit_cost,
            proj.current_unit_cost,
            proj.monthly,
            proj.monthly_max,
            current_hourly=proj.current_hourly,
            hourly=proj.hourly,
        )
        limits = rules.limits(environment, who.workload, who.team, who.kind)
        found = gate.checks(limits, figures, self.prices.currency)
        verdict = gate.verdict(found, override)
        decision = {
            **self._head(action, who, release.version, environment, verdict, actor),
            "override_reason": override.reason if override and verdict == gate.OVERRIDDEN else None,
            "approver": override.approver if override and verdict == gate.OVERRIDDEN else None,
            "policy_source": rules.source,
            "currency": self.prices.currency,
            "release": {
                "controller": release.controller,
                "read": list(release.read),
                "node_selector": dict(release.node_selector),
                "schedule": release.schedule,
                "completions": release.completions,
            },
            "rates": {
                "cpu_core_hour": rates.cpu,
                "ram_gib_hour": rates.ram,
                "gpu_hour": rates.gpu,
                "source": rates.source,
            },
            "projection": proj.as_dict(),
            "observed": observed.as_dict(seen),
            "checks": found,
            "notes": proj.notes
            + (
                []
                if limits
                else [f"no threshold in {rules.source} applies to {who.workload} in {environment}"]
            ),
            **extra,
        }
        return self._record(decision, deployment=action in ("check", "admission"), record=record)

    def _head(
        self,
        action: str,
        who: observed.Identity,
        version: str | None,
        environment: str,
        verdict: str,
        actor: str | None,
    ) -> dict[str, Any]:
        return {
            "action": action,
            "workload": who.workload,
            "version": version,
            "kind": who.kind,
            "team": who.team,
            "unit": projection_unit(who.unit),
            "environment": environment,
            "verdict": verdict,
            "exit_code": gate.EXIT_CODES[verdict],
            "actor": actor,
        }

    def _record(self, decision: dict[str, Any], deployment: bool, record: bool) -> dict[str, Any]:
        if not record:
            decision["decision_id"] = None
            return decision
        now = self.now()
        decision["time_unix_nano"] = now
        self.apply(lambda conn: gate_store.record(conn, decision, now, deployment), 1)
        return decision

    # -- verify ----------------------------------------------------------------------

    def verify(self, q: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/v1/gate/verify``: a canary version's observed unit cost vs the policy."""
        workload = _text(q, "workload", required=True)
        version = _text(q, "version", required=True)
        environment = q.get("environment") or self.config.environment
        span_ns = parse_duration(q.get("window") or self.config.verify_window, "window")
        min_units = whole_param(q.get("min_units"), self.config.min_units, "min_units")
        if self.rollup is not None:
            self.rollup()  # this hour's cost, up to now
        now = self.now()
        start = now - span_ns
        cursor = self.cursor()
        try:
            who = observed.identity(cursor, workload)
            canary = observed.canary(cursor, who, version, start, now)
            before = cost_window.parse(self.config.observe, None, start)
            baseline = canary.baseline
            if baseline is None:
                baseline = observed.observe(cursor, who, before).unit_cost
        finally:
            cursor.close()
        limits = self.config.policy.limits(environment, who.workload, who.team, who.kind)
        monthly = limits.pop("max_monthly_cost", None)
        notes = [
            f"{canary.units} {who.unit} of {version} and {canary.cost:.4f} "
            f"{self.prices.currency} of its pods' cost in the window"
        ]
        if monthly is not None:
            notes.append("max_monthly_cost is checked by `onepane gate check`, not verify")
        if canary.units < min_units or canary.unit_cost is None:
            verdict, found = gate.UNDECIDED, []
            notes.append(
                f"too little to judge: {canary.units} of {version} in the window "
                f"(need {min_units}) or no cost of its pods; try again later"
            )
        else:
            figures = gate.Figures(who.unit, canary.unit_cost, baseline, None)
            found = gate.checks(limits, figures, self.prices.currency)
            verdict = gate.verdict(found, None)
        decision = {
            **self._head("verify", who, version, environment, verdict, q.get("actor")),
            "policy_source": self.config.policy.source,
            "currency": self.prices.currency,
            "window": {"start_ns": start, "end_ns": now},
            "observed": {
                "unit_cost": canary.unit_cost,
                "units": canary.units,
                "cost": canary.cost,
                "pods": canary.pods,
                "baseline_unit_cost": baseline,
                "baseline": canary.baseline_source
                if canary.baseline is not None
                else f"the workload over the {self.config.observe} before",
            },
            "checks": found,
            "notes": notes,
        }
        return self._record(decision, deployment=False, record=True)

    # -- admission -------------------------------------------------------------------

    def admission(self, body: bytes) -> dict[str, Any]:
        """An AdmissionReview answered with the same policy as ``gate check``."""
        return admission.review(body, self._admit, self.config.fail_open)

    def _admit(
        self,
        doc: yamldoc.Doc,
        workload: str,
        override: gate.Override | None,
        user: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        if doc.value.get("kind") == "InferenceService":
            workload = self._predictor(workload)
        release = manifests.release([doc], workload)
        return self._decide(
            release,
            "admission",
            self.config.environment,
            self.config.policy,
            self.config.observe,
            override,
            user,
            {},
            record=not dry_run,
        )

    def _predictor(self, workload: str) -> str:
        """KServe runs InferenceService NAME as Deployment NAME-predictor: the workload
        Onepane has seen, unless it knows NAME itself (from the catalog or spans)."""
        cursor = self.cursor()
        try:
            for name in (workload, f"{workload}-predictor"):
                try:
                    observed.identity(cursor, name)
                    return name
                except NotFound:
                    pass
        finally:
            cursor.close()
        return workload  # unknown by either name: the decision says so, naming it

    # -- audit -----------------------------------------------------------------------

    def decisions(self, q: Mapping[str, str]) -> dict[str, Any]:
        filters, since, limit = _list_query(q)
        cursor = self.cursor()
        try:
            return {"decisions": gate_store.decisions(cursor, filters, since, limit)}
        finally:
            cursor.close()

    def decision(self, decision_id: str) -> dict[str, Any]:
        if not decision_id.isascii() or not decision_id.isdigit():
            raise BadRequest(f"decision id must be a number, got {decision_id[:20]!r}")
        cursor = self.cursor()
        try:
            found = gate_store.decisions(cursor, {"decision_id": int(decision_id)}, None, 1)
        finally:
            cursor.close()
        if not found:
            raise NotFound(f"no gate decision {decision_id}")
        return found[0]

    def deployments(self, q: Mapping[str, str]) -> dict[str, Any]:
        filters, since, limit = _list_query(q)
        cursor = self.cursor()
        try:
            return {"deployments": gate_store.deployments(cursor, filters, since, limit)}
        finally:
            cursor.close()


def projection_unit(unit: str) -> str:
    return policy.UNITS[unit]


def _text(body: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if not isinstance(value, str) or len(value) > 512:
        raise BadRequest(f"{key} must be text of at most 512 characters")
    return value


def _override(value: Any) -> gate.Override | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("override must be {reason, approver}")
    reason, approver = _text(value, "reason"), _text(value, "approver")
    if not reason or not reason.strip():
        raise BadRequest('an override needs a reason: --override-reason "why"')
    if not approver or not approver.strip():
        raise BadRequest("an override needs the approver's identity: --approver NAME")
    return gate.Override(reason.strip(), approver.strip())


def _list_query(q: Mapping[str, str]) -> tuple[dict[str, Any], int | None, int]:
    unknown = set(q) - _LIST_PARAMS
    if unknown:
        raise BadRequest(
            f"unknown parameter {sorted(unknown)[0][:40]!r}; use {', '.join(sorted(_LIST_PARAMS))}"
        )
    filters = {k: q.get(k) or None for k in DECISION_FILTERS}
    since = time.time_ns() - parse_duration(q["since"], "since") if q.get("since") else None
    limit = whole_param(q.get("limit"), 100, "limit")
    if not 1 <= limit <= 10_000:
        raise BadRequest("limit must be between 1 and 10000")
    return filters, since, limit


def dumps(document: Any) -> bytes:
    return orjson.dumps(document)
