"""The incident page against the demo company: a trace by id shows the API's figures, the
search shows the API's results, a bad id is an error message, a 10,000-span trace renders
quickly with its chart folded, and an empty store says what to send."""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import pandas as pd
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from streamlit.testing.v1 import AppTest

from dashboards import ui
from dashboards.views import _incident_trace as trace_view
from dashboards.views import _incident_waterfall as waterfall
from onepane.testing import LiveServer
from tests.dashboards import pages
from tests.dashboards.conftest import DemoApi

WINDOW = "6h"


def open_page(**params: str) -> AppTest:
    return pages.open_page("app", "incident", errors_ok=True, **params)


metrics = pages.metrics


def tables(at: AppTest, *first_columns: str) -> list[pd.DataFrame]:
    """The page's tables whose first columns are these."""
    n = len(first_columns)
    return [t for t in pages.tables(at) if tuple(t.columns[:n]) == first_columns]


def span_tables(at: AppTest) -> list[pd.DataFrame]:
    """The data grids of every span (a trace has more rows than a Markdown table takes)."""
    return [d.value for d in at.dataframe if tuple(d.value.columns[:2]) == ("depth", "span")]


def waterfall_rows(at: AppTest) -> pd.DataFrame:
    """The rows the waterfall chart draws (its first layer's data)."""
    chart = next(
        c for c in at.get("vega_lite_chart") if '"ms since the trace started"' in c.proto.spec
    )
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all().to_pandas()


def test_a_failed_checkout_by_id(app_env: DemoApi) -> None:
    found = app_env.get("/api/v1/traces", service="web-frontend", status="error", since=WINDOW)
    trace_id = found["traces"][0]["trace_id"]
    doc = app_env.get(f"/api/v1/traces/{trace_id}")
    at = open_page(trace=trace_id)
    assert not at.error
    shown = metrics(at)
    assert shown["Spans"] == f"{doc['span_count']:,}"
    assert shown["Errors"] == f"{doc['error_count']:,}" != "0"
    assert shown["Duration"] == ui.ms(doc["duration_ms"])
    assert shown["Logs"] == f"{doc['log_count']:,}"
    headline = doc["where_the_time_went"]["headline"]
    assert f"**Where the time went:** {headline}" in [m.value for m in at.markdown]

    rows = waterfall_rows(at)
    assert len(rows) == doc["span_count"]  # every span of a small trace is drawn
    assert list(rows["name"]) == [s["name"] for s in doc["spans"]]  # in tree order
    assert list(rows["failed"]) == [s["status"]["code"] == "ERROR" for s in doc["spans"]]

    (failed,) = tables(at, "span", "service", "workload")
    errors = [s for s in doc["spans"] if s["status"]["code"] == "ERROR"]
    assert len(failed) == doc["error_count"]
    assert list(failed["message"]) == [s["status"]["message"] or "" for s in errors]
    (logs,) = tables(at, "time", "severity")
    assert len(logs) == doc["log_count"]
    (by_service,) = tables(at, "service", "workload", "role")
    split = doc["where_the_time_went"]["by_service"]
    assert list(by_service["ms"]) == [pages.num(s["ms"], "%.3f") for s in split]

    links = next(m.value for m in at.markdown if "[cost](" in m.value)
    window = trace_view.window_around(doc["start_unix_nano"])
    for workload in {s["workload"] for s in doc["spans"]}:
        query = f"persona=app&workload={quote(workload, safe='')}&window={window}"
        assert f"(/finops?{query})" in links
    fraud = f"persona=app&workload=ml%2Ffraud-model&window={window}&model=fraud-model"
    assert f"(/ml-engineer?{fraud})" in links
    assert f"(/data-scientist?{fraud})" in links


def test_a_short_id_opens_the_trace(app_env: DemoApi) -> None:
    found = app_env.get("/api/v1/traces", service="recommendations-api", since=WINDOW, limit=1)
    trace_id = found["traces"][0]["trace_id"]
    at = open_page(trace=trace_id[:12])
    assert not at.error
    assert any(f"Trace `{trace_id}`" in c.value for c in at.main.caption)
    assert metrics(at)["Errors"] == "0"
    assert any("No span of this trace failed" in c.value for c in at.caption)


