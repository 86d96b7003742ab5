"""One trace on the incident page: its key numbers, the waterfall, where the time went,
the failed spans, the logs, and links to the involved workloads' cost and drift."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import api, state, tables, ui
from dashboards.charts import ROLE_COLORS
from dashboards.views import _incident_waterfall as waterfall
from dashboards.views._incident_traces import started

Doc = Mapping[str, Any]
_WINDOW_S = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


def show(doc: Doc, catalog: Sequence[Mapping[str, Any]]) -> None:
    """Every panel of one trace, in the order an on-call engineer reads them."""
    header(doc)
    show_waterfall(doc)
    left, right = st.columns(2)
    with left:
        time_split(doc)
    with right:
        links(doc, catalog)
    errors(doc)
    logs(doc)
    # Drawn on demand: a trace may hold thousands of spans (the page reads it folded).
    if st.toggle(f"Show all {doc['span_count']:,} spans as a table", key="incident-all-spans"):
        spans = every_span(doc)
        if spans is not None:
            tables.show(span_frame(spans), key="incident-spans")


def every_span(doc: Doc) -> list[dict[str, Any]] | None:
    """The trace's spans, all of them: asked for again, unfolded, when the page's copy was
    folded (None, with the API's message shown, when that fails)."""
    if doc.get("spans_shown", doc["span_count"]) >= doc["span_count"]:
        return doc["spans"]
    path = f"/api/v1/traces/{quote(doc['trace_id'], safe='')}"
    full = api.get_many({"trace": (path, None)})["trace"]
    return None if ui.failed(full, "every span of the trace") else full["spans"]


def header(doc: Doc) -> None:
    when = started(doc["start_unix_nano"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    st.subheader(f"{doc['root_service']}: {doc['root_name']}")
    st.caption(f"Trace `{doc['trace_id']}` · started {when}")
    columns = st.columns(5)
    columns[0].metric("Duration", ui.ms(doc["duration_ms"]))
    columns[1].metric("Spans", f"{doc['span_count']:,}")
    columns[2].metric("Errors", f"{doc['error_count']:,}")
    columns[3].metric("Services", f"{len(doc['services']):,}")
    columns[4].metric("Logs", f"{doc['log_count']:,}")
    st.markdown(f"**Where the time went:** {doc['where_the_time_went']['headline']}")
    if not doc.get("complete", True):
        st.warning(
            "Some spans' parents never arrived (a service that does not export, or spans "
            "still in flight): they are shown as roots, and their time counts as missing."
        )


def show_waterfall(doc: Doc) -> None:
    """The waterfall, under a note on how to read it (and, for a long trace, what of it
    the chart leaves out)."""
    rows = waterfall.build(doc)
    note = (
        "Bars: spans on the trace's time axis, coloured by role. Dark inner bars: the "
        "critical path. Red outline and ✖: failed spans."
    )
    if rows.folded:
        note += (
            f" **Showing {len(rows.spans):,} of {rows.total:,} spans**: the roots, failed "
            "spans, the spans with the most time on the critical path and the longest, with "
            f"their parents; the {rows.folded:,} others are in the table of all spans below."
        )
    height = waterfall.box_height(rows)
    if height:
        note += " Scroll the chart for more rows."
    st.caption(note)
    box = st.container(height=height or "content", border=False)
    box.altair_chart(waterfall.chart(rows), width="stretch", key="incident-waterfall")


def time_split(doc: Doc) -> None:
    """The critical path's time by role (a bar) and by service (a table)."""
    split = doc["where_the_time_went"]
    st.markdown(f"**Where the time went** (critical path: {ui.ms(split['total_ms'])})")
    by_role = pd.DataFrame(
        [{"role": role, "ms": v["ms"], "share": v["share"]} for role, v in split["by_role"].items()]
    )
    roles = alt.Scale(domain=list(ROLE_COLORS), range=list(ROLE_COLORS.values()))
    bar = (
        alt.Chart(by_role[by_role["ms"] > 0].assign(path="critical path"))
        .mark_bar()
        .encode(
            x=alt.X("share:Q", stack="normalize", title=None, axis=alt.Axis(format="%")),
            y=alt.Y("path:N", title=None, axis=None),
            color=alt.Color("role:N", scale=roles, legend=alt.Legend(orient="bottom", title=None)),
            tooltip=[
                "role",
                alt.Tooltip("ms:Q", format=".3f"),
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
    )
    st.altair_chart(bar, width="stretch", key="incident-split")
    tables.show(
        pd.DataFrame(split["by_service"], columns=["service", "workload", "role", "ms", "share"]),
        key="incident-by-service",
        column_config={
            "ms": st.column_config.NumberColumn("ms", format="%.3f"),
            "share": st.column_config.NumberColumn("share", format="percent"),
        },
    )


def window_around(start_unix_nano: int, now_s: float | None = None) -> str:
    """The shortest window of the other pages that still holds the trace's start."""
    age = (now_s if now_s is not None else time.time()) - start_unix_nano / 1e9
    return next((w for w in state.WINDOWS if _WINDOW_S[w] >= age + 600), state.WINDOWS[-1])


def involved(doc: Doc, catalog: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The trace's workloads, in tree order, each with its kind and the models it serves."""
    kinds = {w["workload"]: w.get("kind") for w in catalog}
    found: dict[str, dict[str, Any]] = {}
    for span in doc["spans"]:
        entry = found.setdefault(
            span["workload"], {"workload": span["workload"], "kind": kinds.get(span["workload"])}
        )
        if span.get("model_name"):
            entry.setdefault("models", set()).add(span["model_name"])
            entry["kind"] = entry["kind"] or "model"
    return list(found.values())


def links(doc: Doc, catalog: Sequence[Mapping[str, Any]]) -> None:
    """Each involved workload's cost (FinOps) and, for models, drift (ML / data science),
    over the shortest window that holds the trace."""
    window = window_around(doc["start_unix_nano"])
    st.markdown(f"**Involved workloads** (cost and drift over the last {window})")
    lines = []
    for entry in involved(doc, catalog):
        params = {"workload": entry["workload"], "window": window}
        parts = [f"[cost]({ui.page_url('finops', params)})"]
        if entry["kind"] == "model":
            models = sorted(entry.get("models", ()))
            model = {**params, "model": models[0] if len(models) == 1 else None}
            parts.append(f"[model & GPU]({ui.page_url('ml-engineer', model)})")
            parts.append(f"[drift]({ui.page_url('data-scientist', model)})")
        lines.append(
            f"- `{entry['workload']}` ({entry['kind'] or 'unknown kind'}): " + " · ".join(parts)
        )
    st.markdown("\n".join(lines))


def errors(doc: Doc) -> None:
    failed = [span for span in doc["spans"] if waterfall.failed(span)]
    st.markdown(f"**Failed spans** ({doc['error_count']:,})")
    if not failed:
        st.caption("No span of this trace failed.")
        return
    tables.show(error_frame(failed), key="incident-errors")
    if doc["error_count"] > len(failed):
        st.caption(
            f"{doc['error_count'] - len(failed):,} more failed spans are in the table of all "
            "spans (the waterfall shows its first failures)."
        )


def error_frame(spans: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = []
    for span in spans:
        exception = next((e for e in span.get("events") or [] if e.get("name") == "exception"), {})
        rows.append(
            {
                "span": span["name"],
                "service": span["service_name"],
                "workload": span["workload"],
                "role": span["role"],
                "starts_at_ms": span["offset_ns"] / 1e6,
                "duration_ms": span["duration_ms"],
                "message": span["status"].get("message") or "",
                "exception": (exception.get("attributes") or {}).get("exception.type", ""),
            }
        )
    return pd.DataFrame(rows)


def logs(doc: Doc) -> None:
    frame = log_frame(doc)
    st.markdown(f"**Logs** ({len(frame)})")
    if frame.empty:
        st.caption("No log record carries this trace's id.")
        return
    tables.show(frame, key="incident-logs")


def log_frame(doc: Doc) -> pd.DataFrame:
    """Every log record of the trace, oldest first: those written inside a stored span
    (named; also those of spans a folded trace leaves out) and those whose span is not
    stored."""
    records = [(span["name"], record) for span in doc["spans"] for record in span.get("logs") or []]
    records += [(record["span_name"], record) for record in doc.get("folded_logs") or []]
    records += [("(span not stored)", record) for record in doc.get("logs") or []]
    rows = [
        {
            "time": started(
                record.get("time_unix_nano") or record.get("observed_time_unix_nano") or 0
            ),
            "severity": record.get("severity_text") or str(record.get("severity_number") or ""),
            "service": record.get("service_name"),
            "span": name,
            "body": _text(record.get("body")),
        }
        for name, record in records
    ]
    frame = pd.DataFrame(rows, columns=["time", "severity", "service", "span", "body"])
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def _text(body: Any) -> str:
    """A log body as text: strings as they are, structured bodies as JSON."""
    if body is None or isinstance(body, str):
        return body or ""
    return json.dumps(body, default=str)


def span_frame(spans: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every span in tree order, for the table under the waterfall."""
    return pd.DataFrame(
        {
            "depth": [s["depth"] for s in spans],
            "span": [s["name"] for s in spans],
            "service": [s["service_name"] for s in spans],
            "role": [s["role"] for s in spans],
            "starts_at_ms": [s["offset_ns"] / 1e6 for s in spans],
            "duration_ms": [s["duration_ms"] for s in spans],
            "critical_path_ms": [s.get("critical_path_ms", 0.0) for s in spans],
            "status": [s["status"]["code"] for s in spans],
        }
    )
