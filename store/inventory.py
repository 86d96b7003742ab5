"""The Kubernetes inventory in the store: upserts by uid, relists, and the reads.

Rows are keyed by the object's uid, so an object seen twice (by a relist after a dropped
watch, or by a watch that replays an event) is one row, never two. A pod's start and end
are kept once known: a later event cannot move an end that was already observed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import pyarrow as pa

from store import gpu
from store.window import Window

_STR, _F64, _TS = pa.string(), pa.float64(), pa.timestamp("ns")

POD_SCHEMA = pa.schema(
    [
        ("uid", _STR),
        ("namespace", _STR),
        ("name", _STR),
        ("node", _STR),
        ("phase", _STR),
        ("qos_class", _STR),
        ("workload", _STR),
        ("owner_kind", _STR),
        ("owner_name", _STR),
        ("team", _STR),
        ("kind", _STR),
        ("created", _TS),
        ("start_time", _TS),
        ("end_time", _TS),
        ("end_observed", pa.bool_()),
        ("cpu_request", _F64),
        ("cpu_limit", _F64),
        ("memory_request", _F64),
        ("memory_limit", _F64),
        ("gpu_request", _F64),
        ("gpu_limit", _F64),
        ("gpu_resource", _STR),
        ("labels", _STR),
        ("updated", _TS),
    ]
)
NODE_SCHEMA = pa.schema(
    [
        ("uid", _STR),
        ("name", _STR),
        ("created", _TS),
        ("deleted", _TS),
        ("instance_type", _STR),
        ("region", _STR),
        ("zone", _STR),
        ("capacity_type", _STR),
        ("gpu_product", _STR),
        ("gpu_replicas", pa.int32()),
        ("cpu_capacity", _F64),
        ("memory_capacity", _F64),
        ("gpu_capacity", _F64),
        ("cpu_allocatable", _F64),
        ("memory_allocatable", _F64),
        ("gpu_allocatable", _F64),
        ("labels", _STR),
        ("updated", _TS),
        ("provider_id", _STR),
    ]
)
TABLES = {"pods": ("k8s_pods", POD_SCHEMA), "nodes": ("k8s_nodes", NODE_SCHEMA)}
# Columns whose first known value wins over what later events say.
_KEEP_FIRST = {"start_time", "created", "end_time", "deleted"}


def rows_table(kind: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts from collectors/k8s/objects.py) as an Arrow table, last row per uid."""
    schema = TABLES[kind][1]
    latest = {row["uid"]: row for row in rows}
    return pa.Table.from_pylist(list(latest.values()), schema=schema)


def _upsert_sql(kind: str) -> str:
    table, schema = TABLES[kind]
    updates = []
    for name in schema.names[1:]:
        if name in _KEEP_FIRST:
            updates.append(f"{name} = coalesce({table}.{name}, excluded.{name})")
        elif name == "end_observed":
            updates.append(
                f"{name} = CASE WHEN {table}.end_time IS NULL THEN excluded.{name} "
                f"ELSE {table}.{name} END"
            )
        else:
            updates.append(f"{name} = excluded.{name}")
    return (
        f"INSERT INTO {table} SELECT * FROM inventory_batch "
        f"ON CONFLICT (uid) DO UPDATE SET {', '.join(updates)}"
    )


_NEW_PODS = "SELECT * FROM inventory_batch WHERE uid NOT IN (SELECT uid FROM k8s_pods)"
# Objects the store thinks are alive that a fresh list no longer has: they went away
# while nobody watched. Their end is the list time, marked as not observed.
_VANISHED = {
    "pods": "UPDATE k8s_pods SET end_time = make_timestamp_ns($listed), end_observed = false, "
    "updated = make_timestamp_ns($listed) "
    "WHERE end_time IS NULL AND uid NOT IN (SELECT uid FROM inventory_batch)",
    "nodes": "UPDATE k8s_nodes SET deleted = make_timestamp_ns($listed), "
    "updated = make_timestamp_ns($listed) "
    "WHERE deleted IS NULL AND uid NOT IN (SELECT uid FROM inventory_batch)",
}


def upsert(
    conn: duckdb.DuckDBPyConnection, kind: str, rows: pa.Table, listed_ns: int | None = None
) -> None:
    """Apply watch events (or, with ``listed_ns``, a whole fresh list) of ``kind``.

    Runs inside the writer's transaction. New pods also give GPU samples scraped before
    the inventory knew them their workload.
    """
    conn.register("inventory_batch", rows)
    try:
        new_pods = conn.execute(_NEW_PODS).to_arrow_table() if kind == "pods" else None
        if rows.num_rows:
            conn.execute(_upsert_sql(kind))
        if listed_ns is not None:
            conn.execute(_VANISHED[kind], {"listed": listed_ns})
        if new_pods is not None and new_pods.num_rows:
            conn.register("new_pods", new_pods)
            try:
                gpu.backfill_workloads(conn)
            finally:
                conn.unregister("new_pods")
    finally:
        conn.unregister("inventory_batch")


_PODS = """
SELECT uid, namespace, name, node, phase, workload, owner_kind, owner_name, team, kind,
       epoch_ns(start_time) AS start_ns, epoch_ns(end_time) AS end_ns, end_observed,
       cpu_request, cpu_limit, memory_request, memory_limit, gpu_request, gpu_limit,
       gpu_resource, gpu_physical, instance_type, capacity_type, gpu_product
FROM k8s_pod_gpus
WHERE ($workload IS NULL OR workload = $workload)
  AND ($namespace IS NULL OR namespace = $namespace)
  AND ($node IS NULL OR node = $node)
  AND ($start IS NULL OR end_time IS NULL OR end_time >= make_timestamp_ns($start))
  AND ($end IS NULL OR coalesce(start_time, created) < make_timestamp_ns($end))
ORDER BY namespace, name, start_time
LIMIT $limit
"""

_NODES = """
SELECT uid, name, epoch_ns(created) AS created_ns, epoch_ns(deleted) AS deleted_ns,
       instance_type, region, zone, capacity_type, gpu_product, gpu_replicas,
       cpu_capacity, memory_capacity, gpu_capacity, cpu_allocatable, memory_allocatable,
       gpu_allocatable, provider_id
FROM k8s_nodes
WHERE ($start IS NULL OR deleted IS NULL OR deleted >= make_timestamp_ns($start))
ORDER BY name, created
"""


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def pods(
    cursor: duckdb.DuckDBPyConnection,
    window: Window,
    workload: str | None = None,
    namespace: str | None = None,
    node: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Pods alive at some point in ``window``, with their requests and physical GPUs."""
    cursor.execute(
        _PODS,
        {
            "workload": workload,
            "namespace": namespace,
            "node": node,
            "start": window.start_ns,
            "end": window.end_ns,
            "limit": limit,
        },
    )
    return _rows(cursor)


def nodes(cursor: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, Any]]:
    """Nodes that existed at some point in ``window`` (from its start on)."""
    cursor.execute(_NODES, {"start": window.start_ns})
    return _rows(cursor)
