"""Evidently's drift tests from stored reference statistics: the test chosen, known shifts,
the quantile sketch, per-column tests and thresholds against Evidently itself."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from evidently import Report
from evidently.legacy.calculations.stattests.registry import (
    _get_default_stattest,
    get_registered_stattest,
)
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset
from scipy.stats import wasserstein_distance

from drift import methods
from drift.methods import DEFAULT_THRESHOLDS, Current
from drift.profile import CATEGORICAL, NUMERICAL, ColumnProfile, clean_numbers, number_key, profile
from drift.run import DRIFT, NO_DRIFT, RunOptions, judge_column
from onepane.errors import BadRequest


def current_of(column: ColumnProfile, series: pd.Series) -> Current:
    """A production column as a run reads it from the store."""
    if column.type == NUMERICAL:
        values = clean_numbers(series.to_numpy(dtype=float))
        return Current(values.size, len(series) - values.size, values=values)
    present = series.dropna().tolist()
    counts = Counter(k if isinstance(k, str) else number_key(k) for k in present)
    return Current(len(present), len(series) - len(present), categories=dict(counts))


def judge(
    ref: pd.Series | np.ndarray,
    cur: pd.Series | np.ndarray,
    kind: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One column through profile() and judge_column(), as a run judges it."""
    given = {"x": kind} if kind else None
    column = profile(pl.from_pandas(pd.DataFrame({"x": ref})), given).columns["x"]
    cur = pd.Series(cur)
    opts = RunOptions(
        methods={"x": options["method"]} if "method" in options else {},
        thresholds={"x": options["threshold"]} if "threshold" in options else {},
        min_rows=10,
    )
    return judge_column(column, current_of(column, cur), len(cur), opts)


# -- the test Evidently would choose ---------------------------------------------------

RNG = np.random.default_rng(3)


def _choice(values: list, n: int) -> np.ndarray:
    return RNG.choice(np.array(values), size=n)


DEFAULT_CASES = {
    "numerical, 1000 values": (RNG.normal(size=1000), RNG.normal(size=50), NUMERICAL, "ks"),
    "numerical, 1001 values": (
        RNG.normal(size=1001),
        RNG.normal(size=50),
        NUMERICAL,
        "wasserstein",
    ),
    "numerical, 5 values": (
        _choice([1.0, 2, 3, 4, 5], 1000),
        _choice([1.0, 5], 50),
        NUMERICAL,
        "chisquare",
    ),
    "numerical, 5 + 1 new value": (
        _choice([1.0, 2, 3, 4, 5], 1000),
        _choice([1.0, 6], 50),
        NUMERICAL,
        "ks",
    ),
    "numerical, 3 values": (
        _choice([0.5, 1.5, 2.5], 1000),
        _choice([0.5], 50),
        NUMERICAL,
        "chisquare",
    ),
    "numerical, 2 values": (_choice([0.0, 1.0], 1000), _choice([0.0, 1.0], 50), NUMERICAL, "z"),
    "numerical, 1 value": (np.ones(1000), np.ones(50), NUMERICAL, "z"),
    "numerical, large, 5 values": (
        _choice([1.0, 2, 3, 4, 5], 1001),
        _choice([1.0, 5], 50),
        NUMERICAL,
        "jensenshannon",
    ),
    "numerical, large, 5 + 1 new value": (
        _choice([1.0, 2, 3, 4, 5], 1001),
        _choice([6.0], 50),
        NUMERICAL,
        "wasserstein",
    ),
    "categorical, 2 values": (_choice(["a", "b"], 1000), _choice(["a"], 50), CATEGORICAL, "z"),
    "categorical, 2 + 1 new value": (
        _choice(["a", "b"], 1000),
        _choice(["a", "c"], 50),
        CATEGORICAL,
        "chisquare",
    ),
    "categorical, large": (
        _choice(["a", "b"], 1001),
        _choice(["a"], 50),
        CATEGORICAL,
        "jensenshannon",
    ),
    "categorical ints, 8 values": (
        _choice(list(range(8)), 1000),
        _choice([1, 2], 50),
        CATEGORICAL,
        "chisquare",
    ),
}


@pytest.mark.parametrize("case", list(DEFAULT_CASES))
def test_default_method_is_evidentlys(case: str) -> None:
    ref, cur, kind, expected = DEFAULT_CASES[case]
    column = profile(pl.DataFrame({"x": ref}), {"x": kind}).columns["x"]
    evidently_kind = ColumnType.Numerical if kind == NUMERICAL else ColumnType.Categorical
    evidently = _get_default_stattest(pd.Series(ref), pd.Series(cur), evidently_kind).name
    chosen = methods.default_method(column, current_of(column, pd.Series(cur)))
    assert chosen == evidently == expected


