"""GET /api/v1/gpus/heatmap: GPU utilisation by UTC hour of day, read back from a week of
hourly samples sent over OTLP/HTTP the way the demo sends its GPU history."""

from __future__ import annotations

import statistics
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from onepane import demo_gpu_history as history
from onepane.demo import DemoCompany, DemoConfig
from onepane.demo_cluster import DemoCluster
from onepane.testing import LiveServer

HOUR_S = 3600
GPUS = [
    history.DemoGpu("gpu-node-1", "GPU-11111111-2222-3333-4444-555555555555",
                    pod=("ml", "recsys-model-7d9f8-abcde", "recsys-model")),
    history.DemoGpu("gpu-node-2", "GPU-66666666-7777-8888-9999-000000000000"),
]  # fmt: skip


def heatmap(server: LiveServer, **params: Any) -> tuple[int, dict[str, Any]]:
    return server.get_json(f"/api/v1/gpus/heatmap?{urllib.parse.urlencode(params)}")


def expected_cells(samples: list[history.GpuSample]) -> list[dict[str, Any]]:
    """The heatmap computed from what was sent: mean utilisation per GPU and UTC hour."""
    groups: dict[tuple[str, int, str, int], list[float]] = defaultdict(list)
    for s in samples:
        groups[(s.hostname, s.gpu, s.uuid, history.utc_hour(s.time_ns))].append(s.utilization)
    return [
        {
            "hostname": h,
            "gpu": g,
            "uuid": u,
            "hour": hour,
            "avg_utilization": statistics.fmean(v),
            "samples": len(v),
        }
        for (h, g, u, hour), v in sorted(groups.items())
    ]


@pytest.fixture(scope="module")
def week_sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, list, int]]:
    """A fresh server holding the week of GPU samples; the hour the week ends (Unix s)."""
    server = LiveServer(tmp_path_factory.mktemp("heatmap") / "onepane.duckdb", "--decoders", "1")
    try:
        now_ns = time.time_ns()
        samples = history.week(GPUS, now_ns=now_ns, seed=5)
        assert history.send(server.otlp_url, samples) == 2 * 7 * 24
        yield server, samples, now_ns // 10**9 // HOUR_S * HOUR_S
    finally:
        server.stop()


def test_cells_are_the_averages_of_the_samples_sent(week_sent: tuple) -> None:
    server, samples, end_s = week_sent
    status, body = heatmap(server, start=end_s - 7 * 24 * HOUR_S, end=end_s)
    assert status == 200, body
    want = expected_cells(samples)
    assert len(body["cells"]) == len(want) == 2 * 24  # sorted by hostname, gpu, hour
    for got, cell in zip(body["cells"], want, strict=True):
        assert {k: got[k] for k in ("hostname", "gpu", "uuid", "hour", "samples")} == {
            k: cell[k] for k in ("hostname", "gpu", "uuid", "hour", "samples")
        }
        assert got["avg_utilization"] == pytest.approx(cell["avg_utilization"], abs=1e-12)
        assert cell["samples"] == 7


def test_the_days_and_nights_of_the_demo_gpus(week_sent: tuple) -> None:
    """The recsys GPU is busy by day (07-21 UTC) and idle at night; the trainer's the other
    way round: what the FinOps heatmap shows."""
    server, _, end_s = week_sent
    _, body = heatmap(server, start=end_s - 7 * 24 * HOUR_S, end=end_s)
    util = {(c["hostname"], c["hour"]): c["avg_utilization"] for c in body["cells"]}
    assert 0.5 < util[("gpu-node-1", 13)] < 0.65 and util[("gpu-node-1", 2)] < 0.05
    assert util[("gpu-node-2", 13)] == 0 and util[("gpu-node-2", 2)] > 0.8


def test_a_window_keeps_only_its_samples(week_sent: tuple) -> None:
    """One day back from the week's end: one sample per cell; default window: 7 days."""
    server, samples, end_s = week_sent
    _, day = heatmap(server, since="24h", end=end_s)
    assert {c["samples"] for c in day["cells"]} == {1}
    last_day = [s for s in samples if s.time_ns >= (end_s - 24 * HOUR_S) * 10**9]
    assert [c["avg_utilization"] for c in day["cells"]] == pytest.approx(
        [c["avg_utilization"] for c in expected_cells(last_day)], abs=1e-12
    )
    _, default = heatmap(server)
    _, week = heatmap(server, since="7d")
    assert default == week and len(default["cells"]) == 48


@pytest.mark.parametrize(
    "params",
    [
        {"since": "a week"},
        {"start": "yesterday"},
        {"gpu": "0"},
        {"since": "1d", "start": "0"},
        {"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
    ],
)
def test_bad_parameters_are_400(week_sent: tuple, params: dict) -> None:
    status, body = heatmap(week_sent[0], **params)
    assert status == 400, body
    assert body.get("error") or body.get("message")


def test_the_demo_sends_its_week_once(start_server: Callable[..., LiveServer]) -> None:
    """`onepane demo`'s step: the demo cluster's two GPUs, 7 x 24 samples each, over OTLP;
    a second run (a restarted demo on the same store) sends nothing."""
    server = start_server()
    config = DemoConfig(endpoint=server.otlp_url, seed=3)
    company = DemoCompany(config)
    cluster = DemoCluster(company, config, seed=3)
    try:
        for _ in range(2):
            history.send_demo(cluster, server.otlp_url, server.api_url, seed=3)
        _, body = heatmap(server, since="8d")
    finally:
        company.shutdown()
        cluster.close()
    uuids = {g.hostname: g.uuid for g in cluster.gpus.values()}
    assert {(c["hostname"], c["uuid"]) for c in body["cells"]} == set(uuids.items())
    assert sum(c["samples"] for c in body["cells"]) == 2 * 7 * 24


def test_each_day_weighs_the_same(week_sent: tuple) -> None:
    """Two samples in one hour and one the day before: the hour's figure is the mean of
    the two days' hourly means, not of the three samples (a 15 s scrape does not outvote
    an hourly history)."""
    server, _, end_s = week_sent
    day = 24 * HOUR_S
    base = (end_s - 12 * day) // day * day + 10 * HOUR_S  # 10:00 UTC, 12 days back
    at = [base + 60, base + day + 60, base + day + 120]
    samples = [
        history.GpuSample(t * 10**9, "gpu-node-9", 0, "GPU-9", "NVIDIA A10G", util, 0.0,
                          23_028.0, 50.0, None)
        for t, util in zip(at, (90.0, 20.0, 40.0), strict=True)
    ]  # fmt: skip
    history.send(server.otlp_url, samples)
    _, body = heatmap(server, start=base - HOUR_S, end=base + 2 * day)
    (cell,) = [c for c in body["cells"] if c["hostname"] == "gpu-node-9"]
    first, second = samples[0].utilization, (samples[1].utilization + samples[2].utilization) / 2
    assert cell["hour"] == 10 and cell["samples"] == 3
    assert cell["avg_utilization"] == pytest.approx((first + second) / 2, abs=1e-12)
