"""The terminal waterfall of real traces: spans sent with the OpenTelemetry SDK to a live
`onepane serve`, read back from its API and rendered as an on-call engineer would see them.

Two traces share one server (started once for this module):

* checkout: POST /checkout (frontend) → POST /score (scoring-api) → a slow fraud-model
  inference running alongside 240 identical ledger queries; a failed cart render beside it.
* orders: GET /orders (frontend) → 6 back-to-back ledger queries, each 15% of the trace.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from onepane.testing import LiveServer
from onepane.waterfall import render_matches, render_trace

MS = 1_000_000
BASE_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
RENDER_ERROR = (  # fits a 160-column waterfall, not a 100-column one
    "template missing: cart/summary.html (looked in themes/default, themes/base and the "
    "shop's fallback folder)"
)
QUERIES = 240  # parallel SELECT orders beside the model call
SEQUENTIAL = 6  # back-to-back SELECT orders in the orders trace
MODEL = {"ml.model.name": "fraud"}  # makes a span an inference
DB = {"db.system.name": "postgresql", "db.query.text": "SELECT * FROM orders WHERE id = $1"}


class Services:
    """One SDK tracer provider per service, all exporting over OTLP/HTTP to the server."""

    def __init__(self, otlp_url: str, names: tuple[str, ...]) -> None:
        self.providers = {}
        for name in names:
            provider = TracerProvider(resource=Resource.create({"service.name": name}))
            exporter = OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces", timeout=30)
            provider.add_span_processor(BatchSpanProcessor(exporter))
            self.providers[name] = provider

    def span(
        self,
        service: str,
        name: str,
        parent: Span | None,
        start_ms: float,
        end_ms: float,
        kind: SpanKind = SpanKind.INTERNAL,
        error: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else Context()
        tracer = self.providers[service].get_tracer("waterfall-test")
        started = tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            start_time=BASE_NS + round(start_ms * MS),
        )
        if error:
            started.set_status(Status(StatusCode.ERROR, error))
        started.end(end_time=BASE_NS + round(end_ms * MS))
        return started

    def flush(self) -> None:
        for provider in self.providers.values():
            assert provider.force_flush()
            provider.shutdown()


def trace_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def send_checkout(services: Services) -> str:
    root = services.span("frontend", "POST /checkout", None, 0, 300, SpanKind.SERVER)
    services.span("frontend", "render cart", root, 5, 15, error=RENDER_ERROR)
    api = services.span("scoring-api", "POST /score", root, 10, 290, SpanKind.SERVER)
    services.span("fraud-model", "predict fraud", api, 20, 280, attributes=MODEL)
    for i in range(QUERIES):  # durations 2..6 ms: avg 4, max 6; all done by 86 ms
        start = 21 + i % 60
        end = start + 2 + i % 5
        services.span("ledger", "SELECT orders", api, start, end, SpanKind.CLIENT, attributes=DB)
    return trace_id(root)


def send_orders(services: Services) -> str:
    root = services.span("frontend", "GET /orders", None, 0, 100, SpanKind.SERVER)
    for k in range(SEQUENTIAL):
        start = 5 + 15 * k
        end = start + 15
        services.span("ledger", "SELECT orders", root, start, end, SpanKind.CLIENT, attributes=DB)
    return trace_id(root)


@dataclass
class Sent:
    server: LiveServer
    checkout: dict[str, Any]  # GET /api/v1/traces/{id}
    orders: dict[str, Any]


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    """One live server (as the `server` fixture starts it) holding both traces."""
    db: Path = tmp_path_factory.mktemp("waterfall") / "onepane.duckdb"
    server = LiveServer(db, "--decoders", "1")
    try:
        services = Services(server.otlp_url, ("frontend", "scoring-api", "fraud-model", "ledger"))
        checkout_id, orders_id = send_checkout(services), send_orders(services)
        services.flush()
        yield Sent(server, server.trace(checkout_id), server.trace(orders_id))
    finally:
        server.kill()


def span_rows(text: str) -> list[str]:
    """The span lines of a waterfall: those with a bar, below the column titles."""
    lines = text.splitlines()
    titles = next(i for i, line in enumerate(lines) if line.startswith("   span "))
    return [line for line in lines[titles + 1 :] if "│" in line]


def row(text: str, label: str) -> str:
    """The one span line whose name column (after the indent) is ``label``."""
    found = [line for line in span_rows(text) if line[3:].lstrip().startswith(label + "  ")]
    assert len(found) == 1, found
    return found[0]


def line_after(text: str, line: str) -> str:
    lines = text.splitlines()
    return lines[lines.index(line) + 1]


def bar(line: str) -> str:
    return line.split("│")[1]


def indent(line: str) -> int:
    name = line[3:]
    return len(name) - len(name.lstrip(" "))


def test_header_names_the_trace_and_where_its_time_went(sent: Sent) -> None:
    doc = sent.checkout
    lines = render_trace(doc).splitlines()

    assert lines[0] == (
        f"Trace {doc['trace_id']} · POST /checkout (frontend) · 300 ms · "
        f"{QUERIES + 4} spans · 1 error"
    )
    assert doc["where_the_time_went"]["headline"] == "87% in fraud-model inference"
    assert "Where the time went: 87% in fraud-model inference (critical path 300 ms)" in lines
    assert "  by service: 87% fraud-model inference · 7% frontend request · 7% scoring-api api" in (
        lines
    )


def test_critical_path_and_failed_spans_are_marked(sent: Sent) -> None:
    text = render_trace(sent.checkout, width=160)

    assert row(text, "POST /checkout").startswith("*  ")
    assert row(text, "POST /score").startswith("*  ")
    assert row(text, "predict fraud").startswith("*  ")
    failed = row(text, "render cart")
    assert failed.startswith(" ! ")
    assert line_after(text, failed).strip() == f"! {RENDER_ERROR}"
    assert row(text, f"× {QUERIES} SELECT orders").startswith("   ")


def test_indentation_follows_depth(sent: Sent) -> None:
    text = render_trace(sent.checkout)

    depths = {"POST /checkout": 0, "render cart": 1, "POST /score": 1, "predict fraud": 2}
    assert {label: indent(row(text, label)) // 2 for label in depths} == depths
    assert indent(row(text, f"× {QUERIES} SELECT orders")) == 4


def test_bars_show_critical_time_solid_and_the_rest_shaded(sent: Sent) -> None:
    text = render_trace(sent.checkout)
    cells = len(bar(row(text, "POST /checkout")))
    short = cells // 10  # 10 ms of 300 is a thirtieth of the bar

    # The root is on the path for its first and last 10 ms only.
    root = re.fullmatch("(█+)▒+(█+)", bar(row(text, "POST /checkout")))
    assert root and max(len(root[1]), len(root[2])) <= short
    render = re.fullmatch("(▒+) +", bar(row(text, "render cart")))  # 5..15 ms, off the path
    assert render and len(render[1]) <= short
    model = bar(row(text, "predict fraud"))  # 20..280 ms, all on the path
    assert re.fullmatch(" *█+ *", model) and model.count("█") >= cells * 8 // 10
    queries = bar(row(text, f"× {QUERIES} SELECT orders"))  # 21..86 ms, off the path
    assert re.fullmatch(" *▒+ +", queries) and queries.count("▒") <= cells // 3


def test_parallel_identical_queries_fold_into_one_line(sent: Sent) -> None:
    folded = render_trace(sent.checkout)
    group = row(folded, f"× {QUERIES} SELECT orders")
    assert " 960 ms │" in group  # their summed time
    assert line_after(folded, group).strip() == "avg 4.0 ms, max 6.0 ms"
    assert sum("SELECT orders" in line for line in folded.splitlines()) == 1

    expanded = render_trace(sent.checkout, collapse=False)
    rows = [line for line in span_rows(expanded) if "SELECT orders" in line]
    assert len(rows) == QUERIES and "×" not in expanded
    assert all(line.startswith("   ") and indent(line) == 4 for line in rows)


def test_repeats_that_hold_the_critical_path_stay_expanded(sent: Sent) -> None:
    text = render_trace(sent.orders)

    rows = [line for line in span_rows(text) if "SELECT orders" in line]
    assert len(rows) == SEQUENTIAL and "×" not in text
    assert all(line.startswith("*  ") and "15.0 ms" in line for line in rows)
    assert sent.orders["where_the_time_went"]["headline"] == "90% in ledger db"


def test_color_only_when_asked(sent: Sent) -> None:
    plain = render_trace(sent.checkout, color=False)
    colored = render_trace(sent.checkout, color=True)

    assert "\x1b" not in plain
    assert "\x1b[31m !" in colored  # the failed span in red
    assert "\x1b[1m*  " in colored  # critical-path spans in bold


@pytest.mark.parametrize("width", [100, 160])
def test_span_lines_fit_the_width(sent: Sent, width: int) -> None:
    text = render_trace(sent.checkout, width=width)
    rows = span_rows(text)

    assert len(rows) == 5
    assert all(len(line) <= width for line in rows)
    failed = row(text, "render cart")
    assert line_after(text, failed).lstrip().startswith("! template missing")
    assert len(line_after(text, failed)) <= width  # the long status message is cut at 100


def test_matches_list_each_trace_with_its_headline(sent: Sent) -> None:
    deadline = time.monotonic() + 5
    found: list[dict[str, Any]] = []
    while len(found) < 2 and time.monotonic() < deadline:
        status, body = sent.server.get_json("/api/v1/traces?service=ledger")
        assert status == 200, body
        found = body["traces"]
        time.sleep(0.1)
    lines = render_matches(found, width=160).splitlines()

    assert lines[0].split()[:3] == ["started", "(UTC)", "duration"]
    assert len(lines) == 3
    assert all(len(line) <= 120 for line in render_matches(found).splitlines()[1:])
    for doc, headline in (
        (sent.checkout, "87% in fraud-model inference · frontend POST /checkout"),
        (sent.orders, "90% in ledger db · frontend GET /orders"),
    ):
        [line] = [line for line in lines if doc["trace_id"] in line]
        assert line.endswith(headline)
