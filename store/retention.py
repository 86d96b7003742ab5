"""Deleting what is older than each table group's retention horizon, in bounded steps.

Retention is set per group of tables (the ``retention`` section of onepane.yaml):

========  ==============================================================  ==========
group     tables                                                          by
========  ==============================================================  ==========
spans     spans and their trace summaries (``traces``), trace by trace;   trace end
          the hourly model rollup (``model_hours``)                       hour
metrics   metric_points                                                   time
logs      logs                                                            time
gpu       gpu_samples                                                     time
features  features (model inputs read by drift runs)                      time
cost      cost_pod_hours, cost_node_hours, workload_hour_counts           hour
drift     drift_runs, drift_run_columns (and the HTML reports beside)     run time
gate      gate_decisions, deployments                                     time
========  ==============================================================  ==========

A group without a horizon is kept forever. Imported FOCUS bills, prices, the inventory,
the catalog and drift references are never deleted by retention.

A purge is planned on a read cursor (``plan``: row counts per minute, summed into steps of
at most ``chunk_rows`` rows) and each step then runs on the single writer as its own short
transaction (``delete_step``), so ingest commits between steps. Spans go trace by trace: a
trace is deleted, summary and spans together, once its last span ended before the horizon.
Resources no span, metric point or log record points at any more go last
(``delete_unused_resources``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import duckdb

GROUPS: dict[str, tuple[tuple[str, str], ...]] = {  # group -> (table, time column) ...
    "spans": (("traces", "end_time"), ("model_hours", "hour")),
    "metrics": (("metric_points", "time"),),
    "logs": (("logs", "time"),),
    "gpu": (("gpu_samples", "time"),),
    "features": (("features", "time"),),
    "cost": (
        ("cost_pod_hours", "hour"),
        ("cost_node_hours", "hour"),
        ("workload_hour_counts", "hour"),
    ),
    "drift": (("drift_runs", "time"),),
    "gate": (("gate_decisions", "time"), ("deployments", "time")),
}
RESOURCE_TABLES = ("spans", "metric_points", "logs")
CHUNK_ROWS = 50_000
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class RetentionConfig:
    """How long each table group is kept (seconds; a group not named is kept forever)
    and how often retention runs."""

    horizons_s: dict[str, float] = field(default_factory=dict)
    interval_s: float = 3600.0
    chunk_rows: int = CHUNK_ROWS

    @property
    def enabled(self) -> bool:
        return bool(self.horizons_s)

    def cutoff_ns(self, group: str, now_ns: int) -> int | None:
        """Rows of ``group`` older than this (Unix ns) are deleted; None: kept forever."""
        horizon = self.horizons_s.get(group)
        return None if horizon is None else now_ns - int(horizon * NS_PER_S)


@dataclass(frozen=True)
class Step:
    """Delete the rows of ``table`` whose ``column`` is before ``upper_ns``; about
    ``rows`` rows (counted when planned)."""

    group: str
    table: str
    column: str
    upper_ns: int
    rows: int


def plan(
    cursor: duckdb.DuckDBPyConnection,
    group: str,
    cutoff_ns: int,
    chunk_rows: int = CHUNK_ROWS,
) -> list[Step]:
    """The steps that delete everything of ``group`` before ``cutoff_ns``, oldest first,
    each at most ``chunk_rows`` rows (one minute of rows at least)."""
    steps = []
    for table, column in GROUPS[group]:
        weight = "sum(span_count)" if table == "traces" else "count(*)"
        minutes = cursor.execute(
            f"SELECT epoch_ns(time_bucket(INTERVAL 1 minute, {column})) AS minute, {weight} "
            f"FROM {table} WHERE {column} < make_timestamp_ns($cutoff) "
            "GROUP BY minute ORDER BY minute",
            {"cutoff": cutoff_ns},
        ).fetchall()
        pending = 0
        for minute, rows in minutes:
            if pending and pending + rows > chunk_rows:
                steps.append(Step(group, table, column, minute, pending))
                pending = 0
            pending += rows
        if pending:
            steps.append(Step(group, table, column, cutoff_ns, pending))
    return steps


def delete_step(conn: duckdb.DuckDBPyConnection, step: Step) -> dict[str, int]:
    """Run one step (inside the writer's transaction); rows deleted per table."""
    if step.table == "traces":
        return _delete_traces(conn, step.upper_ns)
    upper = {"upper": step.upper_ns}
    deleted = {}
    if step.table == "drift_runs":
        deleted["drift_run_columns"] = _count(
            conn.execute(
                "DELETE FROM drift_run_columns WHERE run_id IN (SELECT run_id FROM drift_runs "
                "WHERE time < make_timestamp_ns($upper))",
                upper,
            )
        )
    deleted[step.table] = _count(
        conn.execute(
            f"DELETE FROM {step.table} WHERE {step.column} < make_timestamp_ns($upper)", upper
        )
    )
    return deleted


def _delete_traces(conn: duckdb.DuckDBPyConnection, upper_ns: int) -> dict[str, int]:
    """Traces that ended before ``upper_ns``: their spans, then their summaries.

    A span starts no earlier than its trace and no later than the trace ends, so the
    start_time range lets DuckDB skip row groups of newer spans."""
    upper = {"upper": upper_ns}
    try:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE purge_traces AS SELECT trace_key, trace_id, start_time "
            "FROM traces WHERE end_time < make_timestamp_ns($upper)",
            upper,
        )
        first = conn.execute("SELECT min(start_time) FROM purge_traces").fetchone()[0]
        if first is None:
            return {}
        spans = conn.execute(
            "DELETE FROM spans USING purge_traces AS p "
            "WHERE spans.trace_key = p.trace_key AND spans.trace_id = p.trace_id "
            "AND spans.start_time >= $first AND spans.start_time < make_timestamp_ns($upper)",
            {**upper, "first": first},
        )
        deleted = {"spans": _count(spans)}
        deleted["traces"] = _count(
            conn.execute("DELETE FROM traces WHERE end_time < make_timestamp_ns($upper)", upper)
        )
        return deleted
    finally:
        conn.execute("DROP TABLE IF EXISTS purge_traces")


def delete_unused_resources(
    conn: duckdb.DuckDBPyConnection, forget: Callable[[Iterable[int]], None]
) -> dict[str, int]:
    """Delete resources nothing points at any more (on the writer, in its transaction);
    ``forget`` tells the writer they must be stored again should they come back."""
    used = " UNION ".join(f"SELECT DISTINCT resource_id FROM {t}" for t in RESOURCE_TABLES)
    unused = [
        row[0]
        for row in conn.execute(
            f"SELECT resource_id FROM resources ANTI JOIN ({used}) AS u USING (resource_id)"
        ).fetchall()
    ]
    if not unused:
        return {}
    deleted = _count(
        conn.execute(
            "DELETE FROM resources WHERE list_contains($ids, resource_id)", {"ids": unused}
        )
    )
    forget(unused)
    return {"resources": deleted}


def drift_run_ids_before(cursor: duckdb.DuckDBPyConnection, cutoff_ns: int) -> set[int]:
    """Drift runs older than ``cutoff_ns`` (their report files go with them)."""
    rows = cursor.execute(
        "SELECT run_id FROM drift_runs WHERE time < make_timestamp_ns($cutoff)",
        {"cutoff": cutoff_ns},
    ).fetchall()
    return {row[0] for row in rows}


def _count(result: duckdb.DuckDBPyConnection) -> int:
    row = result.fetchone()
    return int(row[0]) if row else 0
