"""The Streamlit app: one page per persona, reading only through Onepane's HTTP API."""
