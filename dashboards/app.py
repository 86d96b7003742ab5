"""Onepane's dashboards: ``streamlit run dashboards/app.py`` (``onepane up`` does it).

The persona is chosen on the first visit and kept in the URL (``?persona=ml``); the root
URL opens that persona's own page. The sidebar (Streamlit's own page menu) lists the
persona's page and the incident view first, the other personas' pages and "Change persona"
after them; the session keeps the persona and the filters across pages, and each page
writes them back into its URL.
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
    # The root URL: the persona chooser on a first visit, else the persona's own page.
    welcome = HERE / "welcome.py"
    pages["welcome"] = st.Page(welcome, title="Welcome", default=True, visibility="hidden")
    pages["persona"] = st.Page(
        welcome, title="Change persona", icon=":material/swap_horiz:", url_path="persona"
    )
    return pages


def _navigation(pages: dict[str, st.Page], persona: str | None) -> st.Page:
    """Streamlit's own sidebar menu (one element, drawn with the app's frame): this
    persona's page and the incident view first, the other personas' pages after them."""
    if persona is None:
        return st.navigation(list(pages.values()), position="hidden")
    others = [pages[key] for key in state.PERSONAS if key != persona]
    sections = {
        "Your views": [pages[persona], pages["incident"], pages["welcome"]],
        "Other personas": [*others, pages["persona"]],
    }
    return st.navigation(sections, position="sidebar", expanded=True)


def main() -> None:
    st.set_page_config(
        page_title="Onepane", page_icon=":material/stacked_line_chart:", layout="wide"
    )
    pages = _pages()
    persona = state.persona()
    current = _navigation(pages, persona)
    if persona is None:
        current.run()
        return
    state.set_param("persona", persona)
    if current is pages["welcome"] or current.url_path == "" or state.persona_just_chosen():
        st.switch_page(pages[persona], query_params=dict(st.query_params))
    current.run()


main()
