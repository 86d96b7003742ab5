"""Incident view, for whoever is on call: find a trace, then see where its time went.

A trace id (``?trace=ID``, the link every other page gives) opens its waterfall from
``GET /api/v1/traces/{id}``; the search form asks ``GET /api/v1/traces`` for traces by
service, route, model, duration, errors and attribute.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import streamlit as st

from dashboards import api, state, ui
from dashboards.views import _incident_search as search
from dashboards.views import _incident_trace as trace_view
from dashboards.views import _incident_traces as summaries
from dashboards.views import _incident_waterfall as waterfall

EMPTY_HOW = (
    "Traces arrive over OTLP from your services' OpenTelemetry SDKs or an OTel Collector; "
    "once one is stored, search it here or open it by id (`onepane traces` lists them)."
)


def load(trace_id: str, query: search.Search) -> dict[str, Any]:
    """The trace (if one is asked for), the catalog and the search results, in parallel."""
    requests: dict[str, tuple[str, api.Params | None]] = {
        "results": ("/api/v1/traces", query.params()),
    }
    if trace_id:
        # Folded by the server to the spans the waterfall draws: a trace of thousands of
        # spans is megabytes unfolded (the table of every span asks for them on demand).
        path = f"/api/v1/traces/{quote(trace_id, safe='')}"
        requests["trace"] = (path, {"spans": waterfall.MAX_ROWS})
        requests["catalog"] = ("/api/v1/workloads", None)
    return api.get_many(requests)


def show_results(results: Any, query: search.Search) -> None:
    if ui.failed(results, "the trace search"):
        return
    traces = results["traces"]
    what = "Matching traces" if query.filtered else "Latest traces"
    st.markdown(f"**{what}** ({len(traces)}{'+' if len(traces) >= search.LIMIT else ''}, "
                f"{query.sort} first, last {query.window})")  # fmt: skip
    if traces:
        summaries.show(traces, key="incident-results")
    elif query.filtered:
        st.info("No trace matches these filters in this window: widen the window or drop a filter.")
    else:
        ui.empty_state("traces", EMPTY_HOW)


def main() -> None:
    ui.start_page(
        "Incident",
        "One trace from the request through APIs, model inference and database calls: "
        "where its time went, what failed, what it logged.",
    )
    trace_id = state.text("Trace id", "trace", placeholder="32 hex characters, or 8+ of them")
    with st.expander("Search traces", expanded=not trace_id):
        query = search.form()
        results_slot = st.container()
    found = load(trace_id, query)
    if trace_id and not ui.failed(found["trace"], f"trace {trace_id}"):
        catalog = found["catalog"]
        if ui.failed(catalog, "the workload catalog"):
            catalog = {"workloads": []}
        trace_view.show(found["trace"], catalog["workloads"])
    with results_slot:
        show_results(found["results"], query)


main()
ui.footer()
