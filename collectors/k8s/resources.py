"""What a pod spec asks for: resource quantities and the effective pod request.

Pure functions with no Kubernetes client import, so the gate CLI (which prices manifests)
starts fast. Quantities follow apimachinery's ``resource.Quantity``: a decimal number
with an optional binary (Ki…Ei) or decimal (n, u, m, k, M, G, T, P, E) suffix, or an
exponent (``1e3``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

Obj = Mapping[str, Any]

GPU_RESOURCES = ("nvidia.com/gpu", "nvidia.com/gpu.shared")
_MIG_RESOURCE = re.compile(r"^nvidia\.com/mig-[0-9a-z.]+$")
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -3, "u": -2, "m": -1, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_quantity(text: Any) -> Decimal:
    """A resource quantity (``250m``, ``2Gi``, ``1e3``, ``4``) as a Decimal.

    Raises ValueError when ``text`` is not a quantity Kubernetes would accept.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a quantity")
    if isinstance(text, int | float | Decimal):
        value = Decimal(str(text))
        if not value.is_finite():
            raise ValueError(f"{text!r} is not a quantity")
        return value
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        raise ValueError(f"{str(text)[:40]!r} is not a quantity (like 500m, 2Gi, 4)")
    number, suffix = Decimal(match.group(1)), match.group(2)
    if suffix is None:
        return number
    if suffix in _BINARY:
        return number * Decimal(1024) ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Decimal(1000) ** _DECIMAL[suffix]
    return number * Decimal(10) ** int(suffix[1:])


def quantity(text: Any) -> float | None:
    """A resource quantity as a float; None when unreadable."""
    if text is None:
        return None
    try:
        return float(parse_quantity(text))
    except (ValueError, InvalidOperation):
        return None


def container_amounts(container: Obj, which: str) -> dict[str, Decimal]:
    """A container's ``requests`` or ``limits``, skipping unreadable quantities."""
    out = {}
    for name, text in ((container.get("resources") or {}).get(which) or {}).items():
        try:
            out[name] = parse_quantity(text)
        except (ValueError, InvalidOperation):
            continue
    return out


def _add(into: dict[str, Decimal], amounts: Mapping[str, Decimal]) -> None:
    for name, amount in amounts.items():
        into[name] = into.get(name, Decimal(0)) + amount


def effective_resources(spec: Obj, which: str) -> dict[str, Decimal]:
    """The pod's ``requests`` or ``limits`` as the scheduler counts them.

    max(sum of app containers + sidecars, largest init container + sidecars started before
    it) + pod overhead (KEP-753 sidecars included).
    """
    app: dict[str, Decimal] = {}
    for container in spec.get("containers") or []:
        _add(app, container_amounts(container, which))
    sidecars: dict[str, Decimal] = {}
    init_peak: dict[str, Decimal] = {}
    for container in spec.get("initContainers") or []:
        amounts = container_amounts(container, which)
        if container.get("restartPolicy") == "Always":
            _add(sidecars, amounts)
            continue
        for name, amount in amounts.items():
            init_peak[name] = max(init_peak.get(name, Decimal(0)), amount + sidecars.get(name, 0))
    _add(app, sidecars)
    total = {
        name: max(app.get(name, Decimal(0)), init_peak.get(name, Decimal(0)))
        for name in {*app, *init_peak}
    }
    if which == "requests":
        _add(total, {k: parse_quantity(v) for k, v in (spec.get("overhead") or {}).items()})
    return total


def gpu_amount(amounts: Mapping[str, Decimal]) -> tuple[float | None, str | None]:
    """GPUs asked for (whole, shared or MIG slices) and the resource names they came from."""
    names = [n for n in amounts if n in GPU_RESOURCES or _MIG_RESOURCE.match(n)]
    if not names:
        return None, None
    return float(sum(amounts[n] for n in names)), ",".join(sorted(names))
