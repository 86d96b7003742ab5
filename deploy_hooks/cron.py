"""How often a CronJob runs: its schedule's runs in 30 days, for a monthly projection."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from deploy_hooks.manifests import ManifestError

_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}  # fmt: skip
_NAMES = {
    3: {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m},
    4: {d.lower(): (i + 1) % 7 for i, d in enumerate(calendar.day_abbr)},
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


def _value(text: str, field: int) -> int:
    names = _NAMES.get(field, {})
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def _field(text: str, field: int) -> set[int]:
    low, high = _RANGES[field]
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(part)
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _value(first, field), _value(last, field)
        else:
            start = _value(base, field)
            end = high if step_text else start
        if not low <= start <= end <= high:
            raise ValueError(part)
        out.update(range(start, end + 1, step))
    if field == 4 and 7 in out:
        out = (out - {7}) | {0}
    return out


def runs_per_month(schedule: str, days: int = 30) -> float:
    """The runs ``schedule`` makes in ``days`` days (from a fixed, ordinary month)."""
    fields = schedule.split()
    while fields and fields[0].startswith(("CRON_TZ=", "TZ=")):
        fields = fields[1:]
    if len(fields) == 1 and fields[0] in _MACROS:
        fields = _MACROS[fields[0]].split()
    if len(fields) != 5:
        raise ManifestError(f"schedule {schedule!r} is not a cron schedule of 5 fields")
    try:
        minutes, hours, doms, months, dows = (_field(f, i) for i, f in enumerate(fields))
    except ValueError as exc:
        raise ManifestError(f"schedule {schedule!r}: cannot read {str(exc)!r}") from None
    # As robfig/cron (the CronJob controller's) does: a field starting with * or ? (*/2
    # included) leaves the day to the other field; two restricted fields match either.
    dom_any, dow_any = (any(p.partition("/")[0] in ("*", "?") for p in f.split(","))
                        for f in (fields[2], fields[4]))  # fmt: skip
    runs = 0
    start = date(2025, 1, 1)
    for offset in range(days):
        day = start + timedelta(days=offset)
        if day.month not in months:
            continue
        dom_hit, dow_hit = day.day in doms, day.isoweekday() % 7 in dows
        hit = (dom_hit or dow_hit) if not (dom_any or dow_any) else (dom_hit and dow_hit)
        if hit:
            runs += len(hours) * len(minutes)
    return float(runs)
