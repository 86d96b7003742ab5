"""Evidently's drift tests, on reference statistics and production values.

The test for a column is Evidently 0.7's default choice (``_get_default_stattest`` in
``evidently.legacy.calculations.stattests.registry``), made from the same counts:

* reference of at most 1000 values: numerical → ``ks`` (or ``chisquare`` / ``z`` when
  reference and production hold at most 5 distinct values), categorical → ``chisquare``
  (``z`` for two categories);
* larger references: numerical → ``wasserstein`` (normed by the reference's std;
  ``jensenshannon`` for at most 5 distinct values), categorical → ``jensenshannon``.

Those five are computed here from the stored reference statistics with Evidently's own
formulas (the same scipy calls), so a run never rebuilds the reference and never hands a
million-row frame to pandas. Any other Evidently test named for a column (``psi``,
``kl_div``, ``anderson``, …) runs through Evidently's registry on the reference rebuilt
from its statistics. Thresholds default to Evidently's for the test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from drift.profile import NUMERICAL, ColumnProfile, number_key
from onepane.errors import BadRequest

# Evidently's default thresholds (StatTest.default_threshold) for the tests computed here;
# tests/drift checks them against Evidently's registry.
DEFAULT_THRESHOLDS = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
}
SMALL_REFERENCE = 1000


@dataclass
class Current:
    """One production column in a run's window."""

    count: int  # values present (finite numbers, non-null categories)
    missing: int
    values: np.ndarray | None = None  # numerical: the finite values
    categories: dict[str, int] | None = None  # categorical: key -> count

    def category_counts(self) -> dict[str, int]:
        if self.categories is not None:
            return self.categories
        assert self.values is not None
        distinct, counts = np.unique(self.values, return_counts=True)
        return {
            number_key(v): int(c) for v, c in zip(distinct.tolist(), counts.tolist(), strict=True)
        }


def distinct_together(ref: ColumnProfile, cur: Current, cap: int = 5) -> int:
    """How many distinct values reference and production hold together (exact up to
    ``cap``; anything above it is only known to be more)."""
    if ref.n_unique > cap or (ref.type == NUMERICAL and not ref.exact):
        return ref.n_unique
    if ref.type == NUMERICAL and cur.values is not None:
        assert ref.values is not None
        union = np.union1d(ref.values, np.unique(cur.values[:1_000_000]))
        if union.size <= cap and cur.values.size > 1_000_000:
            union = np.union1d(union, np.unique(cur.values))
        return int(union.size)
    return len(set(ref.category_counts()) | set(cur.category_counts()))


def default_method(ref: ColumnProfile, cur: Current) -> str:
    """Evidently's default test for this column."""
    n_values = distinct_together(ref, cur)
    if ref.count <= SMALL_REFERENCE:
        if ref.type == NUMERICAL and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if ref.type == NUMERICAL and n_values > 5:
        return "wasserstein"
    return "jensenshannon"


def score(
    method: str, ref: ColumnProfile, cur: Current, threshold: float | None
) -> tuple[float, bool, float]:
    """(score, drifted, threshold) for ``method`` on this column."""
    fast = _FAST.get(method)
    if fast is None:
        return _evidently(method, ref, cur, threshold)
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    value, drifted = fast(ref, cur, limit)
    return float(value), bool(drifted), limit


def _wasserstein(ref: ColumnProfile, cur: Current, threshold: float) -> tuple[float, bool]:
    """Evidently: wasserstein_distance(reference, current) / max(std(reference), 0.001)."""
    assert ref.values is not None and ref.weights is not None and cur.values is not None
    norm = max(float(ref.std or 0.0), 0.001)
    value = wasserstein_sorted(ref.values, ref.weights, np.sort(cur.values)) / norm
    return value, value >= threshold


def wasserstein_sorted(u: np.ndarray, u_weights: np.ndarray, v: np.ndarray) -> float:
    """scipy.stats.wasserstein_distance(u, v, u_weights) for ascending ``u`` and ``v``: the
    area between the two CDFs, without scipy's argsorts (the reference is stored sorted)."""
    if u.size == 0 or v.size == 0:
        return float("nan")
    both = np.concatenate((u, v))
    both.sort(kind="stable")
    deltas = np.diff(both)
    at = both[:-1]
    cum = np.concatenate(([0.0], np.cumsum(u_weights)))
    u_cdf = cum[np.searchsorted(u, at, side="right")] / cum[-1]
    v_cdf = np.searchsorted(v, at, side="right") / v.size
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


