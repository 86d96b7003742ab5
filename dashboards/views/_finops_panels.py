"""The FinOps page's panels: cost by team, kind or workload; idle and unallocated cost; GPU
utilisation by hour of day; billed vs allocated; the model inventory; the gate audit log.

Each panel takes the document its API call returned (or the ApiError it raised) and the
container it draws into, so the page can place its selectors before it asks the API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboards import charts, tables, ui
from dashboards.state import Filters
from dashboards.views import _finops_data as data

MAX_METRICS = 8
_MONEY = st.column_config.NumberColumn(format="$%.2f")
_SMALL_MONEY = st.column_config.NumberColumn(format="$%.4f")


def _metrics(where: DeltaGenerator, figures: Sequence[tuple[str, str, str | None]]) -> None:
    """A row of st.metric: (label, value, help)."""
    for column, (label, value, help_text) in zip(
        where.columns(max(1, len(figures))), figures, strict=False
    ):
        column.metric(label, value, help=help_text)


def _who(f: Filters) -> str:
    return f.workload or (f"team {f.team}" if f.team else "every team")


# -- cost ------------------------------------------------------------------------------


def cost(where: DeltaGenerator, result: Any, f: Filters, by: str) -> data.Cost | None:
    """Totals per ``by`` as metrics, the stacked bars over time and the table."""
    with where:
        if ui.failed(result, "the cost allocation"):
            return None
        found = data.cost(result, f)
        if found.empty:
            ui.empty_state(
                "cost",
                "Onepane prices each pod-hour from the Kubernetes inventory: start the server "
                "with `onepane serve --kube-api URL` (or in-cluster), and send spans with the "
                "workload's Kubernetes attributes, as below; costs appear at the next hourly "
                "rollup.",
            )
            return found
        if found.rows.empty:
            st.info(f"No cost for {_who(f)} in the last {f.window}.")
            return found
        per = data.totals(found.rows, by)
        total = float(per["cost"].sum())
        figures = [(f"Total ({_who(f)})", ui.money(total), "allocated cost in the window")]
        figures += [
            (str(r[by]), ui.money(r["cost"]), f"{r['share_pct']:.1f}% of the total")
            for r in per.head(MAX_METRICS - 1).to_dict("records")
        ]
        _metrics(st, figures)
        charts.bars(data.over_time(found.rows, by), "time", "cost", by, y_title="cost ($)")
        tables.show(
            per,
            column_config={
                "cost": _MONEY,
                "cpu_cost": _MONEY,
                "ram_cost": _MONEY,
                "gpu_cost": _MONEY,
                "gpu_idle_cost": _MONEY,
                "share_pct": st.column_config.NumberColumn("share", format="%.1f%%"),
            },
        )
        return found


def idle(where: DeltaGenerator, found: data.Cost | None, f: Filters) -> None:
    """The nodes' idle cost, GPUs allocated but unused, and cost of workloads with no team."""
    with where:
        if found is None or found.empty:
            st.caption("Idle cost appears with the first costs.")
            return
        node_idle = found.idle[["cost", "cpu_cost", "ram_cost", "gpu_cost"]].sum()
        gpu_unused = data.gpu_idle_in_allocations(found.rows)
        no_team = found.rows.loc[found.rows["team"] == data.UNALLOCATED, "cost"].sum()
        _metrics(
            st,
            [
                (
                    "Idle capacity (__idle__)",
                    ui.money(node_idle["cost"]),
                    "what the nodes cost beyond what pods were allocated, cluster-wide",
                ),
                ("of which GPUs", ui.money(node_idle["gpu_cost"]), "GPUs no pod had requested"),
                (
                    "GPU idle in allocations",
                    ui.money(gpu_unused),
                    "allocated GPUs' cost × (1 − measured utilisation); – when never measured",
                ),
                (
                    "No team (__unallocated__)",
                    ui.money(float(no_team)),
                    "workloads without a team in the catalog or their labels",
                ),
            ],
        )
        if f.team or f.workload:
            st.caption(f"Idle capacity is the cluster's; the other figures are {_who(f)}'s.")
        if not found.idle.empty and len(found.idle) > 1:
            series = found.idle[["time", "cpu_cost", "ram_cost", "gpu_cost"]].melt(
                id_vars="time",
                value_vars=["cpu_cost", "ram_cost", "gpu_cost"],
                var_name="resource",
                value_name="cost",
            )
            series["resource"] = series["resource"].str.removesuffix("_cost")
            charts.bars(series, "time", "cost", "resource", y_title="idle cost ($)", height=180)


