"""The routes the persona views read: span statistics (GET /api/v1/stats), the model
inventory (GET /api/v1/models, JSON and CSV) and pipeline runs (GET /api/v1/pipelines/runs),
checked against spans with known times and durations sent through the OpenTelemetry SDK."""

from __future__ import annotations

import csv
import io
import random
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from onepane.testing import LiveServer, wait_for

S = 1_000_000_000
MS = 1_000_000
NOW = time.time_ns() // (900 * S) * (900 * S)  # a 15-minute boundary: buckets line up
START = NOW - 2 * 3600 * S
WINDOW = {"start": str(START / S), "end": str(NOW / S)}
PROD = {"deployment.environment.name": "prod"}
CHECKOUT = {"service.name": "checkout-api", "k8s.namespace.name": "shop",
            "k8s.deployment.name": "checkout-api", **PROD}  # fmt: skip
FRAUD = {"service.name": "fraud-model", "k8s.namespace.name": "ml",
         "k8s.deployment.name": "fraud-model", **PROD}  # fmt: skip
ETL = {"service.name": "nightly-etl", "k8s.namespace.name": "data", "k8s.job.name": "nightly-etl"}


def _provider(otlp_url: str, resource: dict[str, str]) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create(resource))
    exporter = OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces", timeout=30)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512))
    return provider


def _spans() -> dict[str, list[dict[str, Any]]]:
    """What the test sends: checkout requests on two routes, predictions of two model
    versions, three pipeline runs (the last one failing)."""
    rng = random.Random(5)
    requests = [
        {
            "route": rng.choice(["/api/checkout", "/api/cart"]),
            "start": START + rng.randrange(0, 2 * 3600 * S - S),
            "ms": rng.uniform(5, 900),
            "status": 500 if rng.random() < 0.05 else 200,
        }
        for _ in range(400)
    ]
    predictions = [
        {
            "version": rng.choice(["3.2.0", "3.3.0"]),
            "start": START + rng.randrange(0, 2 * 3600 * S - S),
            "ms": rng.uniform(10, 50),
        }
        for _ in range(300)
    ]
    runs = [
        {"start": START + (i * 40 + 5) * 60 * S, "ms": 90_000.0 + i * 1000, "fail": i == 2}
        for i in range(3)
    ]
    return {"requests": requests, "predictions": predictions, "runs": runs}


def _send(otlp_url: str, sent: dict[str, list[dict[str, Any]]]) -> None:
    checkout, fraud, etl = (_provider(otlp_url, r) for r in (CHECKOUT, FRAUD, ETL))
    tracer = checkout.get_tracer("tests")
    for r in sent["requests"]:
        attrs = {"http.route": r["route"], "http.request.method": "POST",
                 "http.response.status_code": r["status"]}  # fmt: skip
        span = tracer.start_span(f"POST {r['route']}", kind=SpanKind.SERVER, attributes=attrs,
                                  start_time=r["start"])  # fmt: skip
        span.end(end_time=r["start"] + int(r["ms"] * MS))
    tracer = fraud.get_tracer("tests")
    for p in sent["predictions"]:
        attrs = {"ml.model.name": "fraud-model", "ml.model.version": p["version"]}
        span = tracer.start_span("predict", attributes=attrs, start_time=p["start"])
        span.end(end_time=p["start"] + int(p["ms"] * MS))
    tracer = etl.get_tracer("tests")
    for run in sent["runs"]:
        root = tracer.start_span("run nightly-etl", start_time=run["start"])
        step = tracer.start_span("extract", set_span_in_context(root), start_time=run["start"])
        if run["fail"]:
            step.set_status(Status(StatusCode.ERROR, "source table missing"))
        step.end(end_time=run["start"] + int(run["ms"] * MS) // 2)
        root.end(end_time=run["start"] + int(run["ms"] * MS))
    for provider in (checkout, fraud, etl):
        provider.shutdown()


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict]]:
    server = LiveServer(tmp_path_factory.mktemp("views") / "onepane.duckdb", "--decoders", "0")
    try:
        sent = _spans()
        _send(server.otlp_url, sent)
        wait_for(
            "the pipeline runs folded into traces",
            lambda: server.get_json("/api/v1/traces?service=nightly-etl&since=1d")[1],
            lambda body: len(body.get("traces", [])) == 3,
        )
        yield server, sent
    finally:
        server.stop()


def get(server: LiveServer, path: str, **params: Any) -> dict[str, Any]:
    status, body = server.get_json(path + "?" + urllib.parse.urlencode(params, doseq=True))
    assert status == 200, body
    return body


