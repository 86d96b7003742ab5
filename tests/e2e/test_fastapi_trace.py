"""End to end: a real FastAPI app, instrumented by the OpenTelemetry contrib packages and
exporting through the SDK's OTLP/HTTP exporter, into a live `onepane serve`; then the
on-call engineer's questions: which trace was slow, where did its time go, which span.

The app ("shop-checkout") serves ``POST /checkout/{cart_id}``, which calls the app's own
``POST /api/score`` over HTTP with the W3C trace context, which runs three SQLite queries
through the dbapi instrumentation and then a fraud model that takes a known 300 ms.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.dbapi import instrument_connection
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from onepane.testing import LiveServer

SERVICE = "shop-checkout"
WORKLOAD = "shop/shop-checkout"  # k8s namespace / deployment
CHECKOUT_ROUTE = "/checkout/{cart_id}"
MODEL_SLEEP_S = 1.0  # well above what the request itself spends, also on a busy machine
MODEL_MS = MODEL_SLEEP_S * 1000
MODEL_SLACK_MS = 150.0  # a sleep overshoots by a little, more on a busy machine
AMOUNT = 129.99
QUERIES = (
    "SELECT count(*) FROM cart_items WHERE cart_id = 'c-1001'",
    "SELECT sum(price) FROM cart_items WHERE cart_id = 'c-1001'",
    "SELECT country FROM customers WHERE id = 7",
)


@dataclass
class Shop:
    url: str
    provider: TracerProvider
    sent: InMemorySpanExporter  # the same spans the OTLP exporter sends, kept in memory

    def post(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            return json.loads(response.read())

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def finished(self, name: str) -> ReadableSpan:
        """The finished span called ``name``. A server span ends just after the response
        is sent, so a client can hold its response before the span is ended."""
        deadline = time.monotonic() + 10
        while True:
            spans = [s for s in self.sent.get_finished_spans() if s.name == name]
            if spans:
                return spans[-1]
            assert time.monotonic() < deadline, f"span {name!r} never ended"
            time.sleep(0.01)


def _shop_app(db: Path, provider: TracerProvider, base_url: list[str]) -> FastAPI:
    app = FastAPI()
    model = provider.get_tracer("shop.fraud_model", "3")

    def predict(amount: float) -> float:
        with model.start_as_current_span(
            "predict fraud-model",
            attributes={
                "ml.model.name": "fraud-model",
                "ml.model.version": "3",
                "ml.feature.amount": amount,
            },
        ):
            time.sleep(MODEL_SLEEP_S)
            return 0.07

    @app.post(CHECKOUT_ROUTE)
    def checkout(cart_id: str) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        propagate.inject(headers)
        request = urllib.request.Request(
            base_url[0] + "/api/score", data=b"{}", headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            score = json.loads(response.read())
        trace_id = trace.get_current_span().get_span_context().trace_id
        return {"cart_id": cart_id, "trace_id": format(trace_id, "032x"), **score}

    @app.post("/api/score")
    def score() -> dict[str, Any]:
        conn = instrument_connection(
            "shop.db", sqlite3.connect(db), "sqlite", tracer_provider=provider
        )
        try:
            cursor = conn.cursor()
            rows = []
            for query in QUERIES:
                cursor.execute(query)
                rows.append(cursor.fetchone()[0])
        finally:
            conn.close()
        return {"items": rows[0], "fraud_score": predict(AMOUNT)}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return app


@pytest.fixture
def shop(server: LiveServer, tmp_path: Path) -> Iterator[Shop]:
    """The shop app on a free loopback port, exporting to ``server``; stopped afterwards."""
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            """
            CREATE TABLE cart_items (cart_id TEXT, sku TEXT, price REAL);
            INSERT INTO cart_items VALUES ('c-1001', 'sku-1', 99.99), ('c-1001', 'sku-2', 30.0);
            CREATE TABLE customers (id INTEGER, country TEXT);
            INSERT INTO customers VALUES (7, 'NL');
            """
        )
    conn.close()
    resource = Resource.create(
        {
            "service.name": SERVICE,
            "k8s.namespace.name": "shop",
            "k8s.deployment.name": "shop-checkout",
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{server.otlp_url}/v1/traces"))
    )
    sent = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(sent))
    base_url: list[str] = []
    app = _shop_app(db, provider, base_url)
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=web.run, name="shop-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not web.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = web.servers[0].sockets[0].getsockname()[1]
        base_url.append(f"http://127.0.0.1:{port}")
        yield Shop(base_url[0], provider, sent)
    finally:
        web.should_exit = True
        thread.join(10)
        provider.shutdown()
    assert not thread.is_alive(), "uvicorn did not stop"


def _search(server: LiveServer, **params: str) -> list[dict[str, Any]]:
    status, body = server.get_json("/api/v1/traces?" + urlencode({"since": "5m", **params}))
    assert status == 200, body
    return body["traces"]


def _ids(summaries: list[dict[str, Any]]) -> list[str]:
    return [s["trace_id"] for s in summaries]


def test_fastapi_checkout_trace_shows_where_the_time_went(server: LiveServer, shop: Shop) -> None:
    reply = shop.post("/checkout/c-1001")
    assert reply["cart_id"] == "c-1001"
    assert reply["items"] == 2
    trace_id = reply["trace_id"]
    shop.finished(f"POST {CHECKOUT_ROUTE}")
    assert shop.get("/healthz") == {"status": "ok"}  # a second, fast trace after it
    health = shop.finished("GET /healthz")
    health_id = format(health.context.trace_id, "032x")
    assert shop.provider.force_flush(10_000)
    sent: dict[str, dict[str, ReadableSpan]] = {trace_id: {}, health_id: {}}
    for done in shop.sent.get_finished_spans():
        sent[format(done.context.trace_id, "032x")][format(done.context.span_id, "016x")] = done
    counts = {t: len(spans) for t, spans in sent.items()}

    # Summaries are folded about once a second: wait until both traces are whole.
    deadline = time.monotonic() + 10
    while {s["trace_id"]: s["span_count"] for s in _search(server)} != counts:
        assert time.monotonic() < deadline, f"traces never folded: {_search(server)}"
        time.sleep(0.1)
    sent_spans = sent[trace_id]

    # 1. Find it by route, as someone who only knows which endpoint was slow would.
    found = _search(server, route=CHECKOUT_ROUTE)
    assert _ids(found) == [trace_id]
    summary = found[0]
    assert summary["root_name"] == f"POST {CHECKOUT_ROUTE}"
    assert summary["root_service"] == SERVICE
    assert summary["services"] == [SERVICE]
    assert summary["error_count"] == 0
    assert {"request", "api", "inference", "db"} <= set(summary["roles"])
    assert summary["duration_ms"] >= MODEL_MS

    # 2. The trace itself, by full id and by the short id people paste.
    view = server.trace(trace_id)
    assert server.trace(trace_id[:12]) == view
    assert view["trace_id"] == trace_id
    assert view["complete"] is True
    assert view["span_count"] == len(sent_spans) == summary["span_count"]
    assert {s["span_id"] for s in view["spans"]} == set(sent_spans)
    assert view["roles"] == summary["roles"]
    assert view["duration_ms"] == summary["duration_ms"]
    assert view["resources"] and all(
        r["service.name"] == SERVICE and r["k8s.deployment.name"] == "shop-checkout"
        for r in view["resources"].values()
    )

    spans = view["spans"]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
        assert span["service_name"] == SERVICE
        assert span["workload"] == WORKLOAD
        parent = sent_spans[span["span_id"]].parent
        assert span["parent_span_id"] == (parent and format(parent.span_id, "016x"))
    [root] = by_name.pop(f"POST {CHECKOUT_ROUTE}")
    [api] = by_name.pop("POST /api/score")
    [model] = by_name.pop("predict fraud-model")
    dbs = by_name.pop("SELECT")
    assert spans[0] is root and view["root_span_id"] == root["span_id"]
    assert root["parent_span_id"] is None
    assert (root["kind"], root["role"], root["http_route"]) == ("SERVER", "request", CHECKOUT_ROUTE)
    assert root["http_method"] == "POST" and root["http_status_code"] == 200
    # The propagated context made the inner call a child of the checkout request.
    assert api["parent_span_id"] == root["span_id"]
    assert (api["kind"], api["role"], api["http_route"]) == ("SERVER", "api", "/api/score")
    assert model["parent_span_id"] == api["span_id"]
    assert (model["role"], model["model_name"], model["model_version"]) == (
        "inference",
        "fraud-model",
        "3",
    )
    assert model["attributes"]["ml.feature.amount"] == AMOUNT
    assert [s["db_query_text"] for s in dbs] == list(QUERIES)
    for db in dbs:
        assert db["parent_span_id"] == api["span_id"]
        assert (db["kind"], db["role"], db["db_system"]) == ("CLIENT", "db", "sqlite")
    # What is left is the ASGI instrumentation's own "http send"/"http receive" spans.
    assert by_name and all(name.endswith((" http send", " http receive")) for name in by_name)
    assert all(s["role"] == "internal" for rest in by_name.values() for s in rest)
    assert view["roles"] == sorted({s["role"] for s in spans})

    # The critical path: request -> api -> three queries -> the model, all back to back.
    path = view["critical_path"]
    on_path = [section["span_id"] for section in path]
    ns = 0
    for section in path:
        assert section["offset_ns"] == ns  # sections follow each other without gaps
        ns += round(section["duration_ms"] * 1e6)
    total_ms = view["where_the_time_went"]["total_ms"]
    assert total_ms == root["duration_ms"] == view["duration_ms"]
    assert ns == pytest.approx(total_ms * 1e6, abs=len(path))
    assert on_path[0] == on_path[-1] == root["span_id"]
    assert on_path[1] == api["span_id"]
    first = {span_id: on_path.index(span_id) for span_id in on_path}
    db_ids = [db["span_id"] for db in dbs]
    assert all(db_id in first for db_id in db_ids)
    assert first[db_ids[0]] < first[db_ids[1]] < first[db_ids[2]] < first[model["span_id"]]
    assert MODEL_MS <= model["critical_path_ms"] <= MODEL_MS + MODEL_SLACK_MS
    assert model["critical_path_ms"] == model["duration_ms"]  # all of it was waited on
    assert all(db["critical_path_ms"] == db["duration_ms"] > 0 for db in dbs)
    assert root["critical_path_ms"] > 0 and api["critical_path_ms"] > 0
    assert sum(s["critical_path_ms"] for s in spans) == pytest.approx(total_ms)

    # Where the time went: the model, in this very service.
    split = view["where_the_time_went"]
    assert summary["where_the_time_went"] == split  # the list and the trace agree
    by_role = split["by_role"]
    inference = by_role["inference"]
    assert inference["ms"] == model["critical_path_ms"]
    assert MODEL_MS <= inference["ms"] <= MODEL_MS + MODEL_SLACK_MS
    assert inference["share"] == pytest.approx(inference["ms"] / total_ms, abs=1e-4)
    assert inference["share"] >= MODEL_MS / total_ms - 1e-4
    assert by_role["db"]["ms"] == pytest.approx(sum(db["duration_ms"] for db in dbs))
    assert by_role["request"]["ms"] == root["critical_path_ms"]
    assert by_role["api"]["ms"] == api["critical_path_ms"]
    assert "missing" not in by_role
    assert sum(r["ms"] for r in by_role.values()) == pytest.approx(total_ms)
    assert sum(r["share"] for r in by_role.values()) == pytest.approx(1, abs=1e-3)
    top = split["by_service"][0]
    assert (top["service"], top["workload"], top["role"]) == (SERVICE, WORKLOAD, "inference")
    assert top["share"] == inference["share"]
    assert split["headline"] == f"{inference['share']:.0%} in {SERVICE} inference"

    # 3. The other ways in: by model, by slow service spans, by attribute; and not too wide.
    assert _ids(_search(server, model="fraud-model")) == [trace_id]
    assert _ids(_search(server, attr="ml.model.version=3")) == [trace_id]
    assert _ids(_search(server, attr="ml.model.version=2")) == []
    assert _ids(_search(server, service=SERVICE, sort="slowest")) == [trace_id, health_id]
    assert _ids(_search(server, service=SERVICE)) == [health_id, trace_id]  # newest first
    slow = _search(server, service=SERVICE, min_duration_ms="250", sort="slowest")
    assert _ids(slow) == [trace_id]
    assert slow[0]["where_the_time_went"]["headline"] == split["headline"]
    assert _ids(_search(server, service=SERVICE, min_duration_ms="5000")) == []
    assert _ids(_search(server, min_duration_ms="5000")) == []
