"""Reference profiles: Evidently's column types, the statistics each column keeps, reading
the uploaded file."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import polars as pl
import pytest
from evidently.core.datasets import infer_column_type
from evidently.legacy.core import ColumnType

from drift.profile import (
    CATEGORICAL,
    MAX_CATEGORIES,
    NUMERICAL,
    SKETCH_POINTS,
    number_key,
    profile,
    read_table,
)
from onepane.errors import BadRequest

N = 40


def _mixed_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    gaps = rng.normal(size=N)
    gaps[::7] = np.nan
    plan = rng.choice(["free", "pro", "team"], size=N).astype(object)
    plan[::9] = None
    return pd.DataFrame(
        {
            "price": rng.normal(size=N),
            "price_gaps": gaps,
            "ten_ints": np.arange(N) % 10,  # 10 distinct: categorical
            "eleven_ints": np.arange(N) % 11,  # 11 distinct: numerical
            "many_ints": np.arange(N) * 3,
            "plan": plan,
            "half_unique": [f"v{i % 20}" for i in range(N)],  # 20 of 40: categorical
            "over_half": [f"v{i % 21}" for i in range(N)],  # 21 of 40: text
            "user_id": [f"user-{i}" for i in range(N)],
            "active": rng.random(N) < 0.5,
            "tier": pd.Categorical(rng.choice(["gold", "silver"], size=N)),
        }
    )


EXPECTED_TYPES = {
    "price": NUMERICAL,
    "price_gaps": NUMERICAL,
    "ten_ints": CATEGORICAL,
    "eleven_ints": NUMERICAL,
    "many_ints": NUMERICAL,
    "plan": CATEGORICAL,
    "half_unique": CATEGORICAL,
    "over_half": "text",
    "user_id": "text",
    "active": CATEGORICAL,
    "tier": CATEGORICAL,
}
EVIDENTLY_TYPES = {
    ColumnType.Numerical: NUMERICAL,
    ColumnType.Categorical: CATEGORICAL,
    ColumnType.Text: "text",
}


def _kind(prof, name: str) -> str:
    if name in prof.columns:
        return prof.columns[name].type
    return prof.skipped[name].split(":")[0]


def test_inferred_types_are_evidentlys() -> None:
    frame = _mixed_frame()
    prof = profile(pl.from_pandas(frame))
    for name in frame.columns:
        evidently = EVIDENTLY_TYPES[infer_column_type(frame[name])]
        assert _kind(prof, name) == evidently, name
        assert _kind(prof, name) == EXPECTED_TYPES[name], name
    assert set(prof.skipped) == {"over_half", "user_id"}
    assert "give its type" in prof.skipped["user_id"]
    assert all(c.type_source == "inferred" for c in prof.columns.values())
    assert prof.rows == N


def test_given_types_override_inference() -> None:
    given = {"many_ints": CATEGORICAL, "ten_ints": NUMERICAL, "user_id": CATEGORICAL}
    prof = profile(pl.from_pandas(_mixed_frame()), given)
    for name, kind in given.items():
        assert prof.columns[name].type == kind
        assert prof.columns[name].type_source == "given"
    assert prof.columns["price"].type_source == "inferred"
    assert prof.columns["user_id"].n_unique == N
    assert prof.columns["ten_ints"].values.tolist() == list(range(10))
    assert "user_id" not in prof.skipped


def test_ignored_columns_are_left_out() -> None:
    prof = profile(pl.from_pandas(_mixed_frame()), ignore=["price", "user_id"])
    assert "price" not in prof.columns
    assert "user_id" not in prof.skipped
    assert "price_gaps" in prof.columns


def test_text_given_as_numerical_is_refused() -> None:
    frame = pl.DataFrame({"plan": ["free", "pro", "7", None], "x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(BadRequest, match="'plan' was given as numerical but 2 of its values"):
        profile(frame, {"plan": NUMERICAL})


def test_numbers_as_text_given_as_numerical_are_read() -> None:
    frame = pl.DataFrame({"score": ["1.5", "2", None, "4"]})
    column = profile(frame, {"score": NUMERICAL}).columns["score"]
    assert (column.count, column.missing, column.mean) == (3, 1, pytest.approx(2.5))


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"nope": NUMERICAL}, "'nope' given as numerical is not in the reference data"),
        ({"x": "text"}, "give numerical or categorical, not 'text'"),
    ],
)
def test_bad_given_types_are_refused(given: dict[str, str], words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        profile(pl.DataFrame({"x": [1.0, 2.0]}), given)


def test_empty_frame_is_refused() -> None:
    with pytest.raises(BadRequest, match="no rows"):
        profile(pl.DataFrame({"x": []}, schema={"x": pl.Float64}))


def test_frame_with_nothing_to_check_is_refused() -> None:
    frame = pl.DataFrame({"id": [f"u{i}" for i in range(10)]})
    with pytest.raises(BadRequest, match="no numerical or categorical column to check: id: text"):
        profile(frame)


def test_too_many_categories_are_refused() -> None:
    frame = pl.DataFrame({"id": [f"u{i}" for i in range(MAX_CATEGORIES + 1)]})
    with pytest.raises(BadRequest, match=f"'id' has {MAX_CATEGORIES + 1} categories"):
        profile(frame, {"id": CATEGORICAL})


def test_numerical_statistics_drop_missing_nan_and_inf() -> None:
    values = [1.0, 2.0, 2.0, None, float("nan"), float("inf"), float("-inf"), 4.0]
    column = profile(pl.DataFrame({"x": values}, strict=False)).columns["x"]
    finite = np.array([1.0, 2.0, 2.0, 4.0])
    assert (column.count, column.missing, column.n_unique) == (4, 4, 3)
    assert column.mean == pytest.approx(finite.mean())
    assert column.std == pytest.approx(np.std(finite))  # population, as Evidently norms by
    assert column.std != pytest.approx(np.std(finite, ddof=1))
    assert (column.min, column.max) == (1.0, 4.0)
    assert column.exact
    assert column.values.tolist() == [1.0, 2.0, 4.0]
    assert column.weights.tolist() == [1.0, 2.0, 1.0]
    assert column.category_counts() == {"1": 1, "2": 2, "4": 1}


def test_categorical_counts_and_keys() -> None:
    frame = pl.DataFrame(
        {
            "code": [3, 3, 1, None, 3],
            "flag": [True, False, True, None, True],
            "plan": ["a", "b", "a", None, "a"],
            "rate": [0.5, 1.0, 1.0, float("nan"), float("inf")],
        }
    )
    prof = profile(frame, {"rate": CATEGORICAL})
    assert prof.columns["code"].category_counts() == {"3": 3, "1": 1}
    assert prof.columns["flag"].category_counts() == {"1": 3, "0": 1}
    assert prof.columns["plan"].category_counts() == {"a": 3, "b": 1}
    assert prof.columns["rate"].category_counts() == {"1": 2, "0.5": 1}
    assert [prof.columns[n].missing for n in ("code", "flag", "plan", "rate")] == [1, 1, 1, 2]
    assert all(prof.columns[n].type == CATEGORICAL for n in ("code", "flag", "plan"))


def test_empty_reference_columns_are_kept_with_no_values() -> None:
    frame = pl.DataFrame(
        {"nothing": [None, None, None], "nans": [float("nan")] * 3, "x": [1.0, 2.0, 3.0]}
    )
    prof = profile(frame)
    for name in ("nothing", "nans"):
        assert (prof.columns[name].count, prof.columns[name].missing) == (0, 3)


def test_many_distinct_values_are_kept_as_quantiles() -> None:
    rng = np.random.default_rng(1)
    values = rng.permutation(np.arange(SKETCH_POINTS + 1, dtype=float))
    column = profile(pl.DataFrame({"x": values})).columns["x"]
    assert not column.exact
    assert column.values.size == SKETCH_POINTS
    assert np.all(np.diff(column.values) >= 0)
    assert column.weights.sum() == pytest.approx(SKETCH_POINTS + 1)
    assert (column.min, column.max) == (0.0, float(SKETCH_POINTS))
    assert column.mean == pytest.approx(values.mean())
    assert column.std == pytest.approx(values.std())
    assert column.category_counts() == {}
    assert column.n_unique == SKETCH_POINTS + 1


def test_sample_draws_only_reference_values() -> None:
    column = profile(pl.DataFrame({"plan": ["a"] * 30 + ["b"] * 10})).columns["plan"]
    drawn = column.sample(4000, np.random.default_rng(0))
    assert set(drawn.tolist()) == {"a", "b"}
    assert (drawn == "a").mean() == pytest.approx(0.75, abs=0.03)


@pytest.mark.parametrize(
    ("value", "key"), [(3.0, "3"), (-2.0, "-2"), (0.5, "0.5"), (1e20, "1e+20"), (True, "1")]
)
def test_number_key(value: float, key: str) -> None:
    assert number_key(value) == key


def test_read_table_csv_and_parquet() -> None:
    frame = pl.DataFrame({"price": [1.5, 2.5, None], "plan": ["free", "pro", "free"]})
    csv = read_table(b"price,plan\n1.5,free\n2.5,pro\n,free\n", "ref.csv")
    assert csv.equals(frame)
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    assert read_table(buffer.getvalue(), "ref.parquet").equals(frame)
    assert read_table(buffer.getvalue(), "upload.bin", "parquet").equals(frame)


@pytest.mark.parametrize(
    ("data", "source", "words"),
    [
        (b"\x00\x01 not parquet", "ref.parquet", "ref.parquet is not a readable PARQUET file"),
        (b"a,b\n\xff\xfe,\x80\n", "ref.csv", "ref.csv is not a readable CSV file"),
        (b"a,b\n1,2,3,4\n", "ragged.csv", "ragged.csv is not a readable CSV file"),
        (b"a,b\n1,2\n", "ref.xlsx", "ref.xlsx: unknown format 'xlsx'; send CSV or Parquet"),
    ],
)
def test_read_table_refuses_garbage(data: bytes, source: str, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        read_table(data, source)
    assert str(caught.value).startswith(words)
