"""``onepane.yaml``: the settings that outlive one command line.

::

    gpu:
      targets:                      # dcgm-exporter endpoints
        - http://gpu-node-1:9400/metrics
      scrape_interval: 15s
      scrape_timeout: 10s
      nvml: false                   # sample this machine's GPUs with NVML
    kubernetes:
      api: in-cluster               # in-cluster | kubeconfig | http(s)://URL (kubectl proxy)
      kubeconfig: ~/.kube/config    # with api: kubeconfig
      context: prod
      watch_timeout: 5m
    pricing: ...                    # prices: see cost/pricing.py
    catalog: ...                    # kind, team, unit per workload: see cost/catalog.py
    cost:
      rollup_interval: 60s          # how often hourly costs are brought up to date
      backfill: 30d                 # how far back the first rollup goes
      final_after: 1h               # an hour's costs are final this long after it ends

Flags on the command line win over the file. Unknown keys are errors, so a typo is never
silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from collectors.gpu.scraper import ScrapeConfig, parse_targets
from collectors.k8s.inventory import KubeConfig
from cost import catalog, pricing
from cost.rollup import RollupConfig
from onepane.errors import BadRequest, ConfigError
from store.window import parse_duration

DEFAULT_PATH = Path("onepane.yaml")
_SECTIONS: dict[str, set[str] | None] = {  # None: the section checks its own keys
    "gpu": {"targets", "scrape_interval", "scrape_timeout", "nvml", "nvml_interval"},
    "kubernetes": {"api", "kubeconfig", "context", "watch_timeout"},
    "pricing": None,
    "catalog": None,
    "cost": {"rollup_interval", "backfill", "final_after"},
}


@dataclass(frozen=True)
class CollectorsConfig:
    """The collectors the server runs besides the OTLP receivers."""

    scrape: ScrapeConfig = field(default_factory=ScrapeConfig)
    kube: KubeConfig = field(default_factory=KubeConfig)
    nvml_interval_s: float | None = None  # None: NVML sampling off


@dataclass(frozen=True)
class CostConfig:
    """Prices, the workload catalog and how the hourly rollup runs."""

    prices: pricing.PriceSet = field(default_factory=lambda: pricing.price_set(None))
    catalog: tuple[catalog.Entry, ...] = ()
    rollup: RollupConfig = field(default_factory=RollupConfig)


def cost_config(file: Mapping[str, Any], base_dir: Path = Path(".")) -> CostConfig:
    """The pricing, catalog and cost sections of ``onepane.yaml`` (already read)."""
    section = file.get("cost") or {}
    rollup = RollupConfig(
        interval_s=_seconds(section.get("rollup_interval", "60s"), "cost.rollup_interval"),
        backfill_ns=int(_seconds(section.get("backfill", "30d"), "cost.backfill") * 1e9),
        final_after_ns=int(_seconds(section.get("final_after", "1h"), "cost.final_after") * 1e9),
    )
    return CostConfig(
        pricing.price_set(file.get("pricing"), base_dir), catalog.parse(file.get("catalog")), rollup
    )


def read_file(path: Path | None) -> dict[str, Any]:
    """The YAML document at ``path`` (or ./onepane.yaml when it exists), checked for shape."""
    if path is None:
        if not DEFAULT_PATH.exists():
            return {}
        path = DEFAULT_PATH
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must be a mapping of sections: {', '.join(_SECTIONS)}")
    for section, value in document.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{path}: unknown section {section!r}; use {', '.join(_SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {section} must be a mapping")
        keys = _SECTIONS[section]
        unknown = set() if keys is None else set(value) - keys
        if unknown:
            raise ConfigError(
                f"{path}: unknown key {section}.{sorted(unknown)[0]}; "
                f"use {', '.join(sorted(keys or ()))}"
            )
    return document


def _seconds(value: Any, name: str) -> float:
    """A duration as seconds: a number, or text like 15s, 2m."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        try:
            seconds = parse_duration(str(value), name) / 1e9
        except BadRequest as exc:
            raise ConfigError(str(exc)) from None
    if seconds <= 0:
        raise ConfigError(f"{name} must be more than 0, got {value!r}")
    return seconds


def kube_config(api: str | None, kubeconfig: str | None, context: str | None) -> KubeConfig:
    """Where the Kubernetes API is, from ``api`` (in-cluster, kubeconfig or a URL)."""
    if api is None and kubeconfig is None and context is None:
        return KubeConfig()
    api = api or "kubeconfig"
    if api in ("in-cluster", "kubeconfig"):
        path = str(Path(kubeconfig).expanduser()) if kubeconfig else None
        return KubeConfig(source=api, kubeconfig=path, context=context)
    if not api.startswith(("http://", "https://")):
        raise ConfigError(
            f"kubernetes api {api!r} is not in-cluster, kubeconfig or an http(s):// URL"
        )
    return KubeConfig(source="url", url=api)


def collectors_config(
    file: Mapping[str, Any],
    targets: list[str] | None = None,
    scrape_interval: str | None = None,
    kube_api: str | None = None,
    kubeconfig: str | None = None,
    nvml: bool = False,
) -> CollectorsConfig:
    """Merge ``onepane.yaml`` (already read) with command-line flags (which win)."""
    gpu, kube = file.get("gpu") or {}, file.get("kubernetes") or {}
    file_targets = gpu.get("targets") or []
    if not isinstance(file_targets, list) or not all(isinstance(t, str) for t in file_targets):
        raise ConfigError("gpu.targets must be a list of URLs")
    interval = _seconds(scrape_interval or gpu.get("scrape_interval", "15s"), "scrape interval")
    scrape = ScrapeConfig(
        targets=parse_targets(targets if targets else file_targets),
        interval_s=interval,
        timeout_s=min(_seconds(gpu.get("scrape_timeout", "10s"), "scrape_timeout"), interval),
    )
    k8s = kube_config(
        kube_api or kube.get("api"), kubeconfig or kube.get("kubeconfig"), kube.get("context")
    )
    if "watch_timeout" in kube:
        k8s = replace(k8s, watch_timeout_s=int(_seconds(kube["watch_timeout"], "watch_timeout")))
    nvml_on = nvml or bool(gpu.get("nvml", False))
    nvml_interval = _seconds(gpu.get("nvml_interval", interval), "nvml_interval")
    return CollectorsConfig(scrape, k8s, nvml_interval if nvml_on else None)
