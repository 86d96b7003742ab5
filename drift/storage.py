"""Drift in the store (migration 006): production features, references and runs (SQL).

Like cost/, drift keeps its own queries; store/ owns the schema and the writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import numpy as np

from drift.methods import Current
from drift.profile import NUMERICAL, ColumnProfile, Profile
from onepane.errors import NotFound, Unavailable

_ISO = "'%Y-%m-%dT%H:%M:%S.%gZ'"
_REF_COLUMNS = (
    "name, type, type_source, count, missing, n_unique, mean, std, min, max, exact, values, "
    "weights, categories, counts"
)
# A number as a category key, as drift.profile.number_key writes it: 3.0 -> '3'.
_KEY = (
    "coalesce(text, CASE WHEN num = trunc(num) AND abs(num) < 1e15 "
    "THEN CAST(CAST(num AS BIGINT) AS VARCHAR) ELSE CAST(num AS VARCHAR) END)"
)
_WINDOW = (
    "model_name = $model AND ($version IS NULL OR model_version = $version) "
    "AND time >= make_timestamp_ns($start) AND time < make_timestamp_ns($end)"
)


# -- references ------------------------------------------------------------------------


def save_reference(
    conn: duckdb.DuckDBPyConnection,
    model: str,
    version: str,
    source: str,
    profile: Profile,
    now_ns: int,
) -> int:
    """Store a profiled reference as the active one for (model, version); its id."""
    (reference_id,) = conn.execute(
        "SELECT coalesce(max(reference_id), 0) + 1 FROM drift_references"
    ).fetchone()
    conn.execute(
        "UPDATE drift_references SET active = false WHERE model_name = $1 AND model_version = $2",
        [model, version],
    )
    conn.execute(
        "INSERT INTO drift_references VALUES ($1, $2, $3, make_timestamp_ns($4), $5, $6, true)",
        [reference_id, model, version, now_ns, source, profile.rows],
    )
    for c in profile.columns.values():
        conn.execute(
            f"INSERT INTO drift_reference_columns (reference_id, {_REF_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            [
                reference_id,
                c.name,
                c.type,
                c.type_source,
                c.count,
                c.missing,
                c.n_unique,
                c.mean,
                c.std,
                c.min,
                c.max,
                c.exact,
                None if c.values is None else c.values.tolist(),
                None if c.weights is None else c.weights.tolist(),
                c.categories,
                None if c.counts is None else c.counts.tolist(),
            ],
        )
    return int(reference_id)


def references(cursor: duckdb.DuckDBPyConnection, model: str | None = None) -> list[dict]:
    """Every reference (newest first), with its columns' types and counts."""
    rows = cursor.execute(
        f"SELECT reference_id, model_name, model_version, strftime(created, {_ISO}), source, "
        "rows, active FROM drift_references WHERE $1 IS NULL OR model_name = $1 "
        "ORDER BY reference_id DESC",
        [model],
    ).fetchall()
    out = []
    for ref_id, name, version, created, source, count, active in rows:
        columns = cursor.execute(
            "SELECT name, type, type_source, count, missing, n_unique, mean, std, min, max "
            "FROM drift_reference_columns WHERE reference_id = $1 ORDER BY name",
            [ref_id],
        )
        names = [d[0] for d in columns.description]
        out.append(
            {
                "reference_id": ref_id,
                "model": name,
                "version": version,
                "created": created,
                "source": source,
                "rows": count,
                "active": active,
                "columns": [dict(zip(names, r, strict=True)) for r in columns.fetchall()],
            }
        )
    return out


