"""onepane.yaml: what a user writes in it, how flags override it, and the one-line errors a
typo gets, both from the reader and from `onepane serve`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from onepane import kubesim
from onepane.config import collectors_config, kube_config, read_file
from onepane.errors import ConfigError
from onepane.testing import serve_once

DEADLINE_S = 10.0


def settings(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "onepane.yaml"
    path.write_text(text)
    return path


def serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return serve_once(tmp_path / "onepane.duckdb", *args)


# -- reading the file --------------------------------------------------------------------


def test_gpu_targets_and_scrape_interval_are_read(tmp_path: Path) -> None:
    path = settings(
        tmp_path,
        """
gpu:
  targets:
    - http://gpu-node-1:9400/metrics
    - http://gpu-node-2:9400/metrics
  scrape_interval: 30s
  scrape_timeout: 5s
""",
    )

    config = collectors_config(read_file(path))

    assert config.scrape.targets == (
        "http://gpu-node-1:9400/metrics",
        "http://gpu-node-2:9400/metrics",
    )
    assert config.scrape.interval_s == 30.0
    assert config.scrape.timeout_s == 5.0
    assert config.kube.source == "off"
    assert config.nvml_interval_s is None


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./onepane.yaml here
    config = collectors_config(read_file(None))
    assert config.scrape.targets == ()
    assert config.scrape.interval_s == 15.0
    assert config.scrape.timeout_s == 10.0
    assert config.kube.source == "off"


def test_onepane_yaml_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings(tmp_path, "gpu:\n  targets: [gpu-node-1:9400]\n")
    monkeypatch.chdir(tmp_path)
    assert collectors_config(read_file(None)).scrape.targets == ("http://gpu-node-1:9400/metrics",)


def test_bare_host_port_targets_become_metrics_urls(tmp_path: Path) -> None:
    path = settings(
        tmp_path,
        """
gpu:
  targets:
    - gpu-node-1:9400
    - 10.0.3.7:9400
    - https://dcgm.example.com/gpu/metrics
    - gpu-node-1:9400
""",
    )
    assert collectors_config(read_file(path)).scrape.targets == (
        "http://gpu-node-1:9400/metrics",
        "http://10.0.3.7:9400/metrics",
        "https://dcgm.example.com/gpu/metrics",
    )


def test_durations_as_numbers_and_units(tmp_path: Path) -> None:
    path = settings(tmp_path, "gpu:\n  scrape_interval: 2m\n  nvml: true\n  nvml_interval: 5\n")
    config = collectors_config(read_file(path))
    assert config.scrape.interval_s == 120.0
    assert config.nvml_interval_s == 5.0


def test_a_scrape_timeout_longer_than_the_interval_is_cut_to_it(tmp_path: Path) -> None:
    path = settings(tmp_path, "gpu:\n  scrape_interval: 5s\n  scrape_timeout: 30s\n")
    assert collectors_config(read_file(path)).scrape.timeout_s == 5.0


def test_nvml_samples_at_the_scrape_interval_unless_told(tmp_path: Path) -> None:
    path = settings(tmp_path, "gpu:\n  scrape_interval: 20s\n  nvml: true\n")
    assert collectors_config(read_file(path)).nvml_interval_s == 20.0
    assert collectors_config({}, nvml=True).nvml_interval_s == 15.0


# -- flags win ---------------------------------------------------------------------------


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = settings(
        tmp_path,
        """
