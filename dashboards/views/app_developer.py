"""App developer view: my services by team; per route rate, errors and latency over time;
recent deploys with the gate's verdicts; cost per 1k requests; the slowest and failed
traces, each a link to the incident view.

Reads ``/api/v1/workloads`` (the filters), then in parallel ``/api/v1/stats`` (by route
and by workload), ``/api/v1/deployments``, ``/api/v1/gate/decisions``,
``/api/v1/unit-costs`` and ``/api/v1/traces`` (slowest and failed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from dashboards import api, charts, state, tables, ui
from dashboards.views import _appdev_data as data
from dashboards.views import _incident_traces as traces

EMPTY_HOW = (
    "A service shows here within a minute of its first spans (the cost rollup names each "
    "workload), once it sends traces over OTLP: the OpenTelemetry SDK of your language, or "
    "an OTel Collector in front of it. Its team comes from the `catalog` in `onepane.yaml` "
    "or the `team` (`onepane.dev/team`) label of its Kubernetes workload."
)
LATENCIES = ("p50", "p95", "p99")
CHARTS = {"rate": "Requests/s", "errors": "Error %", "latency": "Latency"}


def _ms(label: str) -> Any:
    return st.column_config.NumberColumn(f"{label} (ms)", format="%.1f")


# The request statistics both the services and the routes table show.
_STATS = {
    "rate_per_s": st.column_config.NumberColumn("req/s", format="%.3f"),
    "error_pct": st.column_config.NumberColumn("error %", format="%.2f%%"),
    **{f"p{q}_ms": _ms(f"p{q}") for q in (50, 95, 99)},
}


def show_metrics(t: data.Totals) -> None:
    values = data.metric_values(t)
    for column, (label, value) in zip(st.columns(len(values)), values.items(), strict=True):
        column.metric(label, value)


def show_services(table: Any) -> None:
    st.subheader("My services")
    tables.show(
        table,
        key="appdev-services",
        column_config={
            **_STATS,
            "unit_cost": st.column_config.NumberColumn("cost / 1k req", format="$%.4f"),
            "last_seen": st.column_config.DatetimeColumn("last seen (UTC)"),
        },
    )


def show_routes(doc: Mapping[str, Any], groups: Sequence[Mapping[str, Any]], window: str) -> None:
    st.subheader("Routes")
    if not groups:
        st.info(f"No requests with an HTTP route in the last {window}.")
        return
    tables.show(
        data.route_table(groups),
        key="appdev-routes",
        column_config={**_STATS, "max_ms": _ms("max")},
    )
    keys = list(dict.fromkeys(g["key"] for g in groups))
    left, middle, right = st.columns([2, 2, 1])
    route = state.select("Route in the chart", "route", [state.ALL, *keys], state.ALL, where=left)
    shown = state.segments(
        "Chart", "chart", list(CHARTS), "latency", where=middle, format_func=CHARTS.__getitem__
    )
    latency = state.segments("Latency", "latency", LATENCIES, "p95", where=right)
    series = data.route_series(doc, groups, None if route == state.ALL else route)
    if (
        route == state.ALL
        and len({(g["key"], g["workload"]) for g in groups}) > data.MAX_CHART_ROUTES
    ):
        st.caption(f"The chart shows the {data.MAX_CHART_ROUTES} busiest routes; pick one above.")
    step = doc.get("step", "")
    # One chart at a time: each chart drawn costs the page's first render a few tenths of a
    # second in the browser.
    if shown == "rate":
        charts.lines(
            series, "rate_per_s", "route", title=f"Requests/s ({step} buckets)", y_title="req/s"
        )
    elif shown == "errors":
        charts.lines(series, "error_pct", "route", title=f"Error % ({step} buckets)", y_title="%")
    else:
        charts.lines(
            series,
            f"{latency}_ms",
            "route",
            title=f"{latency} latency ({step} buckets)",
            y_title="ms",
        )


def show_deploys(found: Mapping[str, Any], scope: Sequence[str]) -> None:
    st.subheader("Recent deploys and the cost gate")
    if ui.failed(found["deployments"], "deployments"):
        return
    decisions = found["decisions"]
    if ui.failed(decisions, "gate decisions"):
        decisions = {"decisions": []}
    table = data.deploy_table(found["deployments"]["deployments"], decisions["decisions"], scope)
    if table.empty:
        st.info(
            "No release has passed the cost gate yet: run `onepane gate check` in your "
            "deploy pipeline (or install the admission webhook) and each release shows here."
        )
        return
    tables.show(
        table,
        key="appdev-deploys",
        column_config={
            "time": st.column_config.DatetimeColumn("time (UTC)"),
            "unit_cost": st.column_config.NumberColumn("projected cost / 1k req", format="%.4f"),
            "limit": "limit",
            "change_pct": st.column_config.NumberColumn("change", format="%+.1f%%"),
            "decision": st.column_config.LinkColumn("gate decision", display_text="open"),
        },
    )


def show_unit_cost(rows: Any, scope: Sequence[str], by_version: bool, window: str) -> None:
    st.subheader("Cost per 1k requests")
    if ui.failed(rows, "unit costs"):
        return
    series = data.unit_series(rows["unit_costs"], scope, by_version)
    if series.empty:
        st.info(
            f"No cost per request in the last {window} yet: costs are allocated per hour from "
            "pod usage and prices, so the first point comes after an hour of traffic."
        )
        return
    what = "version" if by_version else "workload"
    charts.lines(
        series, "unit_cost", "line", title=f"Per hour, by {what}", y_title="$ per 1k requests"
    )


def show_traces(found: Mapping[str, Any], scope: Sequence[str], window: str) -> None:
    # One under the other: a table of traces is as wide as the page.
    for kind, title, order in (
        ("slowest", "Slowest traces", "slowest"),
        ("failed", "Failed traces", "newest"),
    ):
        with st.container():
            st.subheader(title)
            results = [found[name] for name in found if name.startswith(f"{kind}:")]
            error = next((r for r in results if isinstance(r, api.ApiError)), None)
            if error is not None:
                ui.failed(error, title.lower())
                continue
            merged = traces.merge((r["traces"] for r in results), order, data.TRACES)
            if merged:
                traces.show(merged, key=f"appdev-{kind}")
            else:
                st.caption(f"None in the last {window}.")


def main() -> None:
    ui.start_page(
        "App developer",
        "Your services: requests, errors and latency per route, what each deploy changed, "
        "what a request costs, and the traces to look at first.",
    )
    catalog = api.get_many({"c": ("/api/v1/workloads", None)})["c"]
    if ui.failed(catalog, "the workload catalog"):
        return
    workloads = catalog["workloads"]
    f = state.filters(workloads, data.KINDS)
    scope = state.workloads_of(workloads, f, data.KINDS)
    if not scope:
        ui.empty_state("app services", EMPTY_HOW)
        return
    found = api.get_many(data.requests(f, scope))
    if ui.failed(found["routes"], "route statistics") or ui.failed(
        found["services"], "service statistics"
    ):
        return
    units = found["unit_total"]
    unit_rows = [] if ui.failed(units, "unit costs") else data.mine(units["unit_costs"], scope)
    services = data.mine(found["services"]["groups"], scope)
    show_metrics(data.totals(services, unit_rows))
    if not services:
        st.info(f"No requests from {', '.join(scope)} in the last {f.window}.")
    show_services(data.service_table(workloads, scope, services, unit_rows))
    show_routes(found["routes"], data.mine(found["routes"]["groups"], scope), f.window)
    show_deploys(found, scope)
    show_unit_cost(found["unit_series"], scope, len(scope) == 1, f.window)
    show_traces(found, scope, f.window)


main()
ui.footer()
