"""Onepane's dashboards: ``streamlit run dashboards/app.py`` (``onepane up`` does it).

The persona is chosen on the first visit and kept in the URL (``?persona=ml``); the root
URL opens that persona's own page. The sidebar lists the persona's page and the incident
view first, the other personas' pages after them; every link keeps the persona.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboards import state

HERE = Path(__file__).parent / "views"
PAGES = {
    "app": ("app_developer.py", "App developer", ":material/code:", "app-developer"),
    "ml": ("ml_engineer.py", "ML engineer", ":material/model_training:", "ml-engineer"),
    "data": ("data_scientist.py", "Data scientist", ":material/query_stats:", "data-scientist"),
    "finops": ("finops.py", "Platform / FinOps", ":material/payments:", "finops"),
    "incident": ("incident.py", "Incident", ":material/emergency:", "incident"),
}


def _pages() -> dict[str, st.Page]:
    pages = {
        key: st.Page(HERE / file, title=title, icon=icon, url_path=path)
        for key, (file, title, icon, path) in PAGES.items()
    }
    pages["welcome"] = st.Page(HERE / "welcome.py", title="Welcome", default=True)
    return pages


def _menu(pages: dict[str, st.Page], persona: str) -> None:
    """The sidebar's links: this persona's page and the incident view, then the others."""
    keep = {"persona": persona}
    with st.sidebar:
        st.caption("Your views")
        for key in (persona, "incident"):
            st.page_link(pages[key], query_params=keep)
        st.caption("Other personas")
        for key in state.PERSONAS:
            if key != persona:
                st.page_link(pages[key], query_params=keep)
        st.caption(f"Persona: **{state.PERSONAS[persona]}**")
        if st.button("Change persona", key="change-persona"):
            state.set_param("persona", None)
            st.switch_page(pages["welcome"])
        st.divider()


def main() -> None:
    st.set_page_config(
        page_title="Onepane", page_icon=":material/stacked_line_chart:", layout="wide"
    )
    pages = _pages()
    current = st.navigation(list(pages.values()), position="hidden")
    persona = state.persona()
    if persona is None:
        current.run()
        return
    state.set_param("persona", persona)
    if current is pages["welcome"] or current.url_path == "":
        st.switch_page(pages[persona], query_params=dict(st.query_params))
    _menu(pages, persona)
    current.run()


main()
