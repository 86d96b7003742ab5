"""Terminal views of traces: the waterfall of one trace, and one line per search match.

The waterfall shows where the time went first, then one line per span: the tree as
indentation, the role, the service, the duration and a bar on the trace's time axis
(``█`` where the span was on the critical path, ``▒`` for the rest of its time). Spans on
the critical path are marked ``*`` and failed spans ``!``.

Big traces stay readable: five or more siblings with the same service, role and name are
folded into one ``× N`` line, except members that hold a noticeable share (5%) of the
critical path, which stay expanded, so the path through a 10,000-span trace is still
visible line by line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

COLLAPSE_AT = 5
EXPAND_SHARE = 0.05
MAX_INDENT = 24
_FIXED = 2 + 1 + 9 + 1 + 16 + 1 + 10 + 2 + 2  # marks, role, service, duration, borders


@dataclass
class _Row:
    """One line of the waterfall: a span, or a group of folded siblings."""

    spans: list[dict[str, Any]]
    depth: int
    hidden: int = 0  # spans below the folded ones

    @property
    def first(self) -> dict[str, Any]:
        return self.spans[0]


@dataclass
class _Style:
    color: bool
    codes: dict[str, str] = field(
        default_factory=lambda: {"error": "31", "critical": "1", "dim": "2"}
    )

    def __call__(self, text: str, what: str) -> str:
        return f"\033[{self.codes[what]}m{text}\033[0m" if self.color else text


def render_trace(
    trace: dict[str, Any], width: int = 120, collapse: bool = True, color: bool = False
) -> str:
    """The waterfall of a trace as returned by ``GET /api/v1/traces/{id}``."""
    style = _Style(color)
    lines = [*_header(trace), ""]
    bar_width = max(20, width - _FIXED - _name_width(width))
    lines.append(_column_titles(trace, width, bar_width))
    sections = _sections(trace)
    for row in _rows(trace, collapse):
        lines.append(_line(row, trace, sections, width, bar_width, style))
        note = _note(row)
        if note:
            indent = " " * (3 + min(row.depth * 2, MAX_INDENT) + 2)
            lines.append(style(f"{indent}{note}"[:width], "error" if note[0] == "!" else "dim"))
    lines.append("")
    lines.append("* on the critical path (█ its time there, ▒ the rest)   ! failed")
    return "\n".join(lines) + "\n"


def _note(row: _Row) -> str:
    """A line under a failed span (its status message) or a folded group (its figures)."""
    spans = row.spans
    if len(spans) == 1:
        status = spans[0]["status"]
        return f"! {status['message']}" if status["code"] == "ERROR" and status["message"] else ""
    durations = [s["duration_ms"] for s in spans]
    parts = [f"avg {_ms(sum(durations) / len(durations))}", f"max {_ms(max(durations))}"]
    failed = sum(1 for s in spans if s["status"]["code"] == "ERROR")
    if failed:
        parts.append(f"{failed} failed")
    if row.hidden:
        parts.append(f"{row.hidden} more spans below them")
    return "  " + ", ".join(parts)


def _header(trace: dict[str, Any]) -> list[str]:
    errors = trace["error_count"]
    head = (
        f"Trace {trace['trace_id']} · {trace['root_name']} ({trace['root_service']}) · "
        f"{_ms(trace['duration_ms'])} · {trace['span_count']} spans · "
        f"{errors} error{'' if errors == 1 else 's'}"
    )
    services = ", ".join(trace["services"])
    started = f"Started {_when(trace['start_unix_nano'])} UTC · services: {services}"
    if not trace.get("complete", True):
        started += " · incomplete: some parent spans are not stored"
    split = trace["where_the_time_went"]
    top = " · ".join(
        f"{part['share']:.0%} {part['service']} {part['role']}"
        for part in split["by_service"][:5]
        if part["share"] >= 0.005
    )
    roles = " · ".join(
        f"{role} {part['share']:.0%} ({_ms(part['ms'])})"
        for role, part in sorted(split["by_role"].items(), key=lambda kv: -kv[1]["ms"])
        if part["ms"] > 0
    )
    return [
        head,
        started,
        f"Where the time went: {split['headline']} (critical path {_ms(split['total_ms'])})",
        f"  by service: {top}",
        f"  by role:    {roles}",
    ]


def _name_width(width: int) -> int:
    return max(24, min(60, (width - _FIXED) // 2))


def _column_titles(trace: dict[str, Any], width: int, bar_width: int) -> str:
    name = "span".ljust(_name_width(width))
    axis_end = _ms(trace["duration_ms"])
    axis = "0 ms".ljust(bar_width - len(axis_end)) + axis_end
    return f"   {name} {'role':<9} {'service':<16} {'duration':>10} │{axis}│"


def _sections(trace: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """Critical-path sections per span, as (offset ns, end offset ns)."""
    sections: dict[str, list[tuple[int, int]]] = {}
    for part in trace["critical_path"]:
        start = part["offset_ns"]
        end = start + round(part["duration_ms"] * 1e6)
        sections.setdefault(part["span_id"], []).append((start, end))
    return sections


def _rows(trace: dict[str, Any], collapse: bool) -> Iterator[_Row]:
    """Rows in tree order; with ``collapse``, repeated siblings folded."""
    spans = {span["span_id"]: span for span in trace["spans"]}
    weight = _subtree_weights(trace["spans"])
    total_ms = trace["where_the_time_went"]["total_ms"] or 1.0
    roots = [s["span_id"] for s in trace["spans"] if s["depth"] == 0]
    # A stack of sibling rows still to show, each level reversed for popping.
    pending = [_items(roots, 0, spans, weight, total_ms, collapse)]
    while pending:
        level = pending[-1]
        if not level:
            pending.pop()
            continue
        ids, depth = level.pop()
        if len(ids) > 1:
            yield _Row([spans[i] for i in ids], depth, sum(weight[i][1] - 1 for i in ids))
            continue
        yield _Row([spans[ids[0]]], depth)
        children = spans[ids[0]]["children"]
        if children:
            pending.append(_items(children, depth + 1, spans, weight, total_ms, collapse))


def _items(
    ids: list[str],
    depth: int,
    spans: dict[str, dict[str, Any]],
    weight: dict[str, tuple[float, int]],
    total_ms: float,
    collapse: bool,
) -> list[tuple[list[str], int]]:
    """The rows of one set of siblings, reversed (for popping)."""
    groups = _group(ids, spans, weight, total_ms) if collapse else [[i] for i in ids]
    return [(group, depth) for group in reversed(groups)]


def _group(
    ids: list[str],
    spans: dict[str, dict[str, Any]],
    weight: dict[str, tuple[float, int]],
    total_ms: float,
) -> list[list[str]]:
    """Siblings as rows: repeated ones folded into one list, at the first one's place."""
    by_key: dict[tuple[str, str, str], list[str]] = {}
    for span_id in ids:
        span = spans[span_id]
        by_key.setdefault((span["service_name"], span["role"], span["name"]), []).append(span_id)
    rows: list[list[str]] = []
    placed: dict[tuple[str, str, str], list[str]] = {}
    for span_id in ids:
        span = spans[span_id]
        key = (span["service_name"], span["role"], span["name"])
        if len(by_key[key]) < COLLAPSE_AT or weight[span_id][0] / total_ms >= EXPAND_SHARE:
            rows.append([span_id])
        elif key in placed:
            placed[key].append(span_id)
        else:
            placed[key] = [span_id]
            rows.append(placed[key])
    return rows


