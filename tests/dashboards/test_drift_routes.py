"""``GET /api/v1/drift/distribution`` and ``GET /api/v1/drift/columns`` against the demo:
the reference side checked against the training CSV the demo registered (recomputed here
with numpy), the production side against the features on the stored inference spans."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from onepane import demo_drift

SEED = 11  # the demo_api fixture's seed: the same training files
FRAUD = demo_drift.REFERENCES[0]
RECSYS = demo_drift.REFERENCES[1]


def training(reference: demo_drift.DemoReference) -> dict[str, list[str]]:
    """The training CSV the demo registered, column by column (as text)."""
    rows = list(csv.DictReader(io.StringIO(demo_drift.training_csv(reference, SEED).decode())))
    return {name: [row[name] for row in rows] for name in reference.columns}


@pytest.fixture(scope="module")
def production(demo_api) -> dict[str, dict[str, list[Any]]]:
    """Each model's production inputs, read from its stored inference spans."""
    out: dict[str, dict[str, list[Any]]] = {}
    for model in ("fraud-model", "recsys-model"):
        found = demo_api.get("/api/v1/traces", model=model, since="6h", limit=1000)["traces"]
        with ThreadPoolExecutor(8) as pool:
            traces = list(
                pool.map(lambda t: demo_api.get(f"/api/v1/traces/{t['trace_id']}"), found)
            )
        features: dict[str, list[Any]] = {}
        for trace in traces:
            for span in trace["spans"]:
                if span["model_name"] != model:
                    continue
                for key, value in span["attributes"].items():
                    if key.startswith("ml.feature."):
                        features.setdefault(key.removeprefix("ml.feature."), []).append(value)
        out[model] = features
    return out


