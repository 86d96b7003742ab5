"""Folding a long trace for reading: ``GET /api/v1/traces/{id}?spans=N``.

A trace of thousands of spans gives a waterfall nobody can read and a document of
megabytes (10,001 spans: 7.5 MB of JSON). Folded to ``N`` spans it keeps those that explain
the trace — the roots, the failed spans, the spans with the most time on the critical path,
then the longest — each with its parents, in tree order. The log records of the spans left
out move to ``folded_logs`` (with their span's name), so no record of the trace is lost;
everything else (counts, the critical path, where the time went) stays that of the whole
trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Span = Mapping[str, Any]


def failed(span: Span) -> bool:
    return (span.get("status") or {}).get("code") == "ERROR"


def fold(doc: dict[str, Any], cap: int) -> dict[str, Any]:
    """``doc`` (a trace from ``store.traces.get_trace``) with at most ``cap`` spans."""
    spans = doc["spans"]
    kept = keep(spans, cap)
    chosen = set(kept)
    folded_logs = [
        {**record, "span_name": span["name"]}
        for i, span in enumerate(spans)
        if i not in chosen
        for record in span.get("logs") or []
    ]
    return {
        **doc,
        "spans": [spans[i] for i in kept],
        "spans_shown": len(kept),
        "folded_logs": folded_logs,
    }


def keep(spans: Sequence[Span], cap: int) -> list[int]:
    """Indexes (in tree order) of the spans a fold keeps: all of them up to ``cap``, else
    the roots, failed spans, critical-path spans and the longest, with parents."""
    if len(spans) <= cap:
        return list(range(len(spans)))
    order = _priority(spans)
    must = [i for i in order if spans[i].get("depth", 0) == 0 or failed(spans[i])]
    chosen = set(must[:cap])  # the roots and failed spans first, then their parents
    index = {span["span_id"]: i for i, span in enumerate(spans)}
    for first in order:
        room = cap - len(chosen)
        if room <= 0:
            break
        chain: list[int] = []
        at = index.get(spans[first].get("parent_span_id") or "") if first in chosen else first
        while at is not None and at not in chosen and len(chain) < room:
            chain.append(at)
            at = index.get(spans[at].get("parent_span_id") or "")
        # A chain that does not fit (a very deep trace) keeps only the span itself.
        if chain:
            chosen.update(chain if at is None or at in chosen else chain[:1])
    return sorted(chosen)


def _priority(spans: Sequence[Span]) -> list[int]:
    def rank(i: int) -> tuple[int, float]:
        span = spans[i]
        if span.get("depth", 0) == 0:
            return (0, 0.0)
        if failed(span):
            return (1, -span["duration_ms"])
        if span.get("critical_path_ms"):
            return (2, -span["critical_path_ms"])
        return (3, -span["duration_ms"])

    return sorted(range(len(spans)), key=rank)
