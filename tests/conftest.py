"""Shared fixtures: a real `onepane serve` process on loopback, with its own DuckDB file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from onepane import kubesim
from onepane.testing import LiveServer


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start `onepane serve` with extra flags; every server started is stopped afterwards."""
    started: list[LiveServer] = []

    def start(*args: str, db: Path | None = None) -> LiveServer:
        server = LiveServer(db or tmp_path / "onepane.duckdb", "--decoders", "1", *args)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.kill()


@pytest.fixture
def server(start_server: Callable[..., LiveServer]) -> LiveServer:
    """A fresh live server with default settings (one decoder process)."""
    return start_server()


@pytest.fixture
def kube_sim() -> Iterator[kubesim.KubeSim]:
    """An in-memory Kubernetes API served on loopback (``kube_sim.server.url``)."""
    sim = kubesim.KubeSim()
    sim.serve()
    yield sim
    sim.close()
