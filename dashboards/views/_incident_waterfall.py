"""The waterfall of one trace (``GET /api/v1/traces/{id}``): one row per span in tree order
on the trace's time axis, coloured by role, the critical path drawn over the bars and the
failed spans outlined and marked.

A trace of thousands of spans would give a chart nobody can read and a browser that
stalls, so the page asks the server for the trace folded to ``MAX_ROWS`` spans — the
roots, the failed spans, the spans with the most time on the critical path, then the
longest, each with its parents — and says how many it left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

from dashboards.charts import ROLE_COLORS

MAX_ROWS = 200
SCROLL_ROWS = 30  # past this many rows the chart scrolls in a box of this height
MAX_INDENT = 16
ROW_PX = 22
LABEL_PX = 380  # room for the span names, indented by depth
FAILED_COLOR = "#b00020"
CRITICAL_COLOR = "#1b1b1b"

Span = Mapping[str, Any]


@dataclass(frozen=True)
class Waterfall:
    """What the chart draws: ``spans`` (tree order) and the ``critical`` path's pieces."""

    spans: pd.DataFrame
    critical: pd.DataFrame
    total: int  # spans in the trace

    @property
    def folded(self) -> int:
        return self.total - len(self.spans)


def failed(span: Span) -> bool:
    return (span.get("status") or {}).get("code") == "ERROR"


def build(doc: Mapping[str, Any]) -> Waterfall:
    """The chart's rows for a trace document, folded by the server to ``MAX_ROWS`` spans
    (``GET /api/v1/traces/{id}?spans=200``: store/tracefold.py)."""
    shown = doc.get("spans") or []
    labels = _labels(shown)
    rows = [_row(span, label) for span, label in zip(shown, labels, strict=True)]
    by_id = {span["span_id"]: label for span, label in zip(shown, labels, strict=True)}
    critical = [
        {
            "label": by_id[piece["span_id"]],
            "start_ms": piece["offset_ns"] / 1e6,
            "end_ms": piece["offset_ns"] / 1e6 + piece["duration_ms"],
            "critical_ms": piece["duration_ms"],
        }
        for piece in doc.get("critical_path") or []
        if piece["span_id"] in by_id
    ]
    return Waterfall(
        spans=pd.DataFrame(rows, columns=_ROW_COLUMNS),
        critical=pd.DataFrame(critical, columns=["label", "start_ms", "end_ms", "critical_ms"]),
        total=doc.get("span_count", len(shown)),
    )


_ROW_COLUMNS = [
    "label",
    "name",
    "service",
    "role",
    "start_ms",
    "end_ms",
    "duration_ms",
    "critical_path_ms",
    "status",
    "message",
    "failed",
]


def _row(span: Span, label: str) -> dict[str, Any]:
    start = span["offset_ns"] / 1e6
    status = span.get("status") or {}
    return {
        "label": label,
        "name": span["name"],
        "service": span["service_name"],
        "role": span["role"] if span["role"] in ROLE_COLORS else "internal",
        "start_ms": start,
        "end_ms": start + span["duration_ms"],
        "duration_ms": span["duration_ms"],
        "critical_path_ms": span.get("critical_path_ms", 0.0),
        "status": status.get("code", "UNSET"),
        "message": status.get("message") or "",
        "failed": failed(span),
    }


def _labels(spans: Sequence[Span]) -> list[str]:
    """A unique axis label per row: the span's name indented by its depth, and its service
    (two rows with one label would be drawn as one)."""
    seen: dict[str, int] = {}
    labels = []
    for span in spans:
        indent = "· " * min(span.get("depth", 0), MAX_INDENT)
        label = f"{indent}{span['name']} · {span['service_name']}"
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return labels


def box_height(waterfall: Waterfall) -> int | None:
    """The height of the scrolling box a long waterfall is drawn in (None: no box)."""
    return None if len(waterfall.spans) <= SCROLL_ROWS else 80 + ROW_PX * SCROLL_ROWS


def chart(waterfall: Waterfall) -> alt.LayerChart:
    """Bars on the trace's time axis, the critical path over them, failures marked."""
    order = list(waterfall.spans["label"])
    axis = alt.Axis(
        labelAlign="left", labelPadding=LABEL_PX, labelLimit=LABEL_PX - 10, labelOverlap=False,
        labelFontSize=11, ticks=False,
    )  # fmt: skip
    y = alt.Y("label:N", sort=order, title=None, axis=axis)
    x = alt.X("start_ms:Q", title="ms since the trace started", axis=alt.Axis(orient="top"))
    roles = alt.Scale(domain=list(ROLE_COLORS), range=list(ROLE_COLORS.values()))
    bars = (
        alt.Chart(waterfall.spans)
        .mark_bar(height=alt.RelativeBandSize(0.8))
        .encode(
            x=x,
            x2="end_ms:Q",
            y=y,
            color=alt.Color("role:N", scale=roles, legend=alt.Legend(orient="top", title=None)),
            stroke=alt.condition("datum.failed", alt.value(FAILED_COLOR), alt.value(None)),
            strokeWidth=alt.condition("datum.failed", alt.value(2), alt.value(0)),
            tooltip=[
                "name",
                "service",
                "role",
                alt.Tooltip("start_ms:Q", title="starts at (ms)", format=".3f"),
                alt.Tooltip("duration_ms:Q", title="duration (ms)", format=".3f"),
                alt.Tooltip("critical_path_ms:Q", title="on the critical path (ms)", format=".3f"),
                "status",
                "message",
            ],
        )
    )
    path = (
        alt.Chart(waterfall.critical)
        .mark_bar(height=alt.RelativeBandSize(0.3), color=CRITICAL_COLOR, opacity=0.75)
        .encode(
            x=x,
            x2="end_ms:Q",
            y=y,
            tooltip=[alt.Tooltip("critical_ms:Q", title="critical path (ms)", format=".3f")],
        )
    )
    failures = (
        alt.Chart(waterfall.spans)
        .transform_filter("datum.failed")
        .mark_text(text="✖", color=FAILED_COLOR, dx=8, fontSize=12)
        .encode(x="end_ms:Q", y=y, tooltip=["name", "message"])
    )
    return alt.layer(bars, path, failures).properties(height=alt.Step(ROW_PX))
