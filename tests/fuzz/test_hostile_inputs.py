"""Hostile input to every parser a client or a config file reaches: a result or a clear
OnepaneError, never another exception or a hang. A few inputs per target here; bench/fuzz.py
runs thousands. The inputs fuzzing found are kept below as regression tests."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import duckdb
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.otlp import wire
from collectors.otlp.decoders import decode
from cost import billing
from deploy_hooks import manifests, policy, yamldoc
from onepane.errors import BadRequest, ConfigError, PayloadTooLarge
from tests.fuzz import file_inputs, otlp_inputs, targets

_CONNECTION = duckdb.connect()
TARGETS = {t.name: t for t in targets.targets(_CONNECTION)}
TRACE_ID, SPAN_ID = bytes(range(1, 17)), bytes(range(1, 9))


@pytest.fixture(scope="module")
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    yield _CONNECTION
    _CONNECTION.close()


@pytest.mark.parametrize("name", list(TARGETS))
def test_a_result_or_a_clear_error(name: str, connection: duckdb.DuckDBPyConnection) -> None:
    outcome = targets.run(TARGETS[name], targets.SUITE_EXAMPLES)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.tried >= targets.SUITE_EXAMPLES


def _span(start: int, end: int) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for name, (s, e) in (("fine", (1, 2)), ("late", (start, end))):
        span = scope.spans.add(trace_id=TRACE_ID, span_id=SPAN_ID, name=name)
        span.start_time_unix_nano, span.end_time_unix_nano = s, e
    return request.SerializeToString()


def test_a_span_past_2262_is_rejected_and_the_rest_kept() -> None:
    decoded = decode("traces", _span(1, 2**64 - 1), False)
    assert decoded.accepted == 1
    assert decoded.table.column("name").to_pylist() == ["fine"]
    assert decoded.rejected == 1
    assert "end_time_unix_nano 18446744073709551615 is after 2262-04-11" in decoded.error_message


def test_a_metric_point_time_past_2262_is_rejected() -> None:
    # found by fuzzing: b'\n\x1f\n\x00\x12\x1b\x12\x19\n\x010*\x14\n\x12\x19\x00...\x80!...'
    # (a gauge point whose time_unix_nano is 2**63) raised OverflowError in pyarrow
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="0")
    metric.gauge.data_points.add(time_unix_nano=2**63, as_double=0.0)
    metric.gauge.data_points.add(time_unix_nano=5, as_double=1.0)
    decoded = decode("metrics", request.SerializeToString(), False)
    assert decoded.accepted == 1
    assert decoded.table.column("value").to_pylist() == [1.0]
    assert "time_unix_nano 9223372036854775808 is after 2262-04-11" in decoded.error_message


def test_metric_flags_over_31_bits_are_rejected_not_a_crash() -> None:
    # found by fuzzing: pyarrow.lib.ArrowInvalid: Value 2147483648 too large to fit in C integer
    body = (
        b'{"resourceMetrics":[{"resource":{},"scopeMetrics":[{"metrics":[{"gauge":{}},'
        b'{"name":"0","gauge":{"dataPoints":[{"timeUnixNano":"1","asDouble":0.0,'
        b'"flags":2147483648}]}}]}]}]}'
    )
    decoded = decode("metrics", body, True)
    assert (decoded.accepted, decoded.rejected) == (0, 1)
    assert "flags 2147483648 is over 2147483647" in decoded.error_message


def test_an_unknown_aggregation_temporality_is_rejected() -> None:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="requests")
    metric.sum.aggregation_temporality = 1000
    metric.sum.data_points.add(time_unix_nano=5, as_int=3)
    decoded = decode("metrics", request.SerializeToString(), False)
    assert (decoded.accepted, decoded.rejected) == (0, 1)
    assert "aggregation_temporality 1000 is not an OTLP AggregationTemporality" in (
        decoded.error_message
    )


def test_log_counts_and_times_that_do_not_fit_are_rejected() -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add(time_unix_nano=1, dropped_attributes_count=2**32 - 1)
    records.add(time_unix_nano=1, flags=2**31)
    records.add(observed_time_unix_nano=2**64 - 1)
    records.add(time_unix_nano=7)
    decoded = decode("logs", request.SerializeToString(), False)
    assert (decoded.accepted, decoded.rejected) == (1, 3)
    for part in (
        "dropped_attributes_count 4294967295 is over 2147483647",
        "flags 2147483648 is over 2147483647",
        "observed_time_unix_nano 18446744073709551615 is after 2262-04-11",
    ):
        assert part in decoded.error_message


def test_a_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (8 << 20), 9)
    assert len(bomb) < 10_000
    with pytest.raises(PayloadTooLarge, match="over 1048576 bytes after gzip decompression"):
        wire.decompress(bomb, "gzip", 1 << 20)
    with pytest.raises(BadRequest, match="gzip body is truncated"):
        wire.decompress(gzip.compress(b"spans" * 100)[:-20], "gzip", 1 << 20)


def test_a_bill_that_is_not_utf8_is_a_clear_error(connection: duckdb.DuckDBPyConnection) -> None:
    # found by fuzzing: b'\x80' as bill.csv raised UnicodeDecodeError
    with pytest.raises(BadRequest, match="header is not readable CSV text") as error:
        billing.parse(connection.cursor(), b"\x80", "bill.csv")
    assert "Nothing was imported" in str(error.value)


def test_an_alias_bomb_is_refused_quickly() -> None:
    # found by fuzzing: nine levels of nine aliases (9**9 values) kept the line walk busy
    with pytest.raises(policy.PolicyError, match="alias bomb"):
        policy.from_file_text(file_inputs.BOMB, "policy.yaml")
    with pytest.raises(manifests.ManifestError, match="alias bomb"):
        manifests.load([("deploy.yaml", file_inputs.BOMB)])


def test_self_referencing_aliases_and_deep_nesting_are_refused() -> None:
    with pytest.raises(yamldoc.YamlError, match="nested deeper than 64 levels"):
        yamldoc.load("a: &a [*a, *a]\n", "x.yaml")
    with pytest.raises(yamldoc.YamlError, match=r"x\.yaml line 1: nested deeper than 64 levels"):
        yamldoc.load("[" * 2000 + "]" * 2000, "x.yaml")


def test_a_tag_that_pyyaml_cannot_convert_names_the_document() -> None:
    # found by fuzzing: 'kind: !!int' raised IndexError inside PyYAML
    with pytest.raises(ConfigError, match=r"deploy.yaml line 1: a value in this document"):
        manifests.load([("deploy.yaml", "kind: !!int")])


def test_a_log_body_nested_past_protobufs_limit_is_a_400() -> None:
    assert decode("logs", otlp_inputs.deep_log_body(30), False).accepted == 1
    with pytest.raises(BadRequest, match="not a valid ExportLogsServiceRequest protobuf"):
        decode("logs", otlp_inputs.deep_log_body(400), False)
