"""Model inputs taken apart at ingest: a live `onepane serve` receives inference spans and
inference log records from the OpenTelemetry SDK's own exporters (OTLP/HTTP protobuf, and
one OTLP/gRPC export) and stores each ``ml.feature.<name>`` attribute as one row of the
``features`` table, the table drift runs read.

Every export goes to one server; the module then stops it and opens its DuckDB file, so
each test reads exactly what a drift run would.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from onepane.testing import LiveServer

S = 1_000_000_000
MS = 1_000_000

SCORER = {  # a Deployment that serves the fraud model (and calls an LLM)
    "service.name": "scorer",
    "service.version": "7.0.1",
    "k8s.namespace.name": "ml",
    "k8s.deployment.name": "scorer",
}
RANKER = {"service.name": "ranker"}  # no version, no Kubernetes: workload default/ranker
BATCH = {"service.name": "batch-scorer", "service.version": "1.4.0", "service.namespace": "data"}


@dataclass
class Sent:
    """What the module sent, and the stopped server's store."""

    db: duckdb.DuckDBPyConnection
    start: int  # the first span's start; the others follow MS apart
    log_time: int
    partial: ExportTraceServiceResponse
    partial_start: int

    def features(self, model: str) -> set[tuple[Any, ...]]:
        """(version, workload, name, num, text) of every feature row of ``model``."""
        return set(
            self.db.execute(
                "SELECT model_version, workload, name, num, text FROM features "
                "WHERE model_name = $1",
                [model],
            ).fetchall()
        )


def export_spans(
    exporter: SpanExporter, resource: dict[str, Any], specs: list[dict[str, Any]]
) -> list[ReadableSpan]:
    """Spans made by the SDK's tracer and sent through ``exporter`` (one export each)."""
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("features-test")
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for spec in specs:
        span = tracer.start_span(
            spec["name"],
            kind=spec.get("kind", SpanKind.INTERNAL),
            start_time=spec["start"],
            attributes=spec["attributes"],
        )
        span.end(end_time=spec["start"] + 3 * MS)
    provider.shutdown()
    return list(memory.get_finished_spans())


