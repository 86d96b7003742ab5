"""bench/dashboards.py's reference page: the least a page is on this machine.

Streamlit with a title and a caption and, with ``?chart=1``, one Altair line chart (5
series of 48 hourly points, the size of a dashboard panel's chart). It reads nothing, and is
timed exactly as Onepane's pages are, so their figures can be read against this floor.
"""

import time

import altair as alt
import pandas as pd
import streamlit as st

started = time.perf_counter()
st.set_page_config(page_title="Reference", layout="wide")
st.title("Reference page")
st.caption("A title, a caption and, when asked, one chart: nothing read, nothing computed.")
if st.query_params.get("chart"):
    hours = pd.date_range(end=pd.Timestamp.now(tz="UTC").floor("h"), periods=48, freq="h")
    rows = [
        {"time": hour, "series": f"series {s}", "value": (s + 1) * (1 + n % 7)}
        for s in range(5)
        for n, hour in enumerate(hours)
    ]
    chart = alt.Chart(pd.DataFrame(rows)).mark_line()
    st.altair_chart(chart.encode(x="time:T", y="value:Q", color="series:N"), width="stretch")
st.caption(f"page rendered in {time.perf_counter() - started:.2f} s")