def status_of(demo_api, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
    try:
        return 200, demo_api.get(path, **params)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def edges(bins: list[dict[str, Any]]) -> np.ndarray:
    return np.array([b["lower"] for b in bins] + [bins[-1]["upper"]])


def test_numerical_distribution_matches_the_training_file_and_the_spans(demo_api, production):
    doc = demo_api.get(
        "/api/v1/drift/distribution", model="fraud-model", feature="amount", since="6h", bins=12
    )
    reference = np.array(training(FRAUD)["amount"], dtype=float)
    stored = np.array(production["fraud-model"]["amount"], dtype=float)
    assert doc["type"] == "numerical" and doc["categories"] is None
    assert doc["reference"]["reference_id"] >= 1 and doc["reference"]["version"] == FRAUD.version
    assert doc["reference"]["count"] == reference.size == demo_drift.REFERENCE_ROWS
    assert doc["production"]["count"] == stored.size == 360
    bins = doc["bins"]
    assert len(bins) == 12
    cuts = edges(bins)
    assert cuts[0] == min(reference.min(), stored.min())
    assert cuts[-1] == pytest.approx(max(reference.max(), stored.max()))
    assert np.diff(cuts) == pytest.approx(np.full(12, (cuts[-1] - cuts[0]) / 12))
    ref_counts = np.histogram(reference, cuts)[0]
    prod_counts = np.histogram(stored, cuts)[0]
    assert [b["reference_count"] for b in bins] == ref_counts.tolist()
    assert [b["production_count"] for b in bins] == prod_counts.tolist()
    assert [b["reference_share"] for b in bins] == pytest.approx(ref_counts / reference.size)
    assert [b["production_share"] for b in bins] == pytest.approx(prod_counts / stored.size)
    # the drift the demo sends: production amounts sit higher than the training ones
    assert bins[0]["production_share"] < bins[0]["reference_share"]


def test_categorical_distribution_matches_the_training_file_and_the_spans(demo_api, production):
    doc = demo_api.get(
        "/api/v1/drift/distribution", model="recsys-model", feature="user_segment", since="6h"
    )
    reference = Counter(training(RECSYS)["user_segment"])
    stored = Counter(production["recsys-model"]["user_segment"])
    assert doc["type"] == "categorical" and doc["bins"] is None
    got = {c["category"]: c for c in doc["categories"]}
    assert set(got) == set(reference) | set(stored)
    for name, row in got.items():
        assert row["reference_count"] == reference[name]
        assert row["production_count"] == stored[name]
        assert row["reference_share"] == pytest.approx(reference[name] / reference.total())
        assert row["production_share"] == pytest.approx(stored[name] / stored.total())
    shares = [c["reference_share"] for c in doc["categories"]]
    assert shares == sorted(shares, reverse=True)  # the reference's most common first


def test_distribution_of_a_window_without_predictions(demo_api):
    doc = demo_api.get(
        "/api/v1/drift/distribution",
        model="fraud-model",
        feature="country",
        start="2020-01-01T00:00:00Z",
        end="2020-01-02T00:00:00Z",
    )
    assert doc["production"] == {
        "count": 0,
        "missing": 0,
        "start": "2020-01-01T00:00:00.000Z",
        "end": "2020-01-02T00:00:00.000Z",
    }
    assert all(c["production_count"] == 0 for c in doc["categories"])
    assert sum(c["reference_count"] for c in doc["categories"]) == demo_drift.REFERENCE_ROWS


def test_columns_are_the_runs_column_results(demo_api):
    runs = demo_api.get("/api/v1/drift/runs", model="fraud-model")["runs"]
    doc = demo_api.get("/api/v1/drift/columns", model="fraud-model")
    expected = []
    for run in runs:  # newest first, each run's columns by name
        detail = demo_api.get(f"/api/v1/drift/runs/{run['run_id']}")
        for column in sorted(detail["column_results"], key=lambda c: c["name"]):
            expected.append((run["run_id"], run["time"], run["drift_share"], column))
    assert len(doc["columns"]) == len(expected) == len(runs) * len(FRAUD.columns)
    for row, (run_id, time, share, column) in zip(doc["columns"], expected, strict=True):
        assert (row["run_id"], row["time"], row["run_drift_share"]) == (run_id, time, share)
        assert row["model"] == "fraud-model"
        for key in ("name", "type", "status", "method", "score", "threshold", "drifted"):
            assert row[key] == column[key], key
    amount = demo_api.get("/api/v1/drift/columns", model="fraud-model", feature="amount")
    assert [c["name"] for c in amount["columns"]] == ["amount"] * len(runs)
    assert amount["columns"][0]["status"] == "drift"
    assert demo_api.get("/api/v1/drift/columns", model="fraud-model", since="1s")["columns"] == []
    assert len(demo_api.get("/api/v1/drift/columns", model="fraud-model", limit=1)["columns"]) == 3


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("distribution", {"feature": "amount"}, 400, "model is required"),
        ("distribution", {"model": "fraud-model"}, 400, "feature is required"),
        ("distribution", {"model": "fraud-model", "feature": "zip"}, 400, "its features: acc"),
        ("distribution", {"model": "fraud-model", "feature": "amount", "bins": "0"}, 400, "bins"),
        ("distribution", {"model": "fraud-model", "feature": "amount", "bins": "x"}, 400, "bins"),
        ("distribution", {"model": "fraud-model", "feature": "amount", "bins": "201"}, 400, "200"),
        ("distribution", {"model": "fraud-model", "feature": "amount", "since": "x"}, 400, "since"),
        ("distribution", {"model": "fraud-model", "feature": "amount", "k": "1"}, 400, "'k'"),
        ("distribution", {"model": "churn-model", "feature": "amount"}, 404, "churn-model"),
        ("columns", {}, 400, "model is required"),
        ("columns", {"model": "fraud-model", "feature": "zip"}, 400, "its features: acc"),
        ("columns", {"model": "fraud-model", "limit": "0"}, 400, "limit"),
        ("columns", {"model": "fraud-model", "since": "soon"}, 400, "since"),
        ("columns", {"model": "churn-model"}, 404, "fraud-model, recsys-model"),
    ],
)
def test_bad_requests(demo_api, path, params, status, says):
    code, body = status_of(demo_api, f"/api/v1/drift/{path}", **params)
    assert code == status
    assert says in body["error"]
