"""Prices: the ``pricing`` section of onepane.yaml, OpenCost's CSV pricing format, and
OpenCost's published defaults as the last fallback; versioned in time.

::

    pricing:
      currency: USD
      effective_from: 2026-11-01T00:00:00Z   # default: when the server first loads them
      csv: prices.csv                          # OpenCost CSV pricing (optional)
      defaults:                                # per core-hour, GiB-hour, GPU-hour
        cpu: 0.031611
        spot_cpu: 0.006655
        ram: 0.004237
        spot_ram: 0.000892
        gpu: 0.95
      nodes:                                   # whole-node prices per hour
        - instance_type: g5.2xlarge
          on_demand: 1.212
          spot: 0.4848
        - name: build-box-1                    # or provider_id:, or label: + value:
          hourly: 0.25
      gpus:                                    # per GPU-hour, by a node label
        - product: NVIDIA-A10G                 # label nvidia.com/gpu.product
          hourly: 1.006

How a node is priced, most specific first: a node rule by name, then provider id, then
label, then instance type (a rule naming the node's region beats one that does not; a
rule for its capacity type, spot or on-demand, beats one for either). Rules from
onepane.yaml come before the CSV's. A whole-node price is split into CPU, memory and GPU
by the default prices' weights, except that a GPU rule, when one matches, prices the
GPUs first. A node no rule matches costs its cores, GiB and GPUs at the default prices
(spot defaults on spot nodes).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from onepane.errors import BadRequest, ConfigError
from store.window import parse_time

log = logging.getLogger(__name__)

GIB = 1024**3
SPOT, ON_DEMAND = "spot", "on-demand"
_DEFAULT_KEYS = ("cpu", "spot_cpu", "ram", "spot_ram", "gpu", "spot_gpu")
_NODE_MATCHERS = ("name", "provider_id", "label", "instance_type")
_SECTION_KEYS = {"currency", "effective_from", "csv", "defaults", "nodes", "gpus"}
_CSV_COLUMNS = ("InstanceID", "Region", "AssetClass", "InstanceIDField", "InstanceType",
                "MarketPriceHourly")  # fmt: skip
# Precedence of node rules by what they match on (lower wins).
_RANK = {"name": 0, "provider_id": 1, "label": 2, "instance_type": 3}


@dataclass(frozen=True)
class PriceRule:
    """One price: a whole node, or one GPU, per hour, for the nodes it matches."""

    asset_class: str  # node | gpu
    match_field: str  # name | provider_id | instance_type | label:KEY
    match_value: str
    hourly: float
    source: str
    capacity_type: str | None = None  # spot | on-demand | None: either
    region: str | None = None


@dataclass(frozen=True)
class Defaults:
    """Per core-hour, GiB-hour and GPU-hour, on-demand and spot."""

    cpu: float
    spot_cpu: float
    ram: float
    spot_ram: float
    gpu: float
    spot_gpu: float
    source: str = "OpenCost default.json"


@dataclass(frozen=True)
class PriceSet:
    """Everything needed to price any node for an hour; one price version."""

    defaults: Defaults
    rules: tuple[PriceRule, ...] = ()
    currency: str = "USD"
    effective_from_ns: int | None = None

    def digest(self) -> str:
        document = {
            "defaults": asdict(self.defaults),
            "rules": [asdict(rule) for rule in self.rules],
            "currency": self.currency,
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class NodeInfo:
    """What pricing needs to know about a node."""

    name: str
    cpu_cores: float
    memory_bytes: float
    gpus: float = 0.0  # physical GPUs
    instance_type: str | None = None
    region: str | None = None
    capacity_type: str | None = None
    provider_id: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rates:
    """A node's price per hour, whole and per unit of each resource, and where it came from."""

    node_hourly: float
    cpu_hourly: float  # per core
    ram_hourly: float  # per GiB
    gpu_hourly: float  # per physical GPU
    source: str


# -- reading prices ----------------------------------------------------------------------


def opencost_defaults() -> Defaults:
    """OpenCost's published default prices (GCP us-central1), shipped with Onepane."""
    # Next to this module, not resources.files("cost"): a tests/cost folder on sys.path
    # makes "cost" a namespace package there, and the file would not be found.
    document = json.loads(Path(__file__).with_name("opencost_default.json").read_text())
    gpu = float(document["GPU"])
    return Defaults(
        cpu=float(document["CPU"]),
        spot_cpu=float(document["spotCPU"]),
        ram=float(document["RAM"]),
        spot_ram=float(document["spotRAM"]),
        gpu=gpu,
        spot_gpu=float(document.get("spotGPU", gpu)),
    )


