"""Time windows for queries: ``start``/``end`` (ISO 8601 or Unix seconds) or ``since=1h``."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from onepane.errors import BadRequest

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_NS = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 604_800_000_000_000,
}


# The Unix ns times a DuckDB TIMESTAMP_NS holds (1678 to 2262), with a margin.
_TIME_RANGE = (-9_214_560_000_000_000_000, 9_214_646_400_000_000_000)


@dataclass(frozen=True)
class Window:
    """A half-open time range in Unix nanoseconds; None means unbounded on that side."""

    start_ns: int | None = None
    end_ns: int | None = None


def parse_duration(text: str, name: str = "duration") -> int:
    """``90s``, ``15m``, ``1h``, ``7d`` as nanoseconds."""
    match = _DURATION.match(text)
    if not match:
        raise BadRequest(f"{name} {text[:40]!r} is not a duration; use e.g. 90s, 15m, 1h or 7d")
    return int(float(match.group(1)) * _UNIT_NS[match.group(2)])


def parse_time(text: str, name: str) -> int:
    """An ISO 8601 timestamp (UTC unless it says otherwise) or Unix seconds, as Unix ns."""
    text = text.strip()
    try:
        return int(float(text) * 1_000_000_000)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} {text[:40]!r} is not a time; use ISO 8601 (2026-11-23T10:00:00Z) "
            "or Unix seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000) * 1000


def window(
    start: str | None = None,
    end: str | None = None,
    since: str | None = None,
    now_ns: int | None = None,
) -> Window:
    """The window a query asks for; ``since`` counts back from ``end`` (or now)."""
    if since and start:
        raise BadRequest("give either since or start, not both")
    try:
        end_ns = parse_time(end, "end") if end else None
        start_ns = parse_time(start, "start") if start else None
        if since:
            reference = end_ns if end_ns is not None else (now_ns or time.time_ns())
            start_ns = reference - parse_duration(since, "since")
    except OverflowError:  # inf, or 1e400 as Unix seconds
        start_ns = end_ns = _TIME_RANGE[1] + 1
    for bound in (start_ns, end_ns):
        if bound is not None and not _TIME_RANGE[0] <= bound <= _TIME_RANGE[1]:
            raise BadRequest(
                "start, end and since must give times between 1678 and 2262 "
                "(the years nanosecond timestamps hold)"
            )
    if start_ns is not None and end_ns is not None and start_ns >= end_ns:
        raise BadRequest("start must be before end")
    return Window(start_ns, end_ns)
