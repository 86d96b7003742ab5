"""A live `onepane serve` holding three hours of the demo company's life, for the pages'
AppTests: traces (with the fraud model's slow spells and its drifted inputs), pipeline
runs, the cluster and its GPUs, the bill, drift references and runs, and gate decisions,
all sent through the real paths (OTLP exporters, dcgm pages, the Kubernetes API, the API).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from onepane import demo_drift, demo_gate
from onepane.cli import DEMO_CONFIG
from onepane.demo import DemoCompany, DemoConfig
from onepane.demo_cluster import DemoCluster
from onepane.testing import LiveServer, demo_cluster_flags, wait_for

HOUR_NS = 3600 * 10**9
CHECKOUTS, RECOMMENDATIONS, PIPELINE_RUNS = 360, 180, 3


@dataclass
class DemoApi:
    """The filled server; ``get`` reads its API as the pages do."""

    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.api_url

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=60) as response:
            return json.loads(response.read())

    def post(self, path: str, body: bytes = b"") -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())


def _config(tmp: Path) -> Path:
    """The demo's settings; drift runs on demand only, judged from 50 predictions."""
    settings = DEMO_CONFIG.read_text()
    settings = settings.replace("{every: 5m, ", "{").replace("min_rows: 500", "min_rows: 50")
    path = tmp / "onepane.yaml"
    path.write_text(settings + "cost:\n  rollup_interval: 1h\n")
    return path


def _emit_history(company: DemoCompany) -> None:
    """Three hours of traffic ending now: the company 'started' three hours ago, so the
    fraud model's amounts drift after its first ten minutes and its slow spells recur."""
    now = time.time_ns()
    company.started_ns = now - 3 * HOUR_NS
    span = 3 * HOUR_NS - 60 * 10**9
    for i in range(CHECKOUTS):
        company.emit_checkout(now - span + i * span // CHECKOUTS)
    for i in range(RECOMMENDATIONS):
        company.emit_recommendation(now - span + i * span // RECOMMENDATIONS)
    for i in range(PIPELINE_RUNS):
        company.emit_pipeline_run(now - (i + 1) * HOUR_NS + 5 * 60 * 10**9)
    company.force_flush()


@pytest.fixture(scope="session")
def demo_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoApi]:
    tmp = tmp_path_factory.mktemp("dashboards")
    dcgm_port, kube_port, cluster_flags = demo_cluster_flags("2s")
    server = LiveServer(
        tmp / "onepane.duckdb", "--decoders", "0", "--config", str(_config(tmp)), *cluster_flags
    )
    config = DemoConfig(endpoint=server.otlp_url, seed=11, day_seconds=600.0)
    company = DemoCompany(config)
    cluster = DemoCluster(company, config, seed=11)
    api = DemoApi(server)
    try:
        cluster.tick(elapsed_s=150.0)  # the company's noon: the recsys GPU is busy
        cluster.serve(kube_port=kube_port, dcgm_port=dcgm_port)
        _emit_history(company)
        wait_for(
            "the checkouts stored",
            lambda: api.get("/api/v1/traces", service="web-frontend", since="4h", limit=1000),
            lambda body: len(body["traces"]) == CHECKOUTS,
            60,
        )
        wait_for(
            "the GPUs scraped",
            lambda: api.get("/api/v1/gpus", since="1h")["gpus"],
            lambda gpus: len(gpus) == 2 and all(g["samples"] >= 2 for g in gpus),
            60,
        )
        api.post("/api/v1/billing/imports?filename=demo.csv", cluster.bill())
        demo_drift.send(api.url, seed=11)
        demo_gate.send(api.url)  # rolls the costs up first
        for model in ("fraud-model", "recsys-model"):
            api.post("/api/v1/drift/runs", json.dumps({"model": model, "window": "4h"}).encode())
        yield api
    finally:
        company.shutdown()
        cluster.close()
        server.stop()


@pytest.fixture
def app_env(demo_api: DemoApi, monkeypatch: pytest.MonkeyPatch) -> DemoApi:
    """The pages (run in this process by AppTest) read the demo server."""
    monkeypatch.setenv("ONEPANE_SERVER", demo_api.url)
    return demo_api