# -- known shifts --------------------------------------------------------------------


def _mix(rng: np.random.Generator, n: int, shares: list[float]) -> np.ndarray:
    return rng.choice(np.array(["card", "cash", "wallet"], dtype=object), size=n, p=shares)


@pytest.mark.parametrize(("n_ref", "method"), [(800, "ks"), (20_000, "wasserstein")])
def test_mean_shift_of_half_a_std_is_drift(n_ref: int, method: str) -> None:
    rng = np.random.default_rng(10)
    result = judge(rng.normal(100, 20, n_ref), rng.normal(110, 20, 5000))
    assert (result["method"], result["status"], result["drifted"]) == (method, DRIFT, True)
    if method == "wasserstein":
        assert result["score"] == pytest.approx(0.5, abs=0.05)
    else:
        assert result["score"] < 1e-6


@pytest.mark.parametrize(("n_ref", "method"), [(800, "chisquare"), (20_000, "jensenshannon")])
def test_category_mix_change_is_drift(n_ref: int, method: str) -> None:
    rng = np.random.default_rng(11)
    result = judge(_mix(rng, n_ref, [0.6, 0.3, 0.1]), _mix(rng, 3000, [0.3, 0.3, 0.4]))
    assert (result["method"], result["status"]) == (method, DRIFT)


@pytest.mark.parametrize(("n_ref", "method"), [(800, "ks"), (20_000, "wasserstein")])
def test_same_distribution_is_no_drift(n_ref: int, method: str) -> None:
    rng = np.random.default_rng(12)
    result = judge(rng.normal(100, 20, n_ref), rng.normal(100, 20, 20_000))
    assert (result["method"], result["status"], result["drifted"]) == (method, NO_DRIFT, False)
    if method == "wasserstein":
        assert result["score"] < 0.05


@pytest.mark.parametrize(("n_ref", "method"), [(800, "chisquare"), (20_000, "jensenshannon")])
def test_same_category_mix_is_no_drift(n_ref: int, method: str) -> None:
    rng = np.random.default_rng(13)
    shares = [0.6, 0.3, 0.1]
    # chi-square takes the reference's shares as exact: production of its own size
    result = judge(_mix(rng, n_ref, shares), _mix(rng, n_ref, shares))
    assert (result["method"], result["status"]) == (method, NO_DRIFT)


# -- a large reference: the quantile sketch ---------------------------------------------


@pytest.mark.parametrize("shape", ["normal", "lognormal", "exponential"])
def test_sketched_wasserstein_is_close_to_exact(shape: str) -> None:
    rng = np.random.default_rng(20)
    draw = {
        "normal": lambda n, shift: rng.normal(50 + 2 * shift, 10, n),
        "lognormal": lambda n, shift: rng.lognormal(0.2 * shift, 1.5, n),
        "exponential": lambda n, shift: rng.exponential(3 + shift, n),
    }[shape]
    ref, cur = draw(200_000, 0), draw(50_000, 1)
    column = profile(pl.DataFrame({"x": ref})).columns["x"]
    assert not column.exact  # more distinct values than SKETCH_POINTS
    result = judge_column(column, Current(cur.size, 0, values=cur), cur.size, RunOptions())
    exact = wasserstein_distance(ref, cur) / np.std(ref)
    assert result["method"] == "wasserstein"
    assert result["score"] == pytest.approx(exact, abs=1e-3)
    assert exact > 0.01  # a shift the sketch has to measure, not two equal samples


# -- per-column tests and thresholds -------------------------------------------------

OVERRIDE_METHODS = {
    "a": "psi",
    "b": "anderson",
    "c": "jensenshannon",  # on a numerical column of > 20 values: Sturges bins
    "d": "ks",  # on a reference of more than 1000 values
    "w": "wasserstein",
    "e": "kl_div",
    "f": "psi",
    "g": "hellinger",
}
OVERRIDE_THRESHOLDS = {"d": 1e-3, "w": 0.3, "e": 0.5}


def _override_frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    shares = [0.4, 0.3, 0.2, 0.1] if not shift else [0.25, 0.3, 0.2, 0.25]
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, n),
            "b": rng.exponential(1 + shift / 20, n),
            "c": rng.integers(0, 300, n) + int(shift * 30),
            "d": rng.normal(shift, 1, n),
            "w": rng.normal(0, 1 + shift, n),
            "e": rng.choice(["x", "y", "z", "q"], size=n, p=shares),
            "f": rng.choice([1, 2, 3, 5], size=n, p=shares),
            "g": rng.normal(shift / 2, 1, n),
        }
    )


