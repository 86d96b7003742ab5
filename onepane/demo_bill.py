"""A month of the demo company's cloud bill, as a FOCUS 1.2 CSV export.

One row per node and day for the cluster's EC2 instances (matched to nodes by
``ResourceId``), plus what a cluster costs besides its nodes: EBS volumes, a NAT gateway,
data transfer. The bill differs from what Onepane allocates the way real ones do:

* the on-demand nodes are covered by a Compute Savings Plan: ``EffectiveCost`` is 28%
  below ``ListCost`` (PricingCategory ``Committed``);
* the spot GPU node is billed at the day's spot price, which moves around the price in
  onepane.yaml (PricingCategory ``Dynamic``; ``ListCost`` is the on-demand price);
* today is not billed yet: bills lag a day.

Reconciliation (``onepane cost reconcile``) shows and explains each part of the gap.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from onepane.kubesim import instance_id

SAVINGS_PLAN_DISCOUNT = 0.28
_LIST = {"m6i.2xlarge": 0.428, "g5.2xlarge": 1.356}
_SPOT = {"m6i.2xlarge": 0.1712, "g5.2xlarge": 0.5424}
_ACCOUNT = "123456789012"
_PLAN = "arn:aws:savingsplans::123456789012:savingsplan/sp-0demo5a1e5p1an"
_HEADER = [
    "BillingAccountId", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
    "ChargePeriodEnd", "ChargeCategory", "ChargeFrequency", "PricingCategory",
    "ServiceProviderName", "ServiceName", "ResourceId", "ResourceName", "RegionId",
    "BillingCurrency", "ListCost", "BilledCost", "EffectiveCost", "ConsumedQuantity",
    "ConsumedUnit", "CommitmentDiscountId", "Tags", "x_UsageType",
]  # fmt: skip


@dataclass(frozen=True)
class BilledNode:
    name: str
    instance_type: str
    capacity_type: str  # spot | on-demand
    created_ns: int


def _period(day: datetime) -> tuple[str, str]:
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return _ts(start), _ts(end)


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def focus_csv(nodes: list[BilledNode], now_ns: int, seed: int = 7) -> bytes:
    """Every whole day from the oldest node's first full day to yesterday, as FOCUS CSV."""
    rng = random.Random(seed)
    today = datetime.fromtimestamp(now_ns / 1e9, UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    first = min(n.created_ns for n in nodes)
    day = datetime.fromtimestamp(first / 1e9, UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    ) + timedelta(days=1)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_HEADER)
    while day < today:
        period = _period(day)
        for node in nodes:
            if node.created_ns <= day.timestamp() * 1e9:
                writer.writerow(_node_row(node, day, period, rng))
        for row in _cluster_rows(day, period, rng):
            writer.writerow(row)
        day += timedelta(days=1)
    return out.getvalue().encode()


def _common(day: datetime, period: tuple[str, str]) -> list[str]:
    return [_ACCOUNT, *period, _ts(day), _ts(day + timedelta(days=1))]


def _node_row(
    node: BilledNode, day: datetime, period: tuple[str, str], rng: random.Random
) -> list[str]:
    listed = 24 * _LIST[node.instance_type]
    if node.capacity_type == "spot":
        effective = 24 * _SPOT[node.instance_type] * rng.uniform(0.88, 1.14)
        pricing, plan = "Dynamic", ""
    else:
        effective = listed * (1 - SAVINGS_PLAN_DISCOUNT)
        pricing, plan = "Committed", _PLAN
    tags = json.dumps(
        {
            "Name": node.name,
            "karpenter.sh/nodepool": "default",
            "kubernetes.io/cluster/onepane-demo": "owned",
        }
    )
    region = "eu-west-1"
    return [
        *_common(day, period), "Usage", "Usage-Based", pricing, "AWS",
        "Amazon Elastic Compute Cloud", instance_id(node.name), instance_id(node.name), region,
        "USD", f"{listed:.6f}", f"{effective:.6f}", f"{effective:.6f}", "24", "Hours", plan,
        tags, f"EU-BoxUsage:{node.instance_type}",
    ]  # fmt: skip


def _cluster_rows(day: datetime, period: tuple[str, str], rng: random.Random) -> list[list[str]]:
    rows = []
    for service, resource, cost, usage in (
        ("Amazon Elastic Block Store", "vol-0demo0gp3volumes", 1.84, "EU-EBS:VolumeUsage.gp3"),
        ("Amazon Virtual Private Cloud", "nat-0demo0natgateway", 1.152, "EU-NatGateway-Hours"),
        ("AWS Data Transfer", "", 0.35 * rng.uniform(0.7, 1.4), "EU-DataTransfer-Out-Bytes"),
    ):
        rows.append(
            [
                *_common(day, period), "Usage", "Usage-Based", "Standard", "AWS", service,
                resource, resource, "eu-west-1", "USD", f"{cost:.6f}", f"{cost:.6f}",
                f"{cost:.6f}", "", "", "",
                '{"kubernetes.io/cluster/onepane-demo": "owned"}', usage,
            ]
        )  # fmt: skip
    return rows