def _percents(ref: ColumnProfile, cur: Current) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's get_binned_data (without filling zeroes): shares per category (or per
    Sturges bin of both samples, for a numerical column of more than 20 reference values)."""
    if ref.type == NUMERICAL and ref.n_unique > 20:
        assert ref.values is not None and cur.values is not None
        low = min(float(ref.min or 0.0), float(cur.values.min()))
        high = max(float(ref.max or 0.0), float(cur.values.max()))
        bins = max(int(np.ceil(np.log2(ref.count + cur.count) + 1)), 1)
        edges = np.linspace(low, high, bins + 1) if high > low else np.array([low - 0.5, low + 0.5])
        ref_hist = np.histogram(ref.values, edges, weights=ref.weights)[0] / ref.count
        cur_hist = np.histogram(cur.values, edges)[0] / cur.count
        return ref_hist, cur_hist
    ref_counts, cur_counts = ref.category_counts(), cur.category_counts()
    keys = list(set(ref_counts) | set(cur_counts))
    ref_share = np.array([ref_counts.get(k, 0) for k in keys], dtype=float) / ref.count
    cur_share = np.array([cur_counts.get(k, 0) for k in keys], dtype=float) / cur.count
    return ref_share, cur_share


def _jensenshannon(ref: ColumnProfile, cur: Current, threshold: float) -> tuple[float, bool]:
    ref_share, cur_share = _percents(ref, cur)
    from scipy.spatial import distance  # scipy takes seconds to import: only where judged

    value = float(distance.jensenshannon(ref_share, cur_share))
    return value, value >= threshold


def _chisquare(ref: ColumnProfile, cur: Current, threshold: float) -> tuple[float, bool]:
    """Evidently: chisquare(observed, reference counts scaled to the production count)."""
    ref_counts, cur_counts = ref.category_counts(), cur.category_counts()
    keys = list(set(ref_counts) | set(cur_counts))
    scale = cur.count / ref.count
    expected = [ref_counts.get(k, 0) * scale for k in keys]
    observed = [cur_counts.get(k, 0) for k in keys]
    from scipy import stats

    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = float(stats.chisquare(observed, expected)[1])
    return p_value, p_value < threshold


def _z(ref: ColumnProfile, cur: Current, threshold: float) -> tuple[float, bool]:
    """Evidently's two-proportion z-test on the first of the (sorted) values."""
    ref_counts, cur_counts = ref.category_counts(), cur.category_counts()
    if len(ref_counts) == 1 and len(cur_counts) == 1 and set(ref_counts) == set(cur_counts):
        return 1.0, threshold > 1.0
    first = _sorted_keys(ref, set(ref_counts) | set(cur_counts))[0]
    n1, n2 = ref.count, cur.count
    p1 = (n1 - ref_counts.get(first, 0)) / n1
    p2 = (n2 - cur_counts.get(first, 0)) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    from scipy import stats

    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
        p_value = float(2 * (1 - stats.norm.cdf(np.abs(z))))
    return p_value, p_value < threshold


def _sorted_keys(ref: ColumnProfile, keys: set[str]) -> list[str]:
    """Keys in the order Evidently sorts the values they stand for (numbers as numbers)."""
    if ref.type == NUMERICAL:
        return sorted(keys, key=float)
    try:
        return sorted(keys, key=float)
    except ValueError:
        return sorted(keys)


def _ks(ref: ColumnProfile, cur: Current, threshold: float) -> tuple[float, bool]:
    assert cur.values is not None
    from scipy import stats

    p_value = float(stats.ks_2samp(rebuilt(ref), cur.values)[1])
    return p_value, p_value <= threshold


_FAST: dict[str, Callable[[ColumnProfile, Current, float], tuple[float, bool]]] = {
    "wasserstein": _wasserstein,
    "jensenshannon": _jensenshannon,
    "chisquare": _chisquare,
    "z": _z,
    "ks": _ks,
}


def rebuilt(ref: ColumnProfile) -> np.ndarray:
    """The reference column's values back from its statistics: exact when it kept every
    distinct value, else its quantiles."""
    if ref.type == NUMERICAL:
        assert ref.values is not None and ref.weights is not None
        if ref.exact:
            return np.repeat(ref.values, ref.weights.astype(np.int64))
        return ref.values
    counts = ref.category_counts()
    return np.repeat(np.array(list(counts), dtype=object), list(counts.values()))


def _evidently(
    method: str, ref: ColumnProfile, cur: Current, threshold: float | None
) -> tuple[float, bool, float]:
    """Any other test from Evidently's registry, on the rebuilt reference."""
    import pandas as pd
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Numerical if ref.type == NUMERICAL else ColumnType.Categorical
    test = evidently_test(method, ref.type)
    if ref.type == NUMERICAL:
        assert cur.values is not None
        current = pd.Series(cur.values)
    else:
        counts = cur.category_counts()
        current = pd.Series(np.repeat(np.array(list(counts), dtype=object), list(counts.values())))
    result = get_registered_stattest(test.name, kind)(
        pd.Series(rebuilt(ref)), current, kind, threshold
    )
    return float(result.drift_score), bool(result.drifted), float(result.actual_threshold)


def evidently_test(method: str, column_type: str) -> Any:
    """Evidently's registered test ``method`` for a column type; BadRequest naming the
    choices when there is none."""
    from evidently.legacy.calculations.stattests import registry
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Numerical if column_type == NUMERICAL else ColumnType.Categorical
    try:
        return registry.get_registered_stattest(method, kind)
    except Exception:  # StatTestNotFoundError, StatTestInvalidFeatureTypeError
        names = sorted(
            name for name, impls in registry._registered_stat_tests.items() if kind in impls
        )
        raise BadRequest(
            f"{method!r} is not an Evidently drift test for {column_type} columns; "
            f"use one of {', '.join(names)}"
        ) from None


def check_method(method: str, column_type: str) -> None:
    """Raise BadRequest unless ``method`` is a test Evidently has for this column type."""
    evidently_test(method, column_type)
