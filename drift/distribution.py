"""One feature, reference against production: the shares a dashboard draws side by side.

A numerical feature is cut into ``bins`` equal-width bins over the range both sides span
(numpy's histogram: each bin holds its lower edge, the last one its upper edge too). The
reference's counts come from its stored profile: every distinct value with its count (so
they are the reference file's own), or equally weighted quantiles when the file held more
distinct values than the profile keeps (then they are within a quantile's weight of it).
Production's counts come from the window's values. A categorical feature lists every
category either side holds, the reference's most common first.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from drift.methods import Current
from drift.profile import NUMERICAL, ColumnProfile

_EMPTY = np.empty(0, dtype=np.float64)


def document(
    ref: ColumnProfile,
    cur: Current | None,
    bins: int,
) -> dict[str, Any]:
    """The ``bins`` (numerical) or ``categories`` (categorical) of one feature."""
    if ref.type == NUMERICAL:
        return {"bins": numerical_bins(ref, cur, bins), "categories": None}
    return {"bins": None, "categories": categories(ref, cur)}


def numerical_bins(ref: ColumnProfile, cur: Current | None, bins: int) -> list[dict[str, Any]]:
    """Equal-width bins over both sides' range, with each side's count and share."""
    ref_values = ref.values if ref.values is not None else _EMPTY
    ref_weights = ref.weights if ref.weights is not None else _EMPTY
    cur_values = cur.values if cur is not None and cur.values is not None else _EMPTY
    present = [a for a in (ref_values, cur_values) if a.size]
    if not present:
        return []
    low = min(float(a.min()) for a in present)
    high = max(float(a.max()) for a in present)
    edges = np.histogram_bin_edges(np.array([low, high]), bins=bins)
    ref_counts = np.histogram(ref_values, edges, weights=ref_weights)[0]
    cur_counts = np.histogram(cur_values, edges)[0]
    ref_total, cur_total = float(ref_counts.sum()), int(cur_counts.sum())
    return [
        {
            "lower": float(edges[i]),
            "upper": float(edges[i + 1]),
            "reference_share": _share(float(ref_counts[i]), ref_total),
            "production_share": _share(int(cur_counts[i]), cur_total),
            "reference_count": round(float(ref_counts[i])),
            "production_count": int(cur_counts[i]),
        }
        for i in range(len(edges) - 1)
    ]


def categories(ref: ColumnProfile, cur: Current | None) -> list[dict[str, Any]]:
    """Every category either side holds, with its count and share on each side."""
    ref_counts = ref.category_counts()
    cur_counts = cur.category_counts() if cur is not None and cur.count else {}
    ref_total, cur_total = sum(ref_counts.values()), sum(cur_counts.values())
    keys = sorted(
        set(ref_counts) | set(cur_counts),
        key=lambda k: (-ref_counts.get(k, 0), -cur_counts.get(k, 0), k),
    )
    return [
        {
            "category": key,
            "reference_share": _share(ref_counts.get(key, 0), ref_total),
            "production_share": _share(cur_counts.get(key, 0), cur_total),
            "reference_count": int(ref_counts.get(key, 0)),
            "production_count": int(cur_counts.get(key, 0)),
        }
        for key in keys
    ]


def iso(ns: int) -> str:
    """Unix nanoseconds as ISO 8601 UTC with milliseconds, as the store writes times."""
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{rest // 1_000_000:03d}Z"


def _share(count: float, total: float) -> float:
    return count / total if total else 0.0
