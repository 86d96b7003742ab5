"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium, for
the dashboards' end-to-end test and bench/dashboards.py.

Nothing is downloaded: the driver and the browser are the system's, Selenium Manager is
kept offline, and Chromium's own background traffic (updates, sync, QUIC) is switched off.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH, HEIGHT = 1400, 1000
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--window-size={WIDTH},{HEIGHT}",
)
FOOTER = "page rendered in"  # the caption ui.footer writes last on every page
INSTALL = (
    "install Debian's chromium and chromium-driver: "
    "`sudo apt-get install -y chromium chromium-driver` (.ci/run does it)"
)

# A page has finished when its script is no longer running, the status widget ("Running...")
# and the loading placeholders are gone, every chart shown is drawn and, where asked, some
# element shows the given text.
_READY_JS = """
const text = arguments[0];
const app = document.querySelector('[data-testid="stApp"]');
if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
if (document.querySelector('[data-testid="stStatusWidget"], [data-testid="stSkeleton"]')) {
    return false;
}
const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
if (!charts.every((chart) => chart.offsetParent === null || chart.querySelector('canvas, svg'))) {
    return false;
}
if (!text) return true;
return [...document.querySelectorAll('[data-testid="stCaptionContainer"], p, button')]
    .some((el) => el.offsetParent !== null && el.innerText.includes(text));
"""
_CHARTS_DRAWN_JS = """
return [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .every((chart) => chart.offsetParent === null || chart.querySelector('canvas, svg'));
"""
_PAGE_HEIGHT_JS = """
const main = document.querySelector('[data-testid="stMain"]') || document.body;
return Math.max(main.scrollHeight, document.documentElement.scrollHeight);
"""


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return f"{' and '.join(absent)} not found; {INSTALL}" if absent else None


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile, closed (and its profile removed) after."""
    problem = missing()
    if problem:
        raise RuntimeError(problem)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download
    profile = tempfile.mkdtemp(prefix="onepane-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except WebDriverException as exc:
        shutil.rmtree(profile, ignore_errors=True)
        raise RuntimeError(f"Chromium did not start ({exc.msg}); {INSTALL}") from exc
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_ready(
    driver: WebDriver, text: str | None = FOOTER, timeout: float = 60, settle: float = 0.3
) -> float:
    """Wait until the page's script has finished and ``text`` is visible, and still is
    ``settle`` seconds later (a page may rerun right after its first run); returns the
    ``time.perf_counter()`` at which it first was."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if driver.execute_script(_READY_JS, text):
            ready = time.perf_counter()
            time.sleep(settle)
            if driver.execute_script(_READY_JS, text):
                return ready
        else:
            time.sleep(0.05)
    raise AssertionError(
        f"{driver.current_url} did not finish within {timeout:.0f} s "
        f"(waiting for {text!r}); it shows:\n{visible_text(driver)[:2000]}"
    )


def open_page(driver: WebDriver, url: str, text: str | None = FOOTER, timeout: float = 60) -> float:
    """Load ``url`` and wait until it has rendered; the seconds that took."""
    started = time.perf_counter()
    driver.get(url)
    return wait_ready(driver, text, timeout) - started


def visible_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def table_text(driver: WebDriver) -> str:
    """The cells of the tables shown (st.dataframe draws them on a canvas; their
    accessible copy is in the DOM but not visible to Selenium)."""
    script = """
    return [...document.querySelectorAll('[data-testid="stDataFrame"]')]
        .filter((table) => table.offsetParent !== null)
        .map((table) => [...table.querySelectorAll('th, td')]
            .map((cell) => cell.textContent).join('\\t'))
        .join('\\n');
    """
    return driver.execute_script(script) or ""


def selected(driver: WebDriver, label: str) -> str | None:
    """The value a select box shows."""
    css = f'input[role="combobox"][aria-label="{label}"]'
    return driver.find_element(By.CSS_SELECTOR, css).get_attribute("value")


def chosen(driver: WebDriver, label: str) -> str | None:
    """The button chosen in a row of buttons (``st.segmented_control``) labelled ``label``."""
    css = f'[role="radiogroup"][aria-label="{label}"] [role="radio"][aria-checked="true"]'
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text.strip() if found else None


_MENU_JS = """
const nav = document.querySelector('[data-testid="stSidebarNav"]');
if (!nav) return [];
const copy = nav.cloneNode(true);
copy.querySelectorAll('[data-testid="stIconMaterial"]').forEach((icon) => icon.remove());
document.body.appendChild(copy);
const lines = copy.innerText.split('\\n').map((line) => line.trim()).filter(Boolean);
copy.remove();
return lines;
"""


def menu(driver: WebDriver) -> list[str]:
    """The sidebar's page menu, line by line: section headers and page titles."""
    return driver.execute_script(_MENU_JS)


def exceptions(driver: WebDriver) -> list[str]:
    """The texts of the exception boxes Streamlit shows for an uncaught error."""
    boxes = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    return [box.text for box in boxes]


def rendered_in(driver: WebDriver) -> float | None:
    """The page's own figure from its footer ("page rendered in 0.42 s")."""
    for line in visible_text(driver).splitlines():
        if FOOTER in line:
            return float(line.rsplit(FOOTER, 1)[1].split()[0])
    return None


def screenshot(driver: WebDriver, path: Path, timeout: float = 10) -> Path:
    """A full-page PNG: the window is made as tall as the page (Streamlit scrolls inside
    its main section, so the browser's own full-page capture would cut it) once every
    chart is drawn, then put back."""
    with suppress(TimeoutException):  # a chart that never draws shows as such in the picture
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(
            lambda d: d.execute_script(_CHARTS_DRAWN_JS)
        )
    height = min(16000, int(driver.execute_script(_PAGE_HEIGHT_JS)) + 80)
    driver.set_window_size(WIDTH, max(HEIGHT, height))
    time.sleep(0.5)  # charts follow the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, HEIGHT)
    return path