def _subtree_weights(ordered: list[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    """Per span: critical-path ms in its subtree, and the subtree's span count."""
    weight: dict[str, tuple[float, int]] = {}
    for span in reversed(ordered):  # children come after their parent in tree order
        ms, count = span["critical_path_ms"], 1
        for child in span["children"]:
            child_ms, child_count = weight[child]
            ms += child_ms
            count += child_count
        weight[span["span_id"]] = (ms, count)
    return weight


def _line(
    row: _Row,
    trace: dict[str, Any],
    sections: dict[str, list[tuple[int, int]]],
    width: int,
    bar_width: int,
    style: _Style,
) -> str:
    spans = row.spans
    critical = any(s["critical_path_ms"] > 0 for s in spans)
    errors = sum(1 for s in spans if s["status"]["code"] == "ERROR")
    marks = ("*" if critical else " ") + ("!" if errors else " ")
    indent = " " * min(row.depth * 2, MAX_INDENT)
    first = row.first
    if len(spans) == 1:
        label, duration = first["name"], _ms(first["duration_ms"])
    else:
        label = f"× {len(spans)} {first['name']}"
        duration = _ms(sum(s["duration_ms"] for s in spans))
    name = _fit(indent + label, _name_width(width)).ljust(_name_width(width))
    bar = _bar(spans, trace, sections, bar_width)
    text = (
        f"{marks} {name} {first['role']:<9} {_fit(first['service_name'], 16):<16} "
        f"{duration:>10} │{bar}│"
    )
    if errors:
        return style(text, "error")
    return style(text, "critical") if critical else text


def _bar(
    spans: list[dict[str, Any]],
    trace: dict[str, Any],
    sections: dict[str, list[tuple[int, int]]],
    bar_width: int,
) -> str:
    total = max(trace["duration_ns"], 1)
    cells = [" "] * bar_width

    def columns(start: int, end: int) -> range:
        lo = min(bar_width - 1, start * bar_width // total)
        hi = max(lo + 1, min(bar_width, -(-end * bar_width // total)))
        return range(lo, hi)

    for span in spans:
        for col in columns(span["offset_ns"], span["offset_ns"] + span["duration_ns"]):
            cells[col] = "▒" if cells[col] == " " else cells[col]
        for start, end in sections.get(span["span_id"], ()):
            for col in columns(start, end):
                cells[col] = "█"
    return "".join(cells)


def render_matches(traces: list[dict[str, Any]], width: int = 120) -> str:
    """One line per trace summary from ``GET /api/v1/traces``."""
    head = (
        f"{'started (UTC)':<23} {'duration':>10} {'spans':>6} {'err':>4}  "
        f"{'trace id':<32}  where the time went · root span"
    )
    lines = [head]
    for t in traces:
        where = t["where_the_time_went"]["headline"]
        root = f"{t['root_service'] or '?'} {t['root_name'] or '(root not stored)'}"
        lines.append(
            f"{_when(t['start_unix_nano']):<23} {_ms(t['duration_ms']):>10} "
            f"{t['span_count']:>6} {t['error_count']:>4}  {t['trace_id']}  "
            + _fit(f"{where} · {root}", max(20, width - 83))
        )
    return "\n".join(lines) + "\n"


def _ms(ms: float) -> str:
    if ms >= 10_000:
        return f"{ms / 1000:.1f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f} ms"
    return f"{ms * 1000:.0f} µs"


def _when(unix_ns: int) -> str:
    return datetime.fromtimestamp(unix_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
