"""Stopping the server does not wait for a drift run or report in progress."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from onepane import driftapi


def test_stopping_the_workers_abandons_work_in_progress() -> None:
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(time.sleep, 0).result(timeout=120)  # the worker is up
    running = pool.submit(time.sleep, 600)  # an Evidently report that takes minutes
    time.sleep(0.5)
    started = time.monotonic()
    driftapi._stop_workers(pool)
    assert time.monotonic() - started < 60  # not the 600 s the work would take
    with pytest.raises(BrokenProcessPool):
        running.result(timeout=60)