def active_reference(
    cursor: duckdb.DuckDBPyConnection, model: str, version: str | None
) -> tuple[int, dict[str, ColumnProfile]]:
    """The reference a run of (model, version) compares with: the version's own, else the
    model's default (version '*'); for every version, the default, else the newest.
    NotFound saying how to add one."""
    row = cursor.execute(
        "SELECT reference_id FROM drift_references WHERE model_name = $1 AND active "
        "AND ($2 IS NULL OR model_version IN ($2, '*')) "
        "ORDER BY model_version = coalesce($2, '*') DESC, reference_id DESC LIMIT 1",
        [model, version],
    ).fetchone()
    if row is None:
        known = [r[0] for r in cursor.execute(
            "SELECT DISTINCT model_name FROM drift_references ORDER BY 1").fetchall()]  # fmt: skip
        raise NotFound(
            f"no reference for model {model!r}"
            + (f" version {version!r}" if version else "")
            + f"; add one with `onepane drift reference add --model {model} "
            f"--version {version or 'V'} FILE`"
            + (f" (models with references: {', '.join(known)})" if known else "")
        )
    columns = cursor.execute(
        f"SELECT {_REF_COLUMNS} FROM drift_reference_columns WHERE reference_id = $1 ORDER BY name",
        [row[0]],
    ).fetchall()
    return int(row[0]), {c[0]: _profile(c) for c in columns}


def _profile(row: tuple[Any, ...]) -> ColumnProfile:
    (name, kind, source, count, missing, n_unique, mean, std, low, high, exact, values,
     weights, categories, counts) = row  # fmt: skip
    return ColumnProfile(
        name,
        kind,
        source,
        count,
        missing,
        n_unique,
        mean,
        std,
        low,
        high,
        exact,
        None if values is None else np.asarray(values, dtype=np.float64),
        None if weights is None else np.asarray(weights, dtype=np.float64),
        categories,
        None if counts is None else np.asarray(counts, dtype=np.int64),
    )


# -- production inputs -----------------------------------------------------------------


def production(
    cursor: duckdb.DuckDBPyConnection,
    model: str,
    version: str | None,
    start_ns: int,
    end_ns: int,
    types: Mapping[str, str],
) -> tuple[int, dict[str, Current]]:
    """The window's predictions (the most rows any feature has) and, for each reference
    column production carried, its values (numerical) or category counts."""
    where = {"model": model, "version": version, "start": start_ns, "end": end_ns}
    seen = dict(
        cursor.execute(
            f"SELECT name, count(*) FROM features WHERE {_WINDOW} GROUP BY name", where
        ).fetchall()
    )
    rows = max(seen.values(), default=0)
    numerical = [n for n, t in types.items() if t == NUMERICAL and n in seen]
    categorical = [n for n, t in types.items() if t != NUMERICAL and n in seen]
    out: dict[str, Current] = {}
    if numerical:
        _numerical(cursor, where, numerical, seen, out)
    if categorical:
        counted = cursor.execute(
            f"SELECT name, {_KEY} AS key, sum(n) FROM (SELECT name, num, text, count(*) AS n "
            f"FROM features WHERE {_WINDOW} AND list_contains($names, name) "
            "AND NOT isnan(coalesce(num, 0)) GROUP BY ALL) GROUP BY ALL",
            {**where, "names": categorical},
        ).fetchall()
        groups: dict[str, dict[str, int]] = {n: {} for n in categorical}
        for name, key, count in counted:
            groups[name][key] = int(count)
        for name, counts in groups.items():
            present = sum(counts.values())
            out[name] = Current(present, seen[name] - present, categories=counts)
    return rows, out


def _numerical(
    cursor: duckdb.DuckDBPyConnection,
    where: dict[str, Any],
    names: list[str],
    seen: Mapping[str, int],
    out: dict[str, Current],
) -> None:
    """Each numerical column's finite values: one scan, columns told apart by their
    position in ``names`` (a small integer, not the name's text), split with numpy."""
    table = cursor.execute(
        f"SELECT CAST(list_position($names, name) AS USMALLINT) AS i, "
        f"coalesce(num, TRY_CAST(text AS DOUBLE)) AS v FROM features "
        f"WHERE {_WINDOW} AND list_contains($names, name)",
        {**where, "names": names},
    ).to_arrow_table()
    codes = table.column("i").to_numpy()
    raw = table.column("v").to_numpy(zero_copy_only=False)  # nulls (text, not a number): NaN
    order = np.argsort(codes, kind="stable")
    codes, raw = codes[order], raw[order]
    bounds = np.searchsorted(codes, np.arange(1, len(names) + 2))
    for i, name in enumerate(names):
        part = raw[bounds[i] : bounds[i + 1]]
        values = part[np.isfinite(part)]
        out[name] = Current(int(values.size), seen[name] - int(values.size), values=values)