def price_set(section: Mapping[str, Any] | None, base_dir: Path = Path(".")) -> PriceSet:
    """The prices the ``pricing`` section of onepane.yaml describes (empty: the defaults)."""
    section = section or {}
    unknown = set(section) - _SECTION_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key pricing.{sorted(unknown)[0]}; use {', '.join(sorted(_SECTION_KEYS))}"
        )
    defaults = _defaults(section.get("defaults") or {})
    rules = [*_node_rules(section.get("nodes") or []), *_gpu_rules(section.get("gpus") or [])]
    if section.get("csv"):
        path = Path(str(section["csv"])).expanduser()
        rules += read_opencost_csv(path if path.is_absolute() else base_dir / path)
    effective = section.get("effective_from")
    try:
        effective_ns = parse_time(str(effective), "pricing.effective_from") if effective else None
    except BadRequest as exc:
        raise ConfigError(str(exc)) from None
    currency = str(section.get("currency", "USD"))
    return PriceSet(defaults, tuple(rules), currency, effective_ns)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a price per hour, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a price per hour, got {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise ConfigError(f"{where} must be 0 or more, got {value!r}")
    return number


def _defaults(section: Mapping[str, Any]) -> Defaults:
    if not isinstance(section, Mapping):
        raise ConfigError("pricing.defaults must be a mapping of cpu, ram, gpu and spot_ prices")
    unknown = set(section) - set(_DEFAULT_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key pricing.defaults.{sorted(unknown)[0]}; use {', '.join(_DEFAULT_KEYS)}"
        )
    base = opencost_defaults()
    if not section:
        return base
    values = {k: _number(v, f"pricing.defaults.{k}") for k, v in section.items()}
    if "gpu" in values and "spot_gpu" not in values:
        values["spot_gpu"] = values["gpu"]
    return Defaults(**{**asdict(base), **values, "source": "onepane.yaml pricing.defaults"})


def _entries(items: Any, name: str) -> list[tuple[str, Mapping[str, Any]]]:
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ConfigError(f"pricing.{name} must be a list of mappings")
    return [(f"onepane.yaml pricing.{name}[{i}]", item) for i, item in enumerate(items)]


def _capacity_prices(item: Mapping[str, Any], where: str) -> list[tuple[str | None, float]]:
    """``hourly`` (either capacity type), or ``on_demand`` and/or ``spot``."""
    prices = [
        (capacity, _number(item[key], f"{where}.{key}"))
        for key, capacity in (("hourly", None), ("on_demand", ON_DEMAND), ("spot", SPOT))
        if key in item
    ]
    if not prices:
        raise ConfigError(f"{where} needs a price: hourly, on_demand or spot")
    return prices


def _node_rules(items: Any) -> list[PriceRule]:
    rules = []
    for where, item in _entries(items, "nodes"):
        allowed = {*_NODE_MATCHERS, "value", "region", "hourly", "on_demand", "spot"}
        unknown = set(item) - allowed
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        matchers = [m for m in _NODE_MATCHERS if m in item]
        if len(matchers) != 1:
            raise ConfigError(f"{where} must name exactly one of {', '.join(_NODE_MATCHERS)}")
        field_name, value = matchers[0], str(item[matchers[0]])
        if field_name == "label":
            if "value" not in item:
                raise ConfigError(f"{where}: label needs a value")
            field_name, value = f"label:{value}", str(item["value"])
        region = str(item["region"]) if item.get("region") else None
        for capacity, hourly in _capacity_prices(item, where):
            rules.append(PriceRule("node", field_name, value, hourly, where, capacity, region))
    return rules


def _gpu_rules(items: Any) -> list[PriceRule]:
    rules = []
    for where, item in _entries(items, "gpus"):
        unknown = set(item) - {"product", "label", "value", "hourly", "on_demand", "spot"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        if "product" in item:
            key, value = "nvidia.com/gpu.product", str(item["product"])
        elif "label" in item and "value" in item:
            key, value = str(item["label"]), str(item["value"])
        else:
            raise ConfigError(f"{where} needs product:, or label: with value:")
        for capacity, hourly in _capacity_prices(item, where):
            rules.append(PriceRule("gpu", f"label:{key}", value, hourly, where, capacity))
    return rules


def read_opencost_csv(path: Path) -> list[PriceRule]:
    """Rules from OpenCost's CSV pricing format (configs/pricing_schema.csv).

    ``AssetClass`` node rows match ``InstanceIDField`` (metadata.name, spec.providerID or a
    label, as ``metadata.labels.KEY`` or the bare key) equal to ``InstanceID``, or, with no
    InstanceID, the ``InstanceType`` (in ``Region`` when given). gpu rows match a node label
    (``InstanceIDField``) equal to ``InstanceID`` and price one GPU. ``EndTimestamp`` and
    ``Version`` are kept in the rule's source; Onepane versions prices by when they load.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read pricing CSV {path}: {exc.strerror or exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError(
            f"{path} is not OpenCost CSV pricing: no column {missing[0]}; the header must "
            f"have {', '.join(_CSV_COLUMNS)}"
        )
    rules = []
    for line, row in enumerate(reader, start=2):
        rule = _csv_rule(row, f"{path.name} line {line}")
        if rule is not None:
            rules.append(rule)
    return rules


def _csv_rule(row: Mapping[str, str | None], where: str) -> PriceRule | None:
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    asset = cell("AssetClass").lower()
    if asset not in ("node", "gpu"):
        log.warning("%s: asset class %r is not priced by Onepane; skipped", where, asset)
        return None
    hourly = _number(cell("MarketPriceHourly"), f"{where} MarketPriceHourly")
    extra = ", ".join(f"{k} {cell(k)}" for k in ("EndTimestamp", "Version") if cell(k))
    source = f"{where} ({extra})" if extra else where
    region = cell("Region") or None
    instance_id, id_field = cell("InstanceID"), cell("InstanceIDField")
    if asset == "gpu":
        if not (instance_id and id_field):
            raise ConfigError(f"{where}: a gpu row needs InstanceIDField (a label) and InstanceID")
        return PriceRule("gpu", _csv_field(id_field), instance_id, hourly, source, None, region)
    if instance_id:
        if not id_field:
            raise ConfigError(f"{where}: InstanceID {instance_id!r} needs an InstanceIDField")
        return PriceRule("node", _csv_field(id_field), instance_id, hourly, source, None, region)
    if cell("InstanceType"):
        return PriceRule(
            "node", "instance_type", cell("InstanceType"), hourly, source, None, region
        )
    raise ConfigError(f"{where}: a node row needs InstanceID or InstanceType")


def _csv_field(id_field: str) -> str:
    if id_field == "metadata.name":
        return "name"
    if id_field == "spec.providerID":
        return "provider_id"
    return "label:" + id_field.removeprefix("metadata.labels.")


# -- pricing a node ----------------------------------------------------------------------


def _matches(rule: PriceRule, node: NodeInfo) -> bool:
    if rule.region is not None and rule.region != node.region:
        return False
    if rule.capacity_type is not None and rule.capacity_type != _capacity(node):
        return False
    if rule.match_field == "name":
        return node.name == rule.match_value
    if rule.match_field == "provider_id":
        return node.provider_id == rule.match_value
    if rule.match_field == "instance_type":
        return node.instance_type == rule.match_value
    return node.labels.get(rule.match_field.removeprefix("label:")) == rule.match_value


def _capacity(node: NodeInfo) -> str:
    return SPOT if node.capacity_type == SPOT else ON_DEMAND


def _best(rules: Sequence[PriceRule], asset_class: str, node: NodeInfo) -> PriceRule | None:
    candidates = [
        (i, rule)
        for i, rule in enumerate(rules)
        if rule.asset_class == asset_class and _matches(rule, node)
    ]
    if not candidates:
        return None

    def rank(item: tuple[int, PriceRule]) -> tuple[int, int, int, int]:
        i, rule = item
        kind = rule.match_field.split(":")[0]
        return (_RANK.get(kind, 2), rule.region is None, rule.capacity_type is None, i)

    return min(candidates, key=rank)[1]


def rates(prices: PriceSet, node: NodeInfo) -> Rates:
    """What ``node`` costs per hour, whole and per core, GiB and GPU."""
    d = prices.defaults
    spot = _capacity(node) == SPOT
    cpu_d, ram_d = (d.spot_cpu, d.spot_ram) if spot else (d.cpu, d.ram)
    gpu_rule = _best(prices.rules, "gpu", node) if node.gpus > 0 else None
    gpu_unit = gpu_rule.hourly if gpu_rule else (d.spot_gpu if spot else d.gpu)
    cores, gib, gpus = node.cpu_cores, node.memory_bytes / GIB, node.gpus
    node_rule = _best(prices.rules, "node", node)
    sources = []
    if node_rule is None:
        cpu_part, ram_part, gpu_part = cores * cpu_d, gib * ram_d, gpus * gpu_unit
        sources.append(f"{d.source} ({'spot' if spot else 'on-demand'})")
    else:
        total = node_rule.hourly
        weights = [cores * cpu_d, gib * ram_d]
        if gpu_rule is not None:
            gpu_part = min(gpus * gpu_rule.hourly, total)
        else:
            weights.append(gpus * gpu_unit)
            gpu_part = 0.0
        rest = total - gpu_part
        weight_sum = sum(weights)
        if weight_sum > 0:
            shares = [w / weight_sum for w in weights]
        else:  # default prices of 0: split evenly over what the node has, so none is lost
            amounts = [cores, gib, gpus][: len(weights)]
            present = sum(1 for a in amounts if a > 0)
            shares = [1 / present if a > 0 else 0.0 for a in amounts]
        cpu_part, ram_part = rest * shares[0], rest * shares[1]
        if gpu_rule is None:
            gpu_part = rest * shares[2]
        sources.append(node_rule.source)
    if gpu_rule is not None:
        sources.append(f"GPU: {gpu_rule.source}")
    return Rates(
        node_hourly=cpu_part + ram_part + gpu_part,
        cpu_hourly=cpu_part / cores if cores > 0 else cpu_d,
        ram_hourly=ram_part / gib if gib > 0 else ram_d,
        gpu_hourly=gpu_part / gpus if gpus > 0 else gpu_unit,
        source="; ".join(sources),
    )


# -- versions in the store ---------------------------------------------------------------


@dataclass(frozen=True)
class PriceVersion:
    version: int
    valid_from_ns: int
    prices: PriceSet


def record(conn: duckdb.DuckDBPyConnection, prices: PriceSet, now_ns: int) -> int:
    """Store ``prices`` as a new version unless they equal the latest one; its number.

    A new version starts at ``effective_from`` (else now; the very first version covers
    all time, since there is no earlier price to keep), but never before the hours
    already final, so past hours keep the prices they were computed with.
    """
    digest = prices.digest()
    latest = conn.execute(
        "SELECT version, digest FROM price_versions ORDER BY version DESC LIMIT 1"
    ).fetchone()
    if latest is not None and latest[1] == digest:
        return int(latest[0])
    final = conn.execute(
        "SELECT epoch_ns(final_through) FROM cost_rollup_state WHERE id = 1"
    ).fetchone()
    final_ns = final[0] if final and final[0] is not None else 0
    if latest is None:  # the first prices cover all time before them: nothing to keep
        valid_from = 0
    else:
        valid_from = prices.effective_from_ns if prices.effective_from_ns is not None else now_ns
    valid_from = max(valid_from, final_ns)
    version = 1 if latest is None else int(latest[0]) + 1
    conn.execute(
        "INSERT INTO price_versions VALUES ($v, make_timestamp_ns($from), "
        "make_timestamp_ns($now), $currency, $digest)",
        {"v": version, "from": valid_from, "now": now_ns, "currency": prices.currency,
         "digest": digest},
    )  # fmt: skip
    rows = [
        (version, i, r.asset_class, r.match_field, r.match_value, r.region, r.capacity_type,
         r.hourly, r.source)
        for i, r in enumerate(prices.rules)
    ]  # fmt: skip
    d = prices.defaults
    for asset, capacity, hourly in (
        ("cpu", ON_DEMAND, d.cpu), ("cpu", SPOT, d.spot_cpu), ("ram", ON_DEMAND, d.ram),
        ("ram", SPOT, d.spot_ram), ("gpu", ON_DEMAND, d.gpu), ("gpu", SPOT, d.spot_gpu),
    ):  # fmt: skip
        rows.append((version, len(rows), asset, None, None, None, capacity, hourly, d.source))
    conn.executemany("INSERT INTO prices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return version


def versions(conn: duckdb.DuckDBPyConnection) -> list[PriceVersion]:
    """Every price version in the store, oldest first."""
    heads = conn.execute(
        "SELECT version, epoch_ns(valid_from), currency FROM price_versions ORDER BY version"
    ).fetchall()
    rules: dict[int, list[tuple[Any, ...]]] = {}
    for row in conn.execute(
        "SELECT version, asset_class, match_field, match_value, region, capacity_type, hourly,"
        " source FROM prices ORDER BY version, rule"
    ).fetchall():
        rules.setdefault(row[0], []).append(row[1:])
    return [
        PriceVersion(version, valid_from, _from_rows(rules.get(version, []), currency))
        for version, valid_from, currency in heads
    ]


def _from_rows(rows: list[tuple[Any, ...]], currency: str) -> PriceSet:
    defaults: dict[str, float] = {}
    source = "OpenCost default.json"
    kept = []
    for asset, field_name, value, region, capacity, hourly, where in rows:
        if field_name is None:
            defaults[("spot_" if capacity == SPOT else "") + asset] = hourly
            source = where
        else:
            kept.append(PriceRule(asset, field_name, value, hourly, where, capacity, region))
    return PriceSet(Defaults(**defaults, source=source), tuple(kept), currency)


def version_at(book: Sequence[PriceVersion], time_ns: int) -> PriceVersion | None:
    """The version that prices an hour starting at ``time_ns``: the newest that has begun."""
    started = [v for v in book if v.valid_from_ns <= time_ns]
    return max(started, key=lambda v: v.version) if started else None
