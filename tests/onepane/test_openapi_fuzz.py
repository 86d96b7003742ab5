"""schemathesis against a live server's own /api/v1/openapi.json: every operation the
document lists gets generated requests, and every answer must be no 5xx, with a documented
status code, content type and body shape; a method a path does not take is 405. A short run
here; `python bench/fuzz.py` runs the long one."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from onepane.testing import LiveServer
from tests.fuzz import apifuzz


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("openapi") / "onepane.duckdb", "--decoders", "1")
    try:
        apifuzz.send_examples(live)
        yield live
    finally:
        live.stop()


def test_every_operation_answers_as_documented(server: LiveServer, tmp_path: Path) -> None:
    before = apifuzz.span_count(server)
    report, output = apifuzz.schemathesis(server.api_url, 2, tmp_path, phases="fuzzing")
    found = apifuzz.figures(report)
    _, document = server.get_json("/api/v1/openapi.json")
    operations = apifuzz.tested_operations(document)
    assert operations >= 35
    assert found["operations"] == operations, output[-3000:]
    assert found["requests"] >= operations
    assert (found["failures"], found["errors"]) == (0, 0), output[-6000:]
    assert apifuzz.span_count(server) == before
    assert server.proc.poll() is None


def _call(server: LiveServer, method: str, path: str) -> tuple[int, dict[str, str], dict]:
    request = urllib.request.Request(server.api_url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), orjson.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), orjson.loads(exc.read())


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # found by schemathesis: TRACE answered 501 with an HTML page
        ("TRACE", "/api/v1/traces", "GET, HEAD"),
        ("PUT", "/api/v1/gate/verify", "GET, HEAD, POST"),
        # found by schemathesis: POST to a GET-only path answered 404
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/api/v1/billing/imports", "GET, HEAD, POST"),
    ],
)
def test_a_method_a_path_does_not_take_is_405_naming_the_ones_it_does(
    server: LiveServer, method: str, path: str, allow: str
) -> None:
    status, headers, body = _call(server, method, path)
    assert status == 405
    assert headers["Allow"] == allow
    assert body == {"error": f"{method} is not allowed here; use {allow}"}


def test_unknown_paths_stay_404_and_a_huge_request_line_is_a_json_414(server: LiveServer) -> None:
    status, _, body = _call(server, "POST", "/api/v1/nothing-here")
    assert status == 404
    assert "no API route POST /api/v1/nothing-here" in body["error"]
    status, _, body = _call(server, "GET", "/api/v1/traces?service=" + "x" * 70_000)
    assert status == 414
    assert body == {"error": "the request line is over 64 KiB; send shorter filters"}


def test_the_model_inventory_documents_its_csv_answer(server: LiveServer) -> None:
    # found by schemathesis: format=csv answered text/csv, which the document did not list
    _, document = server.get_json("/api/v1/openapi.json")
    content = document["paths"]["/api/v1/models"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    with urllib.request.urlopen(server.api_url + "/api/v1/models?format=csv") as response:
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert response.read().decode().startswith("model,version,workload,team")