# -- runs ------------------------------------------------------------------------------

_RUN_FIELDS = (
    "model_name", "model_version", "reference_id", "trigger", "rows", "status", "columns",
    "drifted", "drift_share", "share_threshold", "seconds", "report_status", "report_note",
)  # fmt: skip
_COLUMN_FIELDS = (
    "name", "type", "status", "method", "score", "threshold", "drifted", "reference_count",
    "current_count", "unseen", "detail",
)  # fmt: skip


def save_run(conn: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> int:
    """Store a run and its columns; its id."""
    (run_id,) = conn.execute("SELECT coalesce(max(run_id), 0) + 1 FROM drift_runs").fetchone()
    slots = ", ".join(f"${i + 5}" for i in range(len(_RUN_FIELDS)))
    conn.execute(
        f"INSERT INTO drift_runs (run_id, time, window_start, window_end, "
        f"{', '.join(_RUN_FIELDS)}) VALUES ($1, make_timestamp_ns($2), make_timestamp_ns($3), "
        f"make_timestamp_ns($4), {slots})",
        [run_id, run["time_ns"], run["start_ns"], run["end_ns"], *(run[f] for f in _RUN_FIELDS)],
    )
    slots = ", ".join(f"${i + 2}" for i in range(len(_COLUMN_FIELDS)))
    for column in run["column_results"]:
        conn.execute(
            f"INSERT INTO drift_run_columns (run_id, {', '.join(_COLUMN_FIELDS)}) "
            f"VALUES ($1, {slots})",
            [run_id, *(column[f] for f in _COLUMN_FIELDS)],
        )
    return int(run_id)


_RUN_SELECT = (
    f"SELECT run_id, strftime(time, {_ISO}) AS time, model_name AS model, "
    "model_version AS version, reference_id, strftime(window_start, "
    f"{_ISO}) AS window_start, strftime(window_end, {_ISO}) AS window_end, trigger, rows, "
    "status, columns, drifted, drift_share, share_threshold, seconds, "
    "report_status, report_note FROM drift_runs"
)


def runs(
    cursor: duckdb.DuckDBPyConnection,
    model: str | None,
    version: str | None,
    status: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Runs, newest first."""
    cursor.execute(
        f"{_RUN_SELECT} WHERE ($1 IS NULL OR model_name = $1) AND ($2 IS NULL OR "
        "model_version = $2) AND ($3 IS NULL OR status = $3) "
        f"ORDER BY run_id DESC LIMIT {int(limit)}",
        [model, version, status],
    )
    return _dicts(cursor)


def run(cursor: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, Any]:
    """One run with its columns (drifted first, then by score); NotFound when none."""
    cursor.execute(f"{_RUN_SELECT} WHERE run_id = $1", [run_id])
    found = _dicts(cursor)
    if not found:
        raise NotFound(f"no drift run {run_id}")
    cursor.execute(
        f"SELECT {', '.join(_COLUMN_FIELDS)} FROM drift_run_columns WHERE run_id = $1 "
        "ORDER BY status = 'drift' DESC, score DESC NULLS LAST, name",
        [run_id],
    )
    return {**found[0], "column_results": _dicts(cursor)}


def report_state(cursor: duckdb.DuckDBPyConnection, run_id: int) -> None:
    """Raise unless the run's report is ready: Unavailable while it is drawn, NotFound
    when it has none."""
    row = cursor.execute(
        "SELECT report_status, report_note FROM drift_runs WHERE run_id = $1", [run_id]
    ).fetchone()
    if row is None:
        raise NotFound(f"no drift run {run_id}")
    status, note = row
    if status == "pending":
        raise Unavailable(f"the report of drift run {run_id} is being drawn; retry in a moment")
    if status != "ready":
        raise NotFound(f"drift run {run_id} has no report: {note or 'nothing was judged'}")


def set_report(conn: duckdb.DuckDBPyConnection, run_id: int, status: str, note: str) -> None:
    """Record that a run's report was drawn (its HTML is a file) or why it could not be."""
    conn.execute(
        "UPDATE drift_runs SET report_status = $2, report_note = $3 WHERE run_id = $1",
        [run_id, status, note],
    )


def abandon_reports(conn: duckdb.DuckDBPyConnection) -> None:
    """Runs whose report a stopped server never drew: say so rather than stay pending."""
    conn.execute(
        "UPDATE drift_runs SET report_status = 'none', report_note = 'the server stopped "
        "before Evidently drew the report; run drift again for one' "
        "WHERE report_status = 'pending'"
    )


def latest_shares(cursor: duckdb.DuckDBPyConnection) -> list[tuple[str, str, float]]:
    """The newest run's drift share per (model, version), for the Prometheus gauge."""
    return cursor.execute(
        "SELECT model_name, coalesce(model_version, ''), "
        "arg_max(drift_share, run_id) FROM drift_runs WHERE drift_share IS NOT NULL "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# -- per-feature views (the dashboards) ------------------------------------------------


def reference_summary(cursor: duckdb.DuckDBPyConnection, reference_id: int) -> dict[str, Any]:
    """A reference's id, version, source file and rows."""
    cursor.execute(
        f"SELECT reference_id, model_version AS version, source, rows, strftime(created, {_ISO}) "
        "AS created FROM drift_references WHERE reference_id = $1",
        [reference_id],
    )
    return _dicts(cursor)[0]


def model_features(cursor: duckdb.DuckDBPyConnection, model: str) -> list[str]:
    """The features drift knows for ``model``: its references' columns and its runs'."""
    rows = cursor.execute(
        "SELECT c.name FROM drift_reference_columns c JOIN drift_references r "
        "USING (reference_id) WHERE r.model_name = $1 UNION "
        "SELECT c.name FROM drift_run_columns c JOIN drift_runs r USING (run_id) "
        "WHERE r.model_name = $1 ORDER BY 1",
        [model],
    ).fetchall()
    return [row[0] for row in rows]


def drift_models(cursor: duckdb.DuckDBPyConnection) -> list[str]:
    """Every model with a reference or a run."""
    rows = cursor.execute(
        "SELECT model_name FROM drift_references UNION SELECT model_name FROM drift_runs ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def column_history(
    cursor: duckdb.DuckDBPyConnection,
    model: str,
    version: str | None,
    feature: str | None,
    since_ns: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Each column's outcome in the model's newest ``limit`` runs (since ``since_ns``),
    newest run first, with the run's drift share."""
    cursor.execute(
        "WITH chosen AS (SELECT run_id, time, model_name, model_version, drift_share "
        "FROM drift_runs WHERE model_name = $model "
        "AND ($version IS NULL OR model_version = $version) "
        "AND ($since IS NULL OR time >= make_timestamp_ns($since)) "
        f"ORDER BY run_id DESC LIMIT {int(limit)}) "
        f"SELECT r.run_id, strftime(r.time, {_ISO}) AS time, r.model_name AS model, "
        "r.model_version AS version, c.name, c.type, c.status, c.method, c.score, "
        "c.threshold, c.drifted, c.reference_count, c.current_count, "
        "r.drift_share AS run_drift_share "
        "FROM chosen r JOIN drift_run_columns c USING (run_id) "
        "WHERE $feature IS NULL OR c.name = $feature ORDER BY r.run_id DESC, c.name",
        {"model": model, "version": version, "feature": feature, "since": since_ns},
    )
    return _dicts(cursor)
