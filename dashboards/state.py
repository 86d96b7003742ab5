"""What a page shows, kept in the URL: persona, team, workload, window and each page's own
filters, so a link pasted into an incident channel opens the same view.

Streamlit keeps the query string per page; the session keeps the values across pages, and
each page writes the ones it uses back into its URL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

PERSONAS = {
    "app": "App developer",
    "ml": "ML engineer",
    "data": "Data scientist",
    "finops": "Platform / FinOps",
}
WINDOWS = ("1h", "6h", "24h", "7d", "30d")
ALL = "all"
_CHOSEN = "state:persona-chosen"


@dataclass(frozen=True)
class Filters:
    """The filters every page shares."""

    persona: str | None
    team: str | None  # None: every team
    workload: str | None  # None: every workload the page covers
    window: str  # 1h, 6h, 24h, 7d, 30d


def param(name: str, default: str | None = None) -> str | None:
    """A filter's value: from the URL, else from this session, else ``default``."""
    value = st.query_params.get(name)
    if value is None:
        value = st.session_state.get(f"url:{name}")
    return default if value in (None, "") else value


def set_param(name: str, value: str | None) -> None:
    """Keep a filter in the session and in the URL (removed when empty or 'all')."""
    st.session_state[f"url:{name}"] = value
    if value in (None, "", ALL):
        if name in st.query_params:
            del st.query_params[name]
    elif st.query_params.get(name) != value:
        st.query_params[name] = value


def persona() -> str | None:
    """The persona chosen on the first visit, if it is one Onepane knows."""
    chosen = param("persona")
    return chosen if chosen in PERSONAS else None


def choose_persona(key: str) -> None:
    """Keep the persona chosen on the welcome page; the next run opens its page."""
    set_param("persona", key)
    st.session_state[_CHOSEN] = True


def persona_just_chosen() -> bool:
    """True once, on the run right after :func:`choose_persona`."""
    return bool(st.session_state.pop(_CHOSEN, False))


def select(
    label: str,
    name: str,
    options: Sequence[str],
    default: str,
    *,
    where: Callable[..., object] | None = None,
    format_func: Callable[[str], str] = str,
) -> str:
    """A select box whose choice lives in the URL under ``name``."""
    return _choice("selectbox", label, name, options, default, where, format_func=format_func)


def segments(
    label: str,
    name: str,
    options: Sequence[str],
    default: str,
    *,
    where: Callable[..., object] | None = None,
    format_func: Callable[[str], str] = str,
) -> str:
    """A row of buttons, one always chosen, whose choice lives in the URL under ``name``:
    for a few fixed options (a window, a chart), one click instead of two and lighter for
    the browser to draw than a select box."""
    return _choice(
        "segmented_control", label, name, options, default, where,
        format_func=format_func, required=True,
    )  # fmt: skip


def _choice(
    widget: str,
    label: str,
    name: str,
    options: Sequence[str],
    default: str,
    where: Callable[..., object] | None,
    **kw: Any,
) -> str:
    options = list(options)
    current = param(name, default)
    if current not in options:
        current = default if default in options else options[0]
    key = f"widget:{name}"
    _keep(key, options, current)
    draw = getattr(where or st, widget)
    value = draw(label, options, key=key, **kw)
    set_param(name, value)
    return value


def _keep(key: str, options: Sequence[str] | None, current: str) -> None:
    """Give the widget under ``key`` its value before it is drawn: the one it had (also
    when it was drawn on another page: a widget's identity includes its page, so without
    setting it again here Streamlit would drop it and fall back to the first option),
    else ``current`` (from the URL or the session)."""
    held = st.session_state.get(key)
    if held is None or (options is not None and held not in options):
        st.session_state[key] = current
    else:
        st.session_state[key] = held


def text(label: str, name: str, *, where: Callable[..., object] | None = None, **kw: object) -> str:
    """A text input whose value lives in the URL under ``name``."""
    key = f"widget:{name}"
    _keep(key, None, param(name, "") or "")
    value = (where or st).text_input(label, key=key, **kw)  # type: ignore[union-attr]
    set_param(name, value.strip() or None)
    return value.strip()


def filters(
    catalog: Sequence[Mapping[str, Any]],
    kinds: Sequence[str] = ("app", "model", "pipeline"),
    window_default: str = "24h",
) -> Filters:
    """The shared filters in the sidebar: team, then a workload of that team (of the page's
    ``kinds``, from ``GET /api/v1/workloads``), then the window."""
    sidebar = st.sidebar
    mine = [w for w in catalog if w.get("kind") in kinds]
    teams = sorted({w["team"] for w in mine if w.get("team")})
    team = select("Team", "team", [ALL, *teams], ALL, where=sidebar)
    names = [w["workload"] for w in mine if team == ALL or w.get("team") == team]
    workload = select("Workload", "workload", [ALL, *names], ALL, where=sidebar)
    window = segments("Window", "window", WINDOWS, window_default, where=sidebar)
    return Filters(
        persona=persona(),
        team=None if team == ALL else team,
        workload=None if workload == ALL else workload,
        window=window,
    )


def workloads_of(
    catalog: Sequence[Mapping[str, Any]], f: Filters, kinds: Sequence[str]
) -> list[str]:
    """The workloads a page covers under the filters: the chosen one, else the team's."""
    if f.workload:
        return [f.workload]
    return [
        w["workload"]
        for w in catalog
        if w.get("kind") in kinds and (f.team is None or w.get("team") == f.team)
    ]
