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
    gate:
      environment: production       # the default for `onepane gate --env`
      observe: 7d                   # throughput and current release: this far back
      verify_window: 30m            # `onepane gate verify`: the canary's window
      min_units: 100                # verify: fewer requests/predictions is too few to judge
      policy: ...                   # thresholds: see deploy_hooks/policy.py
      admission:                    # the ValidatingAdmissionWebhook's TLS listener
        listen: 0.0.0.0:8443
        cert: /etc/onepane/tls.crt
        key: /etc/onepane/tls.key
        failure: closed             # open | closed: when the gate cannot decide
    drift:
      workers: 2                    # worker processes for drift runs (Evidently)
      window: 24h                   # the default window of a run
      min_rows: 100                 # fewer production values: "insufficient data"
      drift_share: 0.5              # the dataset drifts when this share of columns does
      report_rows: 5000             # values per column Evidently's HTML report is drawn on
      models:
        fraud-model:
          version: 3.2.0            # optional: one version (default: every version)
          every: 1h                 # run on this schedule (default: only by hand)
          window: 24h
          columns:                  # per column: an Evidently test and/or threshold
            amount: {method: psi, threshold: 0.2}
    retention:                      # delete older rows; a group not named is kept forever
      spans: 15d                    # spans with their trace summaries
      metrics: 30d
      logs: 15d
      gpu: 30d                      # GPU samples
      features: 15d                 # model inputs kept for drift runs
      cost: 400d                    # hourly pod/node costs and the counts unit costs use
      drift: 90d                    # drift runs and their HTML reports
      gate: 400d                    # gate decisions and deployments
      interval: 1h                  # how often retention runs (the first run: 30s after start)
      chunk_rows: 50000             # rows per delete step: ingest waits at most one step

    api:
      tls:                          # serve the API over HTTPS (or --tls-cert/--tls-key)
        cert: /etc/onepane/api.crt
        key: /etc/onepane/api.key

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
from deploy_hooks import policy, yamldoc
from drift.settings import DriftConfig, ModelDrift
from onepane.errors import BadRequest, ConfigError
from onepane.gateapi import AdmissionConfig, GateConfig
from onepane.tls import TlsFiles
from store.retention import CHUNK_ROWS, RetentionConfig
from store.retention import GROUPS as RETENTION_GROUPS
from store.window import parse_duration

DEFAULT_PATH = Path("onepane.yaml")
_SECTIONS: dict[str, set[str] | None] = {  # None: the section checks its own keys
    "gpu": {"targets", "scrape_interval", "scrape_timeout", "nvml", "nvml_interval"},
    "kubernetes": {"api", "kubeconfig", "context", "watch_timeout"},
    "pricing": None,
    "catalog": None,
    "cost": {"rollup_interval", "backfill", "final_after"},
    "gate": {"environment", "observe", "verify_window", "min_units", "policy", "admission"},
    "drift": {"workers", "window", "min_rows", "drift_share", "report_rows", "models"},
    "api": {"tls"},
    "retention": {*RETENTION_GROUPS, "interval", "chunk_rows"},
}
_MODEL_KEYS = {"version", "every", "window", "columns"}
_ADMISSION_KEYS = {"listen", "cert", "key", "failure"}


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


def retention_config(file: Mapping[str, Any]) -> RetentionConfig:
    """The ``retention`` section: a horizon per table group (``forever`` or none: kept)."""
    section = file.get("retention") or {}
    horizons = {
        group: _horizon(value, f"retention.{group}")
        for group, value in section.items()
        if group in RETENTION_GROUPS and value is not None and value != "forever"
    }
    interval = _seconds(section.get("interval", "1h"), "retention.interval")
    chunk = _whole(section.get("chunk_rows", CHUNK_ROWS), "retention.chunk_rows", 1000)
    return RetentionConfig(horizons_s=horizons, interval_s=interval, chunk_rows=chunk)


def _horizon(value: Any, name: str) -> float:
    """A retention horizon: a duration with its unit (a bare 15 would be 15 seconds)."""
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a duration with a unit, e.g. 15d, or forever: {value!r}")
    seconds = _seconds(value, name)
    if seconds < 3600:
        raise ConfigError(f"{name} must be at least 1h (or forever), got {value!r}")
    return seconds


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


def gate_config(file: Mapping[str, Any], path: Path | None) -> GateConfig:
    """The ``gate`` section: policy (read again for its line numbers), admission listener."""
    section = file.get("gate") or {}
    if not section:
        return GateConfig()
    rules = policy.EMPTY
    if section.get("policy") is not None:
        source = str(path) if path is not None else "onepane.yaml"
        text = path.read_text() if path is not None else yaml.safe_dump(dict(file))
        rules = policy.parse(yamldoc.load(text, source), ("gate", "policy"))
    for key in ("observe", "verify_window"):
        if key in section:
            _seconds(section[key], f"gate.{key}")
    min_units = section.get("min_units", 100)
    if isinstance(min_units, bool) or not isinstance(min_units, int) or min_units < 1:
        raise ConfigError(f"gate.min_units must be a whole number of at least 1, got {min_units!r}")
    admission, fail_open = _admission(section.get("admission"), path)
    return GateConfig(
        policy=rules,
        environment=str(section.get("environment") or "production"),
        observe=str(section.get("observe", "7d")),
        verify_window=str(section.get("verify_window", "30m")),
        min_units=min_units,
        admission=admission,
        fail_open=fail_open,
    )


