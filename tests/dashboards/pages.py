"""Opening a page of the app in Streamlit's AppTest, and reading what it shows."""

from __future__ import annotations

import html
from collections.abc import Collection
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from dashboards import tables as ui_tables

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"


def open_page(
    persona: str, view: str | None = None, *, errors_ok: bool = False, **params: str
) -> AppTest:
    """The app as ``persona`` with ``params`` in the URL, on its own page (or ``view``):
    run, with no exception (and no error box unless ``errors_ok``), footer drawn."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["persona"] = persona
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    if view is not None:
        at.switch_page(f"views/{view}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    if not errors_ok:
        assert not at.error, [e.value for e in at.error]
    assert at.main.caption[-1].value.startswith("Data from the Onepane API")  # the footer
    return at


def metrics(at: AppTest) -> dict[str, str]:
    """Each metric's value by its label."""
    return {m.label: m.value for m in at.metric}


def metric(at: AppTest, label: str) -> str:
    [value] = [m.value for m in at.metric if m.label == label]
    return value


class _Tables(HTMLParser):
    """The tables of dashboards/tables.py's HTML: each cell's text; a link's URL."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self._in_link = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a" and self._cell is not None:
            self._cell.append(dict(attrs).get("href") or "")
            self._in_link = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "a":
            self._in_link = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._in_link:
            self._cell.append(data)


def tables(at: AppTest) -> list[pd.DataFrame]:
    """Every table the page shows (dashboards/tables.py draws them as HTML), as text: one
    column per header, each cell as shown; a link cell holds the URL it opens."""
    found = []
    for element in at.get("html"):
        parser = _Tables()
        parser.feed(element.proto.body)
        for header, *rows in (t for t in parser.tables if t):
            found.append(pd.DataFrame(rows, columns=header))
    return found


def table_with(at: AppTest, columns: Collection[str]) -> pd.DataFrame:
    """The one table on the page whose headers include ``columns``."""
    found = [t for t in tables(at) if set(columns) <= set(t.columns)]
    assert len(found) == 1, [list(t.columns) for t in tables(at)]
    return found[0]


def num(value: float | None, fmt: str | None = None) -> str:
    """A number as a table shows it (empty when there is none)."""
    return "" if value is None else ui_tables.number(value, fmt)


def trace_ids(table: pd.DataFrame) -> list[str]:
    """The trace ids a table of traces links to (its Trace column opens the incident view)."""
    return [url.rsplit("trace=", 1)[1] for url in table["Trace"]]


def text(value: object, fmt: str | None = None) -> str:
    """A value as a table cell shows it: numbers with the column's printf ``fmt``, a
    checkbox column (``fmt="check"``) as ✓ (dashboards/tables.py; tests/dashboards/
    test_tables.py pins the formats themselves)."""
    spec = {"type": "checkbox"} if fmt == "check" else {"format": fmt}
    return html.unescape(ui_tables.cell(value, spec))


def expect(rows: list[dict], columns: dict[str, tuple[str, str | None]]) -> list[dict[str, str]]:
    """``rows`` of the API as a table shows them: ``columns`` maps each header to the row's
    key and the column's format."""
    return [{label: text(row[key], fmt) for label, (key, fmt) in columns.items()} for row in rows]


def shown(table: pd.DataFrame, columns: dict[str, tuple[str, str | None]]) -> list[dict]:
    """The cells of ``columns`` (as in :func:`expect`), row by row."""
    return table[list(columns)].to_dict("records")
