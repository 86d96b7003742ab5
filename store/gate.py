"""The gate's audit trail: decisions and the releases they gated (migration 005)."""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

_ISO = "'%Y-%m-%dT%H:%M:%S.%gZ'"
_COLUMNS = ("action", "workload", "version", "kind", "team", "environment", "verdict", "actor",
            "override_reason", "approver")  # fmt: skip


def record(
    conn: duckdb.DuckDBPyConnection, decision: dict[str, Any], now_ns: int, deployment: bool
) -> int:
    """Store ``decision`` (and, for a release, its deployment event); its decision id."""
    decision_id = conn.execute(
        "SELECT coalesce(max(decision_id), 0) + 1 FROM gate_decisions"
    ).fetchone()[0]
    decision["decision_id"] = decision_id
    values = [decision.get(c) for c in _COLUMNS]
    slots = ", ".join(f"${i + 3}" for i in range(len(_COLUMNS) + 1))
    conn.execute(
        f"INSERT INTO gate_decisions (decision_id, time, {', '.join(_COLUMNS)}, document) "
        f"VALUES ($1, make_timestamp_ns($2), {slots})",
        [decision_id, now_ns, *values, orjson.dumps(decision).decode()],
    )
    if deployment:
        conn.execute(
            "INSERT INTO deployments SELECT coalesce(max(deployment_id), 0) + 1, "
            "make_timestamp_ns($1), $2, $3, $4, $5, $6, $7, $8, $9 FROM deployments",
            [now_ns, decision["workload"], decision.get("version"), decision.get("kind"),
             decision.get("team"), decision["environment"], decision["action"],
             decision["verdict"], decision_id],
        )  # fmt: skip
    return decision_id


def _where(filters: dict[str, Any], since_ns: int | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, value in filters.items():
        if value is not None:
            params.append(value)
            clauses.append(f"{column} = ${len(params)}")
    if since_ns is not None:
        params.append(since_ns)
        clauses.append(f"time >= make_timestamp_ns(${len(params)})")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def decisions(
    cursor: duckdb.DuckDBPyConnection,
    filters: dict[str, Any],
    since_ns: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Decisions, newest first, each the whole document stored with it."""
    where, params = _where(filters, since_ns)
    rows = cursor.execute(
        f"SELECT strftime(time, {_ISO}), document FROM gate_decisions{where} "
        f"ORDER BY decision_id DESC LIMIT {int(limit)}",
        params,
    ).fetchall()
    return [{**orjson.loads(doc), "time": time} for time, doc in rows]


def deployments(
    cursor: duckdb.DuckDBPyConnection,
    filters: dict[str, Any],
    since_ns: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Releases the gate saw, newest first."""
    where, params = _where(filters, since_ns)
    cursor.execute(
        f"SELECT deployment_id, strftime(time, {_ISO}) AS time, workload, version, kind, team, "
        f"environment, action, verdict, decision_id FROM deployments{where} "
        f"ORDER BY deployment_id DESC LIMIT {int(limit)}",
        params,
    )
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
