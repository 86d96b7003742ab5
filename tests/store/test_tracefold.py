"""Folding a long trace for reading (store/tracefold.py, ``GET /api/v1/traces/{id}?spans=N``):
what it keeps, in what order, and that no log record is lost."""

from __future__ import annotations

from store import tracefold

DEEP = 10_000


def chain(n: int) -> list[dict]:
    """A chain of ``n`` nested spans, each on the critical path; every 1000th fails."""
    return [
        {
            "span_id": f"{i:016x}",
            "parent_span_id": f"{i - 1:016x}" if i else None,
            "name": f"step {i}",
            "depth": i,
            "duration_ms": float(n - i),
            "critical_path_ms": 1.0,
            "status": {"code": "ERROR" if i % 1000 == 999 else "UNSET"},
            "logs": [{"body": f"log of step {i}"}] if i % 100 == 0 else [],
        }
        for i in range(n)
    ]


def test_a_10000_deep_trace_keeps_the_root_and_every_failure_within_its_rows() -> None:
    spans = chain(DEEP)
    kept = tracefold.keep(spans, 200)
    assert len(kept) == 200 and kept == sorted(kept)
    assert 0 in kept and {i for i in range(DEEP) if i % 1000 == 999} <= set(kept)


def test_a_wide_trace_keeps_each_kept_span_with_its_parents() -> None:
    root = {"span_id": "r", "parent_span_id": None, "name": "root", "depth": 0,
            "duration_ms": 100.0, "status": {"code": "UNSET"}}  # fmt: skip
    calls = [
        {
            "span_id": f"c{i}",
            "parent_span_id": "r",
            "name": f"call {i}",
            "depth": 1,
            "duration_ms": float(i),
            "status": {"code": "UNSET"},
        }
        for i in range(50)
    ]
    leaves = [
        {
            "span_id": f"l{i}",
            "parent_span_id": f"c{i}",
            "name": f"query {i}",
            "depth": 2,
            "duration_ms": 1.0,
            "status": {"code": "ERROR" if i == 7 else "UNSET"},
        }
        for i in range(50)
    ]
    spans = [root] + [s for i in range(50) for s in (calls[i], leaves[i])]
    kept = [spans[i]["span_id"] for i in tracefold.keep(spans, 10)]
    assert len(kept) == 10
    assert kept[:3] == ["r", "c7", "l7"]  # the root, then the failed query with its parent
    assert {"c49", "c48"} <= set(kept)  # then the longest calls
    assert all(s["parent_span_id"] in kept for s in spans if s["span_id"] in kept and s["depth"])


def test_fold_moves_the_left_out_spans_logs_and_keeps_the_rest_of_the_document() -> None:
    spans = chain(1_000)
    doc = {"span_count": 1_000, "error_count": 1, "logs": [], "spans": spans}
    folded = tracefold.fold(doc, 50)
    assert folded["spans_shown"] == len(folded["spans"]) == 50
    assert folded["span_count"] == 1_000 and folded["error_count"] == 1
    shown = sum(len(s["logs"]) for s in folded["spans"])
    moved = folded["folded_logs"]
    assert shown + len(moved) == 10  # every log record is still there, once
    kept = {s["name"] for s in folded["spans"]}
    assert all(record["span_name"] not in kept for record in moved)
    assert {record["body"] for record in moved} == {
        f"log of {record['span_name']}" for record in moved
    }


def test_a_short_trace_is_not_folded() -> None:
    doc = {"span_count": 3, "spans": chain(3)}
    folded = tracefold.fold(doc, 200)
    assert folded["spans"] == doc["spans"] and folded["spans_shown"] == 3
    assert folded["folded_logs"] == []
