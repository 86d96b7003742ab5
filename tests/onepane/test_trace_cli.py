"""`onepane trace ID` and `onepane traces ...`, run as the user runs them, against one live
server loaded once with traces sent by the OpenTelemetry SDK a few minutes ago:

    checkout  frontend GET /checkout 200 ms > scoring-api POST /score > predict fraud (failed,
              60% of the time), and a frontend audit log running beside the call
    shop_*    shop traces of 2 s, 300 ms (customer.tier=gold), 200 ms (a failed charge), 100 ms
    twin_a/b  ids sharing their first 10 hex characters
    bulk      10,000 spans: GET /bulk > POST /bulk > 9,998 x INSERT items
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind
from trace_tables import serve_traces

from onepane.testing import LiveServer

MS = 1_000_000
S = 1_000_000_000
T0 = (time.time_ns() // S - 300) * S  # five minutes ago: inside `--since 1h`

IDS = {
    "checkout": "c1ec0ffe" + "01" * 12,
    "shop_slow": "5b0b0002" + "02" * 12,
    "shop_300": "5b0b0003" + "03" * 12,
    "shop_200": "5b0b0004" + "04" * 12,
    "shop_100": "5b0b0005" + "05" * 12,
    "twin_a": "abcdef0123" + "4" + "0" * 21,
    "twin_b": "abcdef0123" + "5" + "0" * 21,
    "bulk": "b01c0001" + "f6" * 12,
}
NAMES = {trace_id: name for name, trace_id in IDS.items()}
START_S = {
    "checkout": 0,
    "shop_slow": 10,
    "shop_300": 20,
    "shop_200": 30,
    "shop_100": 40,
    "twin_a": 50,
    "twin_b": 51,
    "bulk": 60,
}
BULK_DB_SPANS = 9_998

FRONTEND = {"service.name": "frontend"}
SCORING = {"service.name": "scoring-api", "k8s.namespace.name": "ml"}
SHOP = {"service.name": "shop"}
TWINS = {"service.name": "twins"}
SERVER, INTERNAL = SpanKind.SERVER, SpanKind.INTERNAL
# (trace, parent span's name, resource, name, start ms, end ms, kind, attributes[, error]),
# each parent before its children; times are from the trace's start.
SMALL_TRACES: list[tuple[Any, ...]] = [
    ("checkout", None, FRONTEND, "GET /checkout", 0, 200, SERVER, {"http.route": "/checkout"}),
    ("checkout", "GET /checkout", FRONTEND, "audit log", 30, 60, INTERNAL, {}),
    ("checkout", "GET /checkout", SCORING, "POST /score", 20, 190, SERVER, {}),
    (
        "checkout",
        "POST /score",
        SCORING,
        "predict fraud",
        40,
        160,
        INTERNAL,
        {"ml.model.name": "fraud"},
        "model timeout",
    ),
    ("shop_slow", None, SHOP, "GET /export", 0, 2000, SERVER, {}),
    ("shop_300", None, SHOP, "GET /cart", 0, 300, SERVER, {"customer.tier": "gold"}),
    ("shop_200", None, SHOP, "POST /pay", 0, 200, SERVER, {}),
    ("shop_200", "POST /pay", SHOP, "charge card", 20, 180, INTERNAL, {}, "payment declined"),
    ("shop_100", None, SHOP, "GET /cart", 0, 100, SERVER, {"customer.tier": "silver"}),
    ("twin_a", None, TWINS, "GET /a", 0, 10, SERVER, {}),
    ("twin_b", None, TWINS, "GET /b", 0, 20, SERVER, {}),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    starts = {name: T0 + start_s * S for name, start_s in START_S.items()}
    db = tmp_path_factory.mktemp("trace_cli") / "onepane.duckdb"
    yield from serve_traces(db, SMALL_TRACES, IDS, starts, BULK_DB_SPANS)


def onepane(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onepane", *args],
        capture_output=True,
        encoding="utf-8",
        timeout=60,
        env=env,
    )


def traces(server: LiveServer, *args: str) -> list[str]:
    """The names of the traces `onepane traces ARGS` lists, in its order."""
    done = onepane("traces", *args, "--server", server.api_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("started (UTC)")
    ids = [re.search(r"\b[0-9a-f]{32}\b", line) for line in lines[1:]]
    return [NAMES[match.group()] for match in ids if match]


def line_of(lines: list[str], label: str) -> int:
    """The index of the one waterfall row (marks, indent, label...) for ``label``."""
    (at,) = (i for i, line in enumerate(lines) if line[3:].lstrip().startswith(label))
    return at


def test_trace_prints_the_waterfall(server: LiveServer) -> None:
    done = onepane("trace", IDS["checkout"][:12], "--server", server.api_url, "--width", "120")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        f"Trace {IDS['checkout']} · GET /checkout (frontend) · 200 ms · 4 spans · 1 error"
    )
    assert "Where the time went: 60% in scoring-api inference (critical path 200 ms)" in lines
    # Marks: * on the critical path, ! failed; the audit log ran beside the call.
    marks = {name: lines[line_of(lines, name)][:2] for name in ("GET /checkout", "POST /score")}
    assert marks == {"GET /checkout": "* ", "POST /score": "* "}
    assert lines[line_of(lines, "audit log")][:2] == "  "
    predict = line_of(lines, "predict fraud")
    assert lines[predict][:2] == "*!"
    assert lines[predict + 1].strip() == "! model timeout"
    assert len(lines) < 20


def test_trace_json_is_the_api_document(server: LiveServer) -> None:
    done = onepane("trace", IDS["checkout"], "--server", server.api_url, "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == server.trace(IDS["checkout"])
    assert (printed["trace_id"], printed["span_count"]) == (IDS["checkout"], 4)
    assert printed["where_the_time_went"]["headline"] == "60% in scoring-api inference"


def test_ten_thousand_span_trace_folds_unless_all(server: LiveServer) -> None:
    done = onepane("trace", IDS["bulk"][:8], "--server", server.api_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) < 50
    assert "10000 spans" in lines[0]
    folded = lines[line_of(lines, f"× {BULK_DB_SPANS} INSERT items")]
    assert folded.startswith("*")  # the back-to-back calls are the critical path
    assert "Where the time went: 83% in bulk-api db (critical path 3000 ms)" in lines

    done = onepane("trace", IDS["bulk"][:8], "--server", server.api_url, "--all")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= 10_000
    assert sum("INSERT items" in line for line in lines) == BULK_DB_SPANS


def test_trace_lookup_failures(server: LiveServer) -> None:
    done = onepane("trace", "abcdef0123", "--server", server.api_url)
    assert done.returncode == 1
    assert "2 traces start with abcdef0123" in done.stderr
    assert f"{IDS['twin_a']}  twins GET /a" in done.stderr
    assert f"{IDS['twin_b']}  twins GET /b" in done.stderr
    assert done.stdout == ""

    done = onepane("trace", "deadbeef00", "--server", server.api_url)
    assert (done.returncode, done.stdout) == (1, "")
    assert "no stored trace id starts with deadbeef00" in done.stderr
    done = onepane("trace", "deadbeef" * 4, "--server", server.api_url)
    assert done.returncode == 1
    assert f"trace {'deadbeef' * 4} is not in the store" in done.stderr
    done = onepane("trace", "c1ec0ff", "--server", server.api_url)
    assert done.returncode == 1
    assert "too short" in done.stderr


def test_no_server_is_exit_2_and_server_comes_from_the_environment(server: LiveServer) -> None:
    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nowhere = f"http://127.0.0.1:{port}"
    for command in (["trace", IDS["checkout"]], ["traces", "--service", "shop"]):
        done = onepane(*command, "--server", nowhere)
        assert done.returncode == 2, done.stderr
        assert f"cannot reach the Onepane server at {nowhere}" in done.stderr

    env = {**os.environ, "ONEPANE_SERVER": server.api_url}
    done = onepane("trace", IDS["checkout"], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Trace {IDS['checkout']}")
    done = onepane("traces", "--attr", "customer.tier=gold", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert [t["trace_id"] for t in json.loads(done.stdout)["traces"]] == [IDS["shop_300"]]


def test_traces_lists_matches_newest_or_slowest_first(server: LiveServer) -> None:
    shop = ("--service", "shop", "--since", "1h")
    assert traces(server, *shop, "--slowest") == ["shop_slow", "shop_300", "shop_200", "shop_100"]
    assert traces(server, *shop) == ["shop_100", "shop_200", "shop_300", "shop_slow"]
    assert traces(server, *shop, "--slowest", "--limit", "2") == ["shop_slow", "shop_300"]
    done = onepane("traces", *shop, "--slowest", "--server", server.api_url, "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)["traces"]
    assert [(NAMES[t["trace_id"]], t["duration_ms"]) for t in listed] == [
        ("shop_slow", 2000.0),
        ("shop_300", 300.0),
        ("shop_200", 200.0),
        ("shop_100", 100.0),
    ]
    assert listed[2]["error_count"] == 1


def test_traces_filters(server: LiveServer) -> None:
    shop = ("--service", "shop")
    assert traces(server, *shop, "--min-duration", "250ms") == ["shop_300", "shop_slow"]
    assert traces(server, *shop, "--min-duration", "1.5s") == ["shop_slow"]
    assert traces(server, *shop, "--min-duration", "300") == ["shop_300", "shop_slow"]
    assert traces(server, *shop, "--max-duration", "150ms") == ["shop_100"]
    assert traces(server, "--errors") == ["shop_200", "checkout"]
    assert traces(server, "--errors", "--service", "scoring-api") == ["checkout"]
    assert traces(server, "--attr", "customer.tier=gold") == ["shop_300"]
    assert traces(server, "--attr", "customer.tier") == ["shop_100", "shop_300"]
    assert traces(server, "--attr", "k8s.namespace.name=ml", "--model", "fraud") == ["checkout"]
    assert traces(server, "--route", "/checkout", "--name", "GET /checkout") == ["checkout"]


def test_traces_bad_duration_and_no_match(server: LiveServer) -> None:
    done = onepane("traces", "--min-duration", "soon", "--server", server.api_url)
    assert (done.returncode, done.stdout) == (1, "")
    assert "--min-duration 'soon' is not a duration" in done.stderr

    done = onepane("traces", "--service", "nobody", "--since", "1h", "--server", server.api_url)
    assert (done.returncode, done.stdout) == (0, "")
    assert "no traces match" in done.stderr
