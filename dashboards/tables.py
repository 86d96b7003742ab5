"""Tables drawn as plain HTML: the pages' tables are short (a few dozen rows at most). The
browser inserts an HTML table in one go, where Streamlit's data grid loads and runs a canvas
component per table (0.3–1 s of a page's first render) and a Markdown table builds a React
component per cell (docs/dashboards.md).

``show`` takes the same ``column_config`` as ``st.dataframe`` (labels, ``NumberColumn``
printf formats, ``LinkColumn`` display texts, ``DatetimeColumn``, ``CheckboxColumn``;
``None`` hides a column), so a table reads the same either way. A table of more than
``MAX_ROWS`` rows keeps the data grid (scrolling, sorting).
"""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

MAX_ROWS = 100  # more than this: the data grid
CLASS = "onepane-table"
Config = Mapping[str, Any]
# NumberColumn's named formats, as printf formats.
_PRESETS = {"percent": "%.2f%%", "dollar": "$%.2f", "plain": "%g", "localized": "%g"}
# Once per page (ui.start_page). A table wider than the page scrolls sideways, as the data
# grid does.
STYLE = f"""<style>
table.{CLASS} {{display: block; overflow-x: auto; max-width: 100%; border-collapse: collapse;
  font-size: 0.875rem; margin: 0 0 1rem 0;}}
table.{CLASS} th, table.{CLASS} td {{padding: 0.25rem 0.6rem; text-align: left;
  border-bottom: 1px solid rgba(49, 51, 63, 0.1); vertical-align: top;}}
table.{CLASS} th {{font-weight: 600; color: rgba(49, 51, 63, 0.8); white-space: nowrap;}}
table.{CLASS} td.num, table.{CLASS} th.num {{text-align: right; white-space: nowrap;}}
</style>"""


def show(df: pd.DataFrame, column_config: Config | None = None, *, key: str | None = None) -> None:
    """``df`` as an HTML table (the data grid when it has more than MAX_ROWS rows)."""
    config = dict(column_config or {})
    if len(df) > MAX_ROWS:
        st.dataframe(df, hide_index=True, column_config=config, key=key)
        return
    st.html(table(df, config))


def table(df: pd.DataFrame, config: Config) -> str:
    """The HTML of ``df`` as ``show`` draws it."""
    columns = [c for c in df.columns if c not in config or config[c] is not None]
    specs = [_spec(config.get(c), str(c)) for c in columns]
    kinds = [
        ' class="num"' if _numeric(df[c], spec) else ""
        for c, (_, spec) in zip(columns, specs, strict=True)
    ]
    head = "".join(
        f"<th{kind}>{html.escape(label)}</th>"
        for (label, _), kind in zip(specs, kinds, strict=True)
    )
    rows = [
        "<tr>"
        + "".join(
            f"<td{kind}>{cell(value, spec)}</td>"
            for value, (_, spec), kind in zip(row, specs, kinds, strict=True)
        )
        + "</tr>"
        for row in df[columns].itertuples(index=False, name=None)
    ]
    return (
        f'<table class="{CLASS}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def cell(value: Any, spec: Mapping[str, Any]) -> str:
    """One value as its column shows it (HTML, escaped)."""
    if _missing(value):
        return ""
    kind = spec.get("type")
    if kind == "link":
        return _link(str(value), spec.get("display_text"))
    if kind == "checkbox":
        return "✓" if value else ""
    if kind == "datetime" or isinstance(value, datetime):
        return html.escape(_when(value))
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Number):
        return html.escape(number(value, spec.get("format")))
    return html.escape(str(value))


def number(value: Any, fmt: str | None) -> str:
    """``value`` with a printf ``fmt`` as Streamlit's NumberColumn takes it; money signs go
    before the currency (``-$19.17``)."""
    if fmt in _PRESETS:
        fmt, value = _PRESETS[fmt], value * (100 if fmt == "percent" else 1)
    if fmt and "%" in fmt:
        text = fmt % value
        return "-" + text.replace("-", "", 1) if value < 0 and not text.startswith("-") else text
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _spec(entry: Any, name: str) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, Mapping):
        return entry.get("label") or name, dict(entry.get("type_config") or {})
    return name, {}


def _numeric(series: pd.Series, spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == "number" or (
        pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    )


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _when(value: Any) -> str:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M:%S")


def _link(url: str, display: str | None) -> str:
    text = url
    if display:
        match = re.search(display, url) if "(" in display else None
        text = match.group(1) if match else display
    if not url.startswith(("/", "http://", "https://")):  # never a javascript: link
        return html.escape(text)
    return f'<a href="{html.escape(url)}" target="_self">{html.escape(text)}</a>'
