"""The Streamlit dashboards as a child process of `onepane up`, reading the server's API."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from onepane.errors import ConfigError

START_S = 60.0


def app_path() -> Path:
    """dashboards/app.py, found without importing the package (nothing imports it)."""
    spec = importlib.util.find_spec("dashboards")
    if spec is None or spec.origin is None:
        raise ConfigError("the dashboards package is not installed; reinstall Onepane")
    return Path(spec.origin).with_name("app.py")


def command(host: str, port: int, app: Path | None = None) -> list[str]:
    """``streamlit run`` of the dashboards (or of another Streamlit script, ``app``)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app or app_path()),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--logger.level", "warning",
        "--client.toolbarMode", "viewer", "--server.fileWatcherType", "none",
    ]  # fmt: skip


def start(
    api_url: str, host: str, port: int, app: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the app (or ``app``, another Streamlit script) on ``host:port`` and wait until
    it answers; the process and its URL."""
    env = {**os.environ, "ONEPANE_SERVER": api_url}
    child = subprocess.Popen(
        command(host, port, app), env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}"
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise ConfigError(
                f"the dashboards did not start on {host}:{port} (exit {child.returncode}); is "
                "the port taken? Choose another with --dashboard-port, or --no-dashboard"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return child, url
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    child.terminate()
    raise ConfigError(f"the dashboards did not answer on {url} within {START_S:.0f} s")
