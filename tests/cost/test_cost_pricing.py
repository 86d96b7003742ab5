"""Prices: OpenCost's CSV and defaults, onepane.yaml rules, rates, and versions in a real
DuckDB file, down to the hourly rollup keeping past hours at the prices they had."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import pytest

from collectors.k8s.objects import node_row, pod_row
from cost import pricing, rollup
from cost.pricing import GIB, NodeInfo
from onepane import kubesim
from onepane.errors import ConfigError
from onepane.testing import serve_once
from store import db, inventory

OPENCOST = Path("/work/shared/data/opencost")
SCHEMA_CSV = OPENCOST / "pricing_schema.csv"
NAMED_NODE = "gke-standard-cluster-1-pool-1-91dc432d-cg69"
H = 3600 * 10**9
T0 = 1_772_323_200 * 10**9  # 2026-03-01T00:00:00Z

# OpenCost's default.json, typed out: per core-hour, GiB-hour and GPU-hour.
CPU, SPOT_CPU, RAM, SPOT_RAM, GPU = 0.031611, 0.006655, 0.004237, 0.000892, 0.95
CSV_HEADER = "EndTimestamp,InstanceID,Region,AssetClass,InstanceIDField,InstanceType,"


def node(name: str = "n1", cores: float = 8, gib: float = 32, gpus: float = 0, **kw) -> NodeInfo:
    return NodeInfo(name, cores, gib * GIB, gpus, **kw)


def assert_parts_add_up(r: pricing.Rates, n: NodeInfo) -> None:
    parts = r.cpu_hourly * n.cpu_cores + r.ram_hourly * n.memory_bytes / GIB + r.gpu_hourly * n.gpus
    assert r.node_hourly == pytest.approx(parts, rel=1e-12, abs=1e-15)


# -- OpenCost's CSV and defaults -------------------------------------------------------


def test_opencost_pricing_schema_csv_prices_the_named_node_and_the_gpu_labels(
    tmp_path: Path,
) -> None:
    (tmp_path / "prices.csv").write_bytes(SCHEMA_CSV.read_bytes())
    prices = pricing.price_set({"csv": "prices.csv"}, base_dir=tmp_path)  # relative to config
    assert len(prices.rules) == 3

    named = node(NAMED_NODE, cores=2, gib=4)
    r = pricing.rates(prices, named)
    assert r.node_hourly == pytest.approx(0.1337)
    assert r.source.startswith("prices.csv line 2")
    assert "2019-04-17 23:34:22 UTC" in r.source  # EndTimestamp kept in the source
    # 0.1337 split by default weights: 2 cores × 0.031611 : 4 GiB × 0.004237
    cpu_w, ram_w = 2 * CPU, 4 * RAM
    assert r.cpu_hourly * 2 == pytest.approx(0.1337 * cpu_w / (cpu_w + ram_w))
    assert r.ram_hourly * 4 == pytest.approx(0.1337 * ram_w / (cpu_w + ram_w))
    # another node by name is not that node
    other = pricing.rates(prices, node(NAMED_NODE + "-x", cores=2, gib=4))
    assert other.node_hourly == pytest.approx(2 * CPU + 4 * RAM)

    quadro = node("g1", cores=4, gib=16, gpus=2, labels={"nvidia.com/gpu_type": "Quadro_RTX_4000"})
    r = pricing.rates(prices, quadro)
    assert r.gpu_hourly == pytest.approx(0.75)
    assert r.node_hourly == pytest.approx(4 * CPU + 16 * RAM + 2 * 0.75)
    assert "GPU: prices.csv line 3" in r.source

    klass = node("g2", cores=4, gib=16, gpus=1, labels={"gpu.nvidia.com/class": "Quadro_RTX_4001"})
    r = pricing.rates(prices, klass)
    assert r.gpu_hourly == pytest.approx(0.80)
    assert "GPU: prices.csv line 4" in r.source

    # the label value must match too: Quadro_RTX_4001 under nvidia.com/gpu_type is no rule
    wrong = node("g3", cores=4, gib=16, gpus=1, labels={"nvidia.com/gpu_type": "Quadro_RTX_4001"})
    r = pricing.rates(prices, wrong)
    assert r.gpu_hourly == pytest.approx(GPU)
    assert "GPU:" not in r.source


def test_csv_rows_read_as_rules_with_file_and_line() -> None:
    rules = pricing.read_opencost_csv(SCHEMA_CSV)
    assert [(r.asset_class, r.match_field, r.match_value, r.hourly) for r in rules] == [
        ("node", "name", NAMED_NODE, 0.1337),
        ("gpu", "label:nvidia.com/gpu_type", "Quadro_RTX_4000", 0.75),
        ("gpu", "label:gpu.nvidia.com/class", "Quadro_RTX_4001", 0.80),
    ]
    assert [r.source.split(" (")[0] for r in rules] == [
        "pricing_schema.csv line 2",
        "pricing_schema.csv line 3",
        "pricing_schema.csv line 4",
    ]


def test_csv_instance_type_region_and_label_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        CSV_HEADER + "MarketPriceHourly,Version\n"
        ",,eu-west-1,node,,m6i.large,0.11,\n"
        ",,,node,,m6i.large,0.09,\n"
        ",pool-a,,node,metadata.labels.team-pool,,0.2,\n"
        ",aws:///eu-west-1a/i-1,,node,spec.providerID,,0.3,\n"
    )
    prices = pricing.price_set({"csv": str(path)})
    eu = pricing.rates(prices, node(instance_type="m6i.large", region="eu-west-1"))
    us = pricing.rates(prices, node(instance_type="m6i.large", region="us-east-1"))
    pooled = pricing.rates(prices, node(instance_type="m6i.large", labels={"team-pool": "pool-a"}))
    by_id = pricing.rates(
        prices, node(instance_type="m6i.large", provider_id="aws:///eu-west-1a/i-1")
    )
    assert (eu.node_hourly, eu.source) == (pytest.approx(0.11), "p.csv line 2")
    assert (us.node_hourly, us.source) == (pytest.approx(0.09), "p.csv line 3")
    assert (pooled.node_hourly, pooled.source) == (pytest.approx(0.2), "p.csv line 4")
    assert (by_id.node_hourly, by_id.source) == (pytest.approx(0.3), "p.csv line 5")


def test_csv_pv_row_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        CSV_HEADER + "MarketPriceHourly,Version\n"
        ",pvc-123,,pv,metadata.name,,0.00005,\n"
        f",{NAMED_NODE},,node,metadata.name,,0.5,\n"
    )
    with caplog.at_level(logging.WARNING, logger="cost.pricing"):
        rules = pricing.read_opencost_csv(path)
    assert [(r.match_value, r.hourly, r.source) for r in rules] == [
        (NAMED_NODE, 0.5, "p.csv line 3")
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "p.csv line 2" in warnings[0] and "'pv'" in warnings[0]


def test_csv_without_market_price_column_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(CSV_HEADER + f"Price\n,{NAMED_NODE},,node,metadata.name,,0.5\n")
    with pytest.raises(ConfigError, match="no column MarketPriceHourly") as caught:
        pricing.price_set({"csv": str(path)})
    assert str(path) in str(caught.value)


def test_csv_non_numeric_price_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        CSV_HEADER + "MarketPriceHourly\n"
        f",{NAMED_NODE},,node,metadata.name,,0.5\n"
        ",Quadro_RTX_4000,,gpu,nvidia.com/gpu_type,,cheap\n"
    )
    with pytest.raises(ConfigError) as caught:
        pricing.price_set({"csv": str(path)})
    message = str(caught.value)
    assert "p.csv line 3" in message
    assert "MarketPriceHourly" in message and "'cheap'" in message


def test_missing_csv_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read pricing CSV .*nope\.csv"):
        pricing.price_set({"csv": "nope.csv"}, base_dir=tmp_path)


def test_shipped_defaults_equal_opencost_default_json() -> None:
    published = json.loads((OPENCOST / "default.json").read_text())
    shipped = pricing.opencost_defaults()
    assert shipped.cpu == float(published["CPU"]) == CPU
    assert shipped.spot_cpu == float(published["spotCPU"]) == SPOT_CPU
    assert shipped.ram == float(published["RAM"]) == RAM
    assert shipped.spot_ram == float(published["spotRAM"]) == SPOT_RAM
    assert shipped.gpu == float(published["GPU"]) == GPU
    assert shipped.spot_gpu == shipped.gpu  # default.json has no spot GPU price
    assert pricing.price_set(None).defaults == shipped
    assert pricing.price_set({}).rules == ()


def test_defaults_from_onepane_yaml_override_only_what_they_name() -> None:
    d = pricing.price_set({"defaults": {"cpu": 0.05, "gpu": 2.5}}).defaults
    assert (d.cpu, d.ram, d.spot_cpu, d.gpu, d.spot_gpu) == (0.05, RAM, SPOT_CPU, 2.5, 2.5)
    assert d.source == "onepane.yaml pricing.defaults"
    r = pricing.rates(pricing.price_set({"defaults": {"cpu": 0.05}}), node(cores=2, gib=1))
    assert r.node_hourly == pytest.approx(2 * 0.05 + RAM)
    assert r.source == "onepane.yaml pricing.defaults (on-demand)"


# -- onepane.yaml rules ----------------------------------------------------------------


def test_node_rule_precedence_name_then_provider_id_then_label_then_instance_type() -> None:
    n = node(
        "box-1",
        instance_type="m6i.2xlarge",
        provider_id="aws:///eu-west-1a/i-0abc",
        labels={"pool": "batch"},
    )
    rules = [  # least specific first: the order in the file must not matter
        {"instance_type": "m6i.2xlarge", "hourly": 0.4},
        {"label": "pool", "value": "batch", "hourly": 0.3},
        {"provider_id": "aws:///eu-west-1a/i-0abc", "hourly": 0.2},
        {"name": "box-1", "hourly": 0.1},
    ]
    expected = [0.1, 0.2, 0.3, 0.4]
    for k in range(4):
        kept = rules[: 4 - k]  # drop the most specific one at a time
        r = pricing.rates(pricing.price_set({"nodes": kept}), n)
        assert r.node_hourly == pytest.approx(expected[k])
        assert r.source == f"onepane.yaml pricing.nodes[{3 - k}]"
    reversed_rules = pricing.price_set({"nodes": rules[::-1]})
    assert pricing.rates(reversed_rules, n).node_hourly == pytest.approx(0.1)


def test_region_specific_rule_beats_a_region_less_one() -> None:
    prices = pricing.price_set(
        {
            "nodes": [
                {"instance_type": "m6i.large", "hourly": 0.096},
                {"instance_type": "m6i.large", "region": "eu-west-1", "hourly": 0.107},
            ]
        }
    )
    eu = pricing.rates(prices, node(instance_type="m6i.large", region="eu-west-1"))
    us = pricing.rates(prices, node(instance_type="m6i.large", region="us-east-1"))
    unknown = pricing.rates(prices, node(instance_type="m6i.large"))
    assert (eu.node_hourly, eu.source) == (pytest.approx(0.107), "onepane.yaml pricing.nodes[1]")
    assert us.node_hourly == pytest.approx(0.096)
    assert unknown.node_hourly == pytest.approx(0.096)
    # but a region-specific instance-type rule does not beat a rule by name
    by_name = pricing.price_set(
        {
            "nodes": [
                {"instance_type": "m6i.large", "region": "eu-west-1", "hourly": 0.107},
                {"name": "n1", "hourly": 0.05},
            ]
        }
    )
    assert pricing.rates(
        by_name, node(instance_type="m6i.large", region="eu-west-1")
    ).node_hourly == pytest.approx(0.05)


def test_spot_and_on_demand_prices() -> None:
    prices = pricing.price_set(
        {"nodes": [{"instance_type": "g5.2xlarge", "on_demand": 1.212, "spot": 0.4848}]}
    )
    spot = node(instance_type="g5.2xlarge", capacity_type="spot")
    on_demand = node(instance_type="g5.2xlarge", capacity_type="on-demand")
    unlabelled = node(instance_type="g5.2xlarge")  # no capacity label: on-demand
    assert pricing.rates(prices, spot).node_hourly == pytest.approx(0.4848)
    assert pricing.rates(prices, on_demand).node_hourly == pytest.approx(1.212)
    assert pricing.rates(prices, unlabelled).node_hourly == pytest.approx(1.212)

    # only an on-demand price: a spot node falls back to the spot defaults
    only_od = pricing.price_set({"nodes": [{"instance_type": "g5.2xlarge", "on_demand": 1.212}]})
    r = pricing.rates(only_od, node(cores=8, gib=32, gpus=1, **_spot_g5()))
    assert r.node_hourly == pytest.approx(8 * SPOT_CPU + 32 * SPOT_RAM + 1 * GPU)
    assert r.source == "OpenCost default.json (spot)"

    # hourly: matches both; a rule for the node's capacity type beats it
    both = pricing.price_set(
        {
            "nodes": [
                {"instance_type": "g5.2xlarge", "spot": 0.5},
                {"instance_type": "g5.2xlarge", "hourly": 0.9},
            ]
        }
    )
    assert pricing.rates(both, spot).node_hourly == pytest.approx(0.5)
    assert pricing.rates(both, on_demand).node_hourly == pytest.approx(0.9)
    hourly = pricing.price_set({"nodes": [{"instance_type": "g5.2xlarge", "hourly": 0.9}]})
    assert pricing.rates(hourly, spot).node_hourly == pytest.approx(0.9)
    assert pricing.rates(hourly, on_demand).node_hourly == pytest.approx(0.9)

    # GPU rules by capacity type as well
    gpu_rules = pricing.price_set(
        {"gpus": [{"product": "NVIDIA-A10G", "on_demand": 1.006, "spot": 0.40}]}
    )
    labels = {"nvidia.com/gpu.product": "NVIDIA-A10G"}
    spot_gpu = node(gpus=1, labels=labels, capacity_type="spot")
    od_gpu = node(gpus=1, labels=labels, capacity_type="on-demand")
    assert pricing.rates(gpu_rules, spot_gpu).gpu_hourly == pytest.approx(0.40)
    assert pricing.rates(gpu_rules, od_gpu).gpu_hourly == pytest.approx(1.006)


def _spot_g5() -> dict:
    return {"instance_type": "g5.2xlarge", "capacity_type": "spot"}


# -- rates, by hand --------------------------------------------------------------------


def test_a_node_no_rule_matches_costs_its_resources_at_the_defaults() -> None:
    prices = pricing.price_set(None)
    r = pricing.rates(prices, node(cores=4, gib=16, gpus=1))
    # 4 × 0.031611 + 16 × 0.004237 + 1 × 0.95
    assert r.node_hourly == pytest.approx(0.126444 + 0.067792 + 0.95)
    assert (r.cpu_hourly, r.ram_hourly, r.gpu_hourly) == (CPU, RAM, GPU)
    assert r.source == "OpenCost default.json (on-demand)"

    s = pricing.rates(prices, node(cores=4, gib=16, gpus=1, capacity_type="spot"))
    # 4 × 0.006655 + 16 × 0.000892 + 1 × 0.95
    assert s.node_hourly == pytest.approx(0.02662 + 0.014272 + 0.95)
    assert (s.cpu_hourly, s.ram_hourly) == (SPOT_CPU, SPOT_RAM)
    assert s.source == "OpenCost default.json (spot)"


def test_a_whole_node_price_is_split_by_the_default_weights() -> None:
    prices = pricing.price_set({"nodes": [{"instance_type": "m6i.2xlarge", "hourly": 0.384}]})
    r = pricing.rates(prices, node(cores=8, gib=32, instance_type="m6i.2xlarge"))
    cpu_w, ram_w = 8 * 0.031611, 32 * 0.004237  # 0.252888 : 0.135584
    assert r.node_hourly == pytest.approx(0.384)
    assert r.cpu_hourly == pytest.approx(0.384 * cpu_w / (cpu_w + ram_w) / 8)
    assert r.ram_hourly == pytest.approx(0.384 * ram_w / (cpu_w + ram_w) / 32)

    # with a GPU and no GPU rule, the GPU takes its default weight of the price
    gpu_prices = pricing.price_set({"nodes": [{"instance_type": "g5.2xlarge", "hourly": 1.212}]})
    g = pricing.rates(gpu_prices, node(cores=8, gib=32, gpus=1, instance_type="g5.2xlarge"))
    total_w = cpu_w + ram_w + 0.95
    assert g.gpu_hourly == pytest.approx(1.212 * 0.95 / total_w)
    assert g.cpu_hourly * 8 == pytest.approx(1.212 * cpu_w / total_w)
    assert g.node_hourly == pytest.approx(1.212)

    # default prices of 0 give no weights: the price is split evenly over CPU and memory
    zero = pricing.price_set(
        {"nodes": [{"instance_type": "m6i.2xlarge", "hourly": 0.384}], "defaults": _ZERO_DEFAULTS}
    )
    z = pricing.rates(zero, node(cores=8, gib=32, instance_type="m6i.2xlarge"))
    assert (z.cpu_hourly * 8, z.ram_hourly * 32) == (pytest.approx(0.192), pytest.approx(0.192))

    # a spot node's split uses the spot weights
    spot = pricing.price_set({"nodes": [{"instance_type": "m6i.2xlarge", "spot": 0.15}]})
    sr = pricing.rates(
        spot, node(cores=8, gib=32, instance_type="m6i.2xlarge", capacity_type="spot")
    )
    s_cpu, s_ram = 8 * SPOT_CPU, 32 * SPOT_RAM
    assert sr.cpu_hourly * 8 == pytest.approx(0.15 * s_cpu / (s_cpu + s_ram))


def test_a_gpu_rule_prices_the_gpus_first_capped_at_the_node_price() -> None:
    labels = {"nvidia.com/gpu.product": "NVIDIA-A10G"}
    g5 = node(cores=8, gib=32, gpus=1, instance_type="g5.2xlarge", labels=labels)
    prices = pricing.price_set(
        {
            "nodes": [{"instance_type": "g5.2xlarge", "hourly": 1.212}],
            "gpus": [{"product": "NVIDIA-A10G", "hourly": 1.006}],
        }
    )
    r = pricing.rates(prices, g5)
    cpu_w, ram_w = 8 * CPU, 32 * RAM
    assert r.gpu_hourly == pytest.approx(1.006)
    assert r.cpu_hourly * 8 == pytest.approx(0.206 * cpu_w / (cpu_w + ram_w))
    assert r.ram_hourly * 32 == pytest.approx(0.206 * ram_w / (cpu_w + ram_w))
    assert r.node_hourly == pytest.approx(1.212)
    assert r.source == "onepane.yaml pricing.nodes[0]; GPU: onepane.yaml pricing.gpus[0]"

    # two GPUs at 1.006 are more than the node's 1.212: the GPUs get it all
    two = node(cores=8, gib=32, gpus=2, instance_type="g5.2xlarge", labels=labels)
    capped = pricing.rates(prices, two)
    assert capped.gpu_hourly == pytest.approx(1.212 / 2)
    assert (capped.cpu_hourly, capped.ram_hourly) == (0.0, 0.0)
    assert capped.node_hourly == pytest.approx(1.212)

    # a GPU rule by any label, without a node rule: defaults for the rest
    by_label = pricing.price_set(
        {
            "gpus": [
                {"label": "cloud.google.com/gke-accelerator", "value": "nvidia-l4", "hourly": 0.7}
            ]
        }
    )
    l4 = node(cores=4, gib=16, gpus=1, labels={"cloud.google.com/gke-accelerator": "nvidia-l4"})
    r = pricing.rates(by_label, l4)
    assert r.node_hourly == pytest.approx(4 * CPU + 16 * RAM + 0.7)
    assert r.source == "OpenCost default.json (on-demand); GPU: onepane.yaml pricing.gpus[0]"


_A10G = {"nvidia.com/gpu.product": "NVIDIA-A10G"}
_ALL_RULES = {
    "nodes": [
        {"instance_type": "m6i.2xlarge", "hourly": 0.384},
        {"instance_type": "g5.2xlarge", "on_demand": 1.212, "spot": 0.4848},
    ],
    "gpus": [{"product": "NVIDIA-A10G", "hourly": 1.006}],
}
_ZERO_DEFAULTS = {"cpu": 0, "spot_cpu": 0, "ram": 0, "spot_ram": 0, "gpu": 0}


@pytest.mark.parametrize(
    "section",
    [None, _ALL_RULES, {**_ALL_RULES, "defaults": _ZERO_DEFAULTS}],
    ids=["defaults", "rules", "rules-with-zero-defaults"],
)
@pytest.mark.parametrize(
    "n",
    [
        node(cores=8, gib=32, instance_type="m6i.2xlarge"),
        node(cores=8, gib=32, instance_type="m6i.2xlarge", capacity_type="spot"),
        node(cores=8, gib=32, gpus=1, instance_type="g5.2xlarge", labels=_A10G),
        node(cores=8, gib=32, gpus=4, instance_type="g5.2xlarge", labels=_A10G),
        node(cores=8, gib=32, gpus=1, instance_type="g5.2xlarge", capacity_type="spot"),
        node(cores=0.5, gib=0.5, gpus=1, instance_type="m6i.2xlarge"),
        node(cores=2, gib=0, instance_type="m6i.2xlarge"),
    ],
    ids=["od", "spot", "gpu-rule", "gpu-capped", "gpu-no-rule-spot", "tiny-gpu", "no-memory"],
)
def test_node_hourly_is_always_the_sum_of_its_per_unit_parts(section, n: NodeInfo) -> None:
    r = pricing.rates(pricing.price_set(section), n)
    assert r.node_hourly >= 0
    assert min(r.cpu_hourly, r.ram_hourly, r.gpu_hourly) >= 0
    assert_parts_add_up(r, n)
    if section is not None and n.instance_type == "m6i.2xlarge" and n.capacity_type is None:
        assert r.node_hourly == pytest.approx(0.384)  # the whole price is charged, none lost


# -- bad configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"price": 1}, "unknown key pricing.price; use csv, currency, defaults, effective_from"),
        ({"defaults": {"cpus": 1}}, "unknown key pricing.defaults.cpus"),
        ({"defaults": {"cpu": -0.01}}, "pricing.defaults.cpu must be 0 or more, got -0.01"),
        (
            {"nodes": [{"instance_type": "m", "hourly": -1}]},
            r"onepane.yaml pricing.nodes\[0\].hourly must be 0 or more, got -1",
        ),
        (
            {"nodes": [{"name": "a", "spot": "cheap"}]},
            r"pricing.nodes\[0\].spot must be a price per hour, got 'cheap'",
        ),
        ({"nodes": [{"name": "a", "hourly": True}]}, "must be a price per hour, got True"),
        (
            {
                "nodes": [
                    {"name": "a", "hourly": 1},
                    {"name": "b", "instance_type": "m", "hourly": 1},
                ]
            },
            r"pricing.nodes\[1\] must name exactly one of name, provider_id, label, instance_type",
        ),
        ({"nodes": [{"hourly": 1}]}, "must name exactly one of"),
        ({"nodes": [{"name": "a"}]}, "needs a price: hourly, on_demand or spot"),
        ({"nodes": [{"name": "a", "hourly": 1, "zone": "x"}]}, "unknown key 'zone'"),
        ({"nodes": [{"label": "pool", "hourly": 1}]}, "label needs a value"),
        ({"nodes": {"name": "a"}}, "pricing.nodes must be a list of mappings"),
        ({"gpus": [{"hourly": 1}]}, "needs product:, or label: with value:"),
        ({"effective_from": "next tuesday"}, "pricing.effective_from"),
    ],
)
def test_bad_pricing_config_is_a_config_error(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pricing.price_set(section)


def test_serve_with_bad_pricing_config_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pricing:\n  nodes:\n    - name: box-1\n      instance_type: m6i.large\n"
                   "      hourly: 0.1\n")  # fmt: skip
    result = serve_once(tmp_path / "x.duckdb", "--config", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "onepane: error: onepane.yaml pricing.nodes[0] must name exactly one of name, "
        "provider_id, label, instance_type"
    ]
    assert not (tmp_path / "x.duckdb").exists()  # nothing was started


# -- versions ----------------------------------------------------------------------------


def _set(hourly: float, effective_from: str | None = None) -> pricing.PriceSet:
    section: dict = {"nodes": [{"instance_type": "m6i.2xlarge", "hourly": hourly}]}
    if effective_from:
        section["effective_from"] = effective_from
    return pricing.price_set(section)


def test_versions_are_recorded_only_when_prices_change(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    conn = db.connect(path)
    a, b = _set(0.384), _set(0.5)
    assert pricing.record(conn, a, T0) == 1
    assert pricing.record(conn, _set(0.384), T0 + H) == 1  # same prices: no new version
    assert pricing.record(conn, b, T0 + 2 * H) == 2
    assert pricing.record(conn, b, T0 + 3 * H) == 2
    assert pricing.record(conn, a, T0 + 4 * H) == 3  # back to a: a new version again
    conn.close()

    conn = db.connect(path)  # what was stored survives a restart
    book = pricing.versions(conn)
    assert [(v.version, v.valid_from_ns) for v in book] == [
        (1, 0),  # the first version covers all earlier time
        (2, T0 + 2 * H),
        (3, T0 + 4 * H),
    ]
    assert book[1].prices.rules == b.rules
    assert book[1].prices.defaults == b.defaults
    assert book[1].prices.digest() == b.digest()
    assert book[0].prices.digest() == book[2].prices.digest() == a.digest()
    assert pricing.version_at(book, 0).version == 1
    assert pricing.version_at(book, T0 + 2 * H - 1).version == 1
    assert pricing.version_at(book, T0 + 2 * H).version == 2
    assert pricing.version_at(book, T0 + 10 * H).version == 3
    # what /api/v1/prices reads: the rules, then the six default prices
    assert conn.execute("SELECT count(*) FROM prices WHERE version = 2").fetchone()[0] == 7
    conn.close()


def test_effective_from_is_honoured_but_never_before_the_final_hours(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "x.duckdb")
    assert pricing.record(conn, _set(0.384), T0) == 1
    final = T0 + 5 * H
    conn.execute("UPDATE cost_rollup_state SET final_through = make_timestamp_ns($t)", {"t": final})
    # effective a week back, but the hours up to final_through are final: from there
    assert pricing.record(conn, _set(0.5, "2026-02-22T00:00:00Z"), T0 + 6 * H) == 2
    # effective in the future: from then, not from now
    assert pricing.record(conn, _set(0.6, "2026-03-02T00:00:00Z"), T0 + 6 * H) == 3
    book = pricing.versions(conn)
    assert [(v.version, v.valid_from_ns) for v in book] == [
        (1, 0),
        (2, final),
        (3, T0 + 24 * H),
    ]
    assert pricing.version_at(book, final - H).version == 1
    assert pricing.version_at(book, final).version == 2
    assert pricing.version_at(book, T0 + 23 * H).version == 2
    assert pricing.version_at(book, T0 + 24 * H).version == 3
    conn.close()


def _cost_rows(conn: duckdb.DuckDBPyConnection, table: str, key: str) -> list[tuple]:
    cost = "total_cost" if table == "cost_pod_hours" else "node_cost"
    return conn.execute(
        f"SELECT epoch_ns(hour), {key}, {cost}, price_version, price_source "
        f"FROM {table} ORDER BY hour, {key}"
    ).fetchall()


def test_a_price_change_does_not_rewrite_past_hours(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "x.duckdb")
    labels = {"node.kubernetes.io/instance-type": "m6i.2xlarge"}
    n1 = kubesim.node("n1", T0, cpu="8", memory="32Gi", labels=labels)
    pod = kubesim.pod(
        "api-1", "shop", T0, node_name="n1", requests={"cpu": "2", "memory": "4Gi"}, started_ns=T0
    )
    for kind, rows in (
        ("nodes", [node_row(n1, T0)]),
        ("pods", [pod_row(pod, ("Deployment", "api"), T0)]),
    ):
        conn.execute("BEGIN")
        inventory.upsert(conn, kind, inventory.rows_table(kind, rows))
        conn.execute("COMMIT")

    assert pricing.record(conn, _set(0.384), T0) == 1
    assert rollup.pending(conn, T0 + 3 * H, rollup.RollupConfig()) == (T0, T0 + 4 * H)
    rolled = rollup.step(conn, T0, T0 + 3 * H, T0 + 3 * H, T0 + 3 * H)
    assert (rolled.pod_hours, rolled.node_hours) == (3, 3)
    old_pods = _cost_rows(conn, "cost_pod_hours", "pod")
    old_nodes = _cost_rows(conn, "cost_node_hours", "node")
    # the pod pays 2 of 8 cores and 4 of 32 GiB of the node's 0.384/h, split by default weights
    cpu_w, ram_w = 8 * CPU, 32 * RAM
    pod_cost = 0.384 * (2 / 8 * cpu_w + 4 / 32 * ram_w) / (cpu_w + ram_w)
    assert [r[2] for r in old_pods] == pytest.approx([pod_cost] * 3)
    assert [r[2] for r in old_nodes] == pytest.approx([0.384] * 3)
    assert {(r[3], r[4]) for r in old_pods + old_nodes} == {(1, "onepane.yaml pricing.nodes[0]")}

    # the price doubles, "effective" from the start: the final hours keep the old price
    now = T0 + 5 * H
    assert pricing.record(conn, _set(0.768, "2026-03-01T00:00:00Z"), now) == 2
    assert pricing.versions(conn)[1].valid_from_ns == T0 + 3 * H  # final_through, not T0
    start, end = rollup.pending(conn, now, rollup.RollupConfig())
    assert start == T0 + 3 * H  # final hours are not computed again
    rollup.step(conn, start, end, now, now - H)

    pods, nodes = (
        _cost_rows(conn, "cost_pod_hours", "pod"),
        _cost_rows(conn, "cost_node_hours", "node"),
    )
    assert pods[:3] == old_pods and nodes[:3] == old_nodes
    assert [r[0] for r in nodes] == [T0 + i * H for i in range(5)]
    assert [r[2] for r in nodes[3:]] == pytest.approx([0.768, 0.768])
    assert [r[2] for r in pods[3:]] == pytest.approx([2 * pod_cost, 2 * pod_cost])
    assert [r[3] for r in pods] == [r[3] for r in nodes] == [1, 1, 1, 2, 2]

    # even computing the old hours again prices them with the version they had
    rollup.step(conn, T0, T0 + 5 * H, now, now - H)
    assert _cost_rows(conn, "cost_pod_hours", "pod")[:3] == old_pods
    assert _cost_rows(conn, "cost_node_hours", "node")[:3] == old_nodes
    conn.close()
