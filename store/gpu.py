"""GPU samples: the SQL that turns DCGM metric points into ``gpu_samples`` rows, and the
queries that read them.

Every source (a dcgm-exporter scrape, DCGM_FI_* metrics over OTLP, the NVML sampler) hands
over *points*: one row per metric value with the GPU's labels. One pivot turns the points
of one GPU, pod and time into a row, drops DCGM's "blank" sentinels, and resolves the
pod's workload from the Kubernetes inventory.
"""

from __future__ import annotations

import math
import time
from typing import Any

import duckdb
import pyarrow as pa

from store.window import Window

# The metrics kept; everything else a dcgm-exporter serves is dropped at the source.
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
GR_ENGINE_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
POWER = "DCGM_FI_DEV_POWER_USAGE"
KEPT_METRICS = (GPU_UTIL, GR_ENGINE_ACTIVE, FB_USED, FB_FREE, POWER)

# DCGM reports "no value" with sentinels: INT32 blanks start at 0x7ffffff0, INT64 blanks
# near 2^63, FP64 blanks at 2^47. No kept metric can reach 2^31 (percent, ratio, MiB,
# watts), so anything from the smallest sentinel up is missing data.
DCGM_BLANK_FLOOR = float(0x7FFFFFF0)

_STR = pa.string()
_I32 = pa.int32()
POINT_SCHEMA = pa.schema(
    [
        ("time", pa.timestamp("ns")),
        ("source", _STR),
        ("target", _STR),
        ("metric", _STR),
        ("value", pa.float64()),
        ("hostname", _STR),
        ("gpu", _I32),
        ("uuid", _STR),
        ("model_name", _STR),
        ("mig_profile", _STR),
        ("mig_instance", _I32),
        ("namespace", _STR),
        ("pod", _STR),
        ("container", _STR),
    ]
)
_LABELS = "hostname, gpu, uuid, model_name, mig_profile, mig_instance, namespace, pod, container"


def is_blank(value: float) -> bool:
    """True for DCGM's blank / not-found / not-supported sentinels, non-numbers and
    negatives: none of them is a measurement."""
    return not math.isfinite(value) or value < 0 or value >= DCGM_BLANK_FLOOR


def _pivot_sql(points: str) -> str:
    """INSERT gpu_samples from a relation of points (POINT_SCHEMA columns)."""
    return f"""
INSERT INTO gpu_samples BY NAME
WITH points AS (
    SELECT time, source, target, metric, value, {_LABELS}
    FROM {points}
    WHERE metric IN {KEPT_METRICS!r}
      AND value IS NOT NULL AND isfinite(value) AND value >= 0 AND value < {DCGM_BLANK_FLOOR}
), samples AS (
    SELECT time, source, target, {_LABELS},
        max(value) FILTER (metric = '{GPU_UTIL}') AS gpu_util,
        max(value) FILTER (metric = '{GR_ENGINE_ACTIVE}') AS gr_engine_active,
        max(value) FILTER (metric = '{FB_USED}') AS fb_used_mib,
        max(value) FILTER (metric = '{FB_FREE}') AS fb_free_mib,
        max(value) FILTER (metric = '{POWER}') AS power_w
    FROM points
    GROUP BY ALL
), owners AS (
    SELECT namespace, name, arg_max(workload, coalesce(start_time, created, updated)) AS workload
    FROM k8s_pods
    WHERE name IN (SELECT pod FROM samples WHERE pod IS NOT NULL)
    GROUP BY ALL
)
SELECT s.*, o.workload,
       coalesce(s.gr_engine_active, s.gpu_util / 100) AS utilization
FROM samples s
LEFT JOIN owners o ON o.namespace = s.namespace AND o.name = s.pod
"""


def insert_points(conn: duckdb.DuckDBPyConnection, points: pa.Table) -> None:
    """Pivot ``points`` (POINT_SCHEMA) into gpu_samples; call inside the writer's transaction."""
    conn.register("gpu_points", points)
    try:
        conn.execute(_pivot_sql("gpu_points"))
    finally:
        conn.unregister("gpu_points")


def _json_label(*keys: str) -> str:
    """The first of ``keys`` present in a metric point's attributes, as a string."""
    parts = [f"nullif(json_extract_string(attributes, '$.\"{key}\"'), '')" for key in keys]
    return f"coalesce({', '.join(parts)})"


# OpenTelemetry SDKs lower-case instrument names (dcgm_fi_dev_gpu_util), a Collector
# relaying dcgm-exporter keeps them as they are: names match in any case.
# Prometheus renames a scraped label that clashes with a target label to exported_<name>;
# then the exported_ one is the workload's pod, the plain one the exporter's own.
_OTLP_POINTS = f"""
SELECT time, 'otlp' AS source, service_name AS target, upper(metric_name) AS metric, value,
    {_json_label("Hostname", "hostname", "host.name")} AS hostname,
    TRY_CAST({_json_label("gpu")} AS INTEGER) AS gpu,
    {_json_label("UUID", "uuid")} AS uuid,
    {_json_label("modelName")} AS model_name,
    {_json_label("GPU_I_PROFILE")} AS mig_profile,
    TRY_CAST({_json_label("GPU_I_ID")} AS INTEGER) AS mig_instance,
    {_json_label("exported_namespace", "namespace", "k8s.namespace.name")} AS namespace,
    {_json_label("exported_pod", "pod", "k8s.pod.name")} AS pod,
    {_json_label("exported_container", "container", "k8s.container.name")} AS container
FROM write_batch
WHERE upper(metric_name) IN {KEPT_METRICS!r} AND metric_type = 'gauge'
"""


