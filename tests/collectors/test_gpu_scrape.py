"""Scraping dcgm-exporter targets with a live `onepane serve`, read back the way a user
reads them: ``/api/v1/gpus``, ``/api/v1/collectors`` and Prometheus ``/metrics``.

The exporters are ``onepane.dcgmsim.DcgmServer`` pages on loopback; the Kubernetes API is
``onepane.kubesim``. Every wait polls with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from onepane import dcgmsim, kubesim
from onepane.dcgmsim import DcgmServer, SimGpu
from onepane.testing import LiveServer, serve_once

T = TypeVar("T")
S = 1_000_000_000
WAIT_S = 12.0
POWER = "DCGM_FI_DEV_POWER_USAGE"


# --- helpers -------------------------------------------------------------------------------


def poll(check: Callable[[], T], what: str, timeout_s: float = WAIT_S) -> T:
    """``check()`` once it is truthy; fails naming ``what`` and the last value after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout_s:.0f}s for {what}; last saw {value!r}")
        time.sleep(0.1)


def api(server: LiveServer, path: str) -> dict[str, Any]:
    status, body = server.get_json(path)
    assert status == 200, body
    return body


def gpus(server: LiveServer, query: str = "since=1h") -> list[dict[str, Any]]:
    return api(server, f"/api/v1/gpus?{query}")["gpus"]


def gpu_rows(server: LiveServer) -> dict[tuple[str, int, int | None], dict[str, Any]]:
    """/api/v1/gpus by (hostname, gpu, MIG instance)."""
    return {(g["hostname"], g["gpu"], g["mig_instance"]): g for g in gpus(server)}


def workloads(server: LiveServer) -> dict[str, dict[str, Any]]:
    rows = api(server, "/api/v1/gpus?since=1h&by=workload")["workloads"]
    return {row["workload"]: row for row in rows}


def targets(server: LiveServer) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in api(server, "/api/v1/collectors")["gpu_targets"]}


