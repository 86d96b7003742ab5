"""Sending test traces described as tables through the real OpenTelemetry SDK, with trace
ids and timestamps chosen by the test, and waiting until the server has folded them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from onepane.testing import LiveServer

MS = 1_000_000


class ChosenIds(IdGenerator):
    """Trace ids set by the test (``next``) before each root span; random span ids."""

    def __init__(self) -> None:
        self.next = 0
        self._random = RandomIdGenerator()

    def generate_trace_id(self) -> int:
        return self.next

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()


def _exporter(otlp_url: str) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces", timeout=30)


def send_table(
    otlp_url: str,
    table: Sequence[tuple[Any, ...]],
    trace_ids: Mapping[str, str],
    starts_ns: Mapping[str, int],
) -> None:
    """Rows of (trace, parent span's name, resource, name, start ms, end ms, kind,
    attributes[, error message]), each parent before its children, times from the trace's
    start; one tracer provider per resource, each span exported as it ends."""
    ids = ChosenIds()
    providers: dict[str, TracerProvider] = {}
    made: dict[tuple[str, str], Span] = {}
    for name, parent, resource, span_name, start_ms, end_ms, kind, attrs, *error in table:
        key = repr(sorted(resource.items()))
        if key not in providers:
            providers[key] = TracerProvider(resource=Resource.create(resource), id_generator=ids)
            providers[key].add_span_processor(SimpleSpanProcessor(_exporter(otlp_url)))
        ids.next = int(trace_ids[name], 16)
        base = starts_ns[name]
        context = trace.set_span_in_context(made[name, parent]) if parent else Context()
        tracer = providers[key].get_tracer("onepane-tests")
        span = tracer.start_span(span_name, context, kind, attrs, start_time=base + start_ms * MS)
        if error:
            span.set_status(Status(StatusCode.ERROR, error[0]))
        span.end(end_time=base + end_ms * MS)
        made[name, span_name] = span
    for provider in providers.values():
        provider.shutdown()


def send_bulk_trace(otlp_url: str, trace_id: str, base_ns: int, db_spans: int) -> None:
    """A bulk-api trace: GET /bulk > POST /bulk > ``db_spans`` back-to-back 0.25 ms
    ``INSERT items`` from 100 ms; 3 s in all. Exported in batches of 512."""
    ids = ChosenIds()
    ids.next = int(trace_id, 16)
    resource = Resource.create({"service.name": "bulk-api"})
    provider = TracerProvider(resource=resource, id_generator=ids)
    provider.add_span_processor(
        BatchSpanProcessor(
            _exporter(otlp_url),
            max_queue_size=20_000,
            max_export_batch_size=512,
            schedule_delay_millis=60_000,
        )
    )
    tracer = provider.get_tracer("onepane-tests")
    root = tracer.start_span("GET /bulk", kind=SpanKind.SERVER, start_time=base_ns)
    in_root = trace.set_span_in_context(root)
    api = tracer.start_span("POST /bulk", in_root, SpanKind.SERVER, start_time=base_ns + 10 * MS)
    in_api = trace.set_span_in_context(api)
    db = {"db.system.name": "postgresql", "db.operation.name": "INSERT"}
    for i in range(db_spans):
        start = base_ns + 100 * MS + i * 250_000
        span = tracer.start_span("INSERT items", in_api, SpanKind.CLIENT, db, start_time=start)
        span.end(end_time=start + 250_000)
    api.end(end_time=base_ns + 2990 * MS)
    root.end(end_time=base_ns + 3000 * MS)
    assert provider.force_flush(60_000)
    provider.shutdown()


def wait_for_summaries(server: LiveServer, span_counts: Mapping[str, int]) -> None:
    """Poll the search until exactly these traces (id -> span count) are folded, which
    the server does about once a second."""
    deadline = time.monotonic() + 30
    while True:
        status, body = server.get_json("/api/v1/traces?limit=1000")
        assert status == 200, body
        got = {t["trace_id"]: t["span_count"] for t in body["traces"]}
        if got == dict(span_counts):
            return
        assert time.monotonic() < deadline, f"summaries never matched: {got}"
        time.sleep(0.1)


def serve_traces(
    db: Path,
    table: Sequence[tuple[Any, ...]],
    trace_ids: Mapping[str, str],
    starts_ns: Mapping[str, int],
    bulk_db_spans: int,
) -> Iterator[LiveServer]:
    """A live server holding the table's traces and the bulk trace (``trace_ids["bulk"]``),
    all folded into summaries; stopped when the generator closes. For module fixtures."""
    live = LiveServer(db, "--decoders", "1")
    try:
        send_table(live.otlp_url, table, trace_ids, starts_ns)
        send_bulk_trace(live.otlp_url, trace_ids["bulk"], starts_ns["bulk"], bulk_db_spans)
        expected = Counter(trace_ids[name] for name, *_ in table)
        wait_for_summaries(live, {**expected, trace_ids["bulk"]: bulk_db_spans + 2})
        yield live
    finally:
        live.stop()
