"""Reference statistics: a dataset read once, each column reduced to what every drift run
needs, and stored.

A numerical column keeps its count, mean, std (population, as Evidently norms the
Wasserstein distance by), min, max and its distribution: every distinct value with its
count when there are at most ``SKETCH_POINTS`` of them (exact), else ``SKETCH_POINTS``
equally weighted quantiles (the Wasserstein distance from them is within about
1/``SKETCH_POINTS`` of the reference's spread of the exact one). A categorical column
keeps each category and its count. Column types follow Evidently's inference (floats are
numerical; integers with at most 10 distinct values, strings and booleans categorical;
strings with more distinct values than half their count are text, which drift does not
check) unless they are given.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import polars as pl

from onepane.errors import BadRequest

NUMERICAL, CATEGORICAL = "numerical", "categorical"
TYPES = (NUMERICAL, CATEGORICAL)
SKETCH_POINTS = 20_000
INTEGER_CARDINALITY_LIMIT = 10  # Evidently: integers with at most this many values are categories
MAX_CATEGORIES = 100_000


@dataclass
class ColumnProfile:
    """One reference column, as stored in ``drift_reference_columns``."""

    name: str
    type: str
    type_source: str  # inferred | given
    count: int  # values present (not null, not NaN, not infinite)
    missing: int
    n_unique: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    exact: bool = True
    values: np.ndarray | None = None  # numerical: distinct values or quantiles, ascending
    weights: np.ndarray | None = None  # their counts, or equal weights summing to count
    categories: list[str] | None = None
    counts: np.ndarray | None = None

    def category_counts(self) -> dict[str, int]:
        """Categories and counts; a numerical column's distinct values as category keys."""
        if self.categories is not None and self.counts is not None:
            return dict(zip(self.categories, self.counts.tolist(), strict=True))
        if self.values is not None and self.weights is not None and self.exact:
            return {
                number_key(v): int(w)
                for v, w in zip(self.values.tolist(), self.weights.tolist(), strict=True)
            }
        return {}

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` values drawn from the reference distribution (for Evidently's report)."""
        if self.count == 0:
            return np.array([], dtype=float if self.type == NUMERICAL else object)
        if self.type == NUMERICAL and self.values is not None and self.weights is not None:
            return rng.choice(self.values, size=size, p=self.weights / self.weights.sum())
        counts = self.counts if self.counts is not None else np.array([], dtype=np.int64)
        keys = np.array(self.categories or [], dtype=object)
        return rng.choice(keys, size=size, p=counts / counts.sum())


@dataclass
class Profile:
    """A reference dataset's columns."""

    rows: int
    columns: dict[str, ColumnProfile]
    skipped: dict[str, str]  # column -> why drift does not check it


def number_key(value: float) -> str:
    """A number as a category key: 3.0 -> '3', 0.5 -> '0.5' (as the store casts them)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def read_table(data: bytes, source: str, file_format: str | None = None) -> pl.DataFrame:
    """A CSV or Parquet file's bytes as a frame; the format from ``file_format`` or the name."""
    fmt = (file_format or PurePath(source).suffix.lstrip(".") or "csv").lower()
    try:
        if fmt in ("parquet", "pq"):
            return pl.read_parquet(io.BytesIO(data))
        if fmt in ("csv", "txt"):
            return pl.read_csv(io.BytesIO(data), infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise BadRequest(f"{source} is not a readable {fmt.upper()} file: {exc}") from None
    raise BadRequest(f"{source}: unknown format {fmt!r}; send CSV or Parquet")


def profile(
    frame: pl.DataFrame,
    given: Mapping[str, str] | None = None,
    ignore: Iterable[str] = (),
) -> Profile:
    """Each column of ``frame`` profiled; ``given`` names column types that override
    inference (numerical or categorical)."""
    given = dict(given or {})
    for name, kind in given.items():
        if name not in frame.columns:
            raise BadRequest(f"column {name!r} given as {kind} is not in the reference data")
        if kind not in TYPES:
            raise BadRequest(f"column {name!r}: give numerical or categorical, not {kind!r}")
    if frame.height == 0:
        raise BadRequest("the reference data has no rows")
    columns: dict[str, ColumnProfile] = {}
    skipped: dict[str, str] = {}
    for name in frame.columns:
        if name in ignore:
            continue
        series = frame.get_column(name)
        kind = given.get(name) or infer_type(series)
        if kind not in TYPES:
            skipped[name] = kind
            continue
        source = "given" if name in given else "inferred"
        if kind == NUMERICAL:
            columns[name] = _numerical(name, series, source)
        else:
            columns[name] = _categorical(name, series, source)
    if not columns:
        raise BadRequest(
            "the reference data has no numerical or categorical column to check: "
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    return Profile(frame.height, columns, skipped)


def infer_type(series: pl.Series) -> str:
    """Evidently's column type inference (evidently.core.datasets.infer_column_type), or
    why the column is not checked."""
    dtype = series.dtype
    if dtype.is_float():
        return NUMERICAL
    if dtype.is_integer():
        return CATEGORICAL if series.n_unique() <= INTEGER_CARDINALITY_LIMIT else NUMERICAL
    if dtype == pl.Boolean or dtype == pl.Categorical or dtype == pl.Enum:
        return CATEGORICAL
    if dtype == pl.String:
        present = series.drop_nulls()
        if present.len() == 0:
            return NUMERICAL  # all missing: reported as "no data" in every run
        if present.n_unique() > present.len() * 0.5:
            return "text: more distinct values than half its rows (give its type to check it)"
        return CATEGORICAL
    if dtype == pl.Null:
        return NUMERICAL  # all missing: reported as "no data" in every run
    return f"a {dtype} column: neither numerical nor categorical"


def clean_numbers(values: np.ndarray) -> np.ndarray:
    """Finite values only: Evidently drops NaN and ±inf before a test."""
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _numerical(name: str, series: pl.Series, source: str) -> ColumnProfile:
    numbers = series.cast(pl.Float64, strict=False)
    lost = numbers.null_count() - series.null_count()
    if lost:
        raise BadRequest(
            f"column {name!r} was given as numerical but {lost} of its values are not numbers; "
            "give it as categorical"
        )
    raw = numbers.to_numpy()
    values = clean_numbers(raw)
    count = int(values.size)
    column = ColumnProfile(name, NUMERICAL, source, count, series.len() - count, 0)
    if count == 0:
        return column
    distinct, counts = np.unique(values, return_counts=True)
    column.n_unique = int(distinct.size)
    column.mean, column.std = float(values.mean()), float(values.std())
    column.min, column.max = float(distinct[0]), float(distinct[-1])
    if distinct.size <= SKETCH_POINTS:
        column.values, column.weights = distinct, counts.astype(np.float64)
    else:
        column.exact = False
        probs = (np.arange(SKETCH_POINTS) + 0.5) / SKETCH_POINTS
        column.values = np.quantile(values, probs, method="inverted_cdf")
        column.weights = np.full(SKETCH_POINTS, count / SKETCH_POINTS)
    return column


def _categorical(name: str, series: pl.Series, source: str) -> ColumnProfile:
    total = series.len()
    if series.dtype == pl.Boolean:
        series = series.cast(pl.Int8)
    numeric = series.dtype.is_numeric()
    if numeric:
        series = series.cast(pl.Float64)
        series = series.filter(series.is_finite())
    else:
        series = series.cast(pl.String)
    counted = series.drop_nulls().value_counts(sort=True, name="count")
    if counted.height > MAX_CATEGORIES:
        raise BadRequest(
            f"column {name!r} has {counted.height} categories (at most {MAX_CATEGORIES}); "
            "give it as numerical, or leave it out"
        )
    categories = counted.get_column(name).to_list()
    if numeric:  # keys as the store casts numbers: 3.0 -> '3'
        categories = [number_key(v) for v in categories]
    counts = counted.get_column("count").to_numpy().astype(np.int64)
    count = int(counts.sum())
    return ColumnProfile(
        name,
        CATEGORICAL,
        source,
        count,
        total - count,
        len(categories),
        categories=categories,
        counts=counts,
    )
