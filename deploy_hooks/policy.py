"""The gate's policy: unit-cost, increase and monthly thresholds by kind, team and workload.

In ``onepane.yaml`` under ``gate.policy`` (or a file given with ``--policy``)::

    gate:
      policy:
        all:                                  # every workload
          max_increase: 25%                   # unit cost over the current release
        kinds:
          model: {max_unit_cost: 0.40 USD per 1k predictions}
          app: {max_unit_cost: 0.05 USD per 1k requests}
          pipeline: {max_unit_cost: 3.00 USD per run}
        teams:
          ml-platform: {max_monthly_cost: 20000 USD}
        workloads:
          prod/fraud-model: {max_unit_cost: 0.30 USD per 1k predictions}
        environments:                         # the same levels, for one environment
          staging:
            all: {max_monthly_cost: 500 USD}

Each threshold is taken from the most specific place that sets it: workload, then team,
then kind, then all; at each level an environment's own setting beats the general one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from deploy_hooks import yamldoc
from onepane.errors import ConfigError

LIMITS = ("max_unit_cost", "max_increase", "max_monthly_cost")
LEVELS = ("workloads", "teams", "kinds", "all")
KINDS = ("app", "model", "pipeline")
UNITS = {"requests": "1k requests", "predictions": "1k predictions", "runs": "run",
         "tokens": "1M tokens"}  # fmt: skip
_MONEY = re.compile(
    r"^\s*\$?\s*(?P<amount>[0-9][0-9_,]*(?:\.[0-9]+)?|\.[0-9]+)\s*(?P<currency>[A-Za-z]{3})?"
    r"\s*(?:(?:/|per)\s*(?P<unit>.+?))?\s*$"
)
_UNIT_TEXT = (
    (re.compile(r"^(?:1k|1 ?000|1,000|thousand) (?:requests?)$"), "requests"),
    (re.compile(r"^(?:1k|1 ?000|1,000|thousand) (?:predictions?|inferences?)$"), "predictions"),
    (re.compile(r"^(?:1m|1 ?000 ?000|1,000,000|million) tokens?$"), "tokens"),
    (re.compile(r"^(?:1 )?(?:pipeline )?runs?$"), "runs"),
)


class PolicyError(ConfigError):
    """The policy cannot be used; the message names the file, line and reason."""


@dataclass(frozen=True)
class Limit:
    """One threshold and where it was set."""

    name: str  # max_unit_cost | max_increase | max_monthly_cost
    value: float  # money, or percent for max_increase
    source: str  # e.g. "onepane.yaml line 12 (gate.policy.kinds.model)"
    unit: str | None = None  # max_unit_cost: requests | predictions | runs | tokens
    currency: str | None = None

    def describe(self) -> str:
        if self.name == "max_increase":
            return f"{self.value:g}% over the current release"
        money = f"{self.value:g} {self.currency or ''}".rstrip()
        return f"{money} per {UNITS[self.unit]}" if self.unit else money

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Policy:
    """Thresholds per (environment or None, level, key)."""

    rules: Mapping[tuple[str | None, str, str], Mapping[str, Limit]]
    source: str

    def limits(
        self, environment: str, workload: str, team: str | None, kind: str
    ) -> dict[str, Limit]:
        """The thresholds that apply to ``workload``: the most specific one of each."""
        keys = {"workloads": workload, "teams": team, "kinds": kind, "all": ""}
        found: dict[str, Limit] = {}
        for level in LEVELS:
            if keys[level] is None:
                continue
            for env in (environment, None):
                for name, limit in self.rules.get((env, level, keys[level]), {}).items():
                    found.setdefault(name, limit)
        return found

    def environments(self) -> list[str]:
        return sorted({env for env, _, _ in self.rules if env is not None})


EMPTY = Policy({}, "no policy")


def parse_money(text: Any, where: str, per_unit: bool) -> tuple[float, str | None, str | None]:
    """``0.40 USD per 1k predictions`` → (0.4, "USD", "predictions")."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        amount, currency, unit = float(text), None, None
    else:
        match = _MONEY.match(str(text)) if isinstance(text, str) else None
        if match is None:
            example = "0.40 USD per 1k predictions" if per_unit else "5000 USD"
            raise PolicyError(f"{where}: {text!r} is not an amount of money, e.g. {example!r}")
        amount = float(match["amount"].replace(",", "").replace("_", ""))
        currency = match["currency"].upper() if match["currency"] else None
        if currency is None and str(text).lstrip().startswith("$"):
            currency = "USD"
        unit = _unit(match["unit"], where) if match["unit"] else None
    if amount < 0 or amount != amount:
        raise PolicyError(f"{where}: {text!r} must be 0 or more")
    if unit is not None and not per_unit:
        raise PolicyError(f"{where}: {text!r} is a monthly amount; drop the 'per …' part")
    return amount, currency, unit


