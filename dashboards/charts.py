"""Altair charts the pages share: series over time, bars and heatmaps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

ROLE_COLORS = {
    "request": "#4c78a8",
    "api": "#72b7b2",
    "inference": "#e45756",
    "db": "#f58518",
    "pipeline": "#54a24b",
    "internal": "#b8b8b8",
    "missing": "#ffffff",
}


def frame(rows: Iterable[Mapping[str, Any]], times: Iterable[str] = ("time",)) -> pd.DataFrame:
    """API rows as a frame, ISO timestamps parsed."""
    df = pd.DataFrame(list(rows))
    for column in times:
        if column in df.columns:
            df[column] = pd.to_datetime(df[column], utc=True, format="ISO8601")
    return df


def lines(
    df: pd.DataFrame,
    y: str,
    color: str | None = None,
    *,
    x: str = "time",
    title: str = "",
    y_title: str | None = None,
    height: int = 240,
) -> None:
    """One line per ``color`` over time."""
    encoding: dict[str, Any] = {
        "x": alt.X(f"{x}:T", title=None),
        "y": alt.Y(f"{y}:Q", title=y_title or y),
        "tooltip": [c for c in (x, color, y) if c],
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None, legend=alt.Legend(orient="bottom"))
    chart = alt.Chart(df, title=title).mark_line(point=len(df) < 40).encode(**encoding)
    st.altair_chart(chart.properties(height=height), width="stretch")


def bars(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str | None = None,
    *,
    title: str = "",
    x_title: str | None = None,
    y_title: str | None = None,
    time: bool = True,
    height: int = 240,
) -> None:
    """Stacked bars: ``y`` per ``x`` (a time unless ``time`` is False), split by ``color``."""
    encoding: dict[str, Any] = {
        "x": alt.X(f"{x}:{'T' if time else 'N'}", title=x_title),
        "y": alt.Y(f"{y}:Q", title=y_title or y, stack=True),
        "tooltip": [c for c in (x, color, y) if c],
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None, legend=alt.Legend(orient="bottom"))
    # On a time axis a bar has no band to fill: size it to the number of steps shown.
    mark = alt.Chart(df, title=title).mark_bar(
        size=max(2, min(40, 600 // max(1, df[x].nunique()))) if time else alt.Undefined
    )
    chart = mark.encode(**encoding)
    st.altair_chart(chart.properties(height=height), width="stretch")


def heatmap(
    df: pd.DataFrame, x: str, y: str, value: str, *, title: str = "", value_title: str = ""
) -> None:
    """``value`` for each (x, y) cell, e.g. GPU utilisation by hour of day and GPU."""
    chart = (
        alt.Chart(df, title=title)
        .mark_rect()
        .encode(
            x=alt.X(f"{x}:O", title=x),
            y=alt.Y(f"{y}:N", title=None),
            color=alt.Color(
                f"{value}:Q", title=value_title or value, scale=alt.Scale(scheme="viridis")
            ),
            tooltip=[x, y, value],
        )
    )
    st.altair_chart(chart.properties(height=max(120, 40 * df[y].nunique())), width="stretch")