@pytest.mark.parametrize(
    ("trace_id", "message"),
    [
        ("zzzz", "400 trace id 'zzzz' is not hex"),
        ("0123456789abcdef0123456789abcdef", "404 trace 0123456789abcdef0123456789abcdef is not"),
        ("abc/../../healthz", "is not hex"),
    ],
)
def test_a_bad_trace_id_is_an_error_message(app_env: DemoApi, trace_id: str, message: str) -> None:
    at = open_page(trace=trace_id)
    assert len(at.error) == 1
    assert message in at.error[0].value
    assert not at.metric


def test_the_search_form_from_the_url(app_env: DemoApi) -> None:
    at = open_page(service="checkout-api", errors="1", window=WINDOW, sort="slowest")
    expected = app_env.get(
        "/api/v1/traces", service="checkout-api", status="error", since=WINDOW, sort="slowest",
        limit=50,
    )["traces"]  # fmt: skip
    assert expected
    (results,) = tables(at, "Trace", "Duration (ms)")
    assert pages.trace_ids(results) == [t["trace_id"] for t in expected]
    assert list(results["Errors"]) == [pages.num(t["error_count"]) for t in expected]
    assert list(results["Where the time went"]) == [
        t["where_the_time_went"]["headline"] for t in expected
    ]
    assert at.checkbox[0].value is True

    # A new search from the form lands in the URL, ready to paste into a channel.
    at.text_input(key="incident-widget:service").set_value("recommendations-api")
    at.checkbox(key="incident-widget:errors").uncheck()
    at.button[0].click().run()
    assert not at.exception
    assert at.query_params["service"] == "recommendations-api"
    assert "errors" not in at.query_params
    expected = app_env.get(
        "/api/v1/traces", service="recommendations-api", since=WINDOW, sort="slowest", limit=50
    )["traces"]
    (results,) = tables(at, "Trace", "Duration (ms)")
    assert pages.trace_ids(results) == [t["trace_id"] for t in expected]


def test_search_by_route_duration_and_attribute(app_env: DemoApi) -> None:
    params = {"route": "/api/checkout", "min_ms": "500", "attr": "http.request.method=POST"}
    at = open_page(**params, window=WINDOW)
    expected = app_env.get(
        "/api/v1/traces", route="/api/checkout", min_duration_ms="500",
        attr="http.request.method=POST", since=WINDOW, limit=50,
    )["traces"]  # fmt: skip
    (results,) = tables(at, "Trace", "Duration (ms)")
    assert pages.trace_ids(results) == [t["trace_id"] for t in expected]
    assert all(float(d) >= 500 for d in results["Duration (ms)"])


def test_a_bad_search_value_is_the_api_message(app_env: DemoApi) -> None:
    at = open_page(min_ms="soon")
    assert "min_duration_ms must be a number of milliseconds" in at.error[0].value


