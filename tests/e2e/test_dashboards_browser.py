"""End to end in a real browser: `onepane up --demo` (server, demo company, dashboards),
then every page in headless Chromium as a user opens it, checking what they would look for
and saving a full-page screenshot of each.

Needs Debian's chromium and chromium-driver (.ci/run installs them): without them the test
fails and says so. Screenshots go to $ONEPANE_SCREENSHOTS, else tests/e2e/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import browser
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = Path(os.environ.get("ONEPANE_SCREENSHOTS") or Path(__file__).with_name("screenshots"))
START_S = 120  # the server, the demo's history and the dashboards
DATA_S = 120  # the demo's releases reach the gate a little after its history
SETTLED_S = 15  # a trace this old has all its spans (the demo exports every few seconds)
_API = re.compile(r"API on (http://\S+?),")
_DASHBOARDS = re.compile(r"dashboards on (http://\S+)")
_MONEY = re.compile(r"\$\d[\d,]*\.\d{2,4}")


@dataclass
class Onepane:
    """`onepane up --demo` running in a temporary folder."""

    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    api: str = ""
    dashboards: str = ""

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        with urllib.request.urlopen(f"{self.api}{path}?{query}", timeout=30) as response:
            return json.loads(response.read())

    def url(self, page: str, **params: str) -> str:
        return f"{self.dashboards}/{page}" + (f"?{urlencode(params)}" if params else "")

    def log(self) -> str:
        return "".join(self.output[-40:])

    def read(self) -> None:
        for line in self.proc.stderr or ():
            self.output.append(line)
            if match := _API.search(line):
                self.api = match.group(1)
            if match := _DASHBOARDS.search(line):
                self.dashboards = match.group(1)


def _free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _wait(what: str, check: Callable[[], bool], seconds: float, up: Onepane) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if up.proc.poll() is not None:
            pytest.fail(f"onepane up exited ({up.proc.returncode}) before {what}:\n{up.log()}")
        with suppress(urllib.error.URLError, OSError, KeyError):  # not answering yet
            if check():
                return
        time.sleep(0.5)
    pytest.fail(f"no {what} within {seconds:.0f} s; onepane up said:\n{up.log()}")


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found]


def _stop(proc: subprocess.Popen[str], wait_s: float = 20) -> None:
    """Stop `onepane up` as Ctrl-C would; past ``wait_s``, kill it and the dashboards and
    demo it started (each runs in a session of its own)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        for child in _children(proc.pid):  # still its children: not reaped, ids not reused
            with suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    problem = browser.missing()
    if problem:
        pytest.fail(f"the dashboards' browser test needs Chromium: {problem}")
    with browser.chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def onepane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Onepane]:
    """`onepane up --demo` on free ports, once the demo's first checkouts are stored."""
    otlp_http, otlp_grpc, api, dashboards = _free_ports(4)
    command = [
        sys.executable, "-m", "onepane", "up", "--demo",
        "--otlp-http-port", str(otlp_http), "--otlp-grpc-port", str(otlp_grpc),
        "--api-port", str(api), "--dashboard-port", str(dashboards),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        cwd=tmp_path_factory.mktemp("onepane-up"),  # the store: ./.onepane/onepane.duckdb
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    up = Onepane(proc)
    threading.Thread(target=up.read, daemon=True).start()
    try:
        _wait("server and dashboards", lambda: bool(up.api and up.dashboards), START_S, up)
        _wait("checkout traces", lambda: bool(_checkouts(up)), DATA_S, up)
        yield up
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def demo(onepane: Onepane) -> Onepane:
    """The demo's history too: its bill, drift references and the gate decisions of its
    releases (sent a little after its first traffic; the tests that need no more than
    traces run first, meanwhile)."""

    def releases() -> bool:
        return len(onepane.get("/api/v1/gate/decisions")["decisions"]) >= 4

    _wait("drift references", lambda: bool(onepane.get("/api/v1/drift/references")["references"]),
          DATA_S, onepane)  # fmt: skip
    _wait("gate decisions of the demo's releases", releases, DATA_S, onepane)
    return onepane


def _checkouts(up: Onepane) -> list[dict[str, Any]]:
    """Successful checkouts whose spans have all arrived: the demo's services export in
    batches every few seconds, so a trace younger than that may still be missing some."""
    settled = str(time.time() - SETTLED_S)  # the search's end: traces started before it
    found = up.get(
        "/api/v1/traces", service="web-frontend", route="/checkout", since="1h", end=settled
    )
    return [t for t in found["traces"] if t.get("error_count", 0) == 0]


def _render(driver: WebDriver, url: str, name: str, text: str | None = browser.FOOTER) -> str:
    """Open a page, check it rendered without an error, save its screenshot; its text."""
    seconds = browser.open_page(driver, url, text)
    own = browser.rendered_in(driver)
    print(f"{name}: rendered in {seconds:.2f} s" + (f" (the page says {own:.2f} s)" if own else ""))
    return _checked(driver, name)


def _checked(driver: WebDriver, name: str) -> str:
    started = time.perf_counter()
    shot = browser.screenshot(driver, SCREENSHOTS / f"{name}.png")
    print(f"{name}: screenshot {shot} in {time.perf_counter() - started:.2f} s")
    shown = browser.visible_text(driver)
    assert not browser.exceptions(driver), f"{name}: {browser.exceptions(driver)}"
    assert "Cannot load" not in shown, f"{name} could not load from the API:\n{shown}"
    assert "Page not found" not in shown, f"{name}: {driver.current_url} is not a page"
    return shown + "\n" + browser.table_text(driver)


def _params(driver: WebDriver) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(driver.current_url).query).items()}


