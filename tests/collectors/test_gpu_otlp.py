"""DCGM gauges sent over OTLP (as an OpenTelemetry Collector scraping dcgm-exporter sends
them) land in Onepane's GPU view beside scraped ones, and stay ordinary metric points.

The OpenTelemetry SDK's own exporters send them, over OTLP/HTTP protobuf and OTLP/gRPC, to
one live `onepane serve` for the module. Each test uses its own host names and GPU UUIDs,
so the tests do not depend on each other. An export that returned has been committed.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource

from onepane.testing import LiveServer

GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
GR_ENGINE_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
POWER = "DCGM_FI_DEV_POWER_USAGE"
DCGM_METRICS = (GPU_UTIL, GR_ENGINE_ACTIVE, FB_USED, FB_FREE, POWER)
FP64_BLANK = 140737488355328.0
S = 1_000_000_000

# Values for one GPU at one collection: metric -> value (None: not reported).
Readings = dict[str, float | None]


@pytest.fixture(scope="module")
def otlp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("gpu-otlp") / "onepane.duckdb", "--decoders", "1")
    yield live
    if live.stop() != 0:
        pytest.fail("onepane serve did not stop cleanly:\n" + "".join(live.output))


def uid() -> str:
    return secrets.token_hex(4)


def api(server: LiveServer, path: str, **query: str) -> dict[str, Any]:
    status, body = server.get_json(f"{path}?{urllib.parse.urlencode(query)}")
    assert status == 200, body
    return body


def gpus_on(server: LiveServer, hostname: str) -> list[dict[str, Any]]:
    """/api/v1/gpus rows of one host, in the API's order."""
    return [g for g in api(server, "/api/v1/gpus", since="1h")["gpus"] if g["hostname"] == hostname]


def keep_dcgm_names() -> list[View]:
    """Views that send the DCGM metrics under dcgm-exporter's own names.

    The Python SDK lowercases instrument names (the API treats them as case-insensitive);
    a View's stream name is sent as written, as an OpenTelemetry Collector relaying
    dcgm-exporter sends them.
    """
    return [View(instrument_name=name, name=name) for name in DCGM_METRICS]


def http_exporter(server: LiveServer) -> MetricExporter:
    return HttpMetricExporter(endpoint=f"{server.otlp_url}/v1/metrics")


def grpc_exporter(server: LiveServer) -> MetricExporter:
    return GrpcMetricExporter(endpoint=server.grpc_address, insecure=True)


class DcgmMeter:
    """The DCGM gauges as observable gauges of a MeterProvider: each ``collect`` reports
    what ``gpus`` holds then (label set -> readings) and exports it at once."""

    def __init__(self, exporter: MetricExporter, service: str, keep_names: bool = True) -> None:
        self.gpus: dict[tuple[tuple[str, Any], ...], Readings] = {}
        self._reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
        self.provider = MeterProvider(
            metric_readers=[self._reader],
            resource=Resource.create({"service.name": service, "service.instance.id": uid()}),
            views=keep_dcgm_names() if keep_names else [],
        )
        meter = self.provider.get_meter("otelcol/prometheusreceiver", "0.116.0")
        for metric, unit in (
            (GPU_UTIL, "%"),
            (GR_ENGINE_ACTIVE, "1"),
            (FB_USED, "MiBy"),
            (FB_FREE, "MiBy"),
            (POWER, "W"),
        ):
            meter.create_observable_gauge(metric, [self._callback(metric)], unit=unit)

    def _callback(self, metric: str) -> Callable[[CallbackOptions], list[Observation]]:
        def observe(options: CallbackOptions) -> list[Observation]:
            return [
                Observation(readings[metric], dict(labels))
                for labels, readings in self.gpus.items()
                if readings.get(metric) is not None
            ]

        return observe

    def collect(self) -> None:
        assert self.provider.force_flush(10_000), "the export failed"

    def shutdown(self) -> None:
        self.provider.shutdown()


def dcgm_labels(hostname: str, gpu: Any, uuid: str, **extra: Any) -> tuple[tuple[str, Any], ...]:
    """dcgm-exporter's labels for one GPU, as a Prometheus receiver turns them into
    attributes."""
    labels = {
        "gpu": gpu,
        "UUID": uuid,
        "device": f"nvidia{gpu}",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": hostname,
        "DCGM_FI_DRIVER_VERSION": "550.90.07",
        **extra,
    }
    return tuple(labels.items())


def readings(util: float, fb_used: float, power: float | None = 350.0) -> Readings:
    return {
        GPU_UTIL: util,
        GR_ENGINE_ACTIVE: round(util / 100 * 0.9, 6),
        FB_USED: fb_used,
        FB_FREE: 81_559.0 - fb_used,
        POWER: power,
    }


@pytest.fixture
def dcgm_meter() -> Iterator[Callable[..., DcgmMeter]]:
    made: list[DcgmMeter] = []

    def make(exporter: MetricExporter, service: str, keep_names: bool = True) -> DcgmMeter:
        made.append(DcgmMeter(exporter, service, keep_names))
        return made[-1]

    yield make
    for meter in made:
        meter.shutdown()


