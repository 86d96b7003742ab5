"""Trace search (`GET /api/v1/traces`) and lookup by id prefix (`GET /api/v1/traces/{id}`).

One live server is loaded once with a fixed set of traces, sent with the OpenTelemetry SDK
(one tracer provider per resource, trace ids chosen by the test, explicit timestamps):

    checkout  frontend GET /checkout 200 ms > scoring-api POST /score > predict fraud (60%)
    orders    frontend 1.5.0 GET /orders 500 ms > ledger SELECT orders 400 ms, failed
    health    frontend GET /health 5 ms
    report    frontend GET /report 1 s > scoring-api POST /score 10 ms, render report 800 ms
    weird     attribute keys and values full of quotes, backslashes, / ~ % _ and unicode
    twin_a/b  ids sharing their first 10 hex characters
    bulk      10,000 spans: GET /bulk > POST /bulk > 9,998 x INSERT items
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from opentelemetry.trace import SpanKind
from trace_tables import serve_traces

from onepane.testing import LiveServer

MS = 1_000_000
S = 1_000_000_000
T0 = (time.time_ns() // S - 900) * S  # a whole second, 15 minutes ago

IDS = {
    "checkout": "c0ffee01" + "a1" * 12,
    "orders": "0dde4501" + "b2" * 12,
    "health": "f4ea1740" + "c3" * 12,  # a negative trace key
    "report": "8e904701" + "d4" * 12,  # the sign bit just set
    "weird": "3e14d001" + "e5" * 12,
    "twin_a": "abcdef0123" + "4" + "0" * 21,
    "twin_b": "abcdef0123" + "5" + "0" * 21,
    "bulk": "b01c0001" + "f6" * 12,
}
NAMES = {trace_id: name for name, trace_id in IDS.items()}
START_S = {
    "checkout": 0,
    "orders": 10,
    "health": 20,
    "report": 30,
    "weird": 40,
    "twin_a": 50,
    "twin_b": 51,
    "bulk": 60,
}
NEWEST_FIRST = sorted(IDS, key=lambda name: -START_S[name])
BULK_DB_SPANS = 9_998

FRONTEND = {"service.name": "frontend", "service.version": "1.4.2"}
FRONTEND_CANARY = {"service.name": "frontend", "service.version": "1.5.0"}
SCORING = {
    "service.name": "scoring-api",
    "service.version": "0.9.0",
    "k8s.namespace.name": "ml",
    "k8s.deployment.name": "scoring",
}
LEDGER = {
    "service.name": "ledger",
    "k8s.namespace.name": "payments",
    "k8s.deployment.name": "ledger-db",
}
WEIRD_RESOURCE = {"service.name": "weird-svc", 'res "key"/~x': "res\\value Ωmega"}
TWINS = {"service.name": "twins"}

# Span attributes whose keys and values a JSON path, LIKE pattern or SQL string could trip on.
WEIRD_ATTRS: dict[str, Any] = {
    'quo"te': 'say "hi"',
    "back\\slash": "C:\\temp\\new",
    "path/with~tilde": "~0/~1 and /",
    "~1/~0": "looks escaped",
    "uni Ωmega 🚀": "ünïcødé 🚀",
    "sql": "' OR 1=1 --",
    "drop": '"; DROP TABLE spans; --',
    "pct%_": "100%_",
    "json{}": '{"a":1}',
    "dollar": "$1",
    "eq": "a=b=c",
}
HOSTILE = [
    "' OR 1=1 --",
    '"; DROP TABLE spans; --',
    "%",
    "_",
    "\\",
    "'",
    '"',
    "Ωmega 🚀",
    "x" * 5000,
    '{"a":1}',
    "~0/~1",
    "$1",
]


SERVER, CLIENT, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
# (trace, parent span's name, resource, name, start ms, end ms, kind, attributes[, error]),
# each parent before its children; times are from the trace's start.
SMALL_TRACES: list[tuple[Any, ...]] = [
    ("checkout", None, FRONTEND, "GET /checkout", 0, 200, SERVER, {"http.route": "/checkout"}),
    (
        "checkout",
        "GET /checkout",
        SCORING,
        "POST /score",
        20,
        190,
        SERVER,
        {"http.route": "/score"},
    ),
    (
        "checkout",
        "POST /score",
        SCORING,
        "predict fraud",
        40,
        160,
        INTERNAL,
        {"ml.model.name": "fraud", "ml.model.version": "3"},
    ),
    ("orders", None, FRONTEND_CANARY, "GET /orders", 0, 500, SERVER, {"http.route": "/orders"}),
    (
        "orders",
        "GET /orders",
        LEDGER,
        "SELECT orders",
        50,
        450,
        CLIENT,
        {"db.system.name": "postgresql", "db.rows": 42, "cache.hit": False, "tenant": "acme"},
        "deadlock detected",
    ),
    ("health", None, FRONTEND, "GET /health", 0, 5, SERVER, {"http.route": "/health"}),
    ("report", None, FRONTEND, "GET /report", 0, 1000, SERVER, {"http.route": "/report"}),
    ("report", "GET /report", SCORING, "POST /score", 10, 20, SERVER, {"http.route": "/score"}),
    ("report", "GET /report", FRONTEND, "render report", 100, 900, INTERNAL, {"tenant": "globex"}),
    ("weird", None, WEIRD_RESOURCE, "GET /weird", 0, 30, SERVER, WEIRD_ATTRS),
    ("twin_a", None, TWINS, "GET /a", 0, 10, SERVER, {}),
    ("twin_b", None, TWINS, "GET /b", 0, 20, SERVER, {}),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    starts = {name: T0 + start_s * S for name, start_s in START_S.items()}
    db = tmp_path_factory.mktemp("trace_search") / "onepane.duckdb"
    yield from serve_traces(db, SMALL_TRACES, IDS, starts, BULK_DB_SPANS)


def search(server: LiveServer, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    status, body = server.get_json("/api/v1/traces?" + urlencode(params))
    assert status == 200, body
    return body["traces"]


def found(server: LiveServer, params: list[tuple[str, str]]) -> list[str]:
    """The names of the traces a search returns, in its order."""
    return [NAMES.get(t["trace_id"], t["trace_id"]) for t in search(server, params)]


def bad_request(server: LiveServer, path: str) -> str:
    status, body = server.get_json(path)
    assert status == 400, body
    return body["error"]


def iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat().replace("+00:00", "Z")


def newest(*names: str) -> list[str]:
    return [name for name in NEWEST_FIRST if name in names]


FILTER_CASES = [
    ([], newest(*IDS)),
    ([("service", "frontend")], newest("checkout", "orders", "health", "report")),
    ([("service", "scoring-api")], newest("checkout", "report")),
    ([("service", "ledger")], ["orders"]),
    ([("service", "nobody")], []),
    ([("workload", "ml/scoring")], newest("checkout", "report")),
    ([("workload", "payments/ledger-db")], ["orders"]),
    ([("workload", "default/twins")], ["twin_b", "twin_a"]),
    ([("workload", "default/frontend")], newest("checkout", "orders", "health", "report")),
    ([("workload", "scoring")], []),
    ([("route", "/score")], newest("checkout", "report")),
    ([("route", "/orders")], ["orders"]),
    ([("name", "render report")], ["report"]),
    ([("name", "POST /score")], newest("checkout", "report")),
    ([("name", "render")], []),
    ([("model", "fraud")], ["checkout"]),
    ([("model", "churn")], []),
    ([("role", "inference")], ["checkout"]),
    ([("role", "db")], newest("orders", "bulk")),
    ([("role", "internal")], ["report"]),
    ([("role", "api")], newest("checkout", "report", "bulk")),
    ([("role", "request")], newest(*IDS)),
    ([("version", "1.5.0")], ["orders"]),
    ([("version", "0.9.0")], newest("checkout", "report")),
    ([("version", "1.4.2")], newest("checkout", "health", "report")),
    # Duration filters hold on the same span as the other filters, as in Jaeger.
    ([("min_duration_ms", "900")], newest("report", "bulk")),
    ([("service", "frontend"), ("min_duration_ms", "900")], ["report"]),
    ([("service", "scoring-api"), ("min_duration_ms", "100")], ["checkout"]),
    ([("service", "scoring-api"), ("max_duration_ms", "50")], ["report"]),
    ([("service", "frontend"), ("max_duration_ms", "5")], ["health"]),
    ([("min_duration_ms", "110"), ("max_duration_ms", "130")], ["checkout"]),
    ([("min_duration_ms", "399.5"), ("service", "ledger")], ["orders"]),
    ([("min_duration_ms", "400.5"), ("service", "ledger")], []),
    ([("status", "error")], ["orders"]),
    ([("status", "error"), ("service", "frontend")], []),
    ([("status", "unset"), ("service", "ledger")], []),
    ([("status", "ok")], []),
    ([("attr", "tenant=acme")], ["orders"]),
    ([("attr", "tenant")], newest("orders", "report")),
    ([("attr", "tenant=ac")], []),
    ([("attr", "db.rows=42")], ["orders"]),
    ([("attr", "db.rows=41")], []),
    ([("attr", "cache.hit=false")], ["orders"]),
    ([("attr", "cache.hit=true")], []),
    ([("attr", "ml.model.version=3")], ["checkout"]),
    ([("attr", "http.route=/checkout")], ["checkout"]),
    ([("attr", "no.such.key")], []),
    # Resource attributes.
    ([("attr", "k8s.namespace.name=ml")], newest("checkout", "report")),
    ([("attr", "k8s.deployment.name")], newest("checkout", "orders", "report")),
    ([("attr", "service.version=1.5.0")], ["orders"]),
    # Repeated attr: all on one span.
    ([("attr", "tenant=acme"), ("attr", "db.rows=42")], ["orders"]),
    ([("attr", "tenant=acme"), ("attr", "http.route=/orders")], []),
    ([("attr", "k8s.namespace.name=ml"), ("attr", "ml.model.name=fraud")], ["checkout"]),
    ([("attr", "k8s.namespace.name=ml"), ("attr", "tenant")], []),
    # Filters combine with AND.
    ([("service", "frontend"), ("route", "/orders")], ["orders"]),
    ([("service", "ledger"), ("route", "/orders")], []),
    ([("service", "frontend"), ("version", "1.4.2"), ("route", "/report")], ["report"]),
    ([("service", "scoring-api"), ("model", "fraud"), ("role", "inference")], ["checkout"]),
    ([("role", "db"), ("status", "error"), ("attr", "tenant=acme")], ["orders"]),
    ([("role", "db"), ("service", "frontend")], []),
]


@pytest.mark.parametrize(
    ("params", "expected"), FILTER_CASES, ids=[urlencode(p) or "all" for p, _ in FILTER_CASES]
)
def test_each_filter_finds_exactly_the_matching_traces(
    server: LiveServer, params: list[tuple[str, str]], expected: list[str]
) -> None:
    assert found(server, params) == expected


def test_time_range_since_sort_and_limit(server: LiveServer) -> None:
    t0 = T0 // S
    between = [("start", str(t0 + 5)), ("end", str(t0 + 25))]
    assert found(server, between) == ["health", "orders"]
    assert found(server, [("start", iso(t0 + 5)), ("end", iso(t0 + 25))]) == ["health", "orders"]
    assert found(server, [("start", iso(t0 + 45))]) == ["bulk", "twin_b", "twin_a"]
    assert found(server, [("end", str(t0 + 10))]) == ["checkout"]
    # With a span filter, the range applies to the matching span's start.
    assert found(server, [*between, ("service", "frontend")]) == ["health", "orders"]
    assert found(server, [("start", iso(t0 + 10.1)), ("service", "ledger")]) == []
    assert found(server, [("since", "1h")]) == NEWEST_FIRST
    assert found(server, [("since", "2m")]) == []
    assert found(server, [("since", "15s"), ("end", str(t0 + 20.5))]) == ["health", "orders"]

    frontend = [("service", "frontend")]
    assert found(server, [*frontend, ("sort", "slowest")]) == [
        "report",
        "orders",
        "checkout",
        "health",
    ]
    assert found(server, [*frontend, ("sort", "newest")]) == newest(
        "checkout", "orders", "health", "report"
    )
    assert found(server, [*frontend, ("sort", "slowest"), ("limit", "2")]) == ["report", "orders"]
    assert found(server, [("limit", "1")]) == ["bulk"]
    assert found(server, [("sort", "slowest"), ("limit", "1")]) == ["bulk"]


def test_summary_says_where_the_time_went(server: LiveServer) -> None:
    (checkout,) = search(server, [("model", "fraud")])
    base = T0 + START_S["checkout"] * S
    assert checkout["trace_id"] == IDS["checkout"]
    assert (checkout["root_service"], checkout["root_name"]) == ("frontend", "GET /checkout")
    assert (checkout["start_unix_nano"], checkout["end_unix_nano"]) == (base, base + 200 * MS)
    assert checkout["duration_ms"] == pytest.approx(200.0)
    assert (checkout["span_count"], checkout["error_count"]) == (3, 0)
    assert checkout["roles"] == ["api", "inference", "request"]
    assert checkout["services"] == ["frontend", "scoring-api"]

    split = checkout["where_the_time_went"]
    assert split["total_ms"] == pytest.approx(200.0)
    assert split["headline"] == "60% in scoring-api inference"
    shares = {role: part["share"] for role, part in split["by_role"].items() if part["ms"]}
    assert shares == {"inference": 0.6, "api": 0.25, "request": 0.15}
    assert split["by_role"]["inference"]["ms"] == pytest.approx(120.0)
    assert [(p["service"], p["workload"], p["role"], p["share"]) for p in split["by_service"]] == [
        ("scoring-api", "ml/scoring", "inference", 0.6),
        ("scoring-api", "ml/scoring", "api", 0.25),
        ("frontend", "default/frontend", "request", 0.15),
    ]

    (orders,) = search(server, [("status", "error")])
    assert orders["error_count"] == 1
    assert orders["where_the_time_went"]["headline"] == "80% in ledger db"


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("sort=fastest", "sort 'fastest' is not one of: newest, slowest"),
        ("status=bad", "status 'bad' is not one of: unset, ok, error"),
        ("limit=0", "limit must be between 1 and 1000, got 0"),
        ("limit=5000", "limit must be between 1 and 1000, got 5000"),
        ("limit=abc", "limit must be a whole number, got 'abc'"),
        ("limit=-1", "limit must be a whole number"),
        ("limit=%C2%B2", "limit must be a whole number"),  # '²' is a digit int() refuses
        ("min_duration_ms=-1", "min_duration_ms must be a number of milliseconds, got '-1'"),
        ("min_duration_ms=abc", "min_duration_ms must be a number of milliseconds, got 'abc'"),
        ("max_duration_ms=nan", "max_duration_ms must be a number of milliseconds"),
        ("attr=", "attr needs a key"),
        ("attr==acme", "attr needs a key"),
        ("servce=x", "unknown search parameter 'servce'"),
        ("since=forever", "since 'forever' is not a duration"),
        ("start=yesterday", "start 'yesterday' is not a time"),
        ("start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "start must be before end"),
        ("start=1767225600&end=1767225600", "start must be before end"),
        ("since=1h&start=1767225600", "either since or start"),
        ("start=1e15", "between 1678 and 2262"),
        ("end=inf", "between 1678 and 2262"),
        ("start=0001-01-01", "between 1678 and 2262"),
        ("since=100000000w", "between 1678 and 2262"),
    ],
)
def test_bad_search_input_is_400_naming_the_problem(
    server: LiveServer, query: str, problem: str
) -> None:
    assert problem in bad_request(server, f"/api/v1/traces?{query}")


@pytest.mark.parametrize(
    "param", ["service", "workload", "route", "name", "model", "role", "version", "attr"]
)
def test_hostile_filter_values_find_nothing_and_break_nothing(
    server: LiveServer, param: str
) -> None:
    for value in HOSTILE:
        queries = [[(param, value)]]
        if param == "attr":  # as a key, a value, both, and on a resource attribute
            queries += [
                [("attr", f"tenant={value}")],
                [("attr", f"{value}={value}")],
                [("attr", f"k8s.namespace.name={value}")],
            ]
        for params in queries:
            assert found(server, params) == [], params
    assert found(server, [("service", "ledger")]) == ["orders"]


@pytest.mark.parametrize(
    "param",
    [
        "sort",
        "status",
        "min_duration_ms",
        "max_duration_ms",
        "limit",
        "since",
        "start",
        "end",
        HOSTILE[0],  # as a parameter name
    ],
)
def test_hostile_values_of_checked_parameters_are_400(server: LiveServer, param: str) -> None:
    for value in HOSTILE:
        error = bad_request(server, "/api/v1/traces?" + urlencode([(param, value)]))
        assert param.split("_")[0] in error, (value, error)
    assert found(server, [("service", "ledger")]) == ["orders"]


def test_store_still_whole_after_hostile_queries(server: LiveServer) -> None:
    for value in HOSTILE:
        assert found(server, [("service", value), ("attr", f"{value}={value}")]) == []
    assert found(server, []) == NEWEST_FIRST
    assert server.trace(IDS["orders"])["span_count"] == 2
    assert server.trace(IDS["bulk"])["span_count"] == BULK_DB_SPANS + 2


def test_attributes_with_odd_keys_and_values_are_found_exactly(server: LiveServer) -> None:
    for key, value in WEIRD_ATTRS.items():
        assert found(server, [("attr", f"{key}={value}")]) == ["weird"], key
        assert found(server, [("attr", key)]) == ["weird"], key
        assert found(server, [("attr", f"{key}={value}x")]) == [], key
        assert found(server, [("attr", f"{key}x={value}")]) == [], key
    all_of_them = [("attr", f"{key}={value}") for key, value in WEIRD_ATTRS.items()]
    assert found(server, all_of_them) == ["weird"]
    (resource_key,) = (k for k in WEIRD_RESOURCE if k != "service.name")
    assert found(server, [("attr", f"{resource_key}={WEIRD_RESOURCE[resource_key]}")]) == ["weird"]
    assert found(server, [("attr", resource_key)]) == ["weird"]
    stored = server.trace(IDS["weird"])["spans"][0]["attributes"]
    assert {key: stored[key] for key in WEIRD_ATTRS} == WEIRD_ATTRS


def test_trace_by_unique_prefix(server: LiveServer) -> None:
    for name in ("checkout", "orders", "health", "report"):
        full = IDS[name]
        for length in (8, 12, 16, 17, 31, 32):
            status, body = server.get_json(f"/api/v1/traces/{full[:length]}")
            assert status == 200, (name, length, body)
            assert body["trace_id"] == full
    assert server.trace(IDS["health"][:8].upper())["root_name"] == "GET /health"
    assert server.trace(IDS["checkout"].upper())["trace_id"] == IDS["checkout"]


def test_ambiguous_prefix_is_409_listing_both_traces(server: LiveServer) -> None:
    for prefix in ("abcdef012", "abcdef0123", "ABCDEF0123"):
        status, body = server.get_json(f"/api/v1/traces/{prefix}")
        assert status == 409, body
        assert f"2 traces start with {prefix.lower()}" in body["error"]
        assert [(m["trace_id"], m["root_name"], m["root_service"]) for m in body["matches"]] == [
            (IDS["twin_a"], "GET /a", "twins"),
            (IDS["twin_b"], "GET /b", "twins"),
        ]
        assert [m["duration_ms"] for m in body["matches"]] == [10.0, 20.0]
    assert server.trace("abcdef01234")["trace_id"] == IDS["twin_a"]
    assert server.trace("ABCDEF01235")["trace_id"] == IDS["twin_b"]


def test_bad_and_unknown_prefixes(server: LiveServer) -> None:
    assert "too short" in bad_request(server, "/api/v1/traces/c0ffee0")
    assert "not hex" in bad_request(server, "/api/v1/traces/c0ffee0g")
    assert "not hex" in bad_request(server, "/api/v1/traces/c0ffee01-a1a1")
    status, body = server.get_json("/api/v1/traces/deadbeef00")
    assert status == 404
    assert "no stored trace id starts with deadbeef00" in body["error"]
    status, body = server.get_json("/api/v1/traces/c0ffee02")  # the neighbour of a stored id
    assert status == 404, body
    for value in HOSTILE:
        assert "trace id" in bad_request(server, "/api/v1/traces/" + quote(value, safe=""))


def test_ten_thousand_span_trace_comes_back_whole(server: LiveServer) -> None:
    got = server.trace(IDS["bulk"][:10])
    spans = got["spans"]
    assert got["span_count"] == len(spans) == BULK_DB_SPANS + 2
    assert len({s["span_id"] for s in spans}) == BULK_DB_SPANS + 2
    assert Counter((s["name"], s["role"], s["depth"]) for s in spans) == {
        ("GET /bulk", "request", 0): 1,
        ("POST /bulk", "api", 1): 1,
        ("INSERT items", "db", 2): BULK_DB_SPANS,
    }
    assert got["complete"] is True
    assert got["duration_ms"] == pytest.approx(3000.0)
    db = spans[2:]
    assert [s["offset_ns"] for s in db] == [100 * MS + i * 250_000 for i in range(BULK_DB_SPANS)]

    # Back-to-back db calls are all on the critical path: 9,998 x 0.25 ms of 3 s.
    split = got["where_the_time_went"]
    assert split["total_ms"] == pytest.approx(3000.0)
    assert split["by_role"]["db"]["ms"] == pytest.approx(2499.5)
    assert split["by_role"]["api"]["ms"] == pytest.approx(480.5)
    assert split["by_role"]["request"]["ms"] == pytest.approx(20.0)
    assert split["headline"] == "83% in bulk-api db"
    assert all(s["critical_path_ms"] == pytest.approx(0.25) for s in db)
    assert sum(p["duration_ms"] for p in got["critical_path"]) == pytest.approx(3000.0)
    assert len(got["critical_path"]) == BULK_DB_SPANS + 4  # api and root: before and after

    (summary,) = search(server, [("service", "bulk-api"), ("min_duration_ms", "2000")])
    assert summary["span_count"] == BULK_DB_SPANS + 2
    assert summary["where_the_time_went"]["headline"] == "83% in bulk-api db"
