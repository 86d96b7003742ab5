"""The server's HTTP API, its own metrics, its OpenAPI document and the `onepane` CLI."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import jsonschema
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from store import db as store_db

BASE_NS = 1_767_225_600 * 1_000_000_000


def export_body(trace_id: bytes, spans: int, *, bad_spans: int = 0) -> bytes:
    """One protobuf export: a SERVER root and CLIENT children; ``bad_spans`` have no span id."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attr = resource_spans.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "api-test"
    scope_spans = resource_spans.scope_spans.add()
    for i in range(spans + bad_spans):
        span = scope_spans.spans.add()
        span.trace_id = trace_id
        if i < spans:
            span.span_id = (i + 1).to_bytes(8, "big")
        if i:
            span.parent_span_id = (1).to_bytes(8, "big")
        span.name = "GET /items" if i == 0 else f"call {i}"
        span.kind = Span.SPAN_KIND_SERVER if i == 0 else Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano = BASE_NS + i * 1_000_000
        span.end_time_unix_nano = BASE_NS + (i + 1) * 1_000_000
    return request.SerializeToString()


def post(otlp_url: str, body: bytes) -> tuple[int, bytes]:
    address = urlsplit(otlp_url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def metric_samples(api_url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample in /metrics, parsed with prometheus-client's own parser."""
    with urllib.request.urlopen(api_url + "/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def onepane(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onepane", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_healthz_metrics_and_migrations_match_what_was_sent(server) -> None:
    status, health = server.get_json("/healthz")
    assert status == 200
    assert (health["status"], health["schema_version"], health["write_queue_rows"]) == (
        "ok",
        max(number for number, _, _ in store_db.migrations()),
        0,
    )
    assert server.metric("onepane_spans_received_total") == 0

    whole, partial = uuid.uuid4().bytes, uuid.uuid4().bytes
    status, body = post(server.otlp_url, export_body(whole, 10))
    assert status == 200
    assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")
    status, body = post(server.otlp_url, export_body(partial, 5, bad_spans=1))
    assert status == 200
    reply = ExportTraceServiceResponse.FromString(body)
    assert reply.partial_success.rejected_spans == 1
    assert "span_id" in reply.partial_success.error_message
    status, _ = post(server.otlp_url, b"\xff\xff not protobuf")
    assert status == 400

    samples = metric_samples(server.api_url)
    plain = frozenset()

    def requests(code: str) -> float:
        labels = frozenset({"signal": "traces", "transport": "http", "code": code}.items())
        return samples.get(("onepane_otlp_requests_total", labels), 0.0)

    assert samples[("onepane_spans_received_total", plain)] == 16
    assert samples[("onepane_spans_accepted_total", plain)] == 15
    assert samples[("onepane_spans_rejected_total", frozenset({("reason", "invalid")}))] == 1
    assert (requests("200"), requests("400")) == (2, 1)
    assert samples[("onepane_write_queue_rows", plain)] == 0
    assert samples[("onepane_write_queue_capacity_rows", plain)] == 200_000
    # Each export waited for its own commit: two commits, of 10 and 5 spans.
    assert samples[("onepane_commit_seconds_count", plain)] == 2
    assert samples[("onepane_commit_seconds_bucket", frozenset({("le", "+Inf")}))] == 2
    assert 0 < samples[("onepane_commit_seconds_sum", plain)] < 10
    assert samples[("onepane_commit_rows_sum", plain)] == 15
    assert samples[("onepane_commit_rows_bucket", frozenset({("le", "10.0")}))] == 2

    assert server.trace(whole.hex())["span_count"] == 10
    assert server.trace(partial.hex())["span_count"] == 5
    assert server.get_json("/healthz")[1]["write_queue_rows"] == 0

    assert server.stop() == 0
    with duckdb.connect(str(server.db), read_only=True) as conn:
        migrations = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        (stored,) = conn.execute("SELECT count(*) FROM spans").fetchone()
    assert migrations == [
        (1, "001_spans.sql"),
        (2, "002_metrics_logs.sql"),
        (3, "003_gpu_inventory.sql"),
        (4, "004_cost.sql"),
        (5, "005_gate.sql"),
        (6, "006_drift.sql"),
        (7, "007_tokens.sql"),
        (8, "008_model_hours.sql"),
    ]
    assert stored == 15


def test_openapi_document_describes_the_live_api(server) -> None:
    with urllib.request.urlopen(server.api_url + "/api/v1/openapi.json", timeout=30) as response:
        assert response.headers["Content-Type"] == "application/json"
        document = response.read()
    spec = json.loads(document)
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] == "Onepane API"
    lookup = spec["paths"]["/api/v1/traces/{trace_id}"]["get"]
    assert set(lookup["responses"]) >= {"200", "400", "404"}
    parameters = {p["name"]: (p["in"], p["required"]) for p in lookup["parameters"]}
    assert parameters == {"trace_id": ("path", True), "spans": ("query", False)}
    [parameter] = [p for p in lookup["parameters"] if p["name"] == "trace_id"]

    # Every fixed path it documents for GET, needing no parameter, answers 200.
    for path, operations in spec["paths"].items():
        needs = [p for p in operations.get("get", {}).get("parameters", []) if p["required"]]
        if "{" not in path and "get" in operations and not needs:
            with urllib.request.urlopen(server.api_url + path, timeout=30) as response:
                assert response.status == 200, path

    # Drift: a reference registered as documented, and the list, match their schemas.
    drift = spec["paths"]["/api/v1/drift/references"]
    accepted = {p["name"] for p in drift["post"]["parameters"]}
    assert accepted >= {"model", "version", "filename", "numerical", "categorical", "ignore"}
    assert {"text/csv", "application/octet-stream"} <= set(drift["post"]["requestBody"]["content"])
    request = urllib.request.Request(
        server.api_url + "/api/v1/drift/references?model=m&version=1&filename=ref.csv",
        data=b"amount,country\n1.5,DE\n2.5,FR\n2.5,DE\n",
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        created = json.loads(response.read())
    posted = drift["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(posted).validate(created)
    listed = drift["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(listed).validate(server.get_json("/api/v1/drift/references")[1])
    runs = spec["paths"]["/api/v1/drift/runs"]
    run_body = runs["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert run_body["required"] == ["model"]
    assert set(runs["post"]["responses"]) >= {"201", "400", "404"}
    report = spec["paths"]["/api/v1/drift/runs/{run_id}/report"]["get"]
    assert "text/html" in report["responses"]["200"]["content"]
    status, missing = server.get_json("/api/v1/drift/runs/1/report")
    assert status == 404
    error_404 = report["responses"]["404"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(error_404).validate(missing)

    # A real trace matches the documented schema, and every documented field is there.
    trace_id = uuid.uuid4().bytes
    assert post(server.otlp_url, export_body(trace_id, 3))[0] == 200
    got = server.trace(trace_id.hex())
    trace_schema = lookup["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(trace_schema).validate(got)
    assert set(trace_schema["properties"]) <= set(got)
    span_schema = trace_schema["properties"]["spans"]["items"]
    for span in got["spans"]:
        assert set(span_schema["properties"]) <= set(span)
    assert set(lookup["responses"]) >= {"409"}  # an ambiguous id prefix

    # Search: every documented parameter is accepted, and summaries match their schema.
    search = spec["paths"]["/api/v1/traces"]["get"]
    documented = {p["name"] for p in search["parameters"]}
    assert documented >= {"service", "route", "min_duration_ms", "status", "attr", "sort"}
    summaries = _search_until_found(server, trace_id.hex())
    summary_schema = search["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(summary_schema).validate({"traces": summaries})
    for name in documented - {"attr", "start", "end", "since"}:
        status, body = server.get_json(f"/api/v1/traces?{name}=x")
        assert status in (200, 400), (name, body)
        assert status == 200 or name in body["error"] or "x" in body["error"], (name, body)

    parameter_pattern = parameter["schema"]["pattern"]
    jsonschema.validate(trace_id.hex(), {"type": "string", "pattern": parameter_pattern})

    # So do the error bodies.
    status, error = server.get_json("/api/v1/traces/" + "0" * 32)
    assert status == 404
    error_schema = lookup["responses"]["404"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(error_schema).validate(error)


def test_unknown_api_path_is_a_json_404(server) -> None:
    for path in ("/api/v1/nothing-here", "/api/v1/trace", "/"):
        status, body = server.get_json(path)
        assert status == 404, path
        assert set(body) == {"error"}
        assert "no API route" in body["error"]
        assert "openapi.json" in body["error"]  # says where to look instead


def test_cli_help() -> None:
    top = onepane("--help")
    assert top.returncode == 0, top.stderr
    assert "usage: onepane" in top.stdout
    for command in ("serve", "up", "demo"):
        assert command in top.stdout

    serve = onepane("serve", "--help")
    assert serve.returncode == 0, serve.stderr
    for flag in ("--db", "--otlp-http-port", "--api-port", "--queue-rows", "--decoders"):
        assert flag in serve.stdout


def test_serve_fails_with_one_line_on_a_busy_port_or_a_bad_flag(server, tmp_path: Path) -> None:
    otlp_port = urlsplit(server.otlp_url).port
    api_port = urlsplit(server.api_url).port
    other_db = tmp_path / "second.duckdb"
    cases = [
        (["--otlp-http-port", str(otlp_port), "--api-port", "0"], f":{otlp_port}"),
        (["--otlp-http-port", "0", "--api-port", str(api_port)], f":{api_port}"),
    ]
    for flags, mentions in cases:
        result = onepane("serve", "--db", str(other_db), "--decoders", "0", *flags)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("onepane: error: cannot listen")
        assert mentions in lines[0]
        assert "serving" not in result.stderr

    result = onepane("serve", "--db", str(other_db), "--queue-rows", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "onepane: error: --queue-rows must be at least 1"

    # The server that holds the ports is untouched.
    status, health = server.get_json("/healthz")
    assert (status, health["status"]) == (200, "ok")


def _search_until_found(server, trace_id: str) -> list[dict]:
    """Summaries are folded about once a second after the spans are acknowledged."""
    deadline = time.monotonic() + 15
    while True:
        status, body = server.get_json("/api/v1/traces?limit=5")
        assert status == 200, body
        if any(t["trace_id"] == trace_id for t in body["traces"]):
            return body["traces"]
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
