"""Sample this machine's GPUs with NVML (``nvidia-ml-py``), for nodes without dcgm-exporter.

Every interval each GPU gives its utilisation, framebuffer and power as the same points a
dcgm-exporter scrape gives, so they land in ``gpu_samples`` the same way. The pods using
a GPU are found from its compute processes: a process's cgroup path names its pod uid,
which the Kubernetes inventory turns into namespace/name.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa

from collectors.gpu import dcgm
from onepane.errors import ConfigError
from store.gpu import FB_FREE, FB_USED, GPU_UTIL, POWER

# kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice (systemd, '_')
# or /kubepods/burstable/pod<uid>/<container> (cgroupfs, '-').
_POD_UID = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
)
_MIB = 1024 * 1024

PodLookup = Callable[[str], tuple[str, str] | None]  # pod uid -> (namespace, name)


def load_nvml() -> ModuleType:
    """The initialised ``pynvml`` module; ConfigError saying why when there is none."""
    try:
        import pynvml
    except ImportError as exc:
        raise ConfigError(
            "NVML sampling needs nvidia-ml-py: pip install 'onepane[nvml]' (or nvidia-ml-py)"
        ) from exc
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise ConfigError(
            f"NVML cannot start ({exc}): no NVIDIA driver on this machine? "
            "Turn gpu.nvml off or scrape dcgm-exporter instead."
        ) from exc
    return pynvml


def pod_uid_of(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The Kubernetes pod uid a process runs in, from its cgroup path."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    match = _POD_UID.search(text)
    return match.group(1).replace("_", "-") if match else None


def _pods_on(nvml: ModuleType, handle: Any, proc: Path) -> set[str]:
    try:
        processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except nvml.NVMLError:
        return set()
    uids = (pod_uid_of(p.pid, proc) for p in processes)
    return {uid for uid in uids if uid}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _readings(nvml: ModuleType, handle: Any) -> dict[str, float | None]:
    """The dcgm metrics NVML can give, None where the device does not support one."""
    out: dict[str, float | None] = {}
    reads: Iterable[tuple[str, Callable[[], float]]] = (
        (GPU_UTIL, lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        (FB_USED, lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used / _MIB),
        (FB_FREE, lambda: nvml.nvmlDeviceGetMemoryInfo(handle).free / _MIB),
        (POWER, lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000),
    )
    for metric, read in reads:
        try:
            out[metric] = float(read())
        except nvml.NVMLError:
            out[metric] = None
    return out


def sample(
    nvml: ModuleType, hostname: str, pods: PodLookup, proc: Path = Path("/proc")
) -> pa.Table:
    """One round of points for every GPU NVML sees (one set per pod using the GPU)."""
    now = time.time_ns()
    rows = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        labels = {
            "hostname": hostname,
            "gpu": str(index),
            "UUID": _text(nvml.nvmlDeviceGetUUID(handle)),
            "modelName": _text(nvml.nvmlDeviceGetName(handle)),
        }
        holders = [pods(uid) for uid in sorted(_pods_on(nvml, handle, proc))]
        places = [{"namespace": h[0], "pod": h[1]} for h in holders if h] or [{}]
        for metric, value in _readings(nvml, handle).items():
            for place in places:
                row = dcgm.point_row({**labels, **place}, metric, value)
                rows.append((now, "nvml", hostname, *row))
    return dcgm.points_table(rows)


@dataclass
class NvmlSampler:
    """Samples local GPUs every ``interval_s`` into ``sink`` (the writer)."""

    interval_s: float
    sink: Callable[[pa.Table], Future]
    pods: PodLookup
    hostname: str = field(default_factory=socket.gethostname)
    log: Callable[[str], None] = field(
        default=lambda line: print(f"onepane: {line}", file=sys.stderr, flush=True)
    )

    def __post_init__(self) -> None:
        self._nvml = load_nvml()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="onepane-nvml", daemon=True)
        self.samples = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        with contextlib.suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()

    def sample_once(self) -> int:
        points = sample(self._nvml, self.hostname, self.pods)
        if points.num_rows:
            self.sink(points).result(60)
        self.samples += 1
        return points.num_rows

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample_once()
                self.last_error = None
            except Exception as exc:  # the sampler must outlive a bad read
                if self.last_error is None:
                    self.log(f"warning: NVML sampling failed ({exc}); trying again")
                self.last_error = str(exc)