def spans_made(resource: dict[str, Any], specs: list[dict[str, Any]]) -> list[ReadableSpan]:
    """Spans made by the SDK's tracer but not sent."""
    return export_spans(InMemorySpanExporter(), resource, specs)


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    db_path = tmp_path_factory.mktemp("features") / "onepane.duckdb"
    server = LiveServer(db_path, "--decoders", "1")
    start = (time.time_ns() - 600 * S) // MS * MS
    try:
        http = OTLPSpanExporter(endpoint=f"{server.otlp_url}/v1/traces")
        export_spans(
            http,
            SCORER,
            [
                {
                    "name": "fraud.predict",
                    "start": start,
                    "attributes": {
                        "ml.model.name": "fraud",
                        "ml.model.version": "2.1.0",
                        "ml.prediction": 0.93,
                        "ml.feature.amount": 12.5,
                        "ml.feature.items": 3,
                        "ml.feature.is_new": True,
                        "ml.feature.country": "DE",
                        "ml.feature.tags": ["gift", "express"],
                    },
                },
                {  # no ml.model.version: the service's version stands for it
                    "name": "fraud.predict",
                    "start": start + MS,
                    "attributes": {"ml.model.name": "fraud", "ml.feature.amount": 99.0},
                },
                {  # the request that called the model: not an inference, its features ignored
                    "name": "POST /score",
                    "kind": SpanKind.SERVER,
                    "start": start + 2 * MS,
                    "attributes": {"http.route": "/score", "ml.feature.amount": 5.0},
                },
                {  # an inference without inputs
                    "name": "fraud.predict",
                    "start": start + 3 * MS,
                    "attributes": {"ml.model.name": "fraud", "ml.model.version": "2.1.0"},
                },
                {  # a GenAI call: the requested model names it
                    "name": "chat llama-3-8b",
                    "kind": SpanKind.CLIENT,
                    "start": start + 4 * MS,
                    "attributes": {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "llama-3-8b",
                        "ml.feature.prompt_tokens": 42,
                    },
                },
            ],
        )
        grpc = GrpcSpanExporter(endpoint=server.grpc_address, insecure=True)
        export_spans(
            grpc,
            RANKER,
            [
                {
                    "name": "rank",
                    "start": start + 5 * MS,
                    "attributes": {"ml.model.name": "ranker", "ml.feature.position": 4},
                }
            ],
        )

        log_time = start + 6 * MS
        logs = LoggerProvider(resource=Resource.create(BATCH))
        logs.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{server.otlp_url}/v1/logs"))
        )
        logger = logs.get_logger("batch-scoring")
        logger.emit(
            timestamp=log_time,
            body="scored customer 17",
            attributes={
                "ml.model.name": "churn",
                "ml.feature.tenure_months": 18,
                "ml.feature.plan": "pro",
            },
        )
        logger.emit(  # features but no model: nobody's inputs
            timestamp=log_time,
            body="scored someone",
            attributes={"ml.feature.tenure_months": 99},
        )
        logger.emit(timestamp=log_time, body="batch done", attributes={"rows": 1})
        logs.shutdown()

        # One export with a good inference span and a bad one (span kind 9 does not exist).
        partial_start = start + 7 * MS
        good, bad = spans_made(
            SCORER,
            [
                {
                    "name": "fraud.predict",
                    "start": partial_start,
                    "attributes": {
                        "ml.model.name": "fraud",
                        "ml.model.version": "2.2.0",
                        "ml.feature.amount": 7.25,
                    },
                },
                {
                    "name": "fraud.predict",
                    "start": partial_start + MS,
                    "attributes": {
                        "ml.model.name": "fraud",
                        "ml.model.version": "2.2.0",
                        "ml.feature.amount": 666.0,
                    },
                },
            ],
        )
        request = encode_spans([good, bad])
        request.resource_spans[0].scope_spans[0].spans[1].kind = 9
        post = urllib.request.Request(
            f"{server.otlp_url}/v1/traces",
            data=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(post, timeout=30) as response:
            assert response.status == 200
            partial = ExportTraceServiceResponse.FromString(response.read())
    finally:
        assert server.stop() == 0, "".join(server.output)
    db = duckdb.connect(str(db_path), read_only=True)
    yield Sent(db, start, log_time, partial, partial_start)
    db.close()


def test_each_input_of_an_inference_span_is_one_row_as_number_or_text(sent: Sent) -> None:
    rows = sent.db.execute(
        "SELECT name, num, text, epoch_ns(time) FROM features "
        "WHERE model_name = 'fraud' AND model_version = '2.1.0' ORDER BY name"
    ).fetchall()
    assert rows == [
        ("amount", 12.5, None, sent.start),
        ("country", None, "DE", sent.start),
        ("is_new", 1.0, None, sent.start),  # a boolean as 0/1
        ("items", 3.0, None, sent.start),
        ("tags", None, '["gift","express"]', sent.start),  # a list as its JSON
    ]
    workloads = sent.db.execute(
        "SELECT DISTINCT workload FROM features WHERE model_name = 'fraud'"
    ).fetchall()
    assert workloads == [("ml/scorer",)]


def test_the_model_version_is_the_spans_else_the_services(sent: Sent) -> None:
    assert ("7.0.1", "ml/scorer", "amount", 99.0, None) in sent.features("fraud")
    assert {v for v, *_ in sent.features("fraud")} == {"2.1.0", "7.0.1", "2.2.0"}


def test_a_genai_span_is_the_inference_of_its_requested_model(sent: Sent) -> None:
    assert sent.features("llama-3-8b") == {("7.0.1", "ml/scorer", "prompt_tokens", 42.0, None)}


def test_a_grpc_export_without_any_version_stores_null(sent: Sent) -> None:
    assert sent.features("ranker") == {(None, "default/ranker", "position", 4.0, None)}


def test_an_inference_log_record_adds_its_inputs(sent: Sent) -> None:
    assert sent.features("churn") == {
        ("1.4.0", "data/batch-scorer", "tenure_months", 18.0, None),
        ("1.4.0", "data/batch-scorer", "plan", None, "pro"),
    }
    times = sent.db.execute(
        "SELECT DISTINCT epoch_ns(time) FROM features WHERE model_name = 'churn'"
    ).fetchall()
    assert times == [(sent.log_time,)]
    # The records were all stored as logs, features or not.
    (logs,) = sent.db.execute(
        "SELECT count(*) FROM logs WHERE service_name = 'batch-scorer'"
    ).fetchone()
    assert logs == 3


def test_spans_and_records_that_are_not_inferences_add_nothing(sent: Sent) -> None:
    # The request span was stored, as a request, but its ml.feature.amount was not.
    roles = sent.db.execute(
        "SELECT role FROM spans WHERE name = 'POST /score' AND service_name = 'scorer'"
    ).fetchall()
    assert roles == [("request",)]
    assert 5.0 not in {num for *_, num, _ in sent.features("fraud")}
    # Nothing else at all: the log record without a model and the input-less inference
    # added no row; neither did the rejected span.
    (total,) = sent.db.execute("SELECT count(*) FROM features").fetchone()
    assert total == 5 + 1 + 1 + 1 + 2 + 1
    models = sent.db.execute("SELECT DISTINCT model_name FROM features ORDER BY 1").fetchall()
    assert [m for (m,) in models] == ["churn", "fraud", "llama-3-8b", "ranker"]


def test_a_partly_rejected_export_keeps_the_good_spans_inputs(sent: Sent) -> None:
    assert sent.partial.partial_success.rejected_spans == 1
    assert "kind 9 is not an OTLP SpanKind" in sent.partial.partial_success.error_message
    rows = sent.db.execute(
        "SELECT name, num, epoch_ns(time) FROM features WHERE model_version = '2.2.0'"
    ).fetchall()
    assert rows == [("amount", 7.25, sent.partial_start)]
    (spans,) = sent.db.execute(
        "SELECT count(*) FROM spans WHERE model_version = '2.2.0'"
    ).fetchone()
    assert spans == 1