@pytest.fixture(scope="module")
def overridden() -> dict[str, Any]:
    """Evidently's report with per-column tests and thresholds, and the run's columns."""
    rng = np.random.default_rng(7)
    ref, cur = _override_frame(rng, 1500, 0.0), _override_frame(rng, 800, 0.15)
    preset = DataDriftPreset(
        per_column_method=OVERRIDE_METHODS, per_column_threshold=OVERRIDE_THRESHOLDS
    )
    snapshot = Report([preset], include_tests=True).run(cur, ref).dict()
    prof = profile(pl.from_pandas(ref))
    options = RunOptions(methods=OVERRIDE_METHODS, thresholds=OVERRIDE_THRESHOLDS, min_rows=10)
    ours = {
        name: judge_column(column, current_of(column, cur[name]), len(cur), options)
        for name, column in prof.columns.items()
    }
    evidently = {
        m["config"]["column"]: m
        for m in snapshot["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    failed = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in snapshot["tests"]
        if t["id"] == "drift"
    }
    return {"ours": ours, "evidently": evidently, "failed": failed}


@pytest.mark.parametrize("name", list(OVERRIDE_METHODS))
def test_per_column_method_matches_evidently(overridden: dict[str, Any], name: str) -> None:
    ours, evidently = overridden["ours"][name], overridden["evidently"][name]
    assert ours["method"] == evidently["config"]["method"] == OVERRIDE_METHODS[name]
    assert ours["score"] == pytest.approx(evidently["value"], rel=1e-9, abs=0)
    assert ours["threshold"] == evidently["config"]["threshold"]
    assert ours["drifted"] == overridden["failed"][name]
    assert ours["status"] == (DRIFT if ours["drifted"] else NO_DRIFT)


def test_per_column_methods_give_both_verdicts(overridden: dict[str, Any]) -> None:
    verdicts = {name: column["drifted"] for name, column in overridden["ours"].items()}
    assert set(verdicts.values()) == {True, False}
    assert overridden["ours"]["b"]["score"] > 0.001  # not Anderson-Darling's floored p-value


def test_per_column_threshold_changes_the_verdict() -> None:
    rng = np.random.default_rng(30)
    ref, cur = rng.normal(0, 1, 5000), rng.normal(0.25, 1, 5000)
    default = judge(ref, cur)
    raised = judge(ref, cur, threshold=0.5)
    assert default["method"] == raised["method"] == "wasserstein"
    assert default["score"] == raised["score"]
    assert (default["threshold"], default["status"]) == (0.1, DRIFT)
    assert (raised["threshold"], raised["status"]) == (0.5, NO_DRIFT)
    small_ref = rng.normal(0, 1, 500)
    p_default = judge(small_ref, cur)
    p_strict = judge(small_ref, cur, threshold=p_default["score"] / 10)
    assert (p_default["method"], p_default["status"]) == ("ks", DRIFT)
    assert p_strict["status"] == NO_DRIFT


def test_unknown_method_is_refused_with_the_choices() -> None:
    with pytest.raises(BadRequest) as caught:
        methods.check_method("nonsense", NUMERICAL)
    message = str(caught.value)
    assert message.startswith("'nonsense' is not an Evidently drift test for numerical columns")
    for name in ("ks", "wasserstein", "psi", "anderson", "jensenshannon"):
        assert name in message.split("use one of ")[1].split(", ")
    assert "chisquare" not in message.split("use one of ")[1].split(", ")


def test_numerical_only_method_is_refused_for_categorical() -> None:
    with pytest.raises(BadRequest, match="'wasserstein' is not an Evidently drift test for cat"):
        methods.check_method("wasserstein", CATEGORICAL)
    methods.check_method("chisquare", CATEGORICAL)
    methods.check_method("psi", NUMERICAL)
    methods.check_method("jensenshannon", CATEGORICAL)


def test_a_failing_test_is_an_error_for_that_column_only() -> None:
    result = judge(np.ones(200), np.ones(200), method="anderson")
    assert result["status"] == "error"
    assert result["score"] is None
    assert "ValueError" in result["detail"]


# -- thresholds ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DEFAULT_THRESHOLDS))
def test_default_thresholds_are_evidentlys(name: str) -> None:
    kind = ColumnType.Numerical if name in ("ks", "wasserstein") else ColumnType.Categorical
    assert DEFAULT_THRESHOLDS[name] == get_registered_stattest(name, kind).default_threshold