gpu:
  targets: [http://gpu-node-1:9400/metrics]
  scrape_interval: 30s
kubernetes:
  api: in-cluster
""",
    )

    config = collectors_config(
        read_file(path),
        targets=["gpu-node-9:9400"],
        scrape_interval="10s",
        kube_api="http://127.0.0.1:8001",
    )

    assert config.scrape.targets == ("http://gpu-node-9:9400/metrics",)  # replaced, not added
    assert config.scrape.interval_s == 10.0
    assert config.kube.source == "url"
    assert config.kube.url == "http://127.0.0.1:8001"


def test_a_kubeconfig_flag_wins_over_the_file(tmp_path: Path) -> None:
    path = settings(
        tmp_path, "kubernetes:\n  api: kubeconfig\n  kubeconfig: /etc/prod.kubeconfig\n"
    )
    config = collectors_config(read_file(path), kubeconfig=str(tmp_path / "staging"))
    assert config.kube.source == "kubeconfig"
    assert config.kube.kubeconfig == str(tmp_path / "staging")


# -- kubernetes --------------------------------------------------------------------------


def test_kubernetes_api_url(tmp_path: Path) -> None:
    path = settings(tmp_path, "kubernetes:\n  api: http://127.0.0.1:8001\n  watch_timeout: 5m\n")
    kube = collectors_config(read_file(path)).kube
    assert kube.source == "url"
    assert kube.url == "http://127.0.0.1:8001"
    assert kube.watch_timeout_s == 300


def test_kubernetes_in_cluster(tmp_path: Path) -> None:
    kube = collectors_config(read_file(settings(tmp_path, "kubernetes:\n  api: in-cluster\n"))).kube
    assert kube.source == "in-cluster"
    assert kube.url is None


def test_kubernetes_kubeconfig_with_context_and_home(tmp_path: Path) -> None:
    path = settings(
        tmp_path,
        "kubernetes:\n  api: kubeconfig\n  kubeconfig: ~/.kube/prod\n  context: prod-eu\n",
    )
    kube = collectors_config(read_file(path)).kube
    assert kube.source == "kubeconfig"
    assert kube.kubeconfig == str(Path("~/.kube/prod").expanduser())
    assert kube.context == "prod-eu"


def test_a_kubeconfig_alone_means_api_kubeconfig() -> None:
    kube = kube_config(None, "/etc/kubeconfig", None)
    assert (kube.source, kube.kubeconfig) == ("kubeconfig", "/etc/kubeconfig")
    assert kube_config(None, None, "prod").source == "kubeconfig"
    assert kube_config(None, None, None).source == "off"


@pytest.mark.parametrize("api", ["k8s.internal:6443", "incluster", "ftp://k8s"])
def test_a_kubernetes_api_that_is_none_of_the_three_is_an_error(api: str) -> None:
    with pytest.raises(ConfigError, match="is not in-cluster, kubeconfig or an http"):
        kube_config(api, None, None)


# -- mistakes ----------------------------------------------------------------------------


def test_an_unknown_section_is_named(tmp_path: Path) -> None:
    path = settings(tmp_path, "gpus:\n  targets: [gpu-node-1:9400]\n")
    with pytest.raises(ConfigError, match=r"unknown section 'gpus'; use gpu, kubernetes"):
        read_file(path)


def test_an_unknown_key_is_named_with_its_section(tmp_path: Path) -> None:
    path = settings(tmp_path, "gpu:\n  target: [gpu-node-1:9400]\n")
    with pytest.raises(ConfigError, match=r"unknown key gpu\.target; use nvml, .*targets"):
        read_file(path)
    path = settings(tmp_path, "kubernetes:\n  api: in-cluster\n  namespace: shop\n")
    with pytest.raises(ConfigError, match=r"unknown key kubernetes\.namespace"):
        read_file(path)


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    path = settings(tmp_path, "gpu:\n  targets: [gpu-node-1:9400\n")
    with pytest.raises(ConfigError, match=r"onepane\.yaml is not valid YAML"):
        read_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- gpu\n- kubernetes\n", "must be a mapping of sections: gpu, kubernetes, pricing"),
        ("gpu: [gpu-node-1:9400]\n", "gpu must be a mapping"),
        ("gpu:\n  targets: gpu-node-1:9400\n", "gpu.targets must be a list of URLs"),
    ],
)
def test_wrong_shapes_say_what_is_expected(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        collectors_config(read_file(settings(tmp_path, text)))


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*absent\.yaml"):
        read_file(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpu:\n  scrape_interval: fast\n", r"scrape interval 'fast' is not a duration"),
        ("gpu:\n  scrape_interval: 0s\n", r"scrape interval must be more than 0"),
        ("gpu:\n  scrape_interval: -5\n", r"scrape interval must be more than 0"),
        ("gpu:\n  scrape_timeout: 10 seconds\n", r"scrape_timeout '10 seconds' is not"),
        ("kubernetes:\n  api: in-cluster\n  watch_timeout: forever\n", r"watch_timeout"),
    ],
)
def test_a_bad_duration_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        collectors_config(read_file(settings(tmp_path, text)))


def test_a_bad_scrape_interval_flag_is_named() -> None:
    with pytest.raises(ConfigError, match="scrape interval '15sec' is not a duration"):
        collectors_config({}, scrape_interval="15sec")


# -- through `onepane serve` -------------------------------------------------------------


def test_serve_with_a_kubeconfig_that_does_not_exist_says_so_in_one_line(tmp_path: Path) -> None:
    result = serve(tmp_path, "--kube-api", "kubeconfig", "--kubeconfig", "/nope")

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("onepane: error: ")
    assert "/nope" in lines[0] and "does not exist" in lines[0]


def test_serve_with_a_typo_in_onepane_yaml_stops_with_exit_code_2(tmp_path: Path) -> None:
    path = settings(tmp_path, "gpu:\n  scrape_intervall: 30s\n")

    result = serve(tmp_path, "--config", str(path))

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unknown key gpu.scrape_intervall" in lines[0]


def test_serve_with_a_kube_api_that_is_not_a_url_stops(tmp_path: Path) -> None:
    result = serve(tmp_path, "--kube-api", "k8s.internal:6443")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "onepane: error: kubernetes api 'k8s.internal:6443' is not in-cluster, kubeconfig "
        "or an http(s):// URL"
    ]


def test_serve_reads_onepane_yaml_and_flags_win(tmp_path: Path, start_server, kube_sim) -> None:
    """A kubeconfig named in onepane.yaml reaches the cluster; --gpu-target replaces the
    file's targets."""
    now = time.time_ns()
    kube_sim.put("nodes", kubesim.node("cpu-node-1", now))
    kube_sim.put("pods", kubesim.pod("web-0", "shop", now, node_name="cpu-node-1"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""
apiVersion: v1
kind: Config
clusters:
  - name: sim
    cluster: {{server: "{kube_sim.server.url}"}}
users:
  - name: viewer
    user: {{}}
contexts:
  - name: sim
    context: {{cluster: sim, user: viewer}}
current-context: sim
"""
    )
    path = settings(
        tmp_path,
        f"""
gpu:
  targets: [127.0.0.1:9]
  scrape_interval: 1h
kubernetes:
  api: kubeconfig
  kubeconfig: {kubeconfig}
  context: sim
""",
    )

    server = start_server("--config", str(path), "--gpu-target", "127.0.0.1:10")

    deadline = time.monotonic() + DEADLINE_S
    while True:
        status, body = server.get_json("/api/v1/k8s/pods?since=1d")
        assert status == 200, body
        if body["pods"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(p["namespace"], p["name"], p["owner_kind"]) for p in body["pods"]] == [
        ("shop", "web-0", "Pod")
    ]
    status, collectors = server.get_json("/api/v1/collectors")
    assert status == 200
    assert [t["target"] for t in collectors["gpu_targets"]] == ["http://127.0.0.1:10/metrics"]
    assert collectors["kubernetes"]["pods"]["synced"] is True
    assert collectors["nvml"] is None