def test_welcome_offers_the_personas_and_keeps_the_choice_in_the_url(
    driver: WebDriver, onepane: Onepane
) -> None:
    shown = _render(driver, onepane.dashboards, "welcome", None)  # the welcome has no footer
    for persona in ("App developer", "ML engineer", "Data scientist", "Platform / FinOps"):
        assert persona in shown
    for key in ("app", "ml", "data", "finops"):  # one button each, kept as persona-<key>
        assert driver.find_element(By.CSS_SELECTOR, f".st-key-persona-{key} button")
    driver.find_element(By.CSS_SELECTOR, ".st-key-persona-ml button").click()
    WebDriverWait(driver, 30).until(lambda d: _params(d).get("persona") == "ml")
    browser.wait_ready(driver)
    assert urlsplit(driver.current_url).path in ("/", "/ml-engineer")  # the persona's home
    shown = _checked(driver, "welcome-chose-ml")
    assert "fraud-model" in shown, shown
    # The menu: this persona's page and the incident view first, then the others.
    assert browser.menu(driver) == [
        "Your views", "ML engineer", "Incident",
        "Other personas", "App developer", "Data scientist", "Platform / FinOps",
        "Change persona",
    ]  # fmt: skip
    driver.find_element(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a[href$="/persona"]').click()
    WebDriverWait(driver, 30).until(lambda d: urlsplit(d.current_url).path == "/persona")
    browser.wait_ready(driver, None)
    driver.find_element(By.CSS_SELECTOR, ".st-key-persona-app button").click()
    WebDriverWait(driver, 30).until(lambda d: _params(d).get("persona") == "app")
    browser.wait_ready(driver)
    assert urlsplit(driver.current_url).path == "/app-developer"
    assert browser.menu(driver)[:3] == ["Your views", "App developer", "Incident"]


def test_incident_shows_one_checkout_trace(driver: WebDriver, onepane: Onepane) -> None:
    trace_id = _checkouts(onepane)[0]["trace_id"]
    trace = onepane.get(f"/api/v1/traces/{trace_id}")
    url = onepane.url("incident", persona="app", trace=trace_id)
    shown = _render(driver, url, "incident")
    headline = trace["where_the_time_went"]["headline"]
    assert re.fullmatch(r"\d+% in .+", headline), headline
    assert headline in shown, f"{headline!r} not on the incident page:\n{shown}"
    assert trace_id in shown
    toggle = driver.find_element(By.XPATH, "//label[.//p[starts-with(text(), 'Show all ')]]")
    toggle.click()  # the table of every span, drawn on request
    time.sleep(0.5)
    browser.wait_ready(driver)
    shown = browser.visible_text(driver) + browser.table_text(driver)
    for name in ("GET /checkout", "POST /api/checkout", "predict fraud-model"):
        assert name in shown, f"span {name!r} not on the incident page:\n{shown}"


def test_filters_stay_in_the_url(driver: WebDriver, onepane: Onepane) -> None:
    wanted = {"persona": "app", "team": "payments", "window": "1h"}
    _render(driver, onepane.url("app-developer", **wanted), "app-developer-filtered")
    assert _params(driver) | wanted == _params(driver), driver.current_url
    assert browser.selected(driver, "Team") == "payments"
    assert browser.chosen(driver, "Window") == "1h"


def test_app_developer_sees_their_routes_and_services(driver: WebDriver, demo: Onepane) -> None:
    shown = _render(driver, demo.url("app-developer", persona="app"), "app-developer")
    for expected in ("App developer", "/checkout", "checkout-api", "1.9.0"):  # 1.9.0: a deploy
        assert expected in shown, f"{expected!r} not on the app developer page:\n{shown}"


def test_ml_engineer_sees_their_models(driver: WebDriver, demo: Onepane) -> None:
    shown = _render(driver, demo.url("ml-engineer", persona="ml"), "ml-engineer")
    for expected in ("ML engineer", "fraud-model", "3.2.0", "blocked"):  # 3.3.0 was blocked
        assert expected in shown, f"{expected!r} not on the ML engineer page:\n{shown}"


def test_data_scientist_sees_features_and_pipelines(driver: WebDriver, demo: Onepane) -> None:
    shown = _render(driver, demo.url("data-scientist", persona="data"), "data-scientist")
    for expected in ("Data scientist", "Reference vs production", "fraud-model", "nightly-etl"):
        assert expected in shown, f"{expected!r} not on the data scientist page:\n{shown}"


def test_finops_sees_teams_and_money(driver: WebDriver, demo: Onepane) -> None:
    shown = _render(driver, demo.url("finops", persona="finops"), "finops")
    for expected in ("Platform / FinOps", "payments", "storefront", "ml-platform", "blocked"):
        assert expected in shown, f"{expected!r} not on the FinOps page:\n{shown}"
    assert _MONEY.search(shown), f"no money figure on the FinOps page:\n{shown}"
