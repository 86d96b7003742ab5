"""The incident page's trace search: a form whose every field is kept in the URL, turned
into the parameters of ``GET /api/v1/traces``."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboards import state

LIMIT = 50
SORTS = ("newest", "slowest")


@dataclass(frozen=True)
class Search:
    """What the form asks for (empty text: no filter on that field)."""

    service: str = ""
    route: str = ""
    model: str = ""
    min_duration_ms: str = ""
    errors_only: bool = False
    attr: str = ""
    window: str = "1h"
    sort: str = "newest"

    def params(self) -> dict[str, str | int | None]:
        """The query of ``GET /api/v1/traces`` (the API checks each value)."""
        return {
            "service": self.service or None,
            "route": self.route or None,
            "model": self.model or None,
            "min_duration_ms": self.min_duration_ms or None,
            "status": "error" if self.errors_only else None,
            "attr": self.attr or None,
            "since": self.window,
            "sort": self.sort,
            "limit": LIMIT,
        }

    @property
    def filtered(self) -> bool:
        return any(
            (
                self.service,
                self.route,
                self.model,
                self.min_duration_ms,
                self.errors_only,
                self.attr,
            )
        )


def _initial(name: str) -> str:
    """A field's value from the URL, else from this page's last run in this session.
    (Not from other pages: another page's ``model`` must not narrow this search.)"""
    value = st.query_params.get(name)
    return st.session_state.get(f"incident:{name}", "") if value is None else value


def _keep(name: str, value: str) -> None:
    st.session_state[f"incident:{name}"] = value
    if not value:
        if name in st.query_params:
            del st.query_params[name]
    elif st.query_params.get(name) != value:
        st.query_params[name] = value


def text(label: str, name: str, where: DeltaGenerator, placeholder: str) -> str:
    """A text field kept in the URL under ``name``."""
    key = f"incident-widget:{name}"
    if key not in st.session_state:
        st.session_state[key] = _initial(name)
    value = str(where.text_input(label, key=key, placeholder=placeholder)).strip()
    _keep(name, value)
    return value


def choice(label: str, name: str, options: tuple[str, ...], where: DeltaGenerator) -> str:
    """A select box kept in the URL under ``name`` (the first option: not in the URL)."""
    key = f"incident-widget:{name}"
    if st.session_state.get(key) not in options:
        initial = _initial(name)
        st.session_state[key] = initial if initial in options else options[0]
    value = str(where.selectbox(label, options, key=key))
    _keep(name, "" if value == options[0] else value)
    return value


def flag(label: str, name: str, where: DeltaGenerator) -> bool:
    """A checkbox kept in the URL as ``name=1``."""
    key = f"incident-widget:{name}"
    if key not in st.session_state:
        st.session_state[key] = _initial(name) == "1"
    value = bool(where.checkbox(label, key=key))
    _keep(name, "1" if value else "")
    return value


def form() -> Search:
    """The search form; its values are in the URL, so a search can be shared. The window
    is the sidebar's, as on every page."""
    window = state.segments("Window", "window", state.WINDOWS, "24h", where=st.sidebar)
    box = st.form("trace-search", border=True)
    with box:
        first = box.columns(4)
        service = text("Service", "service", first[0], "checkout-api")
        route = text("Route", "route", first[1], "/api/checkout")
        model = text("Model", "model", first[2], "fraud-model")
        min_ms = text("Min duration (ms)", "min_ms", first[3], "500")
        second = box.columns([3, 1, 1])
        attr = text("Attribute", "attr", second[0], "key=value, or key")
        sort = choice("Order", "sort", SORTS, second[1])
        with second[2]:
            st.write("")  # lines the checkbox up with the inputs
            errors_only = flag("Errors only", "errors", second[2])
        st.form_submit_button("Search", icon=":material/search:")
    return Search(service, route, model, min_ms, errors_only, attr, window, sort)
