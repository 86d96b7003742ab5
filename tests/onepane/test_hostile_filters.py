"""Hostile strings in every filter of every GET route the OpenAPI document lists (so a new
route is covered the day it is documented): SQL injection, NUL bytes, %-garbage, huge
strings, RTL and combining marks, path traversal, odd numbers, repeated parameters. The
answer is a 2xx that shows none of the stored data, or a 4xx with a JSON error; never a 5xx;
and the store still holds its spans afterwards."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from onepane.testing import LiveServer, wait_for
from tests.fuzz import apifuzz

SERVICE = "checkout-hostile"
TRACE_ID = "7c1f0e2d3b4a59687786a5b4c3d2e1f0"
HOSTILE = [
    "' OR 1=1 --",
    '"; DROP TABLE spans; --',
    "' UNION SELECT * FROM spans --",
    "x\x00y",
    "\u202eevil\u202c",
    "🔥🚀",
    "e\u0301\u0301\u0301",
    "../../etc/passwd",
    "-1",
    "99999999999999999999999",
    "NaN",
    "1e309",
    " ",
    "%",
    "_",
    "*",
    "\\",
    "<script>alert(1)</script>",
    "B" * 30_000,
]
RAW = ["%zz%E0%A4%A", "%00", "%ff%fe"]  # sent as they are, not %-encoded again
PER_PARAMETER = 6  # hostile values sent to each parameter, in turn through the list
LEAKY = {"service", "workload", "route", "name", "model", "version", "q", "trace_id", "team"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("hostile") / "onepane.duckdb", "--decoders", "1")
    try:
        apifuzz.send_examples(live)
        _send_recent_span(live)
        yield live
    finally:
        live.stop()


def _send_recent_span(server: LiveServer) -> None:
    now = time.time_ns()
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name"))
    resource_spans.resource.attributes[0].value.string_value = SERVICE
    span = resource_spans.scope_spans.add().spans.add(
        trace_id=bytes.fromhex(TRACE_ID), span_id=bytes(range(1, 9)), name="GET /cart", kind=2
    )
    span.start_time_unix_nano, span.end_time_unix_nano = now - 5_000_000, now
    post = urllib.request.Request(
        f"{server.otlp_url}/v1/traces",
        request.SerializeToString(),
        {"Content-Type": "application/x-protobuf"},
    )
    with urllib.request.urlopen(post, timeout=60) as response:
        assert response.status == 200


def _found(server: LiveServer) -> list[str]:
    """The traces a search by the stored service finds, once its summary is written."""
    found = wait_for(
        "the stored trace in search",
        lambda: server.get_json(f"/api/v1/traces?service={SERVICE}&since=1h"),
        lambda answer: answer[0] == 200 and answer[1]["traces"],
    )
    return [t["trace_id"] for t in found[1]["traces"]]


def _get(server: LiveServer, target: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(server.api_url + target, timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def _fill(template: str, parameters: list[dict[str, Any]], values: dict[str, str]) -> str:
    """``template`` with each path parameter's value from ``values``, else 1."""
    for p in parameters:
        if p["in"] == "path":
            template = template.replace("{" + p["name"] + "}", values.get(p["name"], "1"))
    return template


def _requests(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(parameter, request target) for every GET parameter of every route: six values of
    HOSTILE each, in turn through the list, and one RAW; then every parameter twice, and
    a 100 KB value."""
    out = []
    turn = 0
    for template, operations in document["paths"].items():
        if "get" not in operations:
            continue
        parameters = operations["get"].get("parameters", [])
        base = _fill(template, parameters, {})
        for p in parameters:
            values = [
                quote(HOSTILE[(turn + i) % len(HOSTILE)], safe="") for i in range(PER_PARAMETER)
            ]
            values.append(RAW[turn % len(RAW)])
            turn += PER_PARAMETER
            for value in values:
                if p["in"] == "path":
                    out.append((p["name"], _fill(template, parameters, {p["name"]: value})))
                else:
                    out.append((p["name"], f"{base}?{p['name']}={value}"))
        names = [p["name"] for p in parameters if p["in"] == "query"] or ["x"]
        repeated = "&".join(f"{n}={quote(v, safe='')}" for n in names for v in ("1", "' OR 1=1"))
        out.append(("repeated", f"{base}?{repeated}"))
        out.append(("100 KB", f"{base}?{names[0]}={'C' * 100_000}"))
    out.append(("traversal", "/api/v1/traces/../../etc/passwd"))
    return out


def _problem(parameter: str, answer: tuple[int, str, bytes]) -> str | None:
    status, content_type, body = answer
    if status >= 500:
        return f"{status}: {body[:200]!r}"
    if 400 <= status < 500:
        if not content_type.startswith("application/json"):
            return f"{status} answered with {content_type!r}, not a JSON error"
        error = json.loads(body).get("error")
        return None if isinstance(error, str) and error else f"{status} without an error message"
    if parameter in LEAKY and (SERVICE.encode() in body or TRACE_ID.encode() in body):
        return f"{status} shows the stored trace for a hostile {parameter}"
    return None


def test_no_filter_breaks_the_api_or_the_store(server: LiveServer) -> None:
    status, document = server.get_json("/api/v1/openapi.json")
    assert status == 200
    before = apifuzz.span_count(server)
    assert _found(server) == [TRACE_ID]  # what a hostile filter must not show

    requests = _requests(document)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda r: _get(server, r[1]), requests))
    problems = [
        f"GET {target[:120]} ({parameter}): {problem}"
        for (parameter, target), answer in zip(requests, answers, strict=True)
        if (problem := _problem(parameter, answer))
    ]
    assert problems == []
    assert len(requests) > 500
    assert {a[0] for a in answers} & {200, 400}  # both answers were seen

    assert apifuzz.span_count(server) == before
    assert _found(server) == [TRACE_ID]
    assert server.proc.poll() is None
