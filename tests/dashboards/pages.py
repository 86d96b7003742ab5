"""Opening a page of the app in Streamlit's AppTest, and reading what it shows."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

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


def table_with(at: AppTest, columns: Collection[str]) -> pd.DataFrame:
    """The one table on the page holding ``columns``."""
    found = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]