# --- DCGM gauges over OTLP/HTTP ---------------------------------------------------------------


def test_dcgm_gauges_over_otlp_http_show_up_as_gpus(
    otlp: LiveServer, dcgm_meter: Callable[[MetricExporter, str], DcgmMeter]
) -> None:
    host, service = f"h100-node-{uid()}", f"otelcol-dcgm-{uid()}"
    uuid_0, uuid_1 = (
        f"GPU-{uid()}-0000-4000-8000-000000000000",
        f"GPU-{uid()}-1111-4000-8000-000000000001",
    )
    meter = dcgm_meter(http_exporter(otlp), service)
    trainer = dcgm_labels(
        host, "0", uuid_0, pod="llm-train-0", namespace="research", container="trainer"
    )
    # Behind a Prometheus, the exporter's own pod labels are pod/namespace and the
    # workload's are exported_pod/exported_namespace.
    served = dcgm_labels(
        host,
        "1",
        uuid_1,
        pod="nvidia-dcgm-exporter-x8k2p",
        namespace="gpu-operator",
        container="nvidia-dcgm-exporter",
        exported_pod="vllm-6f7d9c8b4-m4n5p",
        exported_namespace="serving",
        exported_container="vllm",
    )

    meter.gpus = {trainer: readings(60.0, 70_000.0), served: readings(20.0, 30_000.0, FP64_BLANK)}
    meter.collect()
    meter.gpus = {trainer: readings(80.0, 72_000.0), served: readings(40.0, 30_000.0, FP64_BLANK)}
    meter.collect()

    rows = gpus_on(otlp, host)
    assert [(g["gpu"], g["uuid"]) for g in rows] == [(0, uuid_0), (1, uuid_1)]
    train, serve = rows
    assert train["model_name"] == "NVIDIA H100 80GB HBM3"
    assert (train["mig_profile"], train["mig_instance"]) == (None, None)
    assert train["pods"] == ["research/llm-train-0"]
    assert serve["pods"] == ["serving/vllm-6f7d9c8b4-m4n5p"]
    assert train["workloads"] is None  # no Kubernetes inventory on this server
    assert train["samples"] == serve["samples"] == 2  # one per collection, all gauges merged
    # GR_ENGINE_ACTIVE wins over GPU_UTIL, as for a scrape: (0.54 + 0.72) / 2.
    assert train["avg_utilization"] == pytest.approx(0.63)
    assert train["max_utilization"] == train["last_utilization"] == pytest.approx(0.72)
    assert train["avg_fb_used_mib"] == pytest.approx(71_000.0)
    assert train["avg_power_w"] == pytest.approx(350.0)
    assert serve["avg_utilization"] == pytest.approx(0.27)
    assert serve["avg_fb_used_mib"] == pytest.approx(30_000.0)
    assert serve["avg_power_w"] is None  # the FP64 blank is missing data
    assert time.time_ns() - train["last_sample_ns"] < 60 * S

    # The same points are still ordinary metrics of the sender.
    catalog = {m["name"]: m for m in api(otlp, "/api/v1/metrics", service=service)["metrics"]}
    assert sorted(catalog) == sorted(DCGM_METRICS)
    assert {(m["type"], m["series"]) for m in catalog.values()} == {("gauge", 2)}
    assert catalog[GPU_UTIL]["unit"] == "%" and catalog[GPU_UTIL]["points"] == 4
    util_points = api(otlp, f"/api/v1/metrics/{GPU_UTIL}/points", service=service)["points"]
    assert sorted((p["attributes"]["UUID"], p["value"]) for p in util_points) == sorted(
        [(uuid_0, 60.0), (uuid_0, 80.0), (uuid_1, 20.0), (uuid_1, 40.0)]
    )
    assert util_points[0]["attributes"]["Hostname"] == host
    power_points = api(otlp, f"/api/v1/metrics/{POWER}/points", service=service)["points"]
    assert FP64_BLANK in {p["value"] for p in power_points}  # kept as sent


def test_gpu_util_without_profiling_and_lowercase_hostname(
    otlp: LiveServer, dcgm_meter: Callable[[MetricExporter, str], DcgmMeter]
) -> None:
    host, uuid = f"a10g-node-{uid()}", f"GPU-{uid()}-2222-4000-8000"
    meter = dcgm_meter(http_exporter(otlp), f"otelcol-{uid()}")
    labels = (
        ("gpu", "0"),
        ("UUID", uuid),
        ("modelName", "NVIDIA A10G"),
        ("hostname", host),  # dcgm-exporter 3.x spelling
        ("pod", "etl-nightly-28911520-k2j4h"),
        ("namespace", "data"),
    )
    meter.gpus = {labels: {GPU_UTIL: 45.0, FB_USED: 12_000.0, FB_FREE: 11_028.0}}
    meter.collect()
    [row] = gpus_on(otlp, host)
    assert row["uuid"] == uuid
    assert row["avg_utilization"] == pytest.approx(0.45)  # GPU_UTIL / 100
    assert row["avg_fb_used_mib"] == 12_000.0
    assert row["avg_power_w"] is None
    assert row["pods"] == ["data/etl-nightly-28911520-k2j4h"]


