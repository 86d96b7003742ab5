"""A week of the demo's GPU history, so its GPU utilisation by hour of day is filled at once.

The demo's dcgm-exporter pages only say what the GPUs do now. A real cluster has a history
behind it, and that history is what shows where training could move: ``gpu-node-1`` runs
the recsys model, busy by day (about 60%) and nearly idle at night; ``gpu-node-2`` runs
the ``recsys-trainer`` CronJob's nightly training (about 90%) and sits idle by day. Days
and nights are real UTC hours here (07-21 h is day), so the pattern lands on the hours a
user reads on the heatmap.

The samples go through a real path: OTLP/HTTP protobuf to the server's ``/v1/metrics``,
as an OpenTelemetry Collector relaying dcgm-exporter sends them (the DCGM field names and
dcgm-exporter's labels, one request per day of samples). A store that already holds GPU
samples older than an hour is left as it is, so restarting the demo does not send the
week twice.
"""

from __future__ import annotations

import random
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as service
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from onepane.client import ApiClient
from onepane.errors import OnepaneError
from store.gpu import FB_FREE, FB_USED, GPU_UTIL, GR_ENGINE_ACTIVE, POWER

if TYPE_CHECKING:
    from onepane.demo_cluster import DemoCluster

HOUR_NS = 3_600 * 1_000_000_000
HISTORY_HOURS = 7 * 24
RECSYS_NODE, TRAINER_NODE = "gpu-node-1", "gpu-node-2"
DAY_HOURS = range(7, 22)  # 07:00-21:59 UTC: the recsys model's traffic is up
NIGHT_HOURS = frozenset((22, 23, 0, 1, 2, 3, 4, 5))  # the nightly training runs 22:00-06:00
_UNITS = {GPU_UTIL: "%", GR_ENGINE_ACTIVE: "1", FB_USED: "MiBy", FB_FREE: "MiBy", POWER: "W"}
_TIMEOUT_S = 30.0


class HistoryNotSent(OnepaneError):
    """The server refused or could not take the GPU history."""


@dataclass(frozen=True)
class GpuSample:
    """What one GPU reported at one time (dcgm-exporter's fields and labels)."""

    time_ns: int
    hostname: str
    gpu: int
    uuid: str
    model: str
    util: float  # percent, DCGM_FI_DEV_GPU_UTIL
    fb_used_mib: float
    fb_total_mib: float
    power_w: float
    pod: tuple[str, str, str] | None  # (namespace, pod, container) holding the GPU

    def values(self) -> dict[str, float]:
        """The DCGM fields sent for this sample, as dcgm-exporter reports them."""
        return {
            GPU_UTIL: float(round(self.util)),
            GR_ENGINE_ACTIVE: round(self.util / 100 * 0.97, 6),
            FB_USED: float(round(self.fb_used_mib)),
            FB_FREE: float(round(self.fb_total_mib - self.fb_used_mib)),
            POWER: round(self.power_w, 3),
        }

    @property
    def utilization(self) -> float:
        """The 0..1 utilisation Onepane stores: the graphics engine's active ratio."""
        return self.values()[GR_ENGINE_ACTIVE]

    def labels(self) -> dict[str, str]:
        labels = {
            "gpu": str(self.gpu),
            "UUID": self.uuid,
            "device": f"nvidia{self.gpu}",
            "modelName": self.model,
            "Hostname": self.hostname,
        }
        if self.pod is not None:
            labels.update(namespace=self.pod[0], pod=self.pod[1], container=self.pod[2])
        return labels


@dataclass(frozen=True)
class DemoGpu:
    """One of the demo's GPUs: where it is and who holds it by day."""

    hostname: str
    uuid: str
    index: int = 0
    model: str = "NVIDIA A10G"
    fb_total_mib: float = 23_028.0
    pod: tuple[str, str, str] | None = None


def utc_hour(time_ns: int) -> int:
    return datetime.fromtimestamp(time_ns / 1e9, UTC).hour


def recsys_util(hour: int, rng: random.Random) -> float:
    """The recsys model's GPU: about 60% by day, a shoulder at dawn and dusk, ~3% at night."""
    if hour in DAY_HOURS and hour not in (7, 21):
        return min(100.0, max(0.0, rng.gauss(60, 6)))
    if hour in (7, 21):
        return max(0.0, rng.gauss(30, 5))
    return max(0.0, rng.gauss(3, 1))


def trainer_util(hour: int, rng: random.Random) -> float:
    """The nightly training job's GPU: about 90% while it runs, 0 by day."""
    return min(100.0, max(0.0, rng.gauss(90, 3))) if hour in NIGHT_HOURS else 0.0


def _trainer_pod(time_ns: int, seed: int | None) -> tuple[str, str, str]:
    """The pod of that night's training Job, named as the CronJob names its Jobs."""
    started = time_ns // HOUR_NS * HOUR_NS - ((utc_hour(time_ns) - 22) % 24) * HOUR_NS
    rng = random.Random(f"recsys-trainer-{seed}-{started}")
    suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    return ("ml", f"recsys-trainer-{started // (60 * 10**9)}-{suffix}", "trainer")