def _unit(text: str, where: str) -> str:
    normal = " ".join(text.lower().split())
    for pattern, unit in _UNIT_TEXT:
        if pattern.match(normal):
            return unit
    raise PolicyError(
        f"{where}: unknown unit {text!r}; use per 1k requests, per 1k predictions, per run "
        "or per 1M tokens"
    )


def parse_percent(value: Any, where: str) -> float:
    """``25%`` or ``25`` → 25.0."""
    text = str(value).strip().removesuffix("%").strip() if not isinstance(value, bool) else ""
    try:
        percent = float(text)
    except ValueError:
        raise PolicyError(f"{where}: {value!r} is not a percentage, e.g. '25%'") from None
    if not percent >= 0:
        raise PolicyError(f"{where}: {value!r} must be 0% or more")
    return percent


def _limits(doc: yamldoc.Doc, path: yamldoc.Path, value: Any, label: str) -> dict[str, Limit]:
    where = doc.where(path)
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: {label} must be a mapping of {', '.join(LIMITS)}")
    out = {}
    for name, raw in value.items():
        at = f"{doc.where((*path, name))}: {label}.{name}"
        if name not in LIMITS:
            raise PolicyError(f"{at}: unknown threshold; use {', '.join(LIMITS)}")
        source = f"{doc.where((*path, name))} ({label})"
        if name == "max_increase":
            out[name] = Limit(name, parse_percent(raw, at), source)
        else:
            amount, currency, unit = parse_money(raw, at, per_unit=name == "max_unit_cost")
            out[name] = Limit(name, amount, source, unit, currency)
    return out


def _level(
    doc: yamldoc.Doc, path: yamldoc.Path, body: Mapping[str, Any], env: str | None, label: str
) -> dict[tuple[str | None, str, str], dict[str, Limit]]:
    rules: dict[tuple[str | None, str, str], dict[str, Limit]] = {}
    for level, value in body.items():
        where = doc.where((*path, level))
        if level == "environments" and env is None:
            continue
        if level not in LEVELS:
            extra = ", environments" if env is None else ""
            raise PolicyError(f"{where}: unknown key {level!r} in {label}; use "
                              f"{', '.join(LEVELS)}{extra}")  # fmt: skip
        if level == "all":
            rules[(env, "all", "")] = _limits(doc, (*path, level), value, f"{label}.all")
            continue
        if not isinstance(value, Mapping):
            raise PolicyError(f"{where}: {label}.{level} must be a mapping of names to thresholds")
        for key, limits in value.items():
            key = str(key)
            if level == "kinds" and key not in KINDS:
                raise PolicyError(f"{doc.where((*path, level, key))}: unknown kind {key!r}; "
                                  f"use {', '.join(KINDS)}")  # fmt: skip
            if level == "workloads" and "/" not in key:
                raise PolicyError(
                    f"{doc.where((*path, level, key))}: workload {key!r} must be namespace/name"
                )
            sub = (*path, level, key)
            rules[(env, level, key)] = _limits(doc, sub, limits, f"{label}.{level}.{key}")
    return rules


def parse(doc: yamldoc.Doc, path: yamldoc.Path = ()) -> Policy:
    """The policy at ``path`` in ``doc``; PolicyError names the line and what is wrong."""
    body = doc.value
    for key in path:
        body = body.get(key) if isinstance(body, Mapping) else None
    if body is None:
        return Policy({}, doc.source)
    label = ".".join(str(p) for p in path) or "policy"
    if not isinstance(body, Mapping):
        raise PolicyError(f"{doc.where(path)}: {label} must be a mapping of {', '.join(LEVELS)}")
    rules = _level(doc, path, body, None, label)
    envs = body.get("environments") or {}
    if not isinstance(envs, Mapping):
        raise PolicyError(f"{doc.where((*path, 'environments'))}: environments must be a mapping")
    for env, env_body in envs.items():
        sub = (*path, "environments", str(env))
        if not isinstance(env_body, Mapping):
            raise PolicyError(f"{doc.where(sub)}: environment {env!r} must be a mapping")
        rules.update(_level(doc, sub, env_body, str(env), f"{label}.environments.{env}"))
    return Policy(rules, doc.source)


def from_file_text(text: str, source: str) -> Policy:
    """A ``--policy`` file: a whole onepane.yaml (``gate.policy``), or the policy alone."""
    try:
        doc = yamldoc.load(text, source)
    except yamldoc.YamlError as exc:
        raise PolicyError(str(exc)) from None
    if not isinstance(doc.value, Mapping):
        raise PolicyError(
            f"{source}: must be a mapping (the gate policy), not a {type(doc.value).__name__}"
        )
    if "gate" in doc.value:
        return parse(doc, ("gate", "policy"))
    if "policy" in doc.value:
        return parse(doc, ("policy",))
    return parse(doc)
