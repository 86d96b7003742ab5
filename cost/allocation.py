"""The hourly rollup: what each pod cost in each hour, what each node cost, and the idle rest.

For every hour, for every pod that ran in it:

* CPU on max(request, usage) core-hours, memory on max(request, usage) GiB-hours, where
  usage is the hour's average of ``k8s.pod.cpu.usage`` / ``k8s.pod.memory.working_set``
  (or their ``container.*`` forms, summed over containers) when the pod sends them;
* GPUs on physical GPU-hours: a request on a time-sliced node (``nvidia.com/gpu.replicas``
  = N) is 1/N of a GPU; **GPU idle cost** = GPU cost × (1 − the hour's measured utilisation);
* each at its node's rates for the price version of that hour (cost/pricing.py).

For every node and hour: node cost = allocated + idle, per resource. When pods on a node
use more than it has (usage above requests on a full node), they share the node's cost
in proportion to what they used, so nothing is charged twice and idle is never negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import orjson
import pyarrow as pa

from cost import pricing
from cost.pricing import NodeInfo, PriceVersion

HOUR_NS = 3_600_000_000_000
CPU_METRICS = ("k8s.pod.cpu.usage", "container.cpu.usage")
MEMORY_METRICS = ("k8s.pod.memory.working_set", "container.memory.working_set")

_RATES_SCHEMA = pa.schema(
    [
        ("node", pa.string()),
        ("version", pa.int32()),
        ("cpu_hourly", pa.float64()),
        ("ram_hourly", pa.float64()),
        ("gpu_hourly", pa.float64()),
        ("cpu_part", pa.float64()),
        ("ram_part", pa.float64()),
        ("gpu_part", pa.float64()),
        ("gpus", pa.float64()),
        ("source", pa.string()),
    ]
)
_HOURS_SCHEMA = pa.schema([("hour_ns", pa.int64()), ("version", pa.int32())])

_NODE_HOURS = f"""
node_hours AS (
    SELECT hv.hour_ns, hv.version, n.name AS node,
           arg_max(n.instance_type, n.updated) AS instance_type,
           arg_max(n.capacity_type, n.updated) AS capacity_type,
           arg_max(n.provider_id, n.updated) AS provider_id,
           arg_max(n.cpu_capacity, n.updated) AS cpu_cores,
           arg_max(n.memory_capacity, n.updated) AS ram_bytes,
           least(1.0, sum((least(coalesce(epoch_ns(n.deleted), $now), hv.hour_ns + {HOUR_NS})
                           - greatest(coalesce(epoch_ns(n.created), 0), hv.hour_ns))
                          / {HOUR_NS}::DOUBLE)) AS hours
    FROM k8s_nodes n
    JOIN hour_versions hv
      ON coalesce(epoch_ns(n.created), 0) < hv.hour_ns + {HOUR_NS}
     AND coalesce(epoch_ns(n.deleted), $now) > hv.hour_ns
    GROUP BY hv.hour_ns, hv.version, n.name
),
node_costs AS (
    SELECT nh.*, r.gpus,
           nh.hours * r.cpu_part AS cpu_cost, nh.hours * r.ram_part AS ram_cost,
           nh.hours * r.gpu_part AS gpu_cost, r.source
    FROM node_hours nh JOIN node_rates r ON r.node = nh.node AND r.version = nh.version
    WHERE nh.hours > 0
)"""

_POD_HOURS = f"""
INSERT INTO cost_pod_hours
WITH {_NODE_HOURS.strip()},
pod_hours AS (
    SELECT hv.hour_ns, hv.version, p.uid, p.namespace, p.name AS pod, p.workload,
           p.owner_kind, p.node, p.cpu_request, p.memory_request, p.gpu_request, p.labels,
           (least(coalesce(epoch_ns(p.end_time), $now), hv.hour_ns + {HOUR_NS})
            - greatest(epoch_ns(p.start_time), hv.hour_ns)) / {HOUR_NS}::DOUBLE AS hours
    FROM k8s_pods p
    JOIN hour_versions hv
      ON epoch_ns(p.start_time) < hv.hour_ns + {HOUR_NS}
     AND coalesce(epoch_ns(p.end_time), $now) > hv.hour_ns
    WHERE p.node IS NOT NULL AND p.start_time < make_timestamp_ns($end)
      AND (p.end_time IS NULL OR p.end_time > make_timestamp_ns($start))
),
series AS (
    SELECT k8s_namespace AS namespace, k8s_pod AS pod,
           epoch_ns(time) // {HOUR_NS} * {HOUR_NS} AS hour_ns,
           metric_name IN {CPU_METRICS} AS is_cpu,
           starts_with(metric_name, 'k8s.pod.') AS pod_level,
           avg(value) AS value
    FROM metric_points
    WHERE metric_name IN {CPU_METRICS + MEMORY_METRICS}
      AND time >= make_timestamp_ns($start) AND time < make_timestamp_ns($end)
      AND k8s_pod IS NOT NULL AND value IS NOT NULL
    GROUP BY namespace, pod, hour_ns, is_cpu, pod_level, resource_id, attributes
),
usage AS (
    SELECT namespace, pod, hour_ns,
           coalesce(sum(value) FILTER (WHERE is_cpu AND pod_level),
                    sum(value) FILTER (WHERE is_cpu AND NOT pod_level)) AS cpu_usage,
           coalesce(sum(value) FILTER (WHERE NOT is_cpu AND pod_level),
                    sum(value) FILTER (WHERE NOT is_cpu AND NOT pod_level)) AS ram_usage
    FROM series GROUP BY ALL
),
gpu_use AS (
    SELECT namespace, pod, epoch_ns(time) // {HOUR_NS} * {HOUR_NS} AS hour_ns,
           avg(utilization) AS utilization
    FROM gpu_samples
    WHERE time >= make_timestamp_ns($start) AND time < make_timestamp_ns($end)
      AND pod IS NOT NULL AND utilization IS NOT NULL
    GROUP BY ALL
),
replicas AS (
    SELECT name, arg_max(gpu_replicas, updated) AS replicas FROM k8s_nodes GROUP BY name
),
raw AS (
    SELECT ph.*, u.cpu_usage, u.ram_usage, g.utilization,
           greatest(coalesce(ph.cpu_request, 0), coalesce(u.cpu_usage, 0)) * ph.hours
               AS cpu_core_hours,
           greatest(coalesce(ph.memory_request, 0), coalesce(u.ram_usage, 0)) * ph.hours
               AS ram_byte_hours,
           coalesce(ph.gpu_request, 0) / greatest(coalesce(rp.replicas, 1), 1) * ph.hours
               AS gpu_hours,
           coalesce(r.cpu_hourly, d.cpu_hourly) AS cpu_rate,
           coalesce(r.ram_hourly, d.ram_hourly) AS ram_rate,
           coalesce(r.gpu_hourly, d.gpu_hourly) AS gpu_rate,
           coalesce(r.source, d.source) AS source
    FROM pod_hours ph
    LEFT JOIN usage u ON u.namespace = ph.namespace AND u.pod = ph.pod AND u.hour_ns = ph.hour_ns
    LEFT JOIN gpu_use g ON g.namespace = ph.namespace AND g.pod = ph.pod
                       AND g.hour_ns = ph.hour_ns
    LEFT JOIN replicas rp ON rp.name = ph.node
    LEFT JOIN node_rates r ON r.node = ph.node AND r.version = ph.version
    LEFT JOIN node_rates d ON d.node = '' AND d.version = ph.version
    WHERE ph.hours > 0
),
charged AS (
    SELECT raw.*, cpu_core_hours * cpu_rate AS cpu_raw,
           ram_byte_hours / {pricing.GIB}::DOUBLE * ram_rate AS ram_raw,
           gpu_hours * gpu_rate AS gpu_raw
    FROM raw
),
shared AS (
    SELECT c.*,
           CASE WHEN sum(cpu_raw) OVER w > nc.cpu_cost THEN nc.cpu_cost / sum(cpu_raw) OVER w
                ELSE 1 END AS cpu_scale,
           CASE WHEN sum(ram_raw) OVER w > nc.ram_cost THEN nc.ram_cost / sum(ram_raw) OVER w
                ELSE 1 END AS ram_scale,
           CASE WHEN sum(gpu_raw) OVER w > nc.gpu_cost THEN nc.gpu_cost / sum(gpu_raw) OVER w
                ELSE 1 END AS gpu_scale
    FROM charged c
    LEFT JOIN node_costs nc ON nc.node = c.node AND nc.hour_ns = c.hour_ns
    WINDOW w AS (PARTITION BY c.node, c.hour_ns)
)
SELECT make_timestamp_ns(hour_ns), uid, namespace, pod, workload, owner_kind, node, hours,
       cpu_request, cpu_usage, cpu_core_hours, memory_request, ram_usage, ram_byte_hours,
       gpu_hours, utilization,
       cpu_raw * cpu_scale, ram_raw * ram_scale, gpu_raw * gpu_scale,
       CASE WHEN gpu_raw = 0 THEN 0 WHEN utilization IS NULL THEN NULL
            ELSE gpu_raw * gpu_scale * (1 - least(greatest(utilization, 0), 1)) END,
       cpu_raw * cpu_scale + ram_raw * ram_scale + gpu_raw * gpu_scale,
       version, source, labels