def insert_from_metric_points(conn: duckdb.DuckDBPyConnection) -> None:
    """Copy the DCGM gauges of the metric points being written (``write_batch``) into
    gpu_samples, so GPU metrics sent over OTLP land where scraped ones do."""
    conn.execute(_pivot_sql(f"({_OTLP_POINTS})"))


_BACKFILL = """
UPDATE gpu_samples AS g SET workload = p.workload
FROM new_pods AS p
WHERE g.workload IS NULL AND g.namespace = p.namespace AND g.pod = p.name
  AND g.time >= (SELECT min(coalesce(start_time, created, updated)) FROM new_pods)
"""


def backfill_workloads(conn: duckdb.DuckDBPyConnection) -> None:
    """Give samples scraped before the inventory knew their pod (``new_pods``) its workload."""
    conn.execute(_BACKFILL)


_UTILIZATION = """
SELECT hostname, uuid, gpu, any_value(model_name) AS model_name, mig_profile, mig_instance,
       list(DISTINCT workload ORDER BY workload) FILTER (workload IS NOT NULL) AS workloads,
       list(DISTINCT namespace || '/' || pod ORDER BY namespace || '/' || pod)
           FILTER (pod IS NOT NULL) AS pods,
       count(DISTINCT time) AS samples,
       avg(utilization) AS avg_utilization,
       max(utilization) AS max_utilization,
       avg(fb_used_mib) AS avg_fb_used_mib,
       avg(power_w) AS avg_power_w,
       epoch_ns(min(time)) AS first_sample_ns,
       epoch_ns(max(time)) AS last_sample_ns,
       arg_max(utilization, time) AS last_utilization
FROM gpu_samples
WHERE ($start IS NULL OR time >= make_timestamp_ns($start))
  AND ($end IS NULL OR time < make_timestamp_ns($end))
GROUP BY hostname, uuid, gpu, mig_profile, mig_instance
ORDER BY hostname, gpu, mig_instance NULLS FIRST
"""

_BY_WORKLOAD = """
SELECT coalesce(workload, '(unallocated)') AS workload,
       count(DISTINCT coalesce(uuid, hostname || ':' || gpu)) AS gpus,
       count(*) AS samples,
       avg(utilization) AS avg_utilization,
       max(utilization) AS max_utilization,
       avg(fb_used_mib) AS avg_fb_used_mib
FROM gpu_samples
WHERE ($start IS NULL OR time >= make_timestamp_ns($start))
  AND ($end IS NULL OR time < make_timestamp_ns($end))
GROUP BY ALL
ORDER BY workload
"""


def utilization(
    cursor: duckdb.DuckDBPyConnection, window: Window, by: str = "gpu"
) -> list[dict[str, Any]]:
    """GPU utilisation over ``window``: per GPU (``by="gpu"``) or per workload."""
    sql = _UTILIZATION if by == "gpu" else _BY_WORKLOAD
    cursor.execute(sql, {"start": window.start_ns, "end": window.end_ns})
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


_HEATMAP = """
WITH per_time AS (
    -- one figure per GPU and sample time: pods sharing a GPU repeat the device's figure,
    -- MIG instances of one GPU are averaged
    SELECT hostname, gpu, uuid, time, avg(utilization) AS utilization
    FROM gpu_samples
    WHERE time >= make_timestamp_ns($start)
      AND ($end IS NULL OR time < make_timestamp_ns($end))
      AND utilization IS NOT NULL
    GROUP BY hostname, gpu, uuid, time
), per_hour AS (
    -- each hour of each day weighs the same, however often it was sampled
    SELECT hostname, gpu, uuid, date_trunc('hour', time) AS hour_start,
           avg(utilization) AS utilization, count(*) AS samples
    FROM per_time
    GROUP BY hostname, gpu, uuid, hour_start
)
SELECT hostname, gpu, uuid, CAST(extract('hour' FROM hour_start) AS INTEGER) AS hour,
       avg(utilization) AS avg_utilization, CAST(sum(samples) AS BIGINT) AS samples
FROM per_hour
GROUP BY hostname, gpu, uuid, hour
ORDER BY hostname NULLS LAST, gpu NULLS LAST, uuid NULLS LAST, hour
"""
HEATMAP_DEFAULT_NS = 7 * 86_400 * 1_000_000_000


def heatmap(cursor: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, Any]]:
    """Average utilisation (0..1) per GPU and UTC hour of day (0-23) over ``window``: the
    mean of each day's hourly mean, so a day sampled every 15 s and a day sampled hourly
    count the same. A window without a start covers the 7 days before its end (or now)."""
    start = window.start_ns
    if start is None:
        start = (window.end_ns or time.time_ns()) - HEATMAP_DEFAULT_NS
    cursor.execute(_HEATMAP, {"start": start, "end": window.end_ns})
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
