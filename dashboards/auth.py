"""The dashboards' API token: ``$ONEPANE_TOKEN`` (what `onepane up` passes on), or one the
user enters when the API answers 401. An entered token lives in the Streamlit session
(``st.session_state``), never in the URL.
"""

from __future__ import annotations

import os
from contextlib import suppress

import streamlit as st
from streamlit.errors import StreamlitDuplicateElementKey
from streamlit.runtime.scriptrunner import get_script_run_ctx

TOKEN_ENV = "ONEPANE_TOKEN"
STATE_KEY = "onepane_token"
INPUT_KEY = "onepane_token_input"


def token() -> str | None:
    """The token to send: the one entered in this session, else ``$ONEPANE_TOKEN``."""
    if get_script_run_ctx(suppress_warning=True) is not None:  # a page run, not a worker
        entered = st.session_state.get(STATE_KEY)
        if entered:
            return str(entered)
    return os.environ.get(TOKEN_ENV) or None


def ask(message: str) -> None:
    """Ask for a token in the sidebar (once per run, however many panels were refused);
    entering one keeps it in the session and reruns the page with it."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return
    refused = bool(st.session_state.get(STATE_KEY))
    with suppress(StreamlitDuplicateElementKey):  # already asked in this run
        st.sidebar.text_input(
            "The token was refused: enter another" if refused else "API token",
            type="password",
            key=INPUT_KEY,
            on_change=_keep,
            placeholder="onepane_…",
            help=f"The Onepane API wants a token: {message}",
        )


def _keep() -> None:
    st.session_state[STATE_KEY] = str(st.session_state.get(INPUT_KEY) or "").strip()
