"""Trace summaries (``GET /api/v1/traces``) as a table that links each trace to the incident
view; the incident search and the app developer's slowest and failed traces both show it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import tables, ui

COLUMNS = [
    "trace",
    "duration_ms",
    "where_the_time_went",
    "errors",
    "spans",
    "started",
    "root",
    "services",
]


def started(unix_nano: int) -> datetime:
    """A span time (ns since the epoch) as an aware UTC datetime."""
    return datetime.fromtimestamp(unix_nano / 1e9, UTC)


def merge(
    lists: Iterable[Sequence[Mapping[str, Any]]], order: str, limit: int
) -> list[Mapping[str, Any]]:
    """Several searches' summaries as one list, each trace once: the slowest first
    (``order="slowest"``) or the newest first, at most ``limit``."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for traces in lists:
        for trace in traces:
            by_id.setdefault(trace["trace_id"], trace)
    field = "duration_ns" if order == "slowest" else "start_unix_nano"
    return sorted(by_id.values(), key=lambda t: -t[field])[:limit]


def frame(traces: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per trace; ``trace`` is the incident view's URL of that trace."""
    rows = [
        {
            "trace": ui.page_url("incident", {"trace": t["trace_id"]}),
            "started": started(t["start_unix_nano"]),
            "duration_ms": t["duration_ms"],
            "root": f"{t['root_service']}: {t['root_name']}",
            "spans": t["span_count"],
            "errors": t["error_count"],
            "services": ", ".join(t.get("services") or []),
            "where_the_time_went": (t.get("where_the_time_went") or {}).get("headline", ""),
        }
        for t in traces
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def show(traces: Sequence[Mapping[str, Any]], key: str) -> None:
    """The summaries as a table; a click on a trace id opens its waterfall."""
    tables.show(
        frame(traces),
        key=key,
        column_config={
            "trace": st.column_config.LinkColumn(
                "Trace", display_text=r"trace=([0-9a-f]{16})", help="Open in the incident view"
            ),
            "started": st.column_config.DatetimeColumn(
                "Started (UTC)", format="YYYY-MM-DD HH:mm:ss"
            ),
            "duration_ms": st.column_config.NumberColumn("Duration (ms)", format="%.1f"),
            "root": "Root span",
            "spans": st.column_config.NumberColumn("Spans"),
            "errors": st.column_config.NumberColumn("Errors"),
            "services": "Services",
            "where_the_time_went": "Where the time went",
        },
    )