def test_empty_store_says_what_to_send(
    start_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setenv("ONEPANE_SERVER", server.api_url)
    at = open_page()
    assert not at.error
    assert "No traces yet" in at.info[0].value
    assert server.otlp_url in at.code[0].value


BIG = 10_000
FANOUT = 100


def big_trace(trace_id: bytes, now_ns: int) -> bytes:
    """A 10,000-span trace: a root, 99 calls, each with database queries under it; every
    97th span fails."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    attr = resource.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "bulk-api"
    spans = resource.scope_spans.add().spans
    start = now_ns - 60 * 10**9
    for i in range(BIG):
        span = spans.add()
        span.trace_id, span.span_id = trace_id, (i + 1).to_bytes(8, "big")
        span.start_time_unix_nano = start + i * 1_000_000
        if i == 0:
            span.name, span.kind = "GET /bulk", Span.SPAN_KIND_SERVER
        else:
            parent = 0 if i < FANOUT else 1 + i % (FANOUT - 1)  # the root, or a call
            span.parent_span_id = (parent + 1).to_bytes(8, "big")
            span.name, span.kind = (
                (f"call {i}" if i < FANOUT else f"SELECT {i}"),
                Span.SPAN_KIND_CLIENT,
            )
        if i < FANOUT:  # the root and the calls hold every query
            span.end_time_unix_nano = start + (BIG + 20 - i) * 1_000_000
        else:
            span.end_time_unix_nano = span.start_time_unix_nano + 500_000
            attr = span.attributes.add()
            attr.key, attr.value.string_value = "db.system.name", "postgresql"
        if i and i % 97 == 0:
            span.status.code, span.status.message = Status.STATUS_CODE_ERROR, f"query {i} failed"
    return request.SerializeToString()


def post_traces(otlp_url: str, body: bytes) -> None:
    address = urlsplit(otlp_url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
    finally:
        conn.close()


def test_a_10000_span_trace_renders_folded_and_fast(
    start_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    trace_id = bytes.fromhex("5eed" * 8)
    post_traces(server.otlp_url, big_trace(trace_id, time.time_ns()))
    status, doc = server.get_json(f"/api/v1/traces/{trace_id.hex()}")
    assert status == 200 and doc["span_count"] == BIG
    # Folded by the server (the page asks for the spans its waterfall draws): the roots and
    # every failed span; counts and the time split stay those of the whole trace.
    status, folded = server.get_json(f"/api/v1/traces/{trace_id.hex()}?spans=200")
    assert status == 200 and folded["spans_shown"] == len(folded["spans"]) == 200
    kept = {span["span_id"] for span in folded["spans"]}
    # Every failed span first, then parents as room allows: a kept span that did not fail
    # comes with its parent.
    assert all(
        span["parent_span_id"] in kept
        for span in folded["spans"]
        if span["depth"] and span["status"]["code"] != "ERROR"
    )
    assert {s["span_id"] for s in doc["spans"] if s["status"]["code"] == "ERROR"} <= kept
    assert [s["span_id"] for s in doc["spans"] if s["span_id"] in kept] == [
        s["span_id"] for s in folded["spans"]
    ]  # tree order kept
    for field in ("span_count", "error_count", "where_the_time_went", "critical_path"):
        assert folded[field] == doc[field]
    for bad in ("0", "-3", "many"):
        status, error = server.get_json(f"/api/v1/traces/{trace_id.hex()}?spans={bad}")
        assert status == 400 and "spans" in error["error"], (bad, error)
    monkeypatch.setenv("ONEPANE_SERVER", server.api_url)

    at = AppTest.from_file(str(pages.APP), default_timeout=60)
    at.query_params["persona"], at.query_params["trace"] = "app", trace_id.hex()
    at.run()
    started = time.perf_counter()
    at.switch_page("views/incident.py").run()
    seconds = time.perf_counter() - started
    assert not at.exception and not at.error
    assert metrics(at)["Spans"] == "10,000"
    assert metrics(at)["Errors"] == f"{doc['error_count']:,}" == f"{(BIG - 1) // 97:,}"

    rows = waterfall_rows(at)
    assert len(rows) == waterfall.MAX_ROWS
    assert rows["name"][0] == "GET /bulk"
    assert rows["failed"].sum() == doc["error_count"]  # every failed span is drawn
    note = next(c.value for c in at.caption if "Showing" in c.value)
    assert f"Showing {waterfall.MAX_ROWS:,} of {BIG:,} spans" in note
    rendered = float(re.search(r"rendered in ([\d.]+) s", at.main.caption[-1].value)[1])
    assert not span_tables(at)  # the table of every span is drawn on demand
    at.toggle(key="incident-all-spans").set_value(True).run()
    (every_span,) = span_tables(at)
    assert len(every_span) == BIG
    print(f"10,000-span trace: page rendered in {rendered:.2f} s, AppTest run {seconds:.2f} s")
    assert rendered < 5.0
