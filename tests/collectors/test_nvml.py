"""The NVML sampler: which pod a GPU process belongs to (from its cgroup), what NVML
reports for this machine's GPUs, and what ``onepane serve --nvml`` says without NVML.

The pod lookups read a /proc tree written in tmp_path with the cgroup files kubelets
really produce (systemd and cgroupfs drivers, cgroup v1 and v2). The NVML reading runs
only where the NVIDIA driver and nvidia-ml-py are present, and skips saying why elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from collectors.gpu.nvml import load_nvml, pod_uid_of, sample
from onepane.errors import ConfigError
from onepane.testing import serve_once
from store.gpu import FB_FREE, FB_USED, GPU_UTIL, POWER

UID = "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"
CONTAINER = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b"

# cgroup v2, systemd driver (kubeadm's default since 1.22): one line, uid with underscores.
V2_SYSTEMD = (
    "0::/kubepods.slice/kubepods-burstable.slice/"
    "kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-abc.scope\n"
)
# cgroup v2, systemd driver, a Guaranteed pod (no QoS level in the path), CRI-O.
V2_GUARANTEED = (
    "0::/kubepods.slice/kubepods-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/"
    f"crio-{CONTAINER}.scope\n"
)
# cgroup v1, cgroupfs driver: one line per hierarchy, uid with dashes.
V1_CGROUPFS = "".join(
    f"{line}\n"
    for line in (
        "12:pids:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/abc",
        "11:hugetlb:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/abc",
        "10:devices:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/abc",
        "9:cpu,cpuacct:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/abc",
        "8:memory:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/abc",
        "1:name=systemd:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/abc",
        "0::/",
    )
)
# cgroup v1, systemd driver, Docker runtime, a BestEffort pod.
V1_SYSTEMD_DOCKER = "".join(
    f"{index}:{controller}:/kubepods.slice/kubepods-besteffort.slice/"
    f"kubepods-besteffort-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/docker-{CONTAINER}.scope\n"
    for index, controller in ((11, "memory"), (4, "cpu,cpuacct"), (1, "name=systemd"))
)
# Processes outside Kubernetes: a login session, a system service, a plain Docker container.
OUTSIDE = {
    "session": "0::/user.slice/user-1000.slice/session-3.scope\n",
    "service": "0::/system.slice/containerd.service\n",
    "docker": f"12:memory:/docker/{CONTAINER}\n1:name=systemd:/docker/{CONTAINER}\n0::/\n",
    "root": "0::/\n",
}


def fake_proc(root: Path, cgroups: dict[int, str]) -> Path:
    """A /proc with ``<pid>/cgroup`` for each pid."""
    for pid, text in cgroups.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cgroup").write_text(text)
    return root


@pytest.mark.parametrize(
    "cgroup",
    [V2_SYSTEMD, V2_GUARANTEED, V1_CGROUPFS, V1_SYSTEMD_DOCKER],
    ids=["v2-systemd-burstable", "v2-systemd-guaranteed", "v1-cgroupfs", "v1-systemd-docker"],
)
def test_a_pod_process_gives_its_pod_uid(tmp_path: Path, cgroup: str) -> None:
    proc = fake_proc(tmp_path / "proc", {4242: cgroup})
    assert pod_uid_of(4242, proc) == UID  # always with dashes, as the API writes it


@pytest.mark.parametrize("cgroup", OUTSIDE.values(), ids=OUTSIDE.keys())
def test_a_process_outside_kubernetes_has_no_pod(tmp_path: Path, cgroup: str) -> None:
    proc = fake_proc(tmp_path / "proc", {7: cgroup})
    assert pod_uid_of(7, proc) is None


def test_each_process_gives_its_own_pod_and_a_gone_process_none(tmp_path: Path) -> None:
    other = "0f0e0d0c-0b0a-4998-8776-655443322110"
    proc = fake_proc(
        tmp_path / "proc",
        {
            100: V2_SYSTEMD,
            200: V2_SYSTEMD.replace(
                "1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901", other.replace("-", "_")
            ),
            300: OUTSIDE["session"],
        },
    )
    assert [pod_uid_of(pid, proc) for pid in (100, 200, 300, 400)] == [UID, other, None, None]


def test_this_process_is_read_from_the_real_proc() -> None:
    """The default /proc: the test runner itself is (normally) not in a pod."""
    own = Path("/proc/self/cgroup")
    if not own.exists():
        pytest.skip("no /proc on this machine")
    in_pod = "kubepods" in own.read_text()
    result = pod_uid_of(int(Path("/proc/self").resolve().name))
    assert (result is not None) == in_pod


# --- NVML on this machine -----------------------------------------------------------------


@pytest.fixture
def nvml() -> Iterator[ModuleType]:
    """pynvml, initialised; the test skips where there is no NVIDIA driver or no pynvml."""
    try:
        module = load_nvml()
    except ConfigError as exc:
        pytest.skip(f"no NVML here (runs on a GPU machine with nvidia-ml-py): {exc}")
    yield module
    with contextlib.suppress(module.NVMLError):
        module.nvmlShutdown()


def test_nvml_sample_reports_every_gpu_of_this_machine(nvml: ModuleType) -> None:
    count = nvml.nvmlDeviceGetCount()
    assert count >= 1
    points = sample(nvml, "gpu-host-under-test", lambda uid: None).to_pylist()

    assert {p["source"] for p in points} == {"nvml"}
    assert {(p["hostname"], p["target"]) for p in points} == {
        ("gpu-host-under-test", "gpu-host-under-test")
    }
    assert {p["gpu"] for p in points} == set(range(count))
    for index in range(count):
        mine = [p for p in points if p["gpu"] == index]
        assert len({p["time"] for p in mine}) == 1  # one reading, one time
        values = {p["metric"]: p["value"] for p in mine}
        [uuid] = {p["uuid"] for p in mine}
        [model] = {p["model_name"] for p in mine}
        assert uuid.startswith("GPU-"), uuid
        assert model, "NVML names every device"
        assert set(values) == {GPU_UTIL, FB_USED, FB_FREE, POWER}
        assert 0 <= values[GPU_UTIL] <= 100
        assert values[FB_USED] >= 0 and values[FB_FREE] >= 0
        assert values[FB_USED] + values[FB_FREE] > 0
        # Power is None on devices that do not report it, watts otherwise.
        assert values[POWER] is None or 0 < values[POWER] < 2_000


# --- onepane serve --nvml without NVML ------------------------------------------------------


def test_serve_with_nvml_on_a_machine_without_it_exits_2_and_says_why(tmp_path: Path) -> None:
    with contextlib.suppress(ConfigError):  # the expected case: no NVML here
        load_nvml().nvmlShutdown()
        pytest.skip("this machine has NVML: onepane serve --nvml would start")
    result = serve_once(tmp_path / "o.duckdb", "--nvml")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("onepane: error: NVML")
    assert "nvidia-ml-py" in line or "driver" in line
