"""First visit: choose a persona; it is kept in the URL from then on."""

import streamlit as st

from dashboards import state

st.title("Onepane")
st.write(
    "One data layer for app services, ML models and data pipelines, with a view for each "
    "of the people who run them. Who are you today? (Change it any time: **Change persona** "
    "in the sidebar.)"
)
_ABOUT = {
    "app": "latency and errors per route, what a deploy changed, cost per 1k requests",
    "ml": "model versions live, inference latency, GPU use and idle cost, drift",
    "data": "which features drift and how, pipeline runs and cost per run",
    "finops": "cost by team and workload, GPU waste, billed vs allocated, model inventory",
}
columns = st.columns(len(state.PERSONAS))
for column, (key, name) in zip(columns, state.PERSONAS.items(), strict=True):
    with column:
        st.subheader(name)
        st.caption(_ABOUT[key])
        if st.button(
            f"Open the {name} view",
            key=f"persona-{key}",
            width="stretch",
        ):
            state.choose_persona(key)
            st.rerun()
st.divider()
st.page_link("views/incident.py", label="On call? Look up a trace", icon=":material/emergency:")
