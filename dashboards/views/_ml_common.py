"""What the ML engineer and data scientist pages share: tables built from API rows, the
guidance for a store without models, and which model names belong to which workload."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import api, state, tables, ui

Rows = Sequence[Mapping[str, Any]]

MODEL_SNIPPET = """\
# on each inference span (OpenTelemetry SDK), what Onepane reads as a prediction:
span.set_attribute("ml.model.name", "fraud-model")
span.set_attribute("ml.model.version", "3.2.0")
span.set_attribute("ml.feature.amount", 129.5)      # sampled inputs: what drift compares
span.set_attribute("ml.feature.country", "DE")
# the reference the inputs are compared with (the training data), then a first run:
#   onepane drift reference add --model fraud-model --version 3.2.0 training.csv
#   onepane drift run --model fraud-model --window 24h"""


def frame(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """API rows as a frame holding exactly ``columns``, in that order (None when absent)."""
    return pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=list(columns))


def table(df: pd.DataFrame, config: Mapping[str, Any] | None = None) -> None:
    """A frame as a table, without its index."""
    tables.show(df, column_config=dict(config or {}))


def number(label: str, fmt: str = "%.2f") -> Any:
    return st.column_config.NumberColumn(label, format=fmt)


def money(label: str) -> Any:
    return st.column_config.NumberColumn(label, format="$%.4f")


def link(label: str, text: str) -> Any:
    """A column of page links shown as ``text`` (a regular expression over the URL)."""
    return st.column_config.LinkColumn(label, display_text=text)


def time_column(label: str) -> Any:
    return st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm:ss", timezone="UTC")


def times(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """ISO 8601 strings of ``columns`` parsed as UTC times."""
    for column in columns:
        if column in df.columns:
            df[column] = pd.to_datetime(df[column], utc=True, format="ISO8601")
    return df


def window_param(default: str = "24h") -> str:
    """The window the URL asks for, before the sidebar is drawn (the filter's own rule)."""
    chosen = state.param("window", default)
    return chosen if chosen in state.WINDOWS else default


def cost_step(window: str) -> str:
    """The step of a cost series over ``window``: hourly, daily over 30 days."""
    return "1d" if window == "30d" else "1h"


def model_workloads(*docs: Any) -> dict[str, str]:
    """Model name -> workload, from any answered document with ``model`` and ``workload``
    rows (the model inventory, ``stats?by=model``)."""
    found: dict[str, str] = {}
    for doc in docs:
        if isinstance(doc, api.ApiError) or not doc:
            continue
        for row in doc.get("models") or doc.get("groups") or []:
            if row.get("model") and row.get("workload"):
                found.setdefault(row["model"], row["workload"])
    return found


def no_models(what: str) -> None:
    """The guidance for a store (or team) without model telemetry yet."""
    ui.empty_state(
        what,
        "Onepane learns about a model from its inference spans: send them over OTLP with "
        "the `ml.model.*` attributes below (the endpoints are this server's).",
    )
    st.code(MODEL_SNIPPET, language="python")


def empty(result: Any, key: str, what: str) -> bool:
    """True (with a note) when ``result`` answered no ``key`` rows; errors are shown too."""
    if ui.failed(result, what):
        return True
    if not result.get(key):
        st.info(f"No {what} in this window for the filters chosen.")
        return True
    return False