# -- GPU heatmap -----------------------------------------------------------------------


def _heatmap_chart(frame: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X("hour:O", title="hour of day (UTC)", scale=alt.Scale(domain=list(range(24)))),
            y=alt.Y("GPU:N", title=None),
            color=alt.Color(
                "utilisation:Q",
                title="utilisation %",
                scale=alt.Scale(scheme="viridis", domain=[0, 100]),
            ),
            tooltip=["GPU", "hour", alt.Tooltip("utilisation:Q", format=".1f"), "samples"],
        )
        .properties(height=max(120, 40 * frame["GPU"].nunique()))
    )


def gpu_heatmap(where: DeltaGenerator, result: Any) -> None:
    with where:
        if ui.failed(result, "GPU utilisation by hour"):
            return
        frame = data.heatmap(result.get("cells") or [])
        if frame.empty:
            st.info(
                "**No GPU samples yet.** Point Onepane at each node's dcgm-exporter "
                "(`onepane serve --gpu-target http://NODE:9400/metrics`), or relay the "
                "`DCGM_FI_*` gauges over OTLP from an OpenTelemetry Collector."
            )
            return
        st.altair_chart(_heatmap_chart(frame), width="stretch")
        st.markdown(data.idle_sentence(frame))


# -- billed vs allocated ---------------------------------------------------------------


def reconciliation(where: DeltaGenerator, result: Any) -> None:
    with where:
        if ui.failed(result, "billed vs allocated"):
            return
        totals = result.get("totals") or {}
        if not totals.get("billed_days"):
            st.info(
                "**No bill imported yet.** Import your cloud's FOCUS export (CSV or Parquet): "
                "`onepane cost import-bill FILE`, or `POST /api/v1/billing/imports`."
            )
            return
        gap_pct = totals.get("gap_pct")
        _metrics(
            st,
            [
                ("Billed", ui.money(totals.get("billed")), "the FOCUS bill, days it covers"),
                ("Allocated", ui.money(totals.get("allocated")), "Onepane's node cost, 30 days"),
                (
                    "Gap",
                    ui.money(totals.get("gap")),
                    None if gap_pct is None else f"{gap_pct:+.1f}% of allocated",
                ),
                ("Billed days", str(totals.get("billed_days")), None),
            ],
        )
        days = data.reconciliation_days(result)
        charts.lines(data.reconciliation_series(days), "cost", "series", y_title="cost ($)")
        with st.expander("Day by day"):
            tables.show(
                days.iloc[::-1],
                column_config={
                    "allocated": _MONEY,
                    "billed": _MONEY,
                    "gap": _MONEY,
                    "gap_pct": st.column_config.NumberColumn("gap %", format="%.1f"),
                },
            )


# -- model inventory -------------------------------------------------------------------


def inventory(where: DeltaGenerator, result: Any, f: Filters) -> None:
    """Every model version seen serving, exportable as the API's CSV."""
    with where:
        if ui.failed(result, "the model inventory"):
            return
        rows = data.inventory(result.get("models") or [], f)
        if not rows:
            st.info(
                "**No models seen yet.** Onepane lists every model version that serves "
                "inference spans: set `ml.model.name` and `ml.model.version` (or `gen_ai.*`) "
                "on them."
            )
            return
        serving = sum(1 for r in rows if r.get("serving"))
        st.caption(f"{len(rows)} model versions seen in 30 days, {serving} serving now.")
        tables.show(
            pd.DataFrame(rows),
            column_config={
                "unit_cost": _SMALL_MONEY,
                "cost": _MONEY,
                "drift_share": st.column_config.NumberColumn(format="%.2f"),
            },
        )
        st.download_button(
            "Download CSV",
            data.inventory_csv(rows),
            file_name="onepane-models.csv",
            mime="text/csv",
            key="finops-inventory-csv",
            on_click="ignore",
        )


# -- gate audit log --------------------------------------------------------------------


def gate_log(where: DeltaGenerator, result: Any) -> None:
    with where:
        if ui.failed(result, "the gate decisions"):
            return
        decisions = result.get("decisions") or []
        if not decisions:
            st.info(
                "**No gate decisions here.** Releases checked with `onepane gate check` "
                "(CI), `onepane gate verify` (canaries) or the admission webhook are "
                "recorded here."
            )
            return
        tables.show(
            data.gate_rows(decisions),
            column_config={
                "unit_cost": _SMALL_MONEY,
                "time": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
            },
        )
