"""One drift run: each column's test, the dataset verdict, and Evidently's report.

Every column is judged on its own, so one bad column never sinks the run:

* ``no data``: the reference, or production in the window, holds no value for it (empty,
  all null or all NaN);
* ``missing``: production inputs never carried the feature in the window;
* ``insufficient data``: fewer than ``min_rows`` values, too few for any verdict (and the
  whole run says so when it saw fewer than ``min_rows`` predictions);
* ``drift`` / ``no drift``: the test's verdict, with its method, score and threshold;
* ``error``: the test itself failed, with why.

The dataset drifts when the share of drifted columns, among those with a verdict, is at
least ``drift_share`` (Evidently's DataDriftPreset: 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drift import methods
from drift.methods import Current
from drift.profile import CATEGORICAL, NUMERICAL, ColumnProfile
from onepane.errors import BadRequest

DRIFT, NO_DRIFT = "drift", "no drift"
NO_DATA, MISSING, INSUFFICIENT, ERROR = "no data", "missing", "insufficient data", "error"


@dataclass(frozen=True)
class RunOptions:
    """How a run judges: per-column tests and thresholds, the least data for a verdict."""

    methods: Mapping[str, str] = field(default_factory=dict)  # column -> Evidently test
    thresholds: Mapping[str, float] = field(default_factory=dict)
    min_rows: int = 100
    drift_share: float = 0.5
    report_rows: int = 5000  # values per column Evidently's report is drawn on


def judge_column(
    ref: ColumnProfile,
    cur: Current | None,
    rows: int,
    options: RunOptions,
) -> dict[str, Any]:
    """One column's outcome (runs in a worker process)."""
    out: dict[str, Any] = {
        "name": ref.name,
        "type": ref.type,
        "status": None,
        "method": options.methods.get(ref.name),
        "score": None,
        "threshold": options.thresholds.get(ref.name),
        "drifted": None,
        "reference_count": ref.count,
        "current_count": 0 if cur is None else cur.count,
        "unseen": None,
        "detail": None,
    }
    if ref.count == 0:
        return {**out, "status": NO_DATA, "detail": "the reference holds no value for it"}
    if cur is None:
        return {**out, "status": MISSING, "detail": "no prediction in the window carried it"}
    if cur.count == 0:
        why = f"all {cur.missing} production values are empty or NaN"
        return {**out, "status": NO_DATA, "detail": why}
    if ref.type == CATEGORICAL:
        known = set(ref.category_counts())
        out["unseen"] = sum(n for k, n in cur.category_counts().items() if k not in known)
    least = options.min_rows
    if rows < least or cur.count < least:
        why = f"{cur.count} production values; a verdict needs at least {least}"
        return {**out, "status": INSUFFICIENT, "detail": why}
    try:
        method = out["method"] or methods.default_method(ref, cur)
        value, drifted, threshold = methods.score(method, ref, cur, out["threshold"])
    except Exception as exc:  # the test failed on this column: say so, judge the rest
        return {**out, "status": ERROR, "detail": f"{type(exc).__name__}: {exc}"[:500]}
    if not np.isfinite(value):
        why = f"{method} gave {value} (a category unseen in the reference?)"
        return {**out, "method": method, "status": ERROR, "threshold": threshold, "detail": why}
    return {
        **out,
        "method": method,
        "score": value,
        "threshold": threshold,
        "drifted": drifted,
        "status": DRIFT if drifted else NO_DRIFT,
    }


def verdict(columns: list[dict[str, Any]], rows: int, options: RunOptions) -> dict[str, Any]:
    """The dataset's verdict from its columns."""
    judged = [c for c in columns if c["status"] in (DRIFT, NO_DRIFT)]
    drifted = sum(1 for c in judged if c["status"] == DRIFT)
    share = drifted / len(judged) if judged else None
    if rows < options.min_rows or share is None:
        status = INSUFFICIENT
    else:
        status = DRIFT if share >= options.drift_share else NO_DRIFT
    return {
        "status": status,
        "columns": len(judged),
        "drifted": drifted,
        "drift_share": share,
        "share_threshold": options.drift_share,
    }


