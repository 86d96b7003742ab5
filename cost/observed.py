"""What a workload was observed to cost and serve: the inputs of a gate projection.

* its identity (kind, team, unit) from the catalog, labels or inference;
* its throughput over a window (units per hour it ran), its cost, its average replicas;
* the release running now: pods alive, what each asks for, the version they serve;
* Job pods' average run time, for pipelines;
* the rates the release would be priced at: per core-hour, GiB-hour and GPU-hour of the
  nodes its ``nodeSelector`` picks, else the nodes it ran on, else every node (GPU nodes
  for GPUs), at today's prices; the default prices when there are no nodes at all.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from statistics import fmean
from typing import Any

import duckdb

from cost import pricing, unit
from cost.allocation import HOUR_NS, node_infos
from cost.catalog import DEFAULT_UNIT
from cost.window import CostWindow
from onepane.errors import NotFound

_MIN_SERVING_HOURS = 1 / 60  # a throughput from less than a minute of traffic is noise
_IDENTITY = "SELECT kind, team, unit, kind_source FROM workload_identity WHERE workload = $w"
_SEEN = """
SELECT EXISTS (SELECT 1 FROM k8s_pods WHERE workload = $w)
    OR EXISTS (SELECT 1 FROM spans WHERE workload = $w)
"""
_NAMES = """
SELECT workload FROM workload_identity
UNION SELECT DISTINCT workload FROM k8s_pods
"""
_COST = """
SELECT count(DISTINCT hour), coalesce(sum(total_cost), 0), coalesce(sum(hours), 0)
FROM cost_pod_hours
WHERE workload = $w AND hour >= make_timestamp_ns($start) AND hour < make_timestamp_ns($end)
"""
# How long it served: the hours it served in, less the parts of the first and last hour
# before its first span and after its last.
_SERVING = f"""
WITH hours AS (
    SELECT DISTINCT hour FROM workload_hour_counts
    WHERE workload = $w AND hour >= make_timestamp_ns($start) AND hour < make_timestamp_ns($end)
      AND requests + predictions + runs > 0
), edges AS (
    SELECT min(start_time) AS first_span, max(start_time) AS last_span FROM spans
    WHERE workload = $w
      AND start_time >= (SELECT min(hour) FROM hours)
      AND start_time < (SELECT max(hour) FROM hours) + INTERVAL 1 HOUR
)
SELECT (SELECT count(*) FROM hours) * {HOUR_NS}
       - coalesce(epoch_ns(first_span) - (SELECT epoch_ns(min(hour)) FROM hours), 0)
       - coalesce((SELECT epoch_ns(max(hour)) FROM hours) + {HOUR_NS} - epoch_ns(last_span), 0)
FROM edges
"""
# The release running now: pods alive, else the pods that started last.
_CURRENT = """
WITH pods AS (
    SELECT *, end_time IS NULL AND start_time IS NOT NULL AS alive FROM k8s_pods
    WHERE workload = $w
), chosen AS (
    SELECT * FROM pods
    WHERE alive OR (NOT EXISTS (SELECT 1 FROM pods WHERE alive)
                    AND start_time = (SELECT max(start_time) FROM pods))
)
SELECT count(*) FILTER (WHERE alive), avg(cpu_request), avg(memory_request),
       avg(coalesce(gpu_request, 0)), any_value(node) FROM chosen
"""
_VERSION = """
SELECT version FROM workload_hour_counts
WHERE workload = $w AND hour = (SELECT max(hour) FROM workload_hour_counts WHERE workload = $w)
GROUP BY version ORDER BY sum(spans) DESC LIMIT 1
"""
_JOB_PODS = """
SELECT avg(epoch_ns(end_time) - epoch_ns(start_time)) / 3.6e12, count(*)
FROM k8s_pods
WHERE workload = $w AND owner_kind IN ('Job', 'CronJob') AND end_time IS NOT NULL
  AND start_time >= make_timestamp_ns($start)
