"""The critical path of a trace and where its time went, on hand-checked span trees.

Times are in milliseconds so that the figures a user reads (ms, shares, the headline) are
round; the path itself is in nanoseconds.
"""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Any

import pytest

from store.critical_path import critical_path, where_the_time_went

MS = 1_000_000
ROLES = ("request", "api", "inference", "db", "pipeline", "internal")


def span(
    span_id: str,
    parent: str | None,
    start_ms: int,
    end_ms: int,
    role: str = "internal",
    service: str = "checkout",
) -> dict[str, Any]:
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "start_unix_nano": start_ms * MS,
        "end_unix_nano": end_ms * MS,
        "role": role,
        "service_name": service,
        "workload": f"{service}-deploy",
    }


def in_ms(sections: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    return [(span_id, start // MS, end // MS) for span_id, start, end in sections]


def self_ms(path) -> dict[str, int]:
    return {span_id: ns // MS for span_id, ns in path.self_ns.items()}


def scoring_request() -> list[dict[str, Any]]:
    """A checkout request calling the scoring API, which runs the model then a query."""
    return [
        span("req", None, 0, 100, "request", "frontend"),
        span("api", "req", 5, 95, "api", "scoring-api"),
        span("model", "api", 10, 70, "inference", "fraud-model"),
        span("query", "api", 70, 90, "db", "ledger"),
    ]


def test_sequential_calls_are_all_on_the_path() -> None:
    path = critical_path(scoring_request())

    assert in_ms(path.sections) == [
        ("req", 0, 5),
        ("api", 5, 10),
        ("model", 10, 70),
        ("query", 70, 90),
        ("api", 90, 95),
        ("req", 95, 100),
    ]
    assert self_ms(path) == {"req": 10, "api": 10, "model": 60, "query": 20}
    assert (path.missing_ns, path.total_ns) == (0, 100 * MS)


def test_time_split_by_role_and_service_with_a_headline() -> None:
    spans = scoring_request()
    split = where_the_time_went(spans, critical_path(spans))

    assert split["total_ms"] == 100.0
    assert split["by_role"] == {
        "request": {"ms": 10.0, "share": 0.1},
        "api": {"ms": 10.0, "share": 0.1},
        "inference": {"ms": 60.0, "share": 0.6},
        "db": {"ms": 20.0, "share": 0.2},
        "pipeline": {"ms": 0.0, "share": 0.0},
        "internal": {"ms": 0.0, "share": 0.0},
    }
    top = split["by_service"][:2]
    assert top == [
        {
            "service": "fraud-model",
            "workload": "fraud-model-deploy",
            "role": "inference",
            "ms": 60.0,
            "share": 0.6,
        },
        {"service": "ledger", "workload": "ledger-deploy", "role": "db", "ms": 20.0, "share": 0.2},
    ]
    rest = {(s["service"], s["role"], s["ms"]) for s in split["by_service"][2:]}
    assert rest == {("frontend", "request", 10.0), ("scoring-api", "api", 10.0)}
    assert split["headline"] == "60% in fraud-model inference"


def test_parallel_children_only_the_last_finishing_chain_is_on_the_path() -> None:
    spans = [
        span("root", None, 0, 100),
        span("a", "root", 10, 50),  # overlaps b, which finishes later: off the path
        span("b", "root", 20, 80),
        span("c", "root", 5, 15),  # ended before b started: on the path
    ]
    path = critical_path(spans)

    assert in_ms(path.sections) == [
        ("root", 0, 5),
        ("c", 5, 15),
        ("root", 15, 20),
        ("b", 20, 80),
        ("root", 80, 100),
    ]
    assert self_ms(path) == {"root": 30, "b": 60, "c": 10}
    assert "a" not in path.self_ns


def test_back_to_back_siblings_are_all_on_the_path() -> None:
    spans = [
        span("root", None, 0, 30),
        span("third", "root", 20, 30),
        span("first", "root", 0, 10),
        span("second", "root", 10, 20),
    ]
    path = critical_path(spans)

    assert in_ms(path.sections) == [("first", 0, 10), ("second", 10, 20), ("third", 20, 30)]
    assert "root" not in path.self_ns  # the root only waited on its children


def test_children_are_clipped_to_their_parent_and_outsiders_ignored() -> None:
    spans = [
        span("root", None, 0, 100),
        span("early", "root", -10, 20),  # started before its parent
        span("late", "root", 60, 150),  # outlives its parent
        span("inner", "late", 95, 140),  # clipped to its clipped parent
        span("after", "root", 120, 130),  # wholly after its parent's end
    ]
    path = critical_path(spans)

    assert in_ms(path.sections) == [
        ("early", 0, 20),
        ("root", 20, 60),
        ("late", 60, 95),
        ("inner", 95, 100),
    ]
    assert "after" not in path.self_ns
    assert path.total_ns == 100 * MS


@pytest.mark.parametrize("first_parent", [None, "never-stored"])
def test_gap_between_two_roots_is_missing_time(first_parent: str | None) -> None:
    spans = [
        span("first", first_parent, 0, 40, "api", "scoring-api"),
        span("second", "never-stored", 60, 100, "db", "ledger"),
    ]
    path = critical_path(spans)

    assert in_ms(path.sections) == [("first", 0, 40), ("second", 60, 100)]
    assert (path.missing_ns, path.total_ns) == (20 * MS, 100 * MS)
    by_role = where_the_time_went(spans, path)["by_role"]
    assert by_role["missing"] == {"ms": 20.0, "share": 0.2}
    assert by_role["db"] == {"ms": 40.0, "share": 0.4}


def test_no_missing_role_when_the_roots_touch() -> None:
    spans = [span("first", "gone", 0, 40), span("second", "gone", 40, 100)]
    path = critical_path(spans)

    assert path.missing_ns == 0
    assert set(where_the_time_went(spans, path)["by_role"]) == set(ROLES)


def test_a_self_parented_span_is_a_root() -> None:
    spans = [span("loop", "loop", 0, 100), span("kid", "loop", 20, 50)]
    path = critical_path(spans)

    assert in_ms(path.sections) == [("loop", 0, 20), ("kid", 20, 50), ("loop", 50, 100)]
    assert sum(path.self_ns.values()) == path.total_ns == 100 * MS


def test_a_two_span_loop_is_cut_at_its_earliest_span() -> None:
    spans = [span("b", "a", 10, 60), span("a", "b", 0, 100)]
    path = critical_path(spans)

    assert in_ms(path.sections) == [("a", 0, 10), ("b", 10, 60), ("a", 60, 100)]
    assert path.missing_ns == 0
    assert sum(path.self_ns.values()) == path.total_ns == 100 * MS


def test_a_span_below_a_loop_that_starts_first_keeps_its_parent() -> None:
    spans = [span("a", "b", 0, 100), span("b", "a", 10, 90), span("c", "a", -5, 5)]
    path = critical_path(spans)

    # c hangs under a (clipped to 0..5), not under a root of its own
    assert in_ms(path.sections) == [("c", 0, 5), ("a", 5, 10), ("b", 10, 90), ("a", 90, 100)]
    assert path.missing_ns == 0


def test_empty_trace_has_no_path() -> None:
    path = critical_path([])

    assert (path.sections, path.self_ns, path.total_ns) == ([], {}, 0)
    split = where_the_time_went([], path)
    assert split["headline"] == "no time on the critical path"
    assert split["by_role"]["db"] == {"ms": 0.0, "share": 0.0}


def test_ten_thousand_deep_chain() -> None:
    depth = 10_000  # span i runs from i to 2*depth - i: one ms of self time at each end
    spans = [span(f"s{i}", f"s{i - 1}" if i else None, i, 2 * depth - i) for i in range(depth)]
    path = critical_path(spans)

    assert len(path.sections) == 2 * depth - 1  # the deepest span is one section
    assert self_ms(path)["s0"] == 2 and self_ms(path)[f"s{depth - 1}"] == 2
    assert sum(path.self_ns.values()) == path.total_ns == 2 * depth * MS


def test_ten_thousand_wide_fan_out() -> None:
    width = 10_000
    root = span("root", None, 0, width)
    kids = [span(f"k{i}", "root", i, i + 1, "db", "ledger") for i in range(width)]
    path = critical_path([root, *reversed(kids)])

    assert len(path.self_ns) == width and "root" not in path.self_ns
    assert sum(path.self_ns.values()) == path.total_ns == width * MS
    assert where_the_time_went([root, *kids], path)["headline"] == "100% in ledger db"


def random_tree(rng: random.Random) -> list[dict[str, Any]]:
    """A root and up to 199 descendants, mostly inside their parent, some sticking out."""
    spans = [span("s0", None, 0, rng.randint(0, 1000))]
    for i in range(1, rng.randint(1, 200)):
        parent = rng.choice(spans)
        lo, hi = parent["start_unix_nano"] // MS, parent["end_unix_nano"] // MS
        start = rng.randint(lo, hi)
        end = rng.randint(start, hi + (50 if rng.random() < 0.1 else 0))
        spans.append(span(f"s{i}", parent["span_id"], start, end))
    rng.shuffle(spans)
    return spans


@pytest.mark.parametrize("seed", range(50))
def test_random_trees_path_covers_the_root_once(seed: int) -> None:
    spans = random_tree(random.Random(seed))
    root = next(s for s in spans if s["parent_span_id"] is None)
    by_id = {s["span_id"]: s for s in spans}
    path = critical_path(spans)

    bounds = [(start, end) for _, start, end in path.sections]
    if root["end_unix_nano"] > root["start_unix_nano"]:
        assert bounds[0][0] == root["start_unix_nano"]
        assert bounds[-1][1] == root["end_unix_nano"]
    assert all(start < end for start, end in bounds)
    assert all(a[1] == b[0] for a, b in pairwise(bounds))  # contiguous
    for span_id, start, end in path.sections:
        assert by_id[span_id]["start_unix_nano"] <= start < end <= by_id[span_id]["end_unix_nano"]
    assert sum(path.self_ns.values()) + path.missing_ns == path.total_ns
    assert path.total_ns == root["end_unix_nano"] - root["start_unix_nano"]
