"""Dashboards benchmark: the first render of every page in a real browser, with 10M spans
stored. Target: ≤ 2 s each.

The store: bench/lookup_data.py's 10M spans (1M traces of checkout, product and search
requests over a week), built once into bench/out/ and reused; each run works on a copy,
moved in time so that its week ends now. The server on it also gets what the other pages
read, through the same paths the demo uses: the demo cluster (Kubernetes API and dcgm pages,
collected by the server), its FOCUS bill, the models' drift references, a week of GPU
history and the gate decisions of four releases (which roll the week's costs up first).

Then the dashboards (`streamlit run dashboards/app.py`, as `onepane up` starts them) and, in
headless Chromium (tests/e2e/browser.py), each page at the URL its links use, timed from
``driver.get(url)`` until the page's script has finished, its last line ("page rendered in
X s") shows and its charts are drawn. Two ways, one warm-up then ``--runs`` each, median and
max: a new browser each run (nothing cached: a first visit), and a new session each run in
one browser (cookies and storage cleared, Streamlit's scripts in the HTTP cache: a returning
user opening a link); with the page's own figure. First, as this machine's floor, the same
timing of bench/reference_page.py: Streamlit with a title (and then with one Altair chart),
reading nothing; each page's new-session median is also printed above those two. Last,
each page once more through a recording proxy in front of the API: every call it made, when
and how long it took.

    python bench/dashboards.py [--runs 5] [--spans 10000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import yaml
from selenium.webdriver.remote.webdriver import WebDriver

_BENCH = Path(__file__).resolve().parent
ROOT = _BENCH.parent
# This script is bench/dashboards.py: its folder must not hide the `dashboards` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path[:0] = [str(ROOT)]
sys.path += [str(_BENCH), str(ROOT / "tests" / "e2e")]

import browser  # noqa: E402
import lookup_data as data  # noqa: E402
from common import live_server, median  # noqa: E402

from onepane import dashboard, demo_drift, demo_gate  # noqa: E402
from onepane.cli import DEMO_CONFIG  # noqa: E402
from onepane.demo import DemoCompany, DemoConfig  # noqa: E402
from onepane.demo_cluster import GPU_NODES, DemoCluster  # noqa: E402
from onepane.demo_gpu_history import send_demo  # noqa: E402
from onepane.testing import LiveServer  # noqa: E402

TARGET_S = 2.0
# The bench's workloads that the demo's catalog does not name.
CATALOG = {
    "shop/catalog-api": {"kind": "app", "team": "storefront"},
    "shop/search-api": {"kind": "app", "team": "storefront"},
    "ml/ranker-model": {"kind": "model", "team": "ml-platform", "unit": "predictions"},
}


@dataclass(frozen=True)
class Page:
    name: str
    path: str  # with its query string
    text: str | None = browser.FOOTER  # shown once it has rendered (None: no such line)


def pages(trace_id: str) -> list[Page]:
    incident = "/incident?persona=app&trace="
    return [
        Page("welcome", "/", None),  # no footer: done when its script has finished
        Page("app developer", "/app-developer?persona=app"),
        Page("ML engineer", "/ml-engineer?persona=ml"),
        Page("data scientist", "/data-scientist?persona=data"),
        Page("platform / FinOps", "/finops?persona=finops"),
        Page("incident (10-span trace)", incident + trace_id),
        Page(f"incident ({data.BIG_TRACE_SPANS:,}-span trace)", incident + data.BIG_TRACE_ID),
    ]


REFERENCE = _BENCH / "reference_page.py"
REFERENCE_PAGES = [
    Page("reference: bare page", "/?bare=1"),
    Page("reference: one chart", "/?chart=1"),
]


def reference(api_url: str, runs: int) -> dict[str, float]:
    """The floor on this machine: bench/reference_page.py (a title; then also one Altair
    chart) timed as the pages are; the medians of its new-session renders."""
    child, url = dashboard.start(api_url, "127.0.0.1", _free_port(), app=REFERENCE)
    floor = {}
    try:
        for page in REFERENCE_PAGES:
            result = time_page(url, page, runs)
            report(page, result)
            floor[page.name] = median(result.cached)
    finally:
        child.terminate()
        child.wait(15)
    return floor


# The store ---------------------------------------------------------------------------------


def base_store(path: Path, spans: int) -> None:
    """The spans, built once (a week ending at build time); reused while they are there."""
    if _span_count(path) == spans + data.BIG_TRACE_SPANS:
        return
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
    print(f"building {path} with {spans:,} spans (once; later runs reuse it) ...", flush=True)
    data.END_NS = time.time_ns()
    print(f"built in {data.load(path, spans):.0f} s", flush=True)


def _span_count(path: Path) -> int | None:
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    except duckdb.Error:
        return None


def working_copy(base: Path, path: Path) -> float:
    """A copy of the base store whose week of spans ends now; the hours it was moved."""
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
    shutil.copyfile(base, path)
    with duckdb.connect(str(path)) as conn:
        newest = conn.execute("SELECT epoch_us(max(end_time)) FROM spans").fetchone()[0]
        shift = time.time_ns() // 1000 - newest
        for table in ("spans", "traces"):
            conn.execute(
                f"UPDATE {table} SET start_time = start_time + to_microseconds($us), "
                "end_time = end_time + to_microseconds($us)",
                {"us": shift},
            )
        conn.execute("CHECKPOINT")
    return shift / 3.6e9


def settings(folder: Path) -> Path:
    """The demo's onepane.yaml plus the bench's workloads; drift runs on demand only and
    costs roll up when the gate asks (no background work while pages are timed)."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["catalog"].update(CATALOG)
    for model in config["drift"]["models"].values():
        model.pop("every", None)
    config["cost"] = {"rollup_interval": "1h"}
    path = folder / "onepane.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def server_with_history(store: Path) -> Iterator[LiveServer]:
    """`onepane serve` on the store, with the demo cluster, its bill, drift references, GPU
    history and gate decisions."""
    kube_port, dcgm_port = _free_port(), _free_port()
    targets = [
        arg
        for node in GPU_NODES
        for arg in ("--gpu-target", f"http://127.0.0.1:{dcgm_port}/{node}/metrics")
    ]
    server = live_server(store, "--config", str(settings(store.parent)),
                         "--kube-api", f"http://127.0.0.1:{kube_port}", *targets)  # fmt: skip
    config = DemoConfig(endpoint=server.otlp_url, seed=7)
    company = DemoCompany(config)
    cluster = DemoCluster(company, config, seed=7)
    try:
        cluster.tick(elapsed_s=150.0)  # the company's noon: the recsys GPU is busy
        cluster.serve(kube_port=kube_port, dcgm_port=dcgm_port)
        started = time.perf_counter()
        _post(server.api_url, "/api/v1/billing/imports?filename=demo.csv", cluster.bill())
        demo_drift.send(server.api_url, seed=7)
        send_demo(cluster, server.otlp_url, server.api_url, 7)
        demo_gate.send(server.api_url)
        print(f"bill, drift references, GPU history, costs rolled up and gate decisions in "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        yield server
    finally:
        company.shutdown()  # while its server still answers
        cluster.close()
        server.stop()


def _post(api: str, path: str, body: bytes) -> None:
    request = urllib.request.Request(api + path, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=600) as response:
        response.read()


# Timing ------------------------------------------------------------------------------------


@dataclass
class Result:
    cold: list[float]  # a new browser each run: nothing cached
    cached: list[float]  # a new session in a browser that has the app's static files
    own: list[float]  # what the page's footer said


def render(driver: WebDriver, url: str, text: str | None) -> tuple[float, float | None]:
    """One first render: seconds until done, and the page's own figure."""
    seconds = browser.open_page(driver, url, text, timeout=180)
    shown = browser.visible_text(driver)
    errors = browser.exceptions(driver) + [
        line for line in shown.splitlines() if line.startswith(("Cannot load", "Page not"))
    ]
    if errors:
        raise SystemExit(f"{url} failed: {errors}")
    return seconds, browser.rendered_in(driver)


def render_cold(url: str, text: str | None) -> tuple[float, float | None]:
    with browser.chromium() as driver:
        return render(driver, url, text)


def render_cached(driver: WebDriver, url: str, text: str | None) -> tuple[float, float | None]:
    """A new session: no cookies, no storage, nothing of the last page left; only the
    browser's HTTP cache (Streamlit's scripts) is kept, as for a returning user."""
    driver.get("about:blank")
    driver.delete_all_cookies()
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
    return render(driver, url, text)


def time_page(base_url: str, page: Page, runs: int) -> Result:
    url = base_url + page.path
    result = Result([], [], [])
    render_cold(url, page.text)  # warm-up
    for _ in range(runs):
        seconds, own = render_cold(url, page.text)
        result.cold.append(seconds)
        result.own += [own] if own is not None else []
    with browser.chromium() as driver:
        render_cached(driver, url, page.text)  # warm-up, and fills the cache
        for _ in range(runs):
            seconds, own = render_cached(driver, url, page.text)
            result.cached.append(seconds)
            result.own += [own] if own is not None else []
    return result


def report(page: Page, result: Result, floor: dict[str, float] | None = None) -> None:
    def figures(times: list[float]) -> str:
        mid = median(times)
        verdict = "met" if mid <= TARGET_S else "NOT met"
        return f"median {mid:5.2f} s, max {max(times):5.2f} s ({verdict})"

    own = f"{median(result.own):.2f} s" if result.own else "–"
    above = ""
    if floor:
        bare, chart = floor["reference: bare page"], floor["reference: one chart"]
        mid = median(result.cached)
        above = (
            f"; new session {mid - bare:+.2f} s on the bare page, {mid - chart:+.2f} s on one chart"
        )
    print(
        f"{page.name:<30} new browser: {figures(result.cold)}; new session, scripts cached: "
        f"{figures(result.cached)}; the page says {own} (median){above}",
        flush=True,
    )


# Which API calls a page makes --------------------------------------------------------------


class Recorder(ThreadingHTTPServer):
    """A proxy in front of the API that records each call: path, start, seconds, bytes."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.calls: list[tuple[str, float, float, int, int]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(self.server.upstream + self.path, timeout=300) as up:
                status, body, kind = up.status, up.read(), up.headers.get("Content-Type")
        except urllib.error.HTTPError as exc:
            status, body, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
        seconds = time.perf_counter() - started
        with self.server.lock:
            self.server.calls.append((self.path, started, seconds, status, len(body)))
        self.send_response(status)
        self.send_header("Content-Type", kind or "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet: the bench prints its own table of calls."""


def api_calls(api_url: str, page_list: list[Page]) -> None:
    """Each page once more, its API calls recorded: start offset and duration of each."""
    recorder = Recorder(api_url)
    port = _free_port()
    child, url = dashboard.start(recorder.url, "127.0.0.1", port)
    try:
        for page in page_list:
            render_cold(url + page.path, page.text)  # warm-up: first imports, caches
            recorder.calls.clear()
            started = time.perf_counter()
            seconds, _ = render_cold(url + page.path, page.text)
            calls = sorted(recorder.calls, key=lambda c: c[1])
            first = calls[0][1] if calls else started
            print(f"{page.name}: {len(calls)} API calls ({seconds:.2f} s in the browser)")
            for path, at, took, status, size in calls:
                print(f"  +{at - first:6.3f} s {took * 1e3:7.0f} ms  {status} "
                      f"{size / 1024:7.1f} KiB  GET {path}")  # fmt: skip
    finally:
        child.terminate()
        child.wait(15)
        recorder.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def checkout_trace(api_url: str) -> str:
    """The newest checkout trace (10 spans, within the last minute)."""
    query = "service=web-frontend&route=/checkout&since=1h&limit=1"
    with urllib.request.urlopen(f"{api_url}/api/v1/traces?{query}", timeout=60) as response:
        return json.loads(response.read())["traces"][0]["trace_id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed renders per page (5)")
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="the spans, built once and reused (bench/out/dashboards-SPANS.duckdb)",
    )
    parser.add_argument("--no-api-calls", action="store_true", help="skip the API call list")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill too
    problem = browser.missing()
    if problem:
        raise SystemExit(f"bench/dashboards.py needs Chromium: {problem}")
    args.base = args.base or ROOT / f"bench/out/dashboards-{args.spans}.duckdb"
    args.base.parent.mkdir(parents=True, exist_ok=True)
    base_store(args.base, args.spans)
    store = args.base.with_name("dashboards-run.duckdb")
    started = time.perf_counter()
    hours = working_copy(args.base, store)
    print(f"store: {args.spans:,} spans over 7 days ({args.base.stat().st_size / 2**20:.0f} "
          f"MiB), a copy moved {hours:.1f} h to end now, in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    try:
        with server_with_history(store) as server:
            print(f"first render in headless Chromium, median and max of {args.runs} after "
                  f"a warm-up; target ≤ {TARGET_S:.0f} s:", flush=True)  # fmt: skip
            floor = reference(server.api_url, args.runs)
            child, url = dashboard.start(server.api_url, "127.0.0.1", _free_port())
            try:
                page_list = pages(checkout_trace(server.api_url))
                for page in page_list:
                    report(page, time_page(url, page, args.runs), floor)
            finally:
                child.terminate()
                child.wait(15)
            if not args.no_api_calls:
                api_calls(server.api_url, page_list)
    finally:
        store.unlink(missing_ok=True)
        Path(f"{store}.wal").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
