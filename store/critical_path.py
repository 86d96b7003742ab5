"""The critical path of a trace and where its time went.

The critical path is found as Jaeger finds it: start at the root's end and walk back
through the child that finished last before the current point; when a span has no such
child left, its own time down to its start is on the path and the walk returns to its
parent at that start. Children are first clipped to their parent's time (a child that
outlives its parent only counts while the parent runs; one wholly outside it not at all).
A child that ends exactly when the current point is reached counts (Jaeger requires it to
end strictly before), so back-to-back calls are all on the path.

Each piece of the path is the *self time* of one span: the time it was the thing the
request waited on. Summed by role, that is "where the time went"; summed by service and
role it gives the headline, e.g. "62% in fraud-model inference".

Pure functions over span dicts (``span_id``, ``parent_span_id``, ``start_unix_nano``,
``end_unix_nano``, ``role``, ``service_name``, ``workload``); iterative, so a trace with
10,000 spans or thousands of levels is fine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collectors.otlp.semconv import ROLES
from store.spantree import children_of

MISSING = "missing"  # time under a parent span that is not stored (an incomplete trace)
_VIRTUAL = "\0root"

Span = Mapping[str, Any]


@dataclass
class CriticalPath:
    """The path as chronological sections, and each span's self time on it."""

    sections: list[tuple[str, int, int]]  # (span_id, start ns, end ns), earliest first
    self_ns: dict[str, int] = field(default_factory=dict)
    missing_ns: int = 0  # path time no stored span covers (several roots)
    total_ns: int = 0


def critical_path(spans: Sequence[Span]) -> CriticalPath:
    """The critical path of one trace's spans (each span id once)."""
    if not spans:
        return CriticalPath([])
    tree = _Tree(spans)
    sections = tree.walk()
    sections.reverse()
    result = CriticalPath(sections, total_ns=tree.end[tree.root] - tree.start[tree.root])
    for span_id, start, end in sections:
        if span_id == _VIRTUAL:
            result.missing_ns += end - start
        else:
            result.self_ns[span_id] = result.self_ns.get(span_id, 0) + end - start
    result.sections = [s for s in sections if s[0] != _VIRTUAL]
    return result


class _Tree:
    """Spans clipped to their parents, children ordered by end time, latest first."""

    def __init__(self, spans: Sequence[Span]) -> None:
        tree = children_of(spans)
        roots = tree.pop(None, [])
        self.children: dict[str, list[str]] = tree  # type: ignore[assignment]
        self.parent = {kid: parent for parent, kids in tree.items() for kid in kids}
        self.start = {span["span_id"]: span["start_unix_nano"] for span in spans}
        self.end = {span["span_id"]: span["end_unix_nano"] for span in spans}
        self.root = roots[0] if len(roots) == 1 else self._virtual_root(roots)
        self._clip()

    def _virtual_root(self, roots: list[str]) -> str:
        """Several roots (a parent was never stored): hang them under one span covering all."""
        self.children[_VIRTUAL] = roots
        for root in roots:
            self.parent[root] = _VIRTUAL
        self.start[_VIRTUAL] = min(self.start[r] for r in roots)
        self.end[_VIRTUAL] = max(self.end[r] for r in roots)
        return _VIRTUAL

    def _clip(self) -> None:
        """Clip children to their parent top-down; drop those wholly outside it."""
        stack = [self.root]
        while stack:
            parent = stack.pop()
            lo, hi = self.start[parent], self.end[parent]
            kept = []
            for child in self.children.get(parent, ()):
                was_empty = self.start[child] == self.end[child]
                start, end = max(self.start[child], lo), min(self.end[child], hi)
                if start > end or (start == end and not was_empty):
                    continue  # wholly outside its parent
                self.start[child], self.end[child] = start, end
                kept.append(child)
            kept.sort(key=lambda c: (self.end[c], self.start[c]), reverse=True)
            self.children[parent] = kept
            stack.extend(kept)

    def walk(self) -> list[tuple[str, int, int]]:
        """Sections of the path from the root's end backwards."""
        sections: list[tuple[str, int, int]] = []
        next_child: dict[str, int] = {}
        span, until = self.root, self.end[self.root]
        while True:
            kids = self.children.get(span, [])
            i = next_child.get(span, 0)
            while i < len(kids) and self.end[kids[i]] > until:
                i += 1  # overlaps the part of the path already walked
            if i < len(kids):
                child = kids[i]
                next_child[span] = i + 1
                _add(sections, span, self.end[child], until)
                span, until = child, self.end[child]
                continue
            next_child[span] = i
            _add(sections, span, self.start[span], until)
            if span == self.root:
                return sections
            span, until = self.parent[span], self.start[span]


def _add(sections: list[tuple[str, int, int]], span_id: str, start: int, end: int) -> None:
    if end > start:
        sections.append((span_id, start, end))


def where_the_time_went(spans: Sequence[Span], path: CriticalPath) -> dict[str, Any]:
    """The critical path's time split by role and by service, largest first.

    ``by_role`` always lists every role (self time of spans of that role on the path),
    plus ``missing`` when a parent span was never stored.
    """
    by_id = {span["span_id"]: span for span in spans}
    total = path.total_ns
    roles = dict.fromkeys(ROLES, 0)
    services: dict[tuple[str, str, str], int] = {}
    for span_id, ns in path.self_ns.items():
        span = by_id[span_id]
        roles[span["role"]] += ns
        key = (span["service_name"], span["workload"], span["role"])
        services[key] = services.get(key, 0) + ns
    if path.missing_ns:
        roles[MISSING] = path.missing_ns
    by_service = [
        {"service": s, "workload": w, "role": r, **_share(ns, total)}
        for (s, w, r), ns in sorted(services.items(), key=lambda kv: -kv[1])
    ]
    return {
        "total_ms": total / 1e6,
        "by_role": {role: _share(ns, total) for role, ns in roles.items()},
        "by_service": by_service,
        "headline": _headline(by_service),
    }


def _share(ns: int, total: int) -> dict[str, float]:
    return {"ms": ns / 1e6, "share": round(ns / total, 4) if total else 0.0}


def _headline(by_service: list[dict[str, Any]]) -> str:
    if not by_service:
        return "no time on the critical path"
    top = by_service[0]
    return f"{top['share']:.0%} in {top['service']} {top['role']}"
