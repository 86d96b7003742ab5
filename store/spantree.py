"""How a trace's spans hang together: parent links with missing parents and cycles cut.

A span whose parent was never stored is a root (an *orphan*). A parent chain that loops
back on itself (a span naming itself or a descendant as its parent, which only a broken
client sends) is cut at its earliest span, which becomes a root too, so every span is
shown and every walk ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def children_of(spans: Sequence[Mapping[str, Any]]) -> dict[str | None, list[str]]:
    """Child span ids per parent id, in the order given; roots are under ``None``."""
    ids = {span["span_id"] for span in spans}
    children: dict[str | None, list[str]] = {}
    for span in spans:
        parent = span["parent_span_id"]
        children.setdefault(parent if parent in ids else None, []).append(span["span_id"])
    reached = _reachable(children, children.get(None, []))
    if len(reached) < len(ids):
        _cut_cycles(spans, children, reached)
    return children


def _reachable(children: dict[str | None, list[str]], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        span_id = stack.pop()
        if span_id not in seen:
            seen.add(span_id)
            stack.extend(children.get(span_id, ()))
    return seen


def _cut_cycles(
    spans: Sequence[Mapping[str, Any]], children: dict[str | None, list[str]], reached: set[str]
) -> None:
    """Make the earliest span of each parent loop a root, until every span is reached.

    A span that is not reached hangs below a loop: following its parents finds the loop.
    """
    by_id = {span["span_id"]: span for span in spans}
    order = {span["span_id"]: (span["start_unix_nano"], span["span_id"]) for span in spans}
    for span_id in sorted(order, key=order.__getitem__):
        if span_id in reached:
            continue
        chain: list[str] = []
        seen: set[str] = set()
        current = span_id
        while current not in seen:
            seen.add(current)
            chain.append(current)
            current = by_id[current]["parent_span_id"]
        loop = chain[chain.index(current) :]
        cut = min(loop, key=order.__getitem__)
        children[by_id[cut]["parent_span_id"]].remove(cut)
        children.setdefault(None, []).append(cut)
        reached |= _reachable(children, [cut])
