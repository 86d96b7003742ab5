"""`onepane up` starts the dashboards as a child process pointed at the server's API."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from onepane import dashboard
from onepane.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_dashboards_answer_and_read_the_given_api() -> None:
    port = _free_port()
    child, url = dashboard.start("http://127.0.0.1:9", "127.0.0.1", port)
    try:
        assert url == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as response:
            assert response.read() == b"ok"
        assert child.args[child.args.index("run") + 1] == str(dashboard.app_path())
    finally:
        child.terminate()
        child.wait(15)


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigError, match=f"did not start on 127.0.0.1:{port}.*--dashboard-port"
        ):
            dashboard.start("http://127.0.0.1:9", "127.0.0.1", port)
