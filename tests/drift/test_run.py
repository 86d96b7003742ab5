"""Drift runs against Evidently's own DataDriftPreset report: every column's test, score and
verdict, the dataset's verdict; the columns a run cannot judge; the HTML report."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from evidently import Report
from evidently.legacy.calculations.stattests.registry import get_registered_stattest
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

from drift.methods import Current
from drift.profile import ColumnProfile, clean_numbers, profile
from drift.run import (
    DRIFT,
    INSUFFICIENT,
    MISSING,
    NO_DATA,
    NO_DRIFT,
    RunOptions,
    judge_column,
    report_html,
    verdict,
)
from tests.drift.test_methods import current_of

EVIDENTLY_NAMES = {
    "ks": "K-S p_value",
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
    "chisquare": "chi-square p_value",
    "z": "Z-test p_value",
}


def frame(rng: np.random.Generator, n: int, shift: float, gaps: int = 0) -> pd.DataFrame:
    """Every kind of column Evidently tells apart; ``shift`` moves each distribution;
    ``gaps`` NaN and as many infinite latencies (which Evidently drops)."""
    latency = rng.normal(10 + 2 * shift, 2, n)
    latency[:gaps] = np.nan
    latency[gaps : 2 * gaps] = np.inf
    shares = [0.4, 0.3, 0.2, 0.1] if not shift else [0.1, 0.2, 0.3, 0.4]
    color = rng.choice(["red", "green", "blue", "gold"], size=n, p=shares).astype(object)
    color[-3:] = None
    return pd.DataFrame(
        {
            "latency": latency,  # floats: numerical
            "discount": rng.choice([0.5, 1.5, 2.5, 4.0], size=n, p=shares),  # floats, 4 values
            "flag": rng.choice([0.0, 1.0], size=n, p=[0.7 - shift * 0.3, 0.3 + shift * 0.3]),
            "rating": rng.integers(0, 8 - 2 * int(shift > 0), n),  # ints, <= 10: categorical
            "items": rng.integers(0, 500 + int(400 * shift), n),  # ints, > 10: numerical
            "color": color,  # strings: categorical
            "active": rng.random(n) < 0.5 + 0.2 * shift,  # booleans: categorical
        }
    )


SMALL = {
    "latency": "ks",
    "discount": "chisquare",
    "flag": "z",
    "rating": "chisquare",
    "items": "ks",
    "color": "chisquare",
    "active": "z",
}
LARGE = {
    "latency": "wasserstein",
    "discount": "jensenshannon",
    "flag": "jensenshannon",
    "rating": "jensenshannon",
    "items": "wasserstein",
    "color": "jensenshannon",
    "active": "jensenshannon",
}
# 1003 rows: 997 latencies and 1000 colors are present (at most 1000: the small-sample tests)
BOUNDARY = {**LARGE, "latency": "ks", "color": "chisquare"}
SCENARIOS = {
    # name: (seed, reference rows, production rows, shift, NaN/inf, tests, dataset drifts)
    "small, no shift": (1, 600, 400, 0.0, 0, SMALL, False),
    "small, shift": (2, 600, 400, 0.5, 3, SMALL, True),
    "large, no shift": (3, 3000, 1500, 0.0, 0, LARGE, False),
    "large, shift": (4, 3000, 1500, 0.5, 5, LARGE, True),
    "1000-value boundary, small shift": (5, 1003, 700, 0.2, 3, BOUNDARY, True),
}


@pytest.fixture(scope="module", params=list(SCENARIOS))
def agreement(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A scenario's run, next to Evidently's full report on the same frames."""
    seed, n_ref, n_cur, shift, gaps, tests, drifts = SCENARIOS[request.param]
    rng = np.random.default_rng(seed)
    ref, cur = frame(rng, n_ref, 0.0, gaps), frame(rng, n_cur, shift, gaps)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(cur, ref).dict()
    prof = profile(pl.from_pandas(ref))
    options = RunOptions(min_rows=10)
    ours = {
        name: judge_column(column, current_of(column, cur[name]), len(cur), options)
        for name, column in prof.columns.items()
    }
    metrics = snapshot["metrics"]
    return {
        "tests": tests,
        "drifts": drifts,
        "ours": ours,
        "verdict": verdict(list(ours.values()), len(cur), options),
        "evidently": {m["config"]["column"]: m for m in metrics if "column" in m["config"]},
        "count": next(m["value"] for m in metrics if m["config"]["type"].endswith("ColumnsCount")),
        "failed": {
            t["metric_config"]["params"].get("column", "dataset"): t["status"] == "FAIL"
            for t in snapshot["tests"]
        },
    }