def report_html(
    reference: dict[str, ColumnProfile],
    current: dict[str, Current],
    judged: list[dict[str, Any]],
    options: RunOptions,
    seed: int = 0,
) -> tuple[str, str]:
    """Evidently's DataDriftPreset report (HTML) on up to ``report_rows`` values of each
    judged column, with the run's tests and thresholds; and a note saying what it was
    drawn on."""
    ref_samples, cur_samples = report_samples(reference, current, judged, options, seed)
    return report_from_samples(ref_samples, cur_samples, judged, options)


def report_samples(
    reference: dict[str, ColumnProfile],
    current: dict[str, Current],
    judged: list[dict[str, Any]],
    options: RunOptions,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``report_rows`` values of each judged column from the reference and from the window
    (drawn where the data is, so only the samples travel to the report's worker)."""
    rng = np.random.default_rng(seed)
    size = options.report_rows
    ref_samples: dict[str, np.ndarray] = {}
    cur_samples: dict[str, np.ndarray] = {}
    for column in judged:
        name = column["name"]
        ref = reference[name]
        ref_values = methods.rebuilt(ref)
        if ref_values.size > size or not ref.exact:
            ref_values = ref.sample(size, rng)
        ref_samples[name] = rng.choice(ref_values, size=size)
        cur_samples[name] = _draw(current[name], size, rng)
    return ref_samples, cur_samples


def report_from_samples(
    ref_samples: dict[str, np.ndarray],
    cur_samples: dict[str, np.ndarray],
    judged: list[dict[str, Any]],
    options: RunOptions,
) -> tuple[str, str]:
    """Evidently's report on the samples, with the run's tests (runs in a worker)."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    kinds = {c["name"]: _dtype(c["type"]) for c in judged}
    ref_frame = {n: pd.Series(v, dtype=kinds[n]) for n, v in ref_samples.items()}
    cur_frame = {n: pd.Series(v, dtype=kinds[n]) for n, v in cur_samples.items()}
    # Evidently registers chisquare and z for categorical columns only, though it picks them
    # for a small numerical column of at most 5 values: such a column is drawn as categorical
    # so the report runs the run's test (told numerical, Evidently rejects the test).
    numerical = [c["name"] for c in judged if c["type"] == NUMERICAL and _numerical_test(c)]
    definition = DataDefinition(
        numerical_columns=numerical,
        categorical_columns=[c["name"] for c in judged if c["name"] not in numerical],
    )
    report = Report(
        [
            DataDriftPreset(
                per_column_method={c["name"]: c["method"] for c in judged},
                per_column_threshold={c["name"]: c["threshold"] for c in judged},
                drift_share=options.drift_share,
            )
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(pd.DataFrame(cur_frame), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame(ref_frame), data_definition=definition),
    )
    note = (
        f"Evidently's report on {options.report_rows} values per column drawn from the "
        "reference and the window; the run's scores and verdicts come from every value."
    )
    return snapshot.get_html_str(as_iframe=False), note


def _draw(cur: Current, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` production values: a sample without replacement, or all of them (drawn
    again to the same size)."""
    if cur.values is not None:
        values = cur.values
        if values.size > size:
            return rng.choice(values, size=size, replace=False)
        return rng.choice(values, size=size)
    counts = cur.category_counts()
    shares = np.array(list(counts.values()), dtype=float)
    return rng.choice(np.array(list(counts), dtype=object), size=size, p=shares / shares.sum())


def _numerical_test(column: dict[str, Any]) -> bool:
    """Whether Evidently has the column's test for numerical columns."""
    try:
        methods.evidently_test(column["method"], NUMERICAL)
    except BadRequest:
        return False
    return True


def _dtype(column_type: str) -> str:
    return "float64" if column_type == NUMERICAL else "object"
