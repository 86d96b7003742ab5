"""dcgm-exporter pages for the demo company, the tests and the benchmarks.

``render`` writes what dcgm-exporter serves on :9400/metrics with its default counters:
HELP and TYPE lines, one sample per GPU (or MIG instance) with its ``gpu``, ``UUID``,
``pci_bus_id``, ``device``, ``modelName`` and host labels, and ``pod`` / ``namespace`` /
``container`` when Kubernetes pod mapping is on. A GPU can report DCGM's blank sentinel
for any field, as real exporters do for fields a device does not support.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from onepane import httpbase

# dcgm-exporter's default counters (etc/default-counters.csv) with the profiling fields
# most clusters enable: 20 metrics per GPU.
DEFAULT_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "counter",
        "Total energy consumption since boot (in mJ).",
    ),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %)."),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB)."),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "counter",
        "Total number of NVLink bandwidth counters for all lanes.",
    ),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
    (
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "gauge",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
    ),
    (
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "gauge",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
    ),
)
INT64_BLANK = 9223372036854775794  # DCGM_INT64_NOT_SUPPORTED
FP64_BLANK = 140737488355328.0  # DCGM_FP64_BLANK


@dataclass
class SimGpu:
    """One GPU (or MIG instance) and what it reports right now."""

    index: int
    uuid: str
    model: str = "NVIDIA A10G"
    hostname: str = "gpu-node-1"
    util: float = 0.0  # percent
    fb_total_mib: float = 23028.0
    fb_used_mib: float = 0.0
    power_w: float = 25.0
    pod: tuple[str, str, str] | None = None  # (namespace, pod, container)
    mig: tuple[str, int] | None = None  # (GPU_I_PROFILE, GPU_I_ID)
    blank: set[str] = field(default_factory=set)  # metrics reported as DCGM blanks
    profiling: bool = True  # whether DCGM_FI_PROF_* fields are enabled

    def value(self, metric: str) -> float | int | None:
        if metric in self.blank:
            return FP64_BLANK if metric.startswith("DCGM_FI_PROF") else INT64_BLANK
        if metric.startswith("DCGM_FI_PROF") and not self.profiling:
            return None
        values: dict[str, float | int] = {
            "DCGM_FI_DEV_GPU_UTIL": round(self.util),
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE": round(self.util / 100 * 0.97, 6),
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": round(self.util / 100 * 0.4, 6),
            "DCGM_FI_PROF_DRAM_ACTIVE": round(self.util / 100 * 0.3, 6),
            "DCGM_FI_DEV_FB_USED": round(self.fb_used_mib),
            "DCGM_FI_DEV_FB_FREE": round(self.fb_total_mib - self.fb_used_mib),
            "DCGM_FI_DEV_FB_RESERVED": 512,
            "DCGM_FI_DEV_POWER_USAGE": round(self.power_w, 3),
            "DCGM_FI_DEV_SM_CLOCK": 1710 if self.util else 210,
            "DCGM_FI_DEV_MEM_CLOCK": 6251,
            "DCGM_FI_DEV_GPU_TEMP": round(32 + self.util * 0.4),
            "DCGM_FI_DEV_MEMORY_TEMP": round(30 + self.util * 0.3),
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 4_112_937_520,
        }
        return values.get(metric, 0)

    def labels(self, hostname_label: str) -> str:
        pairs = [
            ("gpu", str(self.index)),
            ("UUID", self.uuid),
            ("pci_bus_id", f"00000000:{self.index + 0x1B:02X}:00.0"),
            ("device", f"nvidia{self.index}"),
            ("modelName", self.model),
        ]
        if self.mig is not None:
            pairs += [("GPU_I_PROFILE", self.mig[0]), ("GPU_I_ID", str(self.mig[1]))]
        pairs += [(hostname_label, self.hostname), ("DCGM_FI_DRIVER_VERSION", "550.127.05")]
        if self.pod is not None:
            pairs += [("container", self.pod[2]), ("namespace", self.pod[0]), ("pod", self.pod[1])]
        return ",".join(f'{name}="{value}"' for name, value in pairs)


def render(gpus: list[SimGpu], hostname_label: str = "Hostname") -> str:
    """A dcgm-exporter page for ``gpus``; ``hostname_label`` is Hostname (older
    exporters) or hostname (newer)."""
    lines = []
    labels = [gpu.labels(hostname_label) for gpu in gpus]
    for metric, kind, help_text in DEFAULT_COUNTERS:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        for gpu, label_text in zip(gpus, labels, strict=True):
            value = gpu.value(metric)
            if value is not None:
                lines.append(f"{metric}{{{label_text}}} {value}")
    return "\n".join(lines) + "\n"


class _Handler(httpbase.Handler):
    server: DcgmServer

    def do_GET(self) -> None:
        page = self.server.pages.get(self.path.split("?", 1)[0])
        if page is None:
            self.send_body(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        self.send_body(200, page().encode(), "text/plain; version=0.0.4; charset=utf-8")


class DcgmServer(httpbase.Server):
    """Serves one dcgm-exporter page per path (``/gpu-node-1/metrics`` -> page function)."""

    def __init__(self, address: tuple[str, int], pages: Mapping[str, Callable[[], str]]) -> None:
        super().__init__(address, _Handler)
        self.pages = dict(pages)

    def url(self, path: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{path}"