FROM shared
"""

_NODE_COSTS = f"""
INSERT INTO cost_node_hours
WITH {_NODE_HOURS.strip()},
allocated AS (
    SELECT node, epoch_ns(hour) AS hour_ns, sum(cpu_cost) AS cpu, sum(ram_cost) AS ram,
           sum(gpu_cost) AS gpu
    FROM cost_pod_hours
    WHERE hour >= make_timestamp_ns($start) AND hour < make_timestamp_ns($end)
    GROUP BY ALL
)
SELECT make_timestamp_ns(nc.hour_ns), nc.node, nc.instance_type, nc.capacity_type,
       nc.provider_id, nc.hours, nc.cpu_cores, nc.ram_bytes, nc.gpus,
       nc.cpu_cost + nc.ram_cost + nc.gpu_cost, nc.cpu_cost, nc.ram_cost, nc.gpu_cost,
       coalesce(a.cpu, 0), coalesce(a.ram, 0), coalesce(a.gpu, 0),
       idle_of(nc.cpu_cost - coalesce(a.cpu, 0)), idle_of(nc.ram_cost - coalesce(a.ram, 0)),
       idle_of(nc.gpu_cost - coalesce(a.gpu, 0)),
       idle_of(nc.cpu_cost + nc.ram_cost + nc.gpu_cost
               - coalesce(a.cpu, 0) - coalesce(a.ram, 0) - coalesce(a.gpu, 0)),
       nc.version, nc.source