def test_each_column_matches_evidently(agreement: dict[str, Any]) -> None:
    ours, evidently = agreement["ours"], agreement["evidently"]
    assert set(ours) == set(evidently) == set(agreement["tests"])
    for name, column in ours.items():
        expected = evidently[name]
        assert column["method"] == agreement["tests"][name], name
        assert EVIDENTLY_NAMES[column["method"]] == expected["config"]["method"], name
        assert column["score"] == pytest.approx(expected["value"], rel=1e-9, abs=0), name
        assert column["threshold"] == expected["config"]["threshold"], name
        assert column["drifted"] == agreement["failed"][name], name
        assert column["status"] == (DRIFT if column["drifted"] else NO_DRIFT), name


def test_dataset_verdict_matches_evidently(agreement: dict[str, Any]) -> None:
    ours, count = agreement["verdict"], agreement["count"]
    assert ours["columns"] == len(agreement["tests"])
    assert ours["drifted"] == count["count"]
    assert ours["drift_share"] == pytest.approx(count["share"], rel=1e-12)
    assert (ours["status"] == DRIFT) == agreement["failed"]["dataset"] == agreement["drifts"]


def test_scenarios_see_drift_and_no_drift_in_columns(agreement: dict[str, Any]) -> None:
    drifted = [c["drifted"] for c in agreement["ours"].values()]
    if agreement["drifts"]:
        assert sum(drifted) >= 4
    else:
        assert sum(drifted) <= 1


# -- columns a run cannot judge ------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> dict[str, ColumnProfile]:
    rng = np.random.default_rng(40)
    n = 2000
    ref = pl.DataFrame(
        {
            "latency": rng.normal(10, 2, n),
            "plan": rng.choice(["free", "pro", "team"], size=n, p=[0.6, 0.3, 0.1]),
            "region": rng.choice(["eu", "us"], size=n),
            "never_set": [None] * n,
            "all_nan": np.full(n, np.nan),
        }
    )
    return profile(ref).columns


def _production(rng: np.random.Generator, n: int) -> dict[str, Current]:
    latency = rng.normal(13, 2, n)
    plan = Counter(rng.choice(["free", "pro", "team"], size=n, p=[0.2, 0.3, 0.5]).tolist())
    region = Counter(rng.choice(["eu", "us"], size=n).tolist())
    return {
        "latency": Current(n, 0, values=latency),
        "plan": Current(n, 0, categories=dict(plan)),
        "region": Current(n, 0, categories=dict(region)),
        "never_set": Current(n, 0, values=rng.normal(size=n)),
        "all_nan": Current(n, 0, values=rng.normal(size=n)),
    }


def test_empty_reference_column_is_no_data(reference: dict[str, ColumnProfile]) -> None:
    current = _production(np.random.default_rng(41), 500)
    for name in ("never_set", "all_nan"):
        result = judge_column(reference[name], current[name], 500, RunOptions())
        assert result["status"] == NO_DATA
        assert result["detail"] == "the reference holds no value for it"
        assert result["score"] is None and result["drifted"] is None


def test_empty_production_column_is_no_data_and_the_rest_is_judged(
    reference: dict[str, ColumnProfile],
) -> None:
    current = _production(np.random.default_rng(42), 500)
    current["region"] = Current(0, 500, values=None, categories={})
    latencies = np.full(500, np.nan)
    latencies[:10] = np.inf
    current["latency"] = Current(0, 500, values=clean_numbers(latencies))
    options = RunOptions()
    columns = [judge_column(reference[n], current.get(n), 500, options) for n in reference]
    by_name = {c["name"]: c for c in columns}
    assert by_name["latency"]["status"] == by_name["region"]["status"] == NO_DATA
    assert by_name["latency"]["detail"] == "all 500 production values are empty or NaN"
    assert by_name["plan"]["status"] == DRIFT
    outcome = verdict(columns, 500, options)
    assert (outcome["columns"], outcome["drifted"], outcome["status"]) == (1, 1, DRIFT)
    assert outcome["drift_share"] == 1.0


def test_feature_missing_in_production(reference: dict[str, ColumnProfile]) -> None:
    result = judge_column(reference["plan"], None, 500, RunOptions())
    assert (result["status"], result["current_count"], result["score"]) == (MISSING, 0, None)
    assert result["reference_count"] == 2000


