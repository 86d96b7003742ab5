"""The gate's Markdown report: for the terminal, ``$GITHUB_STEP_SUMMARY`` and PR comments."""

from __future__ import annotations

from typing import Any

from deploy_hooks.gate import money

_VERDICT = {
    "pass": "✅ pass",
    "blocked": "❌ blocked",
    "overridden": "⚠️ overridden",
    "undecided": "❔ undecided",
}
_LABEL = {
    "max_unit_cost": "Unit cost",
    "max_increase": "Unit cost increase",
    "max_monthly_cost": "Monthly cost",
}


def _cell(check: dict[str, Any], currency: str) -> str:
    if check["value"] is None:
        return "n/a"
    if check["threshold"] == "max_increase":
        return f"{check['value']:+.1f}%"
    return money(check["value"], currency)


def _status(check: dict[str, Any]) -> str:
    return {True: "✅ within", False: "❌ over", None: "➖ not checked"}[check["passed"]]


def render(decision: dict[str, Any], command: str = "") -> str:
    """The decision as Markdown: verdict, figures vs thresholds, inputs, how to override."""
    cur = decision.get("currency", "")
    version = decision.get("version") or "(no version)"
    title = (
        f"## Onepane gate {decision['action']}: {_VERDICT[decision['verdict']]} — "
        f"`{decision['workload']}` {version} ({decision['environment']})"
    )
    lines = [title, ""]
    unit = decision.get("unit", "")
    lines += [
        f"{decision.get('kind', 'app')} of team {decision.get('team') or '(none)'}, "
        f"counted per {unit}.",
        "",
    ]
    checks = decision.get("checks") or []
    if checks:
        lines += ["| Threshold | Figure | Limit | Set in | |", "|---|---|---|---|---|"]
        for c in checks:
            lines.append(
                f"| {_LABEL[c['threshold']]} | {_cell(c, cur)} | ≤ {c['limit_text']} | "
                f"{c['source']} | {_status(c)} |"
            )
        lines.append("")
    lines += _figures(decision, cur, unit)
    notes = decision.get("notes") or []
    if notes:
        lines += ["", "**Notes**", ""] + [f"- {n}" for n in notes]
    lines += ["", *_footer(decision, command)]
    return "\n".join(lines) + "\n"


def _figures(decision: dict[str, Any], cur: str, unit: str) -> list[str]:
    lines = []
    proj = decision.get("projection")
    seen = decision.get("observed") or {}
    if proj is not None:
        lines += [
            "| | Current release | This release |",
            "|---|---|---|",
            f"| Cost per {unit} | {money(proj.get('current_unit_cost'), cur)} | "
            f"{money(proj.get('unit_cost'), cur)} |",
        ]
        if proj.get("hourly") is not None:
            lines.append(
                f"| Cost per hour | {money(proj.get('current_hourly'), cur)} | "
                f"{money(proj['hourly'], cur)} |"
            )
        lines.append(
            f"| Cost per month | {money(_monthly(proj), cur)} | {money(proj.get('monthly'), cur)} |"
        )
        lines += ["", "**Projected from**", ""]
        lines += [f"- {r}" for r in (decision.get("release") or {}).get("read", [])]
        for c in proj.get("components") or []:
            lines.append(
                f"- {c['name']}: {c['replicas']} × ({c['cpu']:g} CPU, "
                f"{c['memory_gib']:.3g} GiB, {c['gpus']:g} GPU) at "
                f"{money(c['pod_hourly'], cur)} per pod-hour"
            )
        rates = decision.get("rates") or {}
        if rates:
            lines.append(
                f"- prices: {money(rates['cpu_core_hour'], cur)} per core-hour, "
                f"{money(rates['ram_gib_hour'], cur)} per GiB-hour, "
                f"{money(rates['gpu_hour'], cur)} per GPU-hour, from {rates['source']}"
            )
        if seen.get("throughput_per_hour"):
            lines.append(
                f"- throughput: {seen['units']:,} {unit.split()[-1]} in "
                f"{seen['serving_hours']:,.2f} h of traffic: "
                f"{seen['throughput_per_hour']:,.1f} an hour"
            )
        if seen.get("unit_cost") is not None:
            lines.append(
                f"- observed: {money(seen['unit_cost'], cur)} per {unit} "
                "(allocated cost, usage above requests included)"
            )
    elif seen:
        lines += [
            f"- observed: {money(seen.get('unit_cost'), cur)} per {unit} from "
            f"{seen.get('units', 0):,} units and {money(seen.get('cost'), cur)} of cost",
            f"- baseline: {money(seen.get('baseline_unit_cost'), cur)} per {unit} "
            f"({seen.get('baseline')})",
        ]
    return lines


def _monthly(proj: dict[str, Any]) -> float | None:
    if proj.get("current_hourly") is not None:
        return proj["current_hourly"] * 730
    runs = proj.get("runs_per_month")
    current = proj.get("current_unit_cost")
    return current * runs if current is not None and runs is not None else None


def _footer(decision: dict[str, Any], command: str) -> list[str]:
    ref = (
        f"decision {decision['decision_id']}"
        if decision.get("decision_id")
        else "not recorded (dry run)"
    )
    if decision["verdict"] == "blocked" and decision.get("action") == "verify":
        return [
            f"**Blocked by policy** ({ref}): the canary costs more than the policy allows; "
            "roll it back, or fix it and verify again."
        ]
    if decision["verdict"] == "blocked":
        how = (
            f'`{command} --override-reason "why" --approver NAME`'
            if command
            else ('`--override-reason "why" --approver NAME`')
        )
        return [
            f"**Blocked by policy** ({ref}). To release anyway, run again with {how}: "
            "the override is recorded in the audit log."
        ]
    if decision["verdict"] == "overridden":
        return [
            f"**Overridden** by {decision.get('approver')}: {decision.get('override_reason')} "
            f"({ref})."
        ]
    if decision["verdict"] == "undecided":
        return [f"**Undecided** ({ref}): the gate could not judge this release."]
    return [f"**Passed** ({ref})."]


def render_error(message: str, fail_open: bool) -> str:
    """The report when the gate could not decide at all."""
    then = "failing open: the release goes on" if fail_open else "the release is held (exit 2)"
    return f"## Onepane gate: ❔ undecided\n\nThe gate could not decide: {message}\n\n{then}.\n"
