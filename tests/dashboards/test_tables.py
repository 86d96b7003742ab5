"""The pages' tables as HTML: each column config of st.dataframe reads the same."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import tables
from tests.dashboards import pages


def test_formats_labels_links_and_hidden_columns() -> None:
    df = pd.DataFrame(
        {
            "workload": ["shop/checkout-api", "a<b>"],
            "rate_per_s": [1.23456, 0.5],
            "cost": [-19.174, 1234.5],
            "share": [0.1234, None],
            "trace": ["/incident?trace=0af7651916cd43dd8448eb211c80319c", None],
            "internal": [1, 2],
            "serving": [True, False],
            "when": pd.to_datetime(["2026-12-07T10:00:00Z", "2026-12-07T11:30:05Z"]),
            "count": [1234567, 3],
        }
    )
    text = tables.table(
        df,
        {
            "rate_per_s": st.column_config.NumberColumn("req/s", format="%.3f"),
            "cost": st.column_config.NumberColumn(format="$%.2f"),
            "share": st.column_config.NumberColumn("share", format="percent"),
            "trace": st.column_config.LinkColumn("Trace", display_text=r"trace=([0-9a-f]{8})"),
            "internal": None,
            "serving": st.column_config.CheckboxColumn("serving now"),
            "when": "time (UTC)",
        },
    )
    assert text.startswith(f'<table class="{tables.CLASS}"><thead><tr><th>workload</th>')
    assert '<th class="num">req/s</th>' in text and "internal" not in text
    assert (
        '<td><a href="/incident?trace=0af7651916cd43dd8448eb211c80319c" target="_self">'
        "0af76519</a></td>" in text
    )
    assert "<td>a&lt;b&gt;</td>" in text  # values are text, never markup
    [shown] = [pd.DataFrame(rows, columns=head) for head, *rows in _parse(text)]
    assert shown.to_dict("records") == [
        {
            "workload": "shop/checkout-api", "req/s": "1.235", "cost": "-$19.17",
            "share": "12.34%", "Trace": "/incident?trace=0af7651916cd43dd8448eb211c80319c",
            "serving now": "✓", "time (UTC)": "2026-12-07 10:00:00", "count": "1,234,567",
        },
        {
            "workload": "a<b>", "req/s": "0.500", "cost": "$1234.50", "share": "",
            "Trace": "", "serving now": "", "time (UTC)": "2026-12-07 11:30:05", "count": "3",
        },
    ]  # fmt: skip


def test_a_link_that_is_not_a_page_or_web_address_is_text() -> None:
    df = pd.DataFrame({"details": ["javascript:alert(1)"]})
    text = tables.table(df, {"details": st.column_config.LinkColumn("details")})
    assert "<a " not in text and "<td>javascript:alert(1)</td>" in text


def test_numbers_without_a_format() -> None:
    assert tables.number(3, None) == "3"
    assert tables.number(2.0, None) == "2"
    assert tables.number(3.14159, None) == "3.1416"
    assert tables.number(-5.25, "%+.1f%%") == "-5.2%"
    assert tables.number(-0.5, "$%.4f") == "-$0.5000"


def _parse(text: str) -> list[list[list[str]]]:
    parser = pages._Tables()
    parser.feed(text)
    return parser.tables
