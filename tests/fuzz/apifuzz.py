"""schemathesis against a live Onepane API, for tests/onepane/test_openapi_fuzz.py and
bench/fuzz.py: the server's own /api/v1/openapi.json drives the requests, and every answer
must be no 5xx, with a documented status code, content type and body shape."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from onepane.testing import LiveServer

OTLP = Path("/work/shared/data/otlp")
EXAMPLE_TRACE_ID = "5b8efff798038103d269b633813fc60c"  # the trace in trace.json
TOKENS = "^/api/v1/tokens"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "unsupported_method",
)


def tested_operations(document: dict[str, Any]) -> int:
    """The operations a run covers: all but the document itself, which schemathesis leaves
    out, and the token routes (a token it created would turn auth on for every later
    request; tests/onepane/test_auth.py covers them)."""
    return sum(
        1
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters" and path != "/api/v1/openapi.json" and not re.match(TOKENS, path)
    )


def send_examples(server: LiveServer) -> None:
    """The OTLP/JSON trace, metrics and logs examples, each answered 200 once stored."""
    for signal, name in (("traces", "trace"), ("metrics", "metrics"), ("logs", "logs")):
        request = urllib.request.Request(
            f"{server.otlp_url}/v1/{signal}",
            (OTLP / f"{name}.json").read_bytes(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200, (signal, response.status)


def span_count(server: LiveServer) -> int:
    """Spans of the example trace the store holds."""
    status, body = server.get_json(f"/api/v1/traces/{EXAMPLE_TRACE_ID}")
    assert status == 200, body
    return len(body["spans"])


def schemathesis(
    api_url: str,
    examples: int,
    report_dir: Path,
    phases: str = "examples,coverage,fuzzing,stateful",
    max_time_s: int | None = None,
    seed: int = 1,
) -> tuple[dict[str, Any], str]:
    """Run ``schemathesis run`` on the served document; its JSON report and its output."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        "run",
        f"{api_url}/api/v1/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(examples),
        "--phases",
        phases,
        "--seed",
        str(seed),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--continue-on-failure",
        "--exclude-path-regex",
        TOKENS,
        "--report",
        "json",
        "--report-json-path",
        str(report_dir / "schemathesis.json"),
        *(["--max-time", str(max_time_s)] if max_time_s else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=report_dir)
    report = json.loads((report_dir / "schemathesis.json").read_text())
    return report, done.stdout + done.stderr


def figures(report: dict[str, Any]) -> dict[str, int]:
    """Operations tested, requests made and failures found, from a JSON report."""
    return {
        "operations": report["operations"]["tested"],
        "requests": report["test_cases"]["generated"],
        "failures": report["test_cases"]["unique_failures"],
        "errors": len(report["errors"]),
    }
