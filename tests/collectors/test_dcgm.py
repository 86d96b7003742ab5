"""Reading dcgm-exporter pages: what Onepane keeps from a scrape and what it leaves out.

The pages are what dcgm-exporter serves on :9400/metrics: inline copies of real exporter
output (2.x with ``Hostname``, 3.x with ``hostname``, MIG, Prometheus-renamed pod labels)
and pages written by ``onepane.dcgmsim.render`` with all 20 default counters.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from collectors.gpu import dcgm
from onepane import dcgmsim
from store.gpu import DCGM_BLANK_FLOOR, KEPT_METRICS, POINT_SCHEMA, is_blank

SCRAPED_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
TARGET = "http://gpu-node-1:9400/metrics"
INT64_BLANK = 9223372036854775794  # DCGM_INT64_NOT_SUPPORTED
FP64_BLANK = 140737488355328  # DCGM_FP64_BLANK, 2^47
INT32_BLANK = 2147483632  # DCGM_INT32_BLANK, 0x7ffffff0

# dcgm-exporter 2.x (label Hostname), Kubernetes pod mapping on: GPU 0 held by a pod, GPU 1
# idle with empty pod labels, as that exporter writes them.
EXPORTER_2X = """\
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-5fd4f1c4-6b2a-7d3e-9c1f-0a1b2c3d4e5f",device="nvidia0",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="triton",namespace="ml",pod="triton-7c9d8f6b5-x2x9q"} 1590
DCGM_FI_DEV_SM_CLOCK{gpu="1",UUID="GPU-0b7a9e21-44c3-8d5f-1e2a-3b4c5d6e7f80",device="nvidia1",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="",namespace="",pod=""} 300
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-5fd4f1c4-6b2a-7d3e-9c1f-0a1b2c3d4e5f",device="nvidia0",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="triton",namespace="ml",pod="triton-7c9d8f6b5-x2x9q"} 61
DCGM_FI_DEV_GPU_TEMP{gpu="1",UUID="GPU-0b7a9e21-44c3-8d5f-1e2a-3b4c5d6e7f80",device="nvidia1",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="",namespace="",pod=""} 34
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-5fd4f1c4-6b2a-7d3e-9c1f-0a1b2c3d4e5f",device="nvidia0",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="triton",namespace="ml",pod="triton-7c9d8f6b5-x2x9q"} 58.217
DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-0b7a9e21-44c3-8d5f-1e2a-3b4c5d6e7f80",device="nvidia1",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="",namespace="",pod=""} 140737488355328
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-5fd4f1c4-6b2a-7d3e-9c1f-0a1b2c3d4e5f",device="nvidia0",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="triton",namespace="ml",pod="triton-7c9d8f6b5-x2x9q"} 87
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-0b7a9e21-44c3-8d5f-1e2a-3b4c5d6e7f80",device="nvidia1",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="",namespace="",pod=""} 0
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-5fd4f1c4-6b2a-7d3e-9c1f-0a1b2c3d4e5f",device="nvidia0",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="triton",namespace="ml",pod="triton-7c9d8f6b5-x2x9q"} 3105
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-0b7a9e21-44c3-8d5f-1e2a-3b4c5d6e7f80",device="nvidia1",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="",namespace="",pod=""} 14912
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-5fd4f1c4-6b2a-7d3e-9c1f-0a1b2c3d4e5f",device="nvidia0",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="triton",namespace="ml",pod="triton-7c9d8f6b5-x2x9q"} 11807
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-0b7a9e21-44c3-8d5f-1e2a-3b4c5d6e7f80",device="nvidia1",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="",namespace="",pod=""} 0
# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{gpu="0",UUID="GPU-5fd4f1c4-6b2a-7d3e-9c1f-0a1b2c3d4e5f",device="nvidia0",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="triton",namespace="ml",pod="triton-7c9d8f6b5-x2x9q"} 0
DCGM_FI_DEV_XID_ERRORS{gpu="1",UUID="GPU-0b7a9e21-44c3-8d5f-1e2a-3b4c5d6e7f80",device="nvidia1",modelName="Tesla T4",Hostname="ip-10-0-1-23",container="",namespace="",pod=""} 0
"""  # noqa: E501 (exporter lines as served)

# dcgm-exporter 3.x (label hostname) on an A100 split into MIG instances. DCGM has no
# per-instance GPU_UTIL (int32 blank); GR_ENGINE_ACTIVE is the instance's own activity.
MIG_UUID = "GPU-a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90"
EXPORTER_3X_MIG = f"""\
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="{MIG_UUID}",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",GPU_I_PROFILE="1g.10gb",GPU_I_ID="13",hostname="dgx-a100-04",DCGM_FI_DRIVER_VERSION="535.161.08",container="embedder",namespace="search",pod="embedder-0"}} {INT32_BLANK}
DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="{MIG_UUID}",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",GPU_I_PROFILE="3g.40gb",GPU_I_ID="2",hostname="dgx-a100-04",DCGM_FI_DRIVER_VERSION="535.161.08",container="trainer",namespace="ml",pod="ranker-train-28391-abcde"}} {INT32_BLANK}
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{{gpu="0",UUID="{MIG_UUID}",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",GPU_I_PROFILE="1g.10gb",GPU_I_ID="13",hostname="dgx-a100-04",DCGM_FI_DRIVER_VERSION="535.161.08",container="embedder",namespace="search",pod="embedder-0"}} 4211
DCGM_FI_DEV_FB_USED{{gpu="0",UUID="{MIG_UUID}",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",GPU_I_PROFILE="3g.40gb",GPU_I_ID="2",hostname="dgx-a100-04",DCGM_FI_DRIVER_VERSION="535.161.08",container="trainer",namespace="ml",pod="ranker-train-28391-abcde"}} 38020
# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE Ratio of time the graphics engine is active.
# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{{gpu="0",UUID="{MIG_UUID}",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",GPU_I_PROFILE="1g.10gb",GPU_I_ID="13",hostname="dgx-a100-04",DCGM_FI_DRIVER_VERSION="535.161.08",container="embedder",namespace="search",pod="embedder-0"}} 0.212345
DCGM_FI_PROF_GR_ENGINE_ACTIVE{{gpu="0",UUID="{MIG_UUID}",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",GPU_I_PROFILE="3g.40gb",GPU_I_ID="2",hostname="dgx-a100-04",DCGM_FI_DRIVER_VERSION="535.161.08",container="trainer",namespace="ml",pod="ranker-train-28391-abcde"}} 0.953
"""  # noqa: E501 (exporter lines as served)


def rows(parsed: dcgm.Parsed) -> list[dict[str, Any]]:
    return parsed.points.to_pylist()


def by_metric(parsed: dcgm.Parsed, **labels: Any) -> dict[str, float | None]:
    """metric -> value for the points whose columns match ``labels``."""
    out = {}
    for row in rows(parsed):
        if all(row[key] == value for key, value in labels.items()):
            assert row["metric"] not in out, f"two {row['metric']} points for {labels}"
            out[row["metric"]] = row["value"]
    return out


def sim_gpu(index: int, **fields: Any) -> dcgmsim.SimGpu:
    return dcgmsim.SimGpu(index, f"GPU-00000000-0000-0000-0000-00000000000{index}", **fields)


# --- what is kept -----------------------------------------------------------------------


def test_only_the_five_kept_metrics_of_the_twenty_default_counters_survive() -> None:
    gpus = [
        sim_gpu(0, util=50.0, fb_used_mib=9000.0, power_w=180.5, pod=("ml", "recsys-0", "model")),
        sim_gpu(1, util=0.0),
    ]
    page = dcgmsim.render(gpus)
    served = {line.split("{")[0] for line in page.splitlines() if not line.startswith("#")}
    assert len(served) == len(dcgmsim.DEFAULT_COUNTERS) == 20

    parsed = dcgm.parse(page, TARGET, SCRAPED_NS)

    assert parsed.points.schema.equals(POINT_SCHEMA)
    assert {row["metric"] for row in rows(parsed)} == set(KEPT_METRICS)
    assert parsed.points.num_rows == 2 * 5
    assert (parsed.gpus, parsed.blanks) == (2, 0)
    assert by_metric(parsed, gpu=0) == {
        "DCGM_FI_DEV_GPU_UTIL": 50.0,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": 0.485,
        "DCGM_FI_DEV_FB_USED": 9000.0,
        "DCGM_FI_DEV_FB_FREE": 14028.0,
        "DCGM_FI_DEV_POWER_USAGE": 180.5,
    }
    [first] = [row for row in rows(parsed) if row["gpu"] == 0][:1]
    assert first == {
        "time": first["time"],
        "source": "dcgm",
        "target": TARGET,
        "metric": first["metric"],
        "value": first["value"],
        "hostname": "gpu-node-1",
        "gpu": 0,
        "uuid": "GPU-00000000-0000-0000-0000-000000000000",
        "model_name": "NVIDIA A10G",
        "mig_profile": None,
        "mig_instance": None,
        "namespace": "ml",
        "pod": "recsys-0",
        "container": "model",
    }
    idle = [row for row in rows(parsed) if row["gpu"] == 1]
    assert {(row["namespace"], row["pod"], row["container"]) for row in idle} == {
        (None, None, None)
    }


def test_every_point_gets_the_scrape_time_target_and_source() -> None:
    parsed = dcgm.parse(dcgmsim.render([sim_gpu(0)]), TARGET, SCRAPED_NS, source="nvml")
    times = parsed.points.column("time").cast("int64").to_pylist()
    assert set(times) == {SCRAPED_NS}
    assert {(r["source"], r["target"]) for r in rows(parsed)} == {("nvml", TARGET)}


def test_profiling_off_leaves_gpu_util_as_the_only_utilisation() -> None:
    parsed = dcgm.parse(dcgmsim.render([sim_gpu(0, util=64.0, profiling=False)]), TARGET, 0)
    values = by_metric(parsed, gpu=0)
    assert "DCGM_FI_PROF_GR_ENGINE_ACTIVE" not in values
    assert values["DCGM_FI_DEV_GPU_UTIL"] == 64.0
    assert parsed.points.num_rows == 4


def test_exporter_2x_page_with_hostname_label_and_an_idle_gpu() -> None:
    parsed = dcgm.parse(EXPORTER_2X, TARGET, SCRAPED_NS)
    assert (parsed.gpus, parsed.blanks) == (2, 1)
    assert parsed.points.num_rows == 8  # 4 kept metrics served for 2 GPUs
    assert {row["hostname"] for row in rows(parsed)} == {"ip-10-0-1-23"}
    assert {row["model_name"] for row in rows(parsed)} == {"Tesla T4"}
    busy = by_metric(parsed, uuid="GPU-5fd4f1c4-6b2a-7d3e-9c1f-0a1b2c3d4e5f")
    assert busy == {
        "DCGM_FI_DEV_POWER_USAGE": 58.217,
        "DCGM_FI_DEV_GPU_UTIL": 87.0,
        "DCGM_FI_DEV_FB_FREE": 3105.0,
        "DCGM_FI_DEV_FB_USED": 11807.0,
    }
    idle = by_metric(parsed, gpu=1)
    assert idle["DCGM_FI_DEV_POWER_USAGE"] is None  # the FP64 blank
    assert idle["DCGM_FI_DEV_GPU_UTIL"] == 0.0  # a real zero stays a zero
    pods = {(r["gpu"], r["namespace"], r["pod"], r["container"]) for r in rows(parsed)}
    assert pods == {(0, "ml", "triton-7c9d8f6b5-x2x9q", "triton"), (1, None, None, None)}


def test_exporter_3x_lowercase_hostname_and_mig_instances() -> None:
    parsed = dcgm.parse(EXPORTER_3X_MIG, TARGET, SCRAPED_NS)
    assert (parsed.gpus, parsed.blanks) == (2, 2)  # two MIG instances, two GPU_UTIL blanks
    assert {row["hostname"] for row in rows(parsed)} == {"dgx-a100-04"}
    small = by_metric(parsed, mig_profile="1g.10gb", mig_instance=13)
    large = by_metric(parsed, mig_profile="3g.40gb", mig_instance=2)
    assert small == {
        "DCGM_FI_DEV_GPU_UTIL": None,
        "DCGM_FI_DEV_FB_USED": 4211.0,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": 0.212345,
    }
    assert large == {
        "DCGM_FI_DEV_GPU_UTIL": None,
        "DCGM_FI_DEV_FB_USED": 38020.0,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": 0.953,
    }
    instances = {(r["gpu"], r["uuid"], r["mig_instance"], r["pod"]) for r in rows(parsed)}
    assert instances == {
        (0, MIG_UUID, 13, "embedder-0"),
        (0, MIG_UUID, 2, "ranker-train-28391-abcde"),
    }


@pytest.mark.parametrize("hostname_label", ["Hostname", "hostname"])
def test_both_hostname_spellings_from_the_simulator(hostname_label: str) -> None:
    gpus = [sim_gpu(0, hostname="gpu-node-7"), sim_gpu(1, hostname="gpu-node-7")]
    page = dcgmsim.render(gpus, hostname_label=hostname_label)
    assert f'{hostname_label}="gpu-node-7"' in page
    parsed = dcgm.parse(page, TARGET, SCRAPED_NS)
    assert {row["hostname"] for row in rows(parsed)} == {"gpu-node-7"}


def test_mig_instances_from_the_simulator_are_separate_gpus() -> None:
    uuid = "GPU-7f6e5d4c-3b2a-1908-f7e6-d5c4b3a29180"
    gpus = [
        dcgmsim.SimGpu(0, uuid, model="NVIDIA A100-SXM4-40GB", mig=("1g.5gb", 7), util=10.0),
        dcgmsim.SimGpu(0, uuid, model="NVIDIA A100-SXM4-40GB", mig=("2g.10gb", 3), util=80.0),
    ]
    parsed = dcgm.parse(dcgmsim.render(gpus), TARGET, SCRAPED_NS)
    assert parsed.gpus == 2
    assert by_metric(parsed, mig_instance=7)["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] == 0.097
    assert by_metric(parsed, mig_instance=3)["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] == 0.776
    assert {(r["mig_profile"], r["mig_instance"]) for r in rows(parsed)} == {
        ("1g.5gb", 7),
        ("2g.10gb", 3),
    }


# --- blanks -------------------------------------------------------------------------------


def test_dcgm_blank_sentinels_become_missing_values_and_are_counted() -> None:
    gpu = sim_gpu(
        0,
        util=40.0,
        fb_used_mib=1000.0,
        blank={"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_SM_CLOCK"},
    )
    page = dcgmsim.render([gpu])
    assert f"DCGM_FI_DEV_POWER_USAGE{{{gpu.labels('Hostname')}}} {INT64_BLANK}" in page
    assert f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{gpu.labels('Hostname')}}} {FP64_BLANK}.0" in page

    parsed = dcgm.parse(page, TARGET, SCRAPED_NS)

    # SM_CLOCK is blank too, but it is not kept, so it is not counted.
    assert parsed.blanks == 2
    assert by_metric(parsed, gpu=0) == {
        "DCGM_FI_DEV_POWER_USAGE": None,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": None,
        "DCGM_FI_DEV_GPU_UTIL": 40.0,
        "DCGM_FI_DEV_FB_USED": 1000.0,
        "DCGM_FI_DEV_FB_FREE": 22028.0,
    }


@pytest.mark.parametrize(
    ("sentinel", "kind"),
    [
        (INT64_BLANK, "int64 not supported"),
        (9223372036854775792, "int64 blank"),
        (FP64_BLANK, "fp64 blank"),
        (140737488355329, "fp64 not found"),
        (INT32_BLANK, "int32 blank"),
        (2147483634, "int32 not supported"),
    ],
)
def test_each_sentinel_width_is_a_blank(sentinel: int, kind: str) -> None:
    page = (
        "# TYPE DCGM_FI_DEV_FB_USED gauge\n"
        f'DCGM_FI_DEV_FB_USED{{gpu="0",UUID="GPU-1",Hostname="h"}} {sentinel}\n'
        f'DCGM_FI_DEV_FB_USED{{gpu="1",UUID="GPU-2",Hostname="h"}} 2147483631\n'
    )
    parsed = dcgm.parse(page, TARGET, SCRAPED_NS)
    assert parsed.blanks == 1, kind
    assert {r["gpu"]: r["value"] for r in rows(parsed)} == {0: None, 1: 2147483631.0}


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        (0.0, False),
        (87.0, False),
        (0.953, False),
        (DCGM_BLANK_FLOOR - 1, False),
        (float(INT32_BLANK), True),
        (float(FP64_BLANK), True),
        (float(INT64_BLANK), True),
        (math.nan, True),
        (math.inf, True),
        (-math.inf, True),
        (-1.0, True),
        (-0.001, True),
    ],
)
def test_is_blank(value: float, blank: bool) -> None:
    assert is_blank(value) is blank


def test_nan_and_negative_values_on_the_page_are_blanks() -> None:
    page = (
        "# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"
        'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-1",Hostname="h"} NaN\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-2",Hostname="h"} -1\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="2",UUID="GPU-3",Hostname="h"} +Inf\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="3",UUID="GPU-4",Hostname="h"} 71.5\n'
    )
    parsed = dcgm.parse(page, TARGET, SCRAPED_NS)
    assert parsed.blanks == 3
    assert {r["gpu"]: r["value"] for r in rows(parsed)} == {0: None, 1: None, 2: None, 3: 71.5}


# --- labels -------------------------------------------------------------------------------


def test_exported_pod_and_namespace_win_over_the_exporters_own() -> None:
    # A Prometheus in between renamed the workload's labels: pod/namespace are now the
    # dcgm-exporter pod's own, exported_* the workload holding the GPU.
    page = (
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1",Hostname="gpu-node-1",'
        'namespace="gpu-operator",pod="nvidia-dcgm-exporter-6x7kq",container="nvidia-dcgm-exporter",'
        'exported_namespace="ml",exported_pod="recsys-5d8f7-abcde",exported_container="model"} 73\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-2",Hostname="gpu-node-1",'
        'namespace="gpu-operator",pod="nvidia-dcgm-exporter-6x7kq",container="nvidia-dcgm-exporter",'
        'exported_namespace="",exported_pod="",exported_container=""} 0\n'
    )
    parsed = dcgm.parse(page, TARGET, SCRAPED_NS)
    places = {r["gpu"]: (r["namespace"], r["pod"], r["container"]) for r in rows(parsed)}
    assert places[0] == ("ml", "recsys-5d8f7-abcde", "model")
    # Empty exported_* labels fall back to the plain ones.
    assert places[1] == ("gpu-operator", "nvidia-dcgm-exporter-6x7kq", "nvidia-dcgm-exporter")


def test_non_numeric_gpu_and_instance_labels_are_left_empty() -> None:
    page = (
        "# TYPE DCGM_FI_DEV_FB_USED gauge\n"
        'DCGM_FI_DEV_FB_USED{gpu="nvidia0",UUID="GPU-1",GPU_I_ID="x",Hostname="h"} 5\n'
        'DCGM_FI_DEV_FB_USED{gpu="²",UUID="GPU-2",Hostname="h"} 6\n'
    )
    parsed = dcgm.parse(page, TARGET, SCRAPED_NS)
    assert [(r["uuid"], r["gpu"], r["mig_instance"]) for r in rows(parsed)] == [
        ("GPU-1", None, None),
        ("GPU-2", None, None),
    ]


# --- time ---------------------------------------------------------------------------------


def test_a_sample_with_its_own_timestamp_keeps_it() -> None:
    page = (
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1",Hostname="h"} 55 1767225599123\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-2",Hostname="h"} 66\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="2",UUID="GPU-3",Hostname="h"} 77 1767225598007\n'
    )
    parsed = dcgm.parse(page, TARGET, SCRAPED_NS)
    times = dict(
        zip(
            parsed.points.column("gpu").to_pylist(),
            parsed.points.column("time").cast("int64").to_pylist(),
            strict=True,
        )
    )
    # Milliseconds on the page, exact nanoseconds in the store.
    assert times == {0: 1_767_225_599_123_000_000, 1: SCRAPED_NS, 2: 1_767_225_598_007_000_000}


# --- pages that are not pages -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<html><body><h1>502 Bad Gateway</h1></body></html>\n",
        "404 page not found\n",
        '{"status": "error", "error": "not ready"}\n',
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1" 5\n',
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} busy\n',
    ],
    ids=["html", "plain-404", "json", "unclosed-labels", "word-value"],
)
def test_garbage_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        dcgm.parse(text, TARGET, SCRAPED_NS)


def test_an_empty_page_has_no_points() -> None:
    for text in ("", "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"):
        parsed = dcgm.parse(text, TARGET, SCRAPED_NS)
        assert (parsed.points.num_rows, parsed.gpus, parsed.blanks) == (0, 0, 0)
        assert parsed.points.schema.equals(POINT_SCHEMA)