FROM node_costs nc LEFT JOIN allocated a ON a.node = nc.node AND a.hour_ns = nc.hour_ns
"""

_COUNTS = f"""
INSERT INTO workload_hour_counts
SELECT make_timestamp_ns(epoch_ns(start_time) // {HOUR_NS} * {HOUR_NS}), workload,
       service_version, k8s_namespace, k8s_pod, count(*),
       count(*) FILTER (WHERE role IN ('request', 'api')),
       count(*) FILTER (WHERE role = 'inference'),
       count(*) FILTER (WHERE role = 'pipeline' AND parent_span_id IS NULL),
       sum(CASE WHEN role = 'inference' THEN TRY_CAST(
           json_extract_string(attributes, '$."gen_ai.usage.input_tokens"') AS BIGINT) END),
       sum(CASE WHEN role = 'inference' THEN TRY_CAST(
           json_extract_string(attributes, '$."gen_ai.usage.output_tokens"') AS BIGINT) END)
FROM spans
WHERE start_time >= make_timestamp_ns($start) AND start_time < make_timestamp_ns($end)
GROUP BY ALL
"""

_WORKLOADS = """
INSERT INTO workloads
SELECT workload, any_value(namespace), max(team), max(kind),
       CASE WHEN bool_or(model) THEN 'model' WHEN bool_or(pipeline) THEN 'pipeline' END,
       min(hour), max(hour) + INTERVAL 1 HOUR
FROM (
    SELECT c.workload, c.namespace, p.team,
           CASE WHEN p.kind IN ('app', 'model', 'pipeline') THEN p.kind END AS kind,
           false AS model, c.controller_kind IN ('Job', 'CronJob') AS pipeline, c.hour
    FROM cost_pod_hours c JOIN k8s_pods p ON p.uid = c.pod_uid
    WHERE c.hour >= make_timestamp_ns($start) AND c.hour < make_timestamp_ns($end)
    UNION ALL
    SELECT workload, namespace, NULL, NULL, predictions > 0, runs > 0, hour
    FROM workload_hour_counts
    WHERE hour >= make_timestamp_ns($start) AND hour < make_timestamp_ns($end)
)
GROUP BY workload
ON CONFLICT (workload) DO UPDATE SET
    namespace = coalesce(excluded.namespace, workloads.namespace),
    label_team = coalesce(excluded.label_team, workloads.label_team),
    label_kind = coalesce(excluded.label_kind, workloads.label_kind),
    inferred_kind = CASE WHEN 'model' IN (excluded.inferred_kind, workloads.inferred_kind)
                         THEN 'model'
                         ELSE coalesce(excluded.inferred_kind, workloads.inferred_kind) END,
    first_seen = least(workloads.first_seen, excluded.first_seen),
    last_seen = greatest(workloads.last_seen, excluded.last_seen)
"""

_NODES = """
SELECT name, arg_max(cpu_capacity, updated), arg_max(memory_capacity, updated),
       arg_max(gpu_capacity, updated), arg_max(gpu_replicas, updated),
       arg_max(instance_type, updated), arg_max(region, updated),
       arg_max(capacity_type, updated), arg_max(provider_id, updated),
       arg_max(labels, updated)
FROM k8s_nodes
WHERE coalesce(created, make_timestamp_ns(0)) < make_timestamp_ns($end)
  AND (deleted IS NULL OR deleted > make_timestamp_ns($start))
GROUP BY name
"""

_OUTPUTS = ("cost_pod_hours", "cost_node_hours", "workload_hour_counts")


@dataclass(frozen=True)
class Rolled:
    """What one rollup call wrote."""

    start_ns: int
    end_ns: int
    pod_hours: int
    node_hours: int


def node_infos(conn: duckdb.DuckDBPyConnection, start_ns: int, end_ns: int) -> list[NodeInfo]:
    """The nodes that existed between ``start_ns`` and ``end_ns``, as pricing sees them."""
    infos = []
    for row in conn.execute(_NODES, {"start": start_ns, "end": end_ns}).fetchall():
        name, cpu, memory, gpu_capacity, replicas, itype, region, capacity, provider, labels = row
        labels = orjson.loads(labels) if labels else {}
        count = labels.get("nvidia.com/gpu.count", "")
        gpus = (
            float(count)
            if count.isascii() and count.isdigit()
            else (gpu_capacity or 0.0) / max(replicas or 1, 1)
        )
        infos.append(
            NodeInfo(name, cpu or 0.0, memory or 0.0, gpus, itype, region, capacity, provider,
                     labels)
        )  # fmt: skip
    return infos


def _rates_table(book: Sequence[PriceVersion], used: set[int], nodes: list[NodeInfo]) -> pa.Table:
    rows = []
    unknown = NodeInfo("", 1.0, float(pricing.GIB), 1.0)  # a node the inventory never listed
    for version in book:
        if version.version not in used:
            continue
        for node in [unknown, *nodes]:
            r = pricing.rates(version.prices, node)
            source = r.source if node.name else f"{r.source}; node not in the inventory"
            rows.append(
                {
                    "node": node.name,
                    "version": version.version,
                    "cpu_hourly": r.cpu_hourly,
                    "ram_hourly": r.ram_hourly,
                    "gpu_hourly": r.gpu_hourly,
                    "cpu_part": r.cpu_hourly * node.cpu_cores,
                    "ram_part": r.ram_hourly * node.memory_bytes / pricing.GIB,
                    "gpu_part": r.gpu_hourly * node.gpus,
                    "gpus": node.gpus,
                    "source": source,
                }
            )
    return pa.Table.from_pylist(rows, schema=_RATES_SCHEMA)


def rollup_hours(
    conn: duckdb.DuckDBPyConnection,
    book: Sequence[PriceVersion],
    start_ns: int,
    end_ns: int,
    now_ns: int,
) -> Rolled:
    """(Re)compute every cost row for the hours in [start_ns, end_ns); hour-aligned.

    Runs inside the caller's transaction: the old rows of those hours go, the new come.
    """
    hours = []
    for hour in range(start_ns, end_ns, HOUR_NS):
        version = pricing.version_at(book, hour)
        if version is not None:
            hours.append({"hour_ns": hour, "version": version.version})
    params = {"start": start_ns, "end": end_ns}
    for table in _OUTPUTS:
        conn.execute(
            f"DELETE FROM {table} WHERE hour >= make_timestamp_ns($start) "
            "AND hour < make_timestamp_ns($end)",
            params,
        )
    conn.execute(_COUNTS, params)
    if not hours:
        return Rolled(start_ns, end_ns, 0, 0)
    rates = _rates_table(book, {h["version"] for h in hours}, node_infos(conn, start_ns, end_ns))
    conn.register("hour_versions", pa.Table.from_pylist(hours, schema=_HOURS_SCHEMA))
    conn.register("node_rates", rates)
    try:
        params["now"] = now_ns
        pods = conn.execute(_POD_HOURS, params).fetchone()
        nodes = conn.execute(_NODE_COSTS, params).fetchone()
        del params["now"]
        conn.execute(_WORKLOADS, params)
    finally:
        conn.unregister("hour_versions")
        conn.unregister("node_rates")
    return Rolled(start_ns, end_ns, int(pods[0]) if pods else 0, int(nodes[0]) if nodes else 0)