def test_too_few_values_is_insufficient_data(reference: dict[str, ColumnProfile]) -> None:
    current = _production(np.random.default_rng(43), 500)
    current["latency"] = Current(99, 401, values=current["latency"].values[:99])
    options = RunOptions(min_rows=100, methods={"latency": "psi"})
    result = judge_column(reference["latency"], current["latency"], 500, options)
    assert result["status"] == INSUFFICIENT
    assert result["detail"] == "99 production values; a verdict needs at least 100"
    assert (result["score"], result["drifted"], result["method"]) == (None, None, "psi")
    assert judge_column(reference["plan"], current["plan"], 500, options)["status"] == DRIFT


def test_run_with_too_few_rows_is_insufficient_data(reference: dict[str, ColumnProfile]) -> None:
    current = _production(np.random.default_rng(44), 50)
    options = RunOptions(min_rows=100)
    columns = [judge_column(reference[n], current[n], 50, options) for n in reference]
    assert {c["status"] for c in columns} == {INSUFFICIENT, NO_DATA}
    assert all(c["score"] is None for c in columns)
    outcome = verdict(columns, 50, options)
    assert outcome["status"] == INSUFFICIENT
    assert (outcome["drift_share"], outcome["columns"], outcome["drifted"]) == (None, 0, 0)


def test_dataset_drift_share_threshold() -> None:
    def column(status: str) -> dict[str, Any]:
        return {"status": status}

    columns = [column(DRIFT), column(NO_DRIFT), column(MISSING), column(NO_DATA)]
    assert verdict(columns, 500, RunOptions())["status"] == DRIFT  # 1 of 2: share 0.5
    strict = verdict(columns, 500, RunOptions(drift_share=0.6))
    assert (strict["status"], strict["drift_share"], strict["share_threshold"]) == (
        NO_DRIFT,
        0.5,
        0.6,
    )


def test_unseen_categories_are_counted_and_raise_the_score(
    reference: dict[str, ColumnProfile],
) -> None:
    plan = {"free": 600, "pro": 300, "team": 100}
    with_unseen = {**plan, "enterprise": 60, "trial": 40}
    options = RunOptions()
    seen = judge_column(reference["plan"], Current(1000, 0, categories=plan), 1000, options)
    unseen = judge_column(
        reference["plan"], Current(1100, 0, categories=with_unseen), 1100, options
    )
    assert (seen["unseen"], unseen["unseen"]) == (0, 100)
    assert seen["method"] == unseen["method"] == "jensenshannon"
    assert unseen["score"] > seen["score"] + 0.05
    # Evidently's own test on the rebuilt columns gives the same score
    counts = reference["plan"].category_counts()
    ref_series = pd.Series([k for k, n in counts.items() for _ in range(n)])
    cur_series = pd.Series([k for k, n in with_unseen.items() for _ in range(n)])
    test = get_registered_stattest("jensenshannon", ColumnType.Categorical)
    expected = test(ref_series, cur_series, ColumnType.Categorical, None).drift_score
    assert unseen["score"] == pytest.approx(expected, rel=1e-9, abs=0)


def test_unseen_category_on_a_small_reference_is_drift() -> None:
    ref = pl.DataFrame({"plan": ["free"] * 300 + ["pro"] * 200})
    column = profile(ref).columns["plan"]
    result = judge_column(
        column, Current(500, 0, categories={"free": 290, "pro": 190, "new": 20}), 500, RunOptions()
    )
    assert (result["method"], result["unseen"], result["score"]) == ("chisquare", 20, 0.0)
    assert result["status"] == DRIFT


def test_numerical_columns_count_no_unseen(reference: dict[str, ColumnProfile]) -> None:
    current = _production(np.random.default_rng(45), 500)
    assert (
        judge_column(reference["latency"], current["latency"], 500, RunOptions())["unseen"] is None
    )


# -- Evidently's report ----------------------------------------------------------------


def test_report_html_shows_the_run_columns_and_tests() -> None:
    rng = np.random.default_rng(50)
    ref, cur = frame(rng, 300, 0.0), frame(rng, 200, 0.5)
    prof = profile(pl.from_pandas(ref))
    options = RunOptions(min_rows=10, report_rows=200)
    current = {name: current_of(column, cur[name]) for name, column in prof.columns.items()}
    judged = [judge_column(prof.columns[n], current[n], len(cur), options) for n in current]
    assert {c["method"] for c in judged} == {"ks", "chisquare", "z"}
    html, note = report_html(prof.columns, current, judged, options)
    assert isinstance(html, str)
    assert "<html" in html
    for column in judged:
        assert column["name"] in html
        # the report ran the run's test, also chi-square and z on numerical columns
        assert EVIDENTLY_NAMES[column["method"]] in html
    assert note.startswith("Evidently's report on 200 values per column")