def test_sdk_lowercased_dcgm_names_still_make_gpus(
    otlp: LiveServer, dcgm_meter: Callable[..., DcgmMeter]
) -> None:
    """Without a View the Python SDK sends dcgm_fi_dev_gpu_util: still a GPU row."""
    host, uuid = f"sdk-node-{uid()}", f"GPU-{uid()}-3333-4000-8000"
    meter = dcgm_meter(http_exporter(otlp), f"gpu-agent-{uid()}", keep_names=False)
    meter.gpus = {dcgm_labels(host, "0", uuid): readings(util=60.0, fb_used=30_000.0)}
    meter.collect()
    names = {m["name"] for m in api(otlp, "/api/v1/metrics", since="1h")["metrics"]}
    assert GPU_UTIL.lower() in names  # as the SDK sent it
    [row] = gpus_on(otlp, host)
    assert row["uuid"] == uuid
    assert row["avg_utilization"] == pytest.approx(0.54)  # GR_ENGINE_ACTIVE 0.9 x 60%
    assert row["avg_fb_used_mib"] == 30_000.0


# --- DCGM gauges over OTLP/gRPC -----------------------------------------------------------------


def test_dcgm_gauges_over_otlp_grpc_with_mig_instances(
    otlp: LiveServer, dcgm_meter: Callable[[MetricExporter, str], DcgmMeter]
) -> None:
    host, uuid = f"dgx-{uid()}", f"GPU-{uid()}-3333-4000-8000"
    service = f"otelcol-grpc-{uid()}"
    meter = dcgm_meter(grpc_exporter(otlp), service)
    small = dcgm_labels(
        host, 3, uuid, GPU_I_PROFILE="1g.10gb", GPU_I_ID=11, pod="embed-0", namespace="search"
    )
    large = dcgm_labels(
        host, 3, uuid, GPU_I_PROFILE="3g.40gb", GPU_I_ID=2, pod="rank-0", namespace="search"
    )
    # DCGM has no per-instance GPU_UTIL: only the profiling ratio and the framebuffer.
    meter.gpus = {
        small: {GR_ENGINE_ACTIVE: 0.25, FB_USED: 5_000.0},
        large: {GR_ENGINE_ACTIVE: 0.875, FB_USED: 31_000.0},
    }
    meter.collect()

    rows = gpus_on(otlp, host)
    assert [(g["gpu"], g["mig_profile"], g["mig_instance"]) for g in rows] == [
        (3, "3g.40gb", 2),
        (3, "1g.10gb", 11),
    ]
    assert {g["uuid"] for g in rows} == {uuid}
    assert [g["avg_utilization"] for g in rows] == [pytest.approx(0.875), pytest.approx(0.25)]
    assert [g["avg_fb_used_mib"] for g in rows] == [31_000.0, 5_000.0]
    assert [g["pods"] for g in rows] == [["search/rank-0"], ["search/embed-0"]]
    catalog = api(otlp, "/api/v1/metrics", service=service)["metrics"]
    assert [(m["name"], m["type"], m["points"]) for m in catalog] == [
        (FB_USED, "gauge", 2),
        (GR_ENGINE_ACTIVE, "gauge", 2),
    ]


# --- what is not a GPU reading -----------------------------------------------------------------


def test_a_sum_named_like_a_dcgm_gauge_makes_no_gpu(otlp: LiveServer) -> None:
    host, service = f"not-a-gpu-{uid()}", f"lookalike-{uid()}"
    reader = PeriodicExportingMetricReader(http_exporter(otlp), export_interval_millis=3_600_000)
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": service}),
        views=keep_dcgm_names(),
    )
    try:
        meter = provider.get_meter("lookalike")
        labels = {"gpu": "0", "UUID": f"GPU-{uid()}", "Hostname": host}
        meter.create_counter(GPU_UTIL, unit="%").add(55, labels)
        meter.create_observable_up_down_counter(
            FB_USED, [lambda options: [Observation(4_096.0, labels)]]
        )
        assert provider.force_flush(10_000)

        assert gpus_on(otlp, host) == []
        catalog = api(otlp, "/api/v1/metrics", service=service)["metrics"]
        assert [(m["name"], m["type"], m["points"]) for m in catalog] == [
            (FB_USED, "sum", 1),
            (GPU_UTIL, "sum", 1),
        ]
        [point] = api(otlp, f"/api/v1/metrics/{GPU_UTIL}/points", service=service)["points"]
        assert (point["metric_type"], point["value"]) == ("sum", 55.0)
        assert point["attributes"]["Hostname"] == host
    finally:
        provider.shutdown()