def iso(ns: int) -> str:
    text = datetime.fromtimestamp(ns // S, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ns % S // MS:03d}Z"


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


# -- GET /api/v1/stats ---------------------------------------------------------------------


def test_stats_by_route_totals_equal_the_sent_requests(views: tuple[LiveServer, dict]) -> None:
    server, sent = views
    body = get(server, "/api/v1/stats", by="route", **WINDOW)
    assert body["window"] == {"start": iso(START), "end": iso(NOW)}
    assert body["step"] == "5m" and body["step_s"] == 300  # 2 h / 60, rounded up
    groups = {g["route"]: g for g in body["groups"]}
    assert set(groups) == {"/api/checkout", "/api/cart"}
    for route, group in groups.items():
        mine = [r for r in sent["requests"] if r["route"] == route]
        durations = np.array([int(r["ms"] * MS) for r in mine]) / MS
        assert group["workload"] == "shop/checkout-api"
        assert group["key"] == f"POST {route}" and group["method"] == "POST"
        assert group["count"] == len(mine)
        assert group["errors"] == sum(r["status"] >= 500 for r in mine)
        assert close(group["error_pct"], 100 * group["errors"] / len(mine))
        assert close(group["rate_per_s"], len(mine) / 7200)
        for q, field in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms")):
            assert close(group[field], float(np.percentile(durations, q))), field
        assert close(group["max_ms"], durations.max())
    counts = [g["count"] for g in body["groups"]]
    assert counts == sorted(counts, reverse=True)


def test_stats_series_buckets_hold_each_request_once(views: tuple[LiveServer, dict]) -> None:
    server, sent = views
    body = get(server, "/api/v1/stats", by="route", step="15m", **WINDOW)
    assert body["step_s"] == 900
    expected = Counter(
        (f"POST {r['route']}", iso((r["start"] // (900 * S)) * 900 * S)) for r in sent["requests"]
    )
    got = {(p["key"], p["time"]): p for p in body["series"]}
    assert {k: p["count"] for k, p in got.items()} == dict(expected)
    for (key, _), point in got.items():
        assert close(point["rate_per_s"], point["count"] / 900), key  # buckets inside the window


def test_stats_by_model_per_version(views: tuple[LiveServer, dict]) -> None:
    server, sent = views
    body = get(server, "/api/v1/stats", by="model", workload="ml/fraud-model", **WINDOW)
    groups = {g["version"]: g for g in body["groups"]}
    for version in ("3.2.0", "3.3.0"):
        mine = np.array([int(p["ms"] * MS) for p in sent["predictions"] if p["version"] == version])
        assert groups[version]["key"] == f"fraud-model {version}"
        assert groups[version]["count"] == len(mine)
        assert close(groups[version]["p95_ms"], float(np.percentile(mine / MS, 95)))
    only = get(server, "/api/v1/stats", by="model", version="3.3.0", **WINDOW)["groups"]
    assert [g["version"] for g in only] == ["3.3.0"]
    other = get(server, "/api/v1/stats", by="route", workload="ml/fraud-model", **WINDOW)
    assert other["groups"] == [] and other["series"] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("by=team", "by must be one of route, model, service, workload"),
        ("colour=red", "unknown parameter 'colour'"),
        ("step=1s&since=30d", "over 10,000 buckets"),
        ("step=soon", "step 'soon' is not a duration"),
        ("since=1h&start=0", "either since or start"),
    ],
)
def test_stats_bad_parameters_are_400(
    views: tuple[LiveServer, dict], query: str, message: str
) -> None:
    status, body = views[0].get_json(f"/api/v1/stats?{query}")
    assert status == 400 and message in body["error"], body


# -- GET /api/v1/models --------------------------------------------------------------------


def test_model_inventory_lists_each_version_with_first_and_last_seen(
    views: tuple[LiveServer, dict],
) -> None:
    server, sent = views
    models = get(server, "/api/v1/models")["models"]
    assert [(m["model"], m["version"]) for m in models] == [
        ("fraud-model", "3.2.0"),
        ("fraud-model", "3.3.0"),
    ]
    for model in models:
        mine = [p for p in sent["predictions"] if p["version"] == model["version"]]
        assert model["workload"] == "ml/fraud-model" and model["environment"] == "prod"
        assert model["predictions"] == len(mine) and model["errors"] == 0
        assert model["first_seen"] == iso(min(p["start"] for p in mine))
        assert model["last_seen"] == iso(max(p["start"] for p in mine))
        recent = max(p["start"] for p in mine) >= time.time_ns() - 15 * 60 * S
        assert model["serving"] is recent  # a prediction in the last 15 minutes
        assert model["drift_status"] is None and model["unit_cost"] is None


def test_model_inventory_of_a_window_that_starts_mid_hour_is_exact(
    views: tuple[LiveServer, dict],
) -> None:
    """Whole hours come from the hourly rollup, the first partial hour from the spans: the
    counts and first-seen times are those of exactly the spans in the window."""
    server, sent = views
    before = time.time_ns()
    models = get(server, "/api/v1/models", since="97m")["models"]
    after = time.time_ns()
    for model in models:
        mine = [p["start"] for p in sent["predictions"] if p["version"] == model["version"]]
        widest = [t for t in mine if t >= before - 97 * 60 * S]
        narrowest = [t for t in mine if t >= after - 97 * 60 * S]
        assert len(narrowest) <= model["predictions"] <= len(widest)
        assert model["first_seen"] in {iso(min(widest)), iso(min(narrowest))}
        assert model["last_seen"] == iso(max(mine))
    assert sum(m["predictions"] for m in models) < len(sent["predictions"])


def test_model_inventory_as_csv_holds_the_same_rows(views: tuple[LiveServer, dict]) -> None:
    server, _ = views
    rows = get(server, "/api/v1/models")["models"]
    with urllib.request.urlopen(f"{server.api_url}/api/v1/models?format=csv") as response:
        assert response.headers["Content-Type"].startswith("text/csv")
        parsed = list(csv.DictReader(io.StringIO(response.read().decode())))
    assert [r["version"] for r in parsed] == [r["version"] for r in rows]
    for line, row in zip(parsed, rows, strict=True):
        assert line["first_seen"] == row["first_seen"] and line["serving"] == str(row["serving"])
        assert int(line["predictions"]) == row["predictions"]
        assert float(line["p95_ms"]) == pytest.approx(row["p95_ms"])
    status, body = server.get_json("/api/v1/models?format=xml")
    assert status == 400 and "format must be json or csv" in body["error"]


def test_model_inventory_filters(views: tuple[LiveServer, dict]) -> None:
    server, _ = views
    assert get(server, "/api/v1/models", model="recsys-model")["models"] == []
    assert len(get(server, "/api/v1/models", environment="prod")["models"]) == 2
    assert get(server, "/api/v1/models", environment="staging")["models"] == []
    assert get(server, "/api/v1/models", since="1m")["models"] == []


# -- GET /api/v1/pipelines/runs -------------------------------------------------------------


def test_pipeline_runs_newest_first_with_status_and_duration(
    views: tuple[LiveServer, dict],
) -> None:
    server, sent = views
    body = get(server, "/api/v1/pipelines/runs", since="1d")
    runs = body["runs"]
    assert [r["start"] for r in runs] == [iso(r["start"]) for r in reversed(sent["runs"])]
    for run, want in zip(runs, reversed(sent["runs"]), strict=True):
        assert run["workload"] == "data/nightly-etl" and run["name"] == "run nightly-etl"
        assert run["duration_ms"] == pytest.approx(int(want["ms"] * MS) / MS)
        assert run["spans"] == 2
        assert run["status"] == ("error" if want["fail"] else "ok")
        assert run["errors"] == (1 if want["fail"] else 0)
        assert run["cost"] is None  # no pods, no cost rows
    (summary,) = body["summary"]
    assert summary["runs"] == 3 and summary["failed"] == 1
    assert summary["avg_duration_ms"] == pytest.approx(np.mean([r["duration_ms"] for r in runs]))
    failed = get(server, "/api/v1/pipelines/runs", since="1d", status="error")["runs"]
    assert [r["trace_id"] for r in failed] == [runs[0]["trace_id"]]
    assert len(get(server, "/api/v1/pipelines/runs", since="1d", limit="1")["runs"]) == 1
    assert get(server, "/api/v1/pipelines/runs", workload="shop/checkout-api")["runs"] == []
    status, body = server.get_json("/api/v1/pipelines/runs?status=late")
    assert status == 400 and "status must be ok or error" in body["error"]


def test_healthz_names_where_to_send_telemetry(views: tuple[LiveServer, dict]) -> None:
    server, _ = views
    listeners = get(server, "/healthz")["listeners"]
    assert listeners == {
        "otlp_http": server.otlp_url,
        "otlp_grpc": server.grpc_address,
        "api": server.api_url,
    }


def test_trace_search_takes_a_repeated_workload_as_any_of_them(
    views: tuple[LiveServer, dict],
) -> None:
    server, sent = views
    one = get(server, "/api/v1/traces", workload="shop/checkout-api", limit="1000", **WINDOW)
    both = get(server, "/api/v1/traces", workload=["shop/checkout-api", "ml/fraud-model"],
               limit="1000", **WINDOW)  # fmt: skip
    assert len(one["traces"]) == len(sent["requests"])
    assert len(both["traces"]) == len(sent["requests"]) + len(sent["predictions"])
    slowest = get(server, "/api/v1/traces", workload=["shop/checkout-api", "ml/fraud-model"],
                  sort="slowest", limit="1", **WINDOW)["traces"]  # fmt: skip
    longest = max(int(r["ms"] * MS) for r in sent["requests"])
    assert [t["duration_ns"] for t in slowest] == [longest]