def week(
    gpus: Sequence[DemoGpu], now_ns: int | None = None, seed: int | None = None
) -> list[GpuSample]:
    """One sample per GPU per hour for the ``HISTORY_HOURS`` hours before the current one,
    at half past each hour, oldest first."""
    now_ns = now_ns or time.time_ns()
    rng = random.Random(f"gpu-history-{seed}")
    current = now_ns // HOUR_NS * HOUR_NS
    samples: list[GpuSample] = []
    for back in range(HISTORY_HOURS, 0, -1):
        at = current - back * HOUR_NS + HOUR_NS // 2
        samples.extend(_sample(gpu, at, rng, seed) for gpu in gpus)
    return samples


def _sample(gpu: DemoGpu, at: int, rng: random.Random, seed: int | None) -> GpuSample:
    hour = utc_hour(at)
    if gpu.hostname == TRAINER_NODE:
        util = trainer_util(hour, rng)
        running = util > 0
        fb, power = (20_500.0, 270 + util / 10) if running else (0.0, 22.0)
        pod = _trainer_pod(at, seed) if running else None
    else:
        util = recsys_util(hour, rng)
        fb, power, pod = 9_800.0, 60 + 2.2 * util, gpu.pod
    return GpuSample(
        at, gpu.hostname, gpu.index, gpu.uuid, gpu.model, util, fb, gpu.fb_total_mib, power, pod
    )


def _attribute(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def export_request(samples: Iterable[GpuSample]) -> service.ExportMetricsServiceRequest:
    """The samples as one OTLP export: a resource per GPU host (the Collector's scrape
    target), a gauge per DCGM field."""
    by_host: dict[str, list[GpuSample]] = {}
    for sample in samples:
        by_host.setdefault(sample.hostname, []).append(sample)
    request = service.ExportMetricsServiceRequest()
    for hostname, host_samples in by_host.items():
        resource = resource_pb2.Resource(
            attributes=[
                _attribute("service.name", "dcgm-exporter"),
                _attribute("service.instance.id", f"{hostname}:9400"),
            ]
        )
        scope = metrics_pb2.ScopeMetrics(
            scope=common_pb2.InstrumentationScope(name="otelcol/prometheusreceiver")
        )
        for metric, unit in _UNITS.items():
            points = [
                metrics_pb2.NumberDataPoint(
                    time_unix_nano=s.time_ns,
                    as_double=s.values()[metric],
                    attributes=[_attribute(k, v) for k, v in s.labels().items()],
                )
                for s in host_samples
            ]
            scope.metrics.append(
                metrics_pb2.Metric(
                    name=metric, unit=unit, gauge=metrics_pb2.Gauge(data_points=points)
                )
            )
        request.resource_metrics.append(
            metrics_pb2.ResourceMetrics(resource=resource, scope_metrics=[scope])
        )
    return request


def post(endpoint: str, request: service.ExportMetricsServiceRequest, tries: int = 5) -> None:
    """POST one export to ``endpoint``/v1/metrics; waits out 429/503 as OTLP says."""
    url = endpoint.rstrip("/") + "/v1/metrics"
    body = request.SerializeToString()
    for attempt in range(tries):
        req = urllib.request.Request(url, data=body, method="POST")
        req.add_header("Content-Type", "application/x-protobuf")
        try:
            with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as response:
                answer = service.ExportMetricsServiceResponse.FromString(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (429, 503) and attempt + 1 < tries:
                time.sleep(float(exc.headers.get("Retry-After") or 1))
                continue
            raise HistoryNotSent(f"{url} answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise HistoryNotSent(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
        rejected = answer.partial_success.rejected_data_points
        if rejected:
            message = answer.partial_success.error_message
            raise HistoryNotSent(f"{url} rejected {rejected} points: {message}")
        return


def send(endpoint: str, samples: Sequence[GpuSample]) -> int:
    """Send ``samples`` over OTLP/HTTP, a day at a time; the number sent."""
    for first in range(0, len(samples), 48):
        post(endpoint, export_request(samples[first : first + 48]))
    return len(samples)


def has_history(api: str, hostnames: Iterable[str], now_ns: int | None = None) -> bool:
    """Whether the store already holds samples of these GPUs older than an hour."""
    now_s = (now_ns or time.time_ns()) // 10**9
    params = [("start", str(now_s - HISTORY_HOURS * 3600)), ("end", str(now_s - 3600))]
    gpus = ApiClient(api).get("/api/v1/gpus", params)["gpus"]
    wanted = set(hostnames)
    return any(g["hostname"] in wanted and g["samples"] for g in gpus)


def demo_gpus(cluster: DemoCluster) -> list[DemoGpu]:
    """The demo cluster's GPUs, with the recsys model's pod on the first."""
    return [
        DemoGpu(
            g.hostname,
            g.uuid,
            g.index,
            g.model,
            g.fb_total_mib,
            g.pod if g.hostname == RECSYS_NODE else None,
        )
        for g in cluster.gpus.values()
    ]


def send_demo(cluster: DemoCluster, endpoint: str, api: str, seed: int | None) -> None:
    """The demo's step: send the week unless the store has it; say what happened."""
    gpus = demo_gpus(cluster)
    try:
        if has_history(api, (g.hostname for g in gpus)):
            return
        sent = send(endpoint, week(gpus, seed=seed))
    except OnepaneError as exc:
        print(f"onepane: demo GPU history not sent: {exc}", file=sys.stderr, flush=True)
        return
    print(
        f"onepane: demo GPU history sent ({sent} hourly samples of the last 7 days over OTLP); "
        f"see GPU utilisation by hour of day: {api}/api/v1/gpus/heatmap?since=7d",
        file=sys.stderr,
        flush=True,
    )
