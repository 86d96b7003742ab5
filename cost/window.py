"""Cost windows and steps, as OpenCost's /allocation reads them.

``window``: a duration (``30m``, ``24h``, ``7d``) ending with the current hour; ``today``,
``yesterday``, ``week``, ``lastweek``, ``month``, ``lastmonth`` (UTC); or two times
``start,end`` (RFC 3339 or Unix seconds), widened to whole hours. ``step`` splits it
into sets (default: one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache

from cost.allocation import HOUR_NS
from onepane.errors import BadRequest
from store.window import parse_duration, parse_time

DAY_NS = 24 * HOUR_NS
MAX_STEPS = 10_000


@dataclass(frozen=True)
class CostWindow:
    start_ns: int
    end_ns: int
    step_ns: int

    @cached_property
    def steps(self) -> list[tuple[int, int]]:
        return [
            (s, min(s + self.step_ns, self.end_ns))
            for s in range(self.start_ns, self.end_ns, self.step_ns)
        ]


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def _named(name: str, now_ns: int) -> tuple[int, int] | None:
    today = datetime.fromtimestamp(now_ns / 1e9, UTC).replace(hour=0, minute=0, second=0,
                                                              microsecond=0)  # fmt: skip
    monday = today - timedelta(days=today.weekday())
    first = today.replace(day=1)
    previous_first = (first - timedelta(days=1)).replace(day=1)
    named = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "week": (monday, today + timedelta(days=1)),
        "lastweek": (monday - timedelta(days=7), monday),
        "month": (first, today + timedelta(days=1)),
        "lastmonth": (previous_first, first),
    }
    if name not in named:
        return None
    start, end = named[name]
    return _ns(start), _ns(end)


def parse(window: str | None, step: str | None, now_ns: int) -> CostWindow:
    """The window and step a query asks for; BadRequest says what is accepted."""
    text = (window or "").strip().lower()
    if not text:
        raise BadRequest("window is required: e.g. window=7d, window=today or window=START,END")
    span = _named(text, now_ns)
    if span is None and "," in text:  # whole hours: costs are hourly
        first, _, second = (window or "").partition(",")
        start_ns, end_ns = parse_time(first, "window start"), parse_time(second, "window end")
        span = (start_ns // HOUR_NS * HOUR_NS, -(-end_ns // HOUR_NS) * HOUR_NS)
    if span is None:
        length = parse_duration(text, "window")
        end = now_ns // HOUR_NS * HOUR_NS + HOUR_NS
        span = (end - length, end)
    start, end = span
    if start >= end:
        raise BadRequest("the window's start must be before its end")
    step_ns = parse_duration(step, "step") if step else end - start
    if step_ns < HOUR_NS:
        raise BadRequest("step must be at least 1h: costs are computed per hour")
    if (end - start) / step_ns > MAX_STEPS:
        raise BadRequest(f"window/step gives more than {MAX_STEPS} steps; choose a longer step")
    return CostWindow(start, end, step_ns)


@lru_cache(maxsize=65536)
def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
