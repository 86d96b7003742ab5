"""What every page shares: its header, errors, the empty-store guidance, number formats,
links between pages and the footer that tells when the page finished."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from dashboards import api, state, tables

_STARTED = "ui:page_started"


def start_page(title: str, caption: str) -> None:
    """The page's title and what it answers; starts its render clock."""
    st.session_state[_STARTED] = time.perf_counter()
    st.html(tables.STYLE)
    st.title(title)
    st.caption(caption)


def footer() -> None:
    """The last element of every page: where the data came from and how long it took
    (the end-to-end test and bench/dashboards.py wait for this line)."""
    started = st.session_state.get(_STARTED, time.perf_counter())
    st.caption(
        f"Data from the Onepane API at {api.server_url()} · page rendered in "
        f"{time.perf_counter() - started:.2f} s"
    )


def failed(result: Any, what: str) -> bool:
    """Show an API error in place of a panel; True when ``result`` is one."""
    if isinstance(result, api.ApiError):
        st.error(f"Cannot load {what}: {result}")
        return True
    return False


def endpoints() -> dict[str, str]:
    """Where to send telemetry, as the server reports it (its /healthz)."""
    try:
        listeners = api.get("/healthz").get("listeners") or {}
    except api.ApiError:
        listeners = {}
    return {
        "otlp_http": listeners.get("otlp_http", "http://<onepane-host>:4318"),
        "otlp_grpc": listeners.get("otlp_grpc", "<onepane-host>:4317"),
        "api": listeners.get("api", api.server_url()),
    }


def empty_state(what: str, how: str) -> None:
    """A panel with no data yet: what to send and how, with the real endpoints."""
    ends = endpoints()
    st.info(
        f"**No {what} yet.** {how} A workload's team comes from the `catalog` section of "
        "`onepane.yaml` or the `team` label of its Kubernetes workload."
    )
    st.code(
        "export OTEL_EXPORTER_OTLP_ENDPOINT=" + ends["otlp_http"] + "\n"
        "export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf   # or grpc: " + ends["otlp_grpc"] + "\n"
        "export OTEL_SERVICE_NAME=checkout-api\n"
        'export OTEL_RESOURCE_ATTRIBUTES="k8s.namespace.name=shop,'
        'k8s.deployment.name=checkout-api,deployment.environment.name=prod"\n'
        "opentelemetry-instrument python app.py",
        language="sh",
    )


def page_url(page: str, params: Mapping[str, str | None] | None = None) -> str:
    """A link to another page that keeps the persona (and adds ``params``)."""
    query = {"persona": state.persona(), **(params or {})}
    clean = {k: v for k, v in query.items() if v}
    return f"/{page}" + (f"?{urlencode(clean)}" if clean else "")


def trace_link(trace_id: str, label: str | None = None) -> str:
    """A Markdown link to the incident view of one trace."""
    return f"[{label or trace_id[:16]}]({page_url('incident', {'trace': trace_id})})"


def money(value: float | None, currency: str = "$") -> str:
    """``$1,234.50``; ``$0.0042`` below a cent; ``-$517.57`` below zero."""
    if value is None:
        return "–"
    sign, size = ("-" if value < 0 else ""), abs(value)
    return (
        f"{sign}{currency}{size:,.2f}"
        if size >= 0.01 or size == 0
        else f"{sign}{currency}{size:.4f}"
    )


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}%"
