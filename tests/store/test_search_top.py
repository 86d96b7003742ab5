"""Trace search with a broad span filter takes its answer from the window's top traces;
with a narrow one it lists every match. Both give the same, exact answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import db, search
from store.traces import trace_key
from store.window import Window

MS = 1_000_000
T0 = 1_767_225_600 * 1_000_000_000
TRACES = 80


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory):
    """80 one-span traces: trace i lasts i ms; even ones from service a, odd from b, and
    the shortest one also has a span of service rare."""
    store = db.connect(Path(tmp_path_factory.mktemp("search")) / "onepane.duckdb")
    db.migrate(store)
    for i in range(TRACES):
        trace_id = f"{i + 1:032x}"
        services = ["a" if i % 2 == 0 else "b"] + (["rare"] if i == 0 else [])
        for n, service in enumerate(services):
            store.execute(
                "INSERT INTO spans (trace_key, trace_id, span_id, name, kind, start_time, "
                "end_time, duration_ns, status_code, service_name, workload, role, resource_id, "
                "attributes, batch_no) VALUES ($key, $id, $span, 'op', 2, make_timestamp_ns($s), "
                "make_timestamp_ns($e), $d, 0, $svc, $svc, 'request', 1, '{}', 1)",
                {"key": trace_key(trace_id), "id": trace_id, "span": f"{n + 1:016x}",
                 "s": T0 + i * 1000 * MS, "e": T0 + i * 1000 * MS + (i + 1) * MS,
                 "d": (i + 1) * MS, "svc": service},
            )  # fmt: skip
        store.execute(
            "INSERT INTO traces VALUES ($key, $id, make_timestamp_ns($s), make_timestamp_ns($e), "
            "$d, '0000000000000001', $svc, 'op', $n, 0, 'request', $svc)",
            {"key": trace_key(trace_id), "id": trace_id, "s": T0 + i * 1000 * MS,
             "e": T0 + i * 1000 * MS + (i + 1) * MS, "d": (i + 1) * MS, "svc": services[0],
             "n": len(services)},
        )  # fmt: skip
    yield store
    store.close()


def durations(conn, **columns: str | tuple[str, ...]) -> list[float]:
    query = search.TraceQuery(columns=columns, window=Window(start_ns=T0), sort="slowest", limit=3)
    return [s["duration_ms"] for s in search.search(conn, query)]


def test_a_broad_filter_answers_from_the_top_traces(conn) -> None:
    assert durations(conn, service_name="a") == [79.0, 77.0, 75.0]
    assert durations(conn, service_name=("a", "b")) == [80.0, 79.0, 78.0]


def test_a_filter_few_top_traces_meet_finds_every_match(conn) -> None:
    # The shortest trace is the only one with a span of service rare: not among the top
    # 3 x TOP_CANDIDATES traces, so the search lists every match.
    assert TRACES - 1 >= 3 * search.TOP_CANDIDATES
    assert durations(conn, service_name="rare") == [1.0]
