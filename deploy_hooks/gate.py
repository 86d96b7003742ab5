"""The gate's decision: figures against thresholds, a verdict, and an exit code.

A verdict is ``pass`` (exit 0), ``blocked`` (exit 1), ``overridden`` (a blocked release let
through with a reason and an approver; exit 0) or ``undecided`` (exit 2: the gate could
not decide). A threshold the figures cannot be compared with (no traffic observed, no
current release) is reported as not checked and does not block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploy_hooks.policy import LIMITS, UNITS, Limit, PolicyError

PASS, BLOCKED, OVERRIDDEN, UNDECIDED = "pass", "blocked", "overridden", "undecided"
EXIT_CODES = {PASS: 0, BLOCKED: 1, OVERRIDDEN: 0, UNDECIDED: 2}


@dataclass(frozen=True)
class Override:
    """Break-glass: who let a blocked release through, and why."""

    reason: str
    approver: str


@dataclass(frozen=True)
class Figures:
    """What the thresholds are compared with."""

    unit: str  # requests | predictions | runs | tokens
    unit_cost: float | None
    current_unit_cost: float | None
    monthly: float | None
    monthly_max: float | None = None
    # Without unit costs (no traffic observed), the increase of the cost per hour (per run
    # for a pipeline) on the same basis: with the same throughput, the same ratio.
    current_hourly: float | None = None
    hourly: float | None = None


def _check(limit: Limit, value: float | None, detail: str, missing: str) -> dict[str, Any]:
    passed = None if value is None else value <= limit.value + 1e-12
    return {
        "threshold": limit.name,
        "limit": limit.value,
        "limit_text": limit.describe(),
        "source": limit.source,
        "value": value,
        "passed": passed,
        "detail": detail if value is not None else f"not checked: {missing}",
    }


def checks(limits: dict[str, Limit], figures: Figures, currency: str) -> list[dict[str, Any]]:
    """Each threshold that applies, against the figures: passed, failed or not checked."""
    out = []
    per = UNITS[figures.unit]
    for limit in sorted(limits.values(), key=lambda x: LIMITS.index(x.name)):
        if limit.currency and limit.currency != currency:
            raise PolicyError(
                f"{limit.source}: {limit.name} is in {limit.currency} but prices "
                f"are in {currency}; write the amount in {currency}"
            )
        if limit.name == "max_unit_cost":
            if limit.unit and limit.unit != figures.unit:
                raise PolicyError(
                    f"{limit.source}: max_unit_cost is per {UNITS[limit.unit]}, but this workload "
                    f"is counted per {per}; set a threshold per {per} for it"
                )
            value = figures.unit_cost
            detail = f"{money(value, currency)} per {per}"
            out.append(_check(limit, value, detail, f"no cost per {per} could be worked out"))
        elif limit.name == "max_increase":
            value, detail = _increase(figures, per, currency)
            out.append(_check(limit, value, detail, "no current release to compare with"))
        elif limit.name == "max_monthly_cost":
            value = figures.monthly
            detail = f"{money(value, currency)} a month"
            if (
                figures.monthly_max is not None
                and value is not None
                and (figures.monthly_max > value)
            ):
                detail += f" (up to {money(figures.monthly_max, currency)} at max replicas)"
            out.append(_check(limit, value, detail, "no monthly cost could be projected"))
    return out


def _increase(figures: Figures, per: str, currency: str) -> tuple[float | None, str]:
    """The increase over the current release, per unit when known, else per hour."""
    pairs = (
        (figures.current_unit_cost, figures.unit_cost, f"per {per}"),
        (figures.current_hourly, figures.hourly, "per hour"),
    )
    for before, after, basis in pairs:
        if before and after is not None:
            value = (after / before - 1) * 100
            return value, (
                f"{value:+.1f}% {basis}: {money(before, currency)} → {money(after, currency)}"
            )
    return None, ""


def verdict(found: list[dict[str, Any]], override: Override | None) -> str:
    if any(c["passed"] is False for c in found):
        return OVERRIDDEN if override is not None else BLOCKED
    return PASS


def money(value: float | None, currency: str) -> str:
    if value is None:
        return "n/a"
    digits = 2 if abs(value) >= 100 else 4
    return f"{value:,.{digits}f} {currency}"