"""
_NODES_RAN_ON = """
SELECT DISTINCT node FROM cost_pod_hours
WHERE workload = $w AND hour >= make_timestamp_ns($start) AND node IS NOT NULL
"""


@dataclass(frozen=True)
class Identity:
    workload: str
    kind: str
    team: str | None
    unit: str  # requests | predictions | runs | tokens
    kind_source: str


@dataclass(frozen=True)
class Rates:
    """Per core-hour, GiB-hour and GPU-hour; where they came from."""

    cpu: float
    ram: float
    gpu: float
    source: str


@dataclass(frozen=True)
class Current:
    """The release running now."""

    pods: int  # alive now
    cpu: float | None  # per pod
    memory: float | None
    gpus: float
    version: str | None


@dataclass(frozen=True)
class Observed:
    """A workload over a window: what it served and cost, and what runs now."""

    identity: Identity
    window: CostWindow
    serving_hours: float  # how long it served traffic in the window
    cost: float  # allocated over the window
    avg_pods: float | None  # average replicas over the hours it ran
    units: int  # of identity.unit
    unit_cost: float | None  # observed, per 1k / per run / per 1M tokens
    version_unit_cost: float | None  # the current version's, observed
    current: Current
    job_pod_hours: float | None  # average run time of its Job pods
    job_pods: int

    @property
    def throughput_per_hour(self) -> float | None:
        if not self.units or self.serving_hours <= 0:
            return None
        return self.units / max(self.serving_hours, _MIN_SERVING_HOURS)


def identity(cursor: duckdb.DuckDBPyConnection, workload: str) -> Identity:
    """The workload's kind, team and unit; NotFound (naming close matches) when unknown."""
    row = cursor.execute(_IDENTITY, {"w": workload}).fetchone()
    if row is None and not cursor.execute(_SEEN, {"w": workload}).fetchone()[0]:
        names = [r[0] for r in cursor.execute(_NAMES).fetchall()]
        close = difflib.get_close_matches(workload, names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise NotFound(
            f"unknown workload {workload!r}: Onepane has seen no pods or spans of it and the "
            f"catalog does not list it.{hint} Give namespace/name as Kubernetes names it, or "
            "add it to the catalog in onepane.yaml."
        )
    kind, team, unit_name, source = row or ("app", None, None, "default")
    return Identity(workload, kind, team, unit_name or DEFAULT_UNIT.get(kind, "requests"), source)


def observe(cursor: duckdb.DuckDBPyConnection, who: Identity, window: CostWindow) -> Observed:
    """What ``who`` served and cost over ``window``, and the release running now."""
    params = {"w": who.workload, "start": window.start_ns, "end": window.end_ns}
    hours, cost, pod_hours = cursor.execute(_COST, params).fetchone()
    serving_ns = cursor.execute(_SERVING, params).fetchone()[0] or 0
    figures = unit.unit_costs(cursor, window, who.workload, by_version=False)
    units = sum(f["count"] for f in figures)
    unit_cost = figures[0]["unit_cost"] if len(figures) == 1 else None
    pods, cpu, memory, gpus, _ = cursor.execute(_CURRENT, {"w": who.workload}).fetchone()
    found = cursor.execute(_VERSION, {"w": who.workload}).fetchone()
    version = found[0] if found else None
    by_version = unit.unit_costs(cursor, window, who.workload, by_version=True)
    version_cost = next((f["unit_cost"] for f in by_version if f["version"] == version), None)
    job_hours, job_pods = cursor.execute(
        _JOB_PODS, {"w": who.workload, "start": window.start_ns}
    ).fetchone()
    return Observed(
        identity=who,
        window=window,
        serving_hours=serving_ns / HOUR_NS,
        cost=float(cost),
        avg_pods=pod_hours / hours if hours else None,
        units=int(units),
        unit_cost=unit_cost,
        version_unit_cost=version_cost,
        current=Current(int(pods or 0), cpu, memory, float(gpus or 0.0), version),
        job_pod_hours=job_hours,
        job_pods=int(job_pods),
    )


def _labels_match(node: pricing.NodeInfo, selector: dict[str, str]) -> bool:
    return all(node.labels.get(k) == v for k, v in selector.items())


def rates(
    cursor: duckdb.DuckDBPyConnection,
    prices: pricing.PriceSet,
    workload: str,
    selector: dict[str, str],
    now_ns: int,
    window_start_ns: int,
) -> Rates:
    """Today's prices per core, GiB and GPU on the nodes the release would run on."""
    nodes = node_infos(cursor, now_ns - HOUR_NS, now_ns)
    found = cursor.execute(_NODES_RAN_ON, {"w": workload, "start": window_start_ns}).fetchall()
    ran_on = {r[0] for r in found}
    picked, where = [], ""
    if selector:
        picked = [n for n in nodes if _labels_match(n, selector)]
        where = f"nodes matching nodeSelector {selector}"
    if not picked and ran_on:
        picked = [n for n in nodes if n.name in ran_on]
        where = "the nodes it ran on"
    if not picked:
        picked, where = nodes, "all nodes"
    if not picked:
        d = prices.defaults
        return Rates(d.cpu, d.ram, d.gpu, f"default prices ({d.source}): no nodes listed")
    each = [pricing.rates(prices, n) for n in picked]
    gpu_nodes = [(n, r) for n, r in zip(picked, each, strict=True) if n.gpus > 0]
    gpu_where = where
    if not gpu_nodes:
        gpu_nodes = [(n, pricing.rates(prices, n)) for n in nodes if n.gpus > 0]
        gpu_where = "the GPU nodes"
    gpu = fmean(r.gpu_hourly for _, r in gpu_nodes) if gpu_nodes else prices.defaults.gpu
    names = sorted({n.instance_type or n.name for n in picked})
    source = f"{where} ({', '.join(names[:4])}{', …' if len(names) > 4 else ''})"
    if gpu_where != where:
        source += f"; GPUs at {gpu_where}" if gpu_nodes else "; GPUs at the default price"
    return Rates(
        cpu=fmean(r.cpu_hourly for r in each),
        ram=fmean(r.ram_hourly for r in each),
        gpu=gpu,
        source=source,
    )


def as_dict(observed: Observed) -> dict[str, Any]:
    """The observation as the gate's decision document shows it."""
    return {
        "window": {"start_ns": observed.window.start_ns, "end_ns": observed.window.end_ns},
        "serving_hours": observed.serving_hours,
        "cost": observed.cost,
        "avg_replicas": observed.avg_pods,
        "units": observed.units,
        "unit": unit.LABEL[observed.identity.unit],
        "throughput_per_hour": observed.throughput_per_hour,
        "unit_cost": observed.unit_cost,
        "current_version": observed.current.version,
        "current_version_unit_cost": observed.version_unit_cost,
        "current_pods": observed.current.pods,
        "job_pod_hours": observed.job_pod_hours,
        "job_pods": observed.job_pods,
    }


# -- a canary: one version over a short window ---------------------------------------------

_CANARY = f"""
WITH served AS (
    SELECT service_version AS version, k8s_namespace AS namespace, k8s_pod AS pod,
           count(*) AS spans,
           count(*) FILTER (WHERE role IN ('request', 'api')) AS requests,
           count(*) FILTER (WHERE role = 'inference') AS predictions,
           count(*) FILTER (WHERE role = 'pipeline' AND parent_span_id IS NULL) AS runs,
           sum(CASE WHEN role = 'inference' THEN
               coalesce(TRY_CAST(json_extract_string(
                   attributes, '$."gen_ai.usage.input_tokens"') AS BIGINT), 0)
             + coalesce(TRY_CAST(json_extract_string(
                   attributes, '$."gen_ai.usage.output_tokens"') AS BIGINT), 0) END) AS tokens
    FROM spans
    WHERE workload = $w AND start_time >= make_timestamp_ns($start)
      AND start_time < make_timestamp_ns($end)
    GROUP BY ALL
),
versions AS (SELECT count(DISTINCT version) AS n, any_value(version) AS only FROM served),
pod_version AS (
    SELECT namespace, pod, arg_max(version, spans) AS version
    FROM served WHERE pod IS NOT NULL GROUP BY ALL
),
pod_cost AS (  -- each pod's cost within the window, prorated within its hours
    SELECT c.namespace, c.pod,
           sum(c.total_cost / (c.hours * {HOUR_NS})
               * greatest(0, least(epoch_ns(c.hour) + {HOUR_NS}, $end,
                                   coalesce(epoch_ns(p.end_time), $end))
                           - greatest(epoch_ns(c.hour), $start,
                                      coalesce(epoch_ns(p.start_time), 0)))) AS cost
    FROM cost_pod_hours c LEFT JOIN k8s_pods p ON p.uid = c.pod_uid
    WHERE c.workload = $w AND c.hours > 0
      AND c.hour >= make_timestamp_ns($start - {HOUR_NS}) AND c.hour < make_timestamp_ns($end)
    GROUP BY ALL
),
cost_by_version AS (
    SELECT coalesce(pv.version, CASE WHEN v.n = 1 THEN v.only END) AS version,
           sum(pc.cost) AS cost, count(*) AS pods
    FROM pod_cost pc CROSS JOIN versions v
    LEFT JOIN pod_version pv ON pv.namespace = pc.namespace AND pv.pod = pc.pod
    GROUP BY ALL
),
units_by_version AS (
    SELECT version, sum(requests) AS requests, sum(predictions) AS predictions,
           sum(runs) AS runs, sum(tokens) AS tokens
    FROM served GROUP BY ALL
)
SELECT coalesce(u.version, c.version) AS version, c.cost, c.pods,
       u.requests, u.predictions, u.runs, u.tokens
FROM units_by_version u FULL OUTER JOIN cost_by_version c
  ON c.version IS NOT DISTINCT FROM u.version
"""


@dataclass(frozen=True)
class Canary:
    """One version over a window, and the other versions beside it (the baseline)."""

    version: str
    units: int
    cost: float
    pods: int
    unit_cost: float | None
    baseline: float | None  # the other versions' unit cost in the same window
    baseline_source: str


def canary(
    cursor: duckdb.DuckDBPyConnection, who: Identity, version: str, start_ns: int, end_ns: int
) -> Canary:
    """What ``version`` of the workload served and cost between ``start_ns`` and ``end_ns``.

    A pod's cost is prorated to the window; a pod belongs to the version most of its spans
    carry (all pods do when the window holds one version only).
    """
    rows = cursor.execute(_CANARY, {"w": who.workload, "start": start_ns, "end": end_ns})
    index = {"requests": 3, "predictions": 4, "runs": 5, "tokens": 6}[who.unit]
    per = 1_000_000.0 if who.unit == "tokens" else 1000.0 if who.unit != "runs" else 1.0
    mine = (0, 0.0, 0)
    others = [0, 0.0]
    other_versions = []
    for row in rows.fetchall():
        units, cost, pods = int(row[index] or 0), float(row[1] or 0.0), int(row[2] or 0)
        if row[0] == version:
            mine = (units, cost, pods)
        elif units and cost:
            others[0] += units
            others[1] += cost
            other_versions.append(str(row[0]))
    units, cost, pods = mine
    baseline = others[1] / others[0] * per if others[0] else None
    return Canary(
        version=version,
        units=units,
        cost=cost,
        pods=pods,
        unit_cost=cost / units * per if units and cost else None,
        baseline=baseline,
        baseline_source=f"versions {', '.join(sorted(other_versions))} in the same window",
    )