def target_up(server: LiveServer) -> dict[str, float]:
    """onepane_gpu_target_up from Prometheus /metrics, by target."""
    with urllib.request.urlopen(server.api_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        sample.labels["target"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "onepane_gpu_target_up"
    }


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def exporters() -> Iterator[Callable[..., DcgmServer]]:
    """Start dcgm-exporter stand-ins; all are shut down after the test."""
    started: list[DcgmServer] = []

    def start(pages: dict[str, Callable[[], str]], port: int = 0) -> DcgmServer:
        server = DcgmServer(("127.0.0.1", port), pages)
        server.serve_in_thread("test-dcgm-exporter")
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def deploy(sim: kubesim.KubeSim, namespace: str, name: str, pod_name: str, node: str) -> None:
    """A Deployment's ReplicaSet and one running pod of it, started five minutes ago."""
    started = time.time_ns() - 300 * S
    replicaset = pod_name.rsplit("-", 1)[0]
    sim.put(
        "replicasets",
        kubesim.owned(
            "ReplicaSet",
            replicaset,
            namespace,
            kubesim.owner_ref("Deployment", name),
            started,
        ),
    )
    sim.put(
        "pods",
        kubesim.pod(
            pod_name,
            namespace,
            started,
            node_name=node,
            owner=kubesim.owner_ref("ReplicaSet", replicaset),
            requests={"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
            limits={"memory": "8Gi", "nvidia.com/gpu": "1"},
            started_ns=started + 2 * S,
        ),
    )


# --- what a user reads about GPUs ------------------------------------------------------------

UUID_A0 = "GPU-3f9a1c2e-7b4d-4e8f-9a0b-1c2d3e4f5a60"
UUID_A1 = "GPU-8e7d6c5b-4a39-4281-b7c6-d5e4f3a2b190"
UUID_B0 = "GPU-0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9"
UUID_MIG = "GPU-c0ffee00-1234-4abc-9def-0123456789ab"


def test_scraped_gpus_show_utilisation_framebuffer_power_and_mig_instances(
    start_server: Callable[..., LiveServer], exporters: Callable[..., DcgmServer]
) -> None:
    node_1 = [
        SimGpu(
            0,
            UUID_A0,
            util=50.0,
            fb_used_mib=9_000.0,
            power_w=180.25,
            pod=("ml", "recsys-7d9f8c6b5-q2w3e", "model"),
        ),
        SimGpu(1, UUID_A1, util=20.0, fb_used_mib=512.0, blank={POWER}),
    ]
    node_2 = [  # profiling fields off: utilisation is GPU_UTIL / 100
        SimGpu(0, UUID_B0, hostname="gpu-node-2", util=64.0, fb_used_mib=2_048.0, profiling=False)
    ]
    dgx = [
        SimGpu(
            0,
            UUID_MIG,
            model="NVIDIA A100-SXM4-80GB",
            hostname="dgx-1",
            fb_total_mib=9_856.0,
            util=30.0,
            fb_used_mib=4_000.0,
            mig=("1g.10gb", 9),
        ),
        SimGpu(
            0,
            UUID_MIG,
            model="NVIDIA A100-SXM4-80GB",
            hostname="dgx-1",
            fb_total_mib=40_192.0,
            util=90.0,
            fb_used_mib=30_000.0,
            mig=("3g.40gb", 1),
        ),
    ]
    exporter = exporters(
        {
            "/gpu-node-1/metrics": lambda: dcgmsim.render(node_1, "Hostname"),
            "/gpu-node-2/metrics": lambda: dcgmsim.render(node_2, "hostname"),
            "/dgx-1/metrics": lambda: dcgmsim.render(dgx, "hostname"),
        }
    )
    urls = [exporter.url(f"/{host}/metrics") for host in ("gpu-node-1", "gpu-node-2", "dgx-1")]
    server = start_server(
        *(arg for url in urls for arg in ("--gpu-target", url)), "--scrape-interval", "1s"
    )

    poll(
        lambda: all(t["scrapes"] >= 2 for t in targets(server).values()),
        "two scrapes of every target",
    )
    status = targets(server)
    assert list(status) == urls
    assert [status[url]["gpus"] for url in urls] == [2, 1, 2]
    assert all(t["up"] and t["last_error"] is None for t in status.values())
    assert status[urls[0]]["blank_values"] >= 2  # GPU 1's power, once per scrape

    rows = gpus(server)
    assert [(g["hostname"], g["gpu"], g["mig_instance"]) for g in rows] == [
        ("dgx-1", 0, 1),  # MIG instances are rows of their own, by instance id
        ("dgx-1", 0, 9),
        ("gpu-node-1", 0, None),
        ("gpu-node-1", 1, None),
        ("gpu-node-2", 0, None),
    ]
    by_key = {(g["hostname"], g["gpu"], g["mig_instance"]): g for g in rows}

    busy = by_key["gpu-node-1", 0, None]
    assert (busy["uuid"], busy["model_name"]) == (UUID_A0, "NVIDIA A10G")
    assert (busy["mig_profile"], busy["workloads"]) == (None, None)  # no Kubernetes here
    assert busy["pods"] == ["ml/recsys-7d9f8c6b5-q2w3e"]
    assert busy["samples"] >= 2
    # DCGM_FI_PROF_GR_ENGINE_ACTIVE (0.97 of GPU_UTIL in the simulator) wins over GPU_UTIL.
    assert busy["avg_utilization"] == pytest.approx(0.485)
    assert busy["max_utilization"] == busy["last_utilization"] == pytest.approx(0.485)
    assert busy["avg_fb_used_mib"] == 9_000.0
    assert busy["avg_power_w"] == pytest.approx(180.25)
    assert busy["first_sample_ns"] < busy["last_sample_ns"]
    assert time.time_ns() - busy["last_sample_ns"] < 30 * S

    blank_power = by_key["gpu-node-1", 1, None]
    assert blank_power["avg_power_w"] is None  # DCGM's blank is missing data, not 9.2e18 W
    assert blank_power["avg_utilization"] == pytest.approx(0.194)
    assert blank_power["avg_fb_used_mib"] == 512.0
    assert blank_power["pods"] is None

    no_profiling = by_key["gpu-node-2", 0, None]
    assert no_profiling["uuid"] == UUID_B0  # read from the lowercase hostname label
    assert no_profiling["avg_utilization"] == pytest.approx(0.64)
    assert no_profiling["avg_fb_used_mib"] == 2_048.0
    assert no_profiling["avg_power_w"] == pytest.approx(25.0)

    small, large = by_key["dgx-1", 0, 9], by_key["dgx-1", 0, 1]
    assert (small["uuid"], small["mig_profile"]) == (UUID_MIG, "1g.10gb")
    assert (large["uuid"], large["mig_profile"]) == (UUID_MIG, "3g.40gb")
    assert small["model_name"] == large["model_name"] == "NVIDIA A100-SXM4-80GB"
    assert small["avg_utilization"] == pytest.approx(0.291)
    assert large["avg_utilization"] == pytest.approx(0.873)
    assert (small["avg_fb_used_mib"], large["avg_fb_used_mib"]) == (4_000.0, 30_000.0)

    # Nothing is allocated without a Kubernetes inventory: one bucket for every GPU
    # (the MIG-split A100 counts once).
    everything = workloads(server)
    assert list(everything) == ["(unallocated)"]
    assert everything["(unallocated)"]["gpus"] == 4
    assert everything["(unallocated)"]["max_utilization"] == pytest.approx(0.873)

    # A window that ended before the first scrape has no GPUs.
    assert gpus(server, "start=2026-01-01T00:00:00Z&end=2026-01-01T01:00:00Z") == []
    status, body = server.get_json("/api/v1/gpus?by=team")
    assert (status, body) == (400, {"error": "by must be gpu or workload, got 'team'"})


def test_a_down_target_is_reported_and_retried_while_the_others_keep_scraping(
    start_server: Callable[..., LiveServer], exporters: Callable[..., DcgmServer]
) -> None:
    node_1 = [SimGpu(0, UUID_A0, util=40.0, fb_used_mib=1_000.0)]
    good = exporters({"/metrics": lambda: dcgmsim.render(node_1)}).url("/metrics")
    dead_port = free_port()
    dead = f"http://127.0.0.1:{dead_port}/metrics"
    # A bare host:port is a dcgm-exporter's /metrics.
    server = start_server(
        "--gpu-target", good, "--gpu-target", f"127.0.0.1:{dead_port}", "--scrape-interval", "1s"
    )

    first = poll(
        lambda: (t := targets(server))[dead]["consecutive_failures"] >= 1 and t,
        "the dead target's first failure",
    )
    assert list(first) == [good, dead]
    down = first[dead]
    assert down["up"] is False and down["scrapes"] == 0
    assert "Connection refused" in down["last_error"]
    assert down["last_success_ns"] is None
    later = poll(
        lambda: (
            (t := targets(server))[dead]["consecutive_failures"] > down["consecutive_failures"]
            and t[good]["scrapes"] >= first[good]["scrapes"] + 2
            and t
        ),
        "more failures of the dead target and more scrapes of the good one",
    )
    assert later[dead]["up"] is False
    assert later[good]["up"] is True and later[good]["consecutive_failures"] == 0
    assert later[good]["last_success_ns"] > (first[good]["last_success_ns"] or 0)
    assert target_up(server) == {good: 1.0, dead: 0.0}
    [row] = gpus(server)
    assert row["uuid"] == UUID_A0 and row["avg_utilization"] == pytest.approx(0.388)
    warnings = [line for line in server.output if f"GPU target {dead} is down" in line]
    assert len(warnings) == 1, server.output  # said once, not at every retry

    # The exporter comes up on the dead target's port: the next retry finds it.
    node_2 = [SimGpu(0, UUID_B0, hostname="gpu-node-2", util=70.0, fb_used_mib=3_000.0)]
    exporters({"/metrics": lambda: dcgmsim.render(node_2)}, port=dead_port)
    back = poll(lambda: (t := targets(server))[dead]["up"] and t, "the target to come back", 15)
    assert back[dead]["consecutive_failures"] == 0 and back[dead]["last_error"] is None
    assert back[dead]["scrapes"] >= 1 and back[dead]["gpus"] == 1
    assert target_up(server) == {good: 1.0, dead: 1.0}
    assert [g["uuid"] for g in gpus(server)] == [UUID_A0, UUID_B0]
    poll(
        lambda: any(f"GPU target {dead} is back after" in line for line in server.output),
        "the server to log that the target is back",
    )


def test_a_target_that_is_not_an_exporter_is_down_with_the_reason(
    start_server: Callable[..., LiveServer], exporters: Callable[..., DcgmServer]
) -> None:
    exporter = exporters({"/html": lambda: "<html><body>login</body></html>\n"})
    missing, html = exporter.url("/nothing-here"), exporter.url("/html")
    server = start_server("--gpu-target", missing, "--gpu-target", html, "--scrape-interval", "1s")
    status = poll(
        lambda: (t := targets(server)) and all(x["consecutive_failures"] for x in t.values()) and t,
        "both targets to fail",
    )
    assert status[missing]["last_error"] == "HTTP 404 Not Found"
    assert status[html]["last_error"].startswith("not Prometheus text: ")
    assert target_up(server) == {missing: 0.0, html: 0.0}
    assert gpus(server) == []


# --- workloads from the Kubernetes inventory --------------------------------------------------


def test_gpu_workloads_come_from_the_inventory_and_are_backfilled_for_late_pods(
    start_server: Callable[..., LiveServer],
    exporters: Callable[..., DcgmServer],
    kube_sim: kubesim.KubeSim,
) -> None:
    kube_sim.put("nodes", kubesim.node("gpu-node-1", time.time_ns() - 86_400 * S, gpus=2))
    deploy(kube_sim, "ml", "recsys", "recsys-7d9f8c6b5-q2w3e", "gpu-node-1")
    served: list[SimGpu] = []  # no GPUs on the page until the inventory is in
    exporter = exporters({"/metrics": lambda: dcgmsim.render(served)})
    server = start_server(
        "--gpu-target",
        exporter.url("/metrics"),
        "--kube-api",
        kube_sim.server.url,
        "--scrape-interval",
        "1s",
    )
    poll(
        lambda: (
            (k := api(server, "/api/v1/collectors")["kubernetes"])
            and k["pods"]["synced"]
            and k["nodes"]["synced"]
        ),
        "the Kubernetes inventory to sync",
    )
    [recsys_pod] = api(server, "/api/v1/k8s/pods")["pods"]
    assert (recsys_pod["workload"], recsys_pod["owner_kind"]) == ("ml/recsys", "Deployment")

    # GPU 0 is held by a pod the inventory knows; GPU 1 by one it has not seen yet.
    served += [
        SimGpu(0, UUID_A0, util=80.0, fb_used_mib=20_000.0, pod=("ml", recsys_pod["name"], "m")),
        SimGpu(
            1, UUID_A1, util=40.0, fb_used_mib=6_000.0, pod=("search", "embedder-5c4b-z9x8c", "e")
        ),
    ]
    rows = poll(
        lambda: (
            (r := gpu_rows(server))
            and len(r) == 2
            and all(g["samples"] >= 2 for g in r.values())
            and r
        ),
        "two scrapes of both GPUs",
    )
    held, early = rows["gpu-node-1", 0, None], rows["gpu-node-1", 1, None]
    assert held["workloads"] == ["ml/recsys"]
    assert held["pods"] == ["ml/recsys-7d9f8c6b5-q2w3e"]
    assert early["workloads"] is None
    assert early["pods"] == ["search/embedder-5c4b-z9x8c"]
    by_workload = workloads(server)
    assert list(by_workload) == ["(unallocated)", "ml/recsys"]
    assert by_workload["ml/recsys"]["gpus"] == by_workload["(unallocated)"]["gpus"] == 1
    assert by_workload["ml/recsys"]["avg_utilization"] == pytest.approx(0.776)
    assert by_workload["ml/recsys"]["avg_fb_used_mib"] == 20_000.0
    early_samples = early["samples"]

    # The embedder pod (started minutes ago) reaches the inventory only now: the samples
    # already stored for it get its workload.
    deploy(kube_sim, "search", "embedder", "embedder-5c4b-z9x8c", "gpu-node-1")
    backfilled = poll(
        lambda: (r := gpu_rows(server)["gpu-node-1", 1, None])["workloads"] and r,
        "the late pod's workload on its GPU",
    )
    assert backfilled["workloads"] == ["search/embedder"]
    assert backfilled["samples"] >= early_samples
    by_workload = workloads(server)
    assert list(by_workload) == ["ml/recsys", "search/embedder"]  # nothing left unallocated
    assert by_workload["search/embedder"]["samples"] >= early_samples
    assert by_workload["search/embedder"]["avg_utilization"] == pytest.approx(0.388)
    pods = {p["name"]: p for p in api(server, "/api/v1/k8s/pods?namespace=search")["pods"]}
    assert pods["embedder-5c4b-z9x8c"]["workload"] == "search/embedder"


# --- flags --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ("soon", "scrape interval 'soon' is not a duration; use e.g. 90s, 15m, 1h or 7d"),
        ("-5s", "scrape interval '-5s' is not a duration"),
        ("0s", "scrape interval must be more than 0, got '0s'"),
    ],
    ids=["word", "negative", "zero"],
)
def test_a_bad_scrape_interval_exits_2_with_a_message(
    tmp_path: Path, interval: str, message: str
) -> None:
    db = tmp_path / "onepane.duckdb"
    result = serve_once(db, "--gpu-target", "127.0.0.1:9400", f"--scrape-interval={interval}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("onepane: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert not db.exists()  # refused before anything was created