def _admission(section: Any, path: Path | None) -> tuple[AdmissionConfig | None, bool]:
    if section is None:
        return None, False
    if not isinstance(section, dict):
        raise ConfigError("gate.admission must be a mapping of listen, cert, key, failure")
    unknown = set(section) - _ADMISSION_KEYS
    if unknown:
        raise ConfigError(f"unknown key gate.admission.{sorted(unknown)[0]}; "
                          f"use {', '.join(sorted(_ADMISSION_KEYS))}")  # fmt: skip
    failure = section.get("failure", "closed")
    if failure not in ("open", "closed"):
        raise ConfigError(f"gate.admission.failure must be open or closed, got {failure!r}")
    listen = str(section.get("listen") or "0.0.0.0:8443")
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"gate.admission.listen must be HOST:PORT, got {listen!r}")
    base = path.parent if path is not None else Path(".")
    files = []
    for key in ("cert", "key"):
        if not section.get(key):
            raise ConfigError(f"gate.admission.{key} is required: the API server only calls "
                              "webhooks over TLS")  # fmt: skip
        file = base / Path(str(section[key])).expanduser()
        if not file.is_file():
            raise ConfigError(f"gate.admission.{key}: no file {file}")
        files.append(file)
    config = AdmissionConfig(host or "0.0.0.0", int(port), files[0], files[1], failure == "open")
    return config, failure == "open"


def api_tls(
    file: Mapping[str, Any], path: Path | None, cert: Path | None, key: Path | None
) -> TlsFiles | None:
    """The API's certificate and key: --tls-cert/--tls-key, else ``api.tls``."""
    section = (file.get("api") or {}).get("tls")
    if cert is None and key is None and section is not None:
        if not isinstance(section, dict) or set(section) != {"cert", "key"}:
            raise ConfigError("api.tls must be a mapping with exactly cert and key (PEM files)")
        base = path.parent if path is not None else Path(".")
        cert, key = (base / Path(str(section[k])).expanduser() for k in ("cert", "key"))
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("give both --tls-cert and --tls-key to serve the API over HTTPS")
    for file_path in (cert, key):
        if not file_path.is_file():
            raise ConfigError(f"no TLS file {file_path}; give the PEM certificate and key")
    return TlsFiles(cert, key)


def drift_config(file: Mapping[str, Any]) -> DriftConfig:
    """The ``drift`` section: workers, run defaults, and per-model schedules and tests."""
    section = file.get("drift") or {}
    defaults = DriftConfig()
    workers = _whole(section.get("workers", defaults.workers), "drift.workers", 1)
    min_rows = _whole(section.get("min_rows", defaults.min_rows), "drift.min_rows", 1)
    report_rows = _whole(section.get("report_rows", defaults.report_rows), "drift.report_rows", 10)
    share = section.get("drift_share", defaults.drift_share)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ConfigError(f"drift.drift_share must be a number in (0, 1], got {share!r}")
    window = str(section.get("window", defaults.window))
    _seconds(window, "drift.window")
    models = section.get("models") or {}
    if not isinstance(models, dict):
        raise ConfigError("drift.models must be a mapping of model name to its settings")
    return DriftConfig(
        workers=workers,
        window=window,
        min_rows=min_rows,
        drift_share=float(share),
        report_rows=report_rows,
        models={str(name): _model_drift(str(name), body) for name, body in models.items()},
    )


def _model_drift(name: str, body: Any) -> ModelDrift:
    where = f"drift.models.{name}"
    body = body or {}
    if not isinstance(body, dict):
        raise ConfigError(f"{where} must be a mapping: version, every, window, columns")
    unknown = set(body) - _MODEL_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key {where}.{sorted(unknown)[0]}; use {', '.join(sorted(_MODEL_KEYS))}"
        )
    every = _seconds(body["every"], f"{where}.every") if "every" in body else None
    if "window" in body:
        _seconds(body["window"], f"{where}.window")
    chosen: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    columns = body.get("columns") or {}
    if not isinstance(columns, dict):
        raise ConfigError(f"{where}.columns must be a mapping of column to method/threshold")
    for column, setting in columns.items():
        if not isinstance(setting, dict) or set(setting) - {"method", "threshold"}:
            raise ConfigError(f"{where}.columns.{column} must be {{method, threshold}}")
        if "method" in setting:
            chosen[str(column)] = str(setting["method"])
        if "threshold" in setting:
            value = setting["threshold"]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where}.columns.{column}.threshold must be a number")
            thresholds[str(column)] = float(value)
    version = body.get("version")
    if isinstance(version, float):  # YAML reads version: 3.10 as the number 3.1
        raise ConfigError(
            f"{where}.version must be text, got the number {version!r}: quote it, as in "
            "version: '3.10' (YAML reads 3.10 as the number 3.1)"
        )
    return ModelDrift(
        name,
        None if version is None else str(version),
        every,
        None if "window" not in body else str(body["window"]),
        chosen,
        thresholds,
    )


def _whole(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be a whole number of at least {least}, got {value!r}")
    return value
