"""Scrape dcgm-exporter targets on an interval and store their GPU samples.

Each target has a thread of its own, so a slow or dead exporter never delays the others.
A target that fails is logged once when it goes down (and once when it comes back) and
retried with exponential backoff from 1 s up to ``max_backoff_s``. Samples are handed to
the writer and count as scraped only once committed.
"""

from __future__ import annotations

import gzip
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import pyarrow as pa

from collectors.gpu import dcgm
from onepane.errors import OnepaneError

DEFAULT_INTERVAL_S = 15.0
MAX_PAGE_BYTES = 64 * 1024 * 1024
_ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"


@dataclass(frozen=True)
class ScrapeConfig:
    """Where to scrape and how often; an empty ``targets`` turns the scraper off."""

    targets: tuple[str, ...] = ()
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float = 10.0
    max_backoff_s: float = 300.0


@dataclass
class TargetStatus:
    """What a user checks about one target: is it up, when did it last answer, and why not."""

    target: str
    up: bool = False
    scrapes: int = 0
    failures: int = 0  # consecutive
    last_success_ns: int | None = None
    last_error: str | None = None
    gpus: int = 0
    blanks: int = 0
    last_duration_s: float = 0.0
    next_attempt_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "up": self.up,
            "scrapes": self.scrapes,
            "consecutive_failures": self.failures,
            "last_success_ns": self.last_success_ns,
            "last_error": self.last_error,
            "gpus": self.gpus,
            "blank_values": self.blanks,
            "last_duration_s": round(self.last_duration_s, 4),
        }


Sink = Callable[[pa.Table], Future]


def fetch(url: str, timeout_s: float) -> str:
    """The page at ``url``; raises OSError (incl. URLError, HTTPError) when it cannot."""
    request = urllib.request.Request(
        url, headers={"Accept": _ACCEPT, "Accept-Encoding": "gzip", "User-Agent": "onepane"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body = response.read(MAX_PAGE_BYTES + 1)
        if len(body) > MAX_PAGE_BYTES:
            raise OSError(f"page is over {MAX_PAGE_BYTES} bytes")
        if response.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
    return body.decode("utf-8", errors="replace")


@dataclass
class Scraper:
    """One thread per target; ``sink`` stores a table of points and returns a future."""

    config: ScrapeConfig
    sink: Sink
    on_scrape: Callable[[TargetStatus], None] | None = None
    log: Callable[[str], None] = field(
        default=lambda line: print(f"onepane: {line}", file=sys.stderr, flush=True)
    )

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.targets = {url: TargetStatus(url) for url in self.config.targets}

    def start(self) -> None:
        for url in self.config.targets:
            thread = threading.Thread(
                target=self._run, args=(url,), name=f"onepane-scrape {url}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def status(self) -> list[dict[str, object]]:
        return [status.as_dict() for status in self.targets.values()]

    def _run(self, url: str) -> None:
        status = self.targets[url]
        delay = random.uniform(0, min(1.0, self.config.interval_s))  # spread the first scrapes
        while not self._stop.wait(delay):
            started = time.monotonic()
            self.scrape_once(status)
            elapsed = time.monotonic() - started
            delay = self._next_delay(status, elapsed)
            status.next_attempt_s = delay

    def scrape_once(self, status: TargetStatus) -> None:
        """Scrape, parse and store one target's page; failures update ``status``."""
        started = time.perf_counter()
        try:
            text = fetch(status.target, self.config.timeout_s)
            parsed = dcgm.parse(text, status.target, time.time_ns())
            if parsed.points.num_rows:
                self.sink(parsed.points).result(self.config.timeout_s + 60)
        except (OSError, ValueError, TimeoutError, OnepaneError) as exc:
            self._failed(status, _reason(exc))
        else:
            self._succeeded(status, parsed)
        status.last_duration_s = time.perf_counter() - started
        if self.on_scrape:
            self.on_scrape(status)

    def _succeeded(self, status: TargetStatus, parsed: dcgm.Parsed) -> None:
        if status.failures:
            self.log(f"GPU target {status.target} is back after {status.failures} failed scrapes")
        status.up, status.failures, status.last_error = True, 0, None
        status.scrapes += 1
        status.last_success_ns = time.time_ns()
        status.gpus, status.blanks = parsed.gpus, status.blanks + parsed.blanks

    def _failed(self, status: TargetStatus, reason: str) -> None:
        status.up = False
        status.failures += 1
        status.last_error = reason
        if status.failures == 1:
            self.log(
                f"warning: GPU target {status.target} is down ({reason}); "
                "retrying with backoff, the other targets go on"
            )

    def _next_delay(self, status: TargetStatus, elapsed: float) -> float:
        if not status.failures:
            return max(0.0, self.config.interval_s - elapsed)
        backoff = min(2.0 ** (status.failures - 1), self.config.max_backoff_s)
        return backoff * random.uniform(0.8, 1.2)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, ValueError):
        return f"not Prometheus text: {exc}"
    return str(exc) or type(exc).__name__


def parse_targets(values: Sequence[str]) -> tuple[str, ...]:
    """Targets as given (URLs); a bare host:port gets http:// and /metrics."""
    out = []
    for value in values:
        url = value.strip()
        if "://" not in url:
            url = f"http://{url}"
        if url.count("/") == 2:
            url += "/metrics"
        out.append(url)
    return tuple(dict.fromkeys(out))
