"""FOCUS billing import: CSV or Parquet exports with FOCUS 1.0–1.3 column names.

Only the columns reconciliation needs are required: ``BillingPeriodStart``,
``BillingPeriodEnd``, ``ChargePeriodStart`` and ``EffectiveCost``. The usual others
(``ResourceId``, ``Tags``, ``ListCost``, ``ServiceProviderName`` or the older
``ProviderName`` …) are read when present; every other column, ``x_`` custom columns
included, is kept as JSON. Column names match without regard to case.

A file is checked whole before anything is stored: one bad row rejects the file, and
the error names the row, the column and the reason. Importing a billing period again
(same provider, billing account and ``BillingPeriodStart``) replaces it, so nothing is
ever counted twice. Values ``null`` and empty cells are missing values, as in FOCUS's
own examples. A time whose hour is past 23 (``2023-02-01T30:00:00Z``, seen in FOCUS's
example data) is read as that many hours into the day, with a warning.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from onepane.errors import BadRequest

REQUIRED = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "EffectiveCost")
# stored column -> FOCUS names, first present wins (1.3 renamed ProviderName)
COLUMNS: dict[str, tuple[str, ...]] = {
    "provider": ("ServiceProviderName", "ProviderName", "PublisherName"),
    "billing_account_id": ("BillingAccountId",),
    "billing_period_start": ("BillingPeriodStart",),
    "billing_period_end": ("BillingPeriodEnd",),
    "charge_period_start": ("ChargePeriodStart",),
    "charge_period_end": ("ChargePeriodEnd",),
    "charge_category": ("ChargeCategory",),
    "pricing_category": ("PricingCategory",),
    "resource_id": ("ResourceId",),
    "resource_name": ("ResourceName",),
    "service_name": ("ServiceName",),
    "region_id": ("RegionId", "Region"),
    "billing_currency": ("BillingCurrency",),
    "billed_cost": ("BilledCost",),
    "effective_cost": ("EffectiveCost",),
    "list_cost": ("ListCost",),
    "commitment_discount_id": ("CommitmentDiscountId",),
    "tags": ("Tags",),
}
_TIMES = ("billing_period_start", "billing_period_end", "charge_period_start", "charge_period_end")
_NUMBERS = ("billed_cost", "effective_cost", "list_cost")
_NOT_NULL = ("billing_period_start", "billing_period_end", "charge_period_start", "effective_cost")
_NULLS = ["", "null", "NULL", "Null"]
MAX_BYTES = 512 * 1024 * 1024


@dataclass
class Parsed:
    """A checked bill, ready to store."""

    rows: pa.Table
    periods: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


def quote(name: str) -> str:
    """``name`` as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def _time_sql(column: str) -> str:
    """A text time as TIMESTAMP_NS; an hour past 23 rolls into the following days."""
    c = quote(column)
    return (
        f"coalesce(TRY_CAST({c} AS TIMESTAMP_NS), CASE WHEN regexp_matches({c}, "
        r"'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?$') THEN "
        f"TRY_CAST(TRY_CAST(substr({c}, 1, 10) AS DATE) AS TIMESTAMP_NS) "
        f"+ to_hours(TRY_CAST(substr({c}, 12, 2) AS BIGINT)) "
        f"+ TRY_CAST('00:' || substr({c}, 15, 5) AS INTERVAL) END)"
    )


def _load(cursor: duckdb.DuckDBPyConnection, path: str, kind: str) -> list[str]:
    """Read the file into the temp view ``bill_raw`` (every column as text, in file order,
    with ``_row`` = 1 for the first data row); its column names."""
    if kind == "parquet":
        source = f"read_parquet({_literal(path)})"
    else:
        columns = "{" + ", ".join(f"{_literal(n)}: 'VARCHAR'" for n in _csv_header(path)) + "}"
        source = (
            f"read_csv({_literal(path)}, header = true, auto_detect = false, delim = ',', "
            f"quote = '\"', escape = '\"', columns = {columns}, "
            f"nullstr = {_NULLS!r}, strict_mode = true, null_padding = false)"
        )
    try:
        names = [d[0] for d in cursor.execute(f"SELECT * FROM {source} LIMIT 0").description]
        casts = ", ".join(f"CAST({quote(n)} AS VARCHAR) AS {quote(n)}" for n in names)
        cursor.execute(
            f"CREATE OR REPLACE TEMP TABLE bill_raw AS "
            f"SELECT row_number() OVER () AS _row, {casts} FROM {source}"
        )
    except duckdb.Error as exc:
        what = "Parquet" if kind == "parquet" else "CSV"
        lines = str(exc).replace(path, "the file").strip().splitlines()
        kept = [ln.strip() for ln in lines[:4] if ln.strip() and not ln.startswith("LINE ")]
        first = "; ".join(ln for ln in kept[:3] if "fix" not in ln.lower()).rstrip(".")
        raise BadRequest(
            f"the bill is not readable {what}: {first}. Nothing was imported; "
            "export the file again (a half-written file is rejected whole)"
        ) from None
    if kind == "csv":  # CSV cells stay text; 'null' is missing in Parquet string columns too
        return names
    for n in names:
        cursor.execute(
            f"UPDATE bill_raw SET {quote(n)} = NULL WHERE {quote(n)} IN ('null', 'NULL', '')"
        )
    return names


def _csv_header(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadRequest(
            f"the bill's header is not readable CSV text ({exc}); export the file again as "
            "UTF-8 CSV or Parquet. Nothing was imported"
        ) from None
    if not header or any(not name.strip() for name in header):
        raise BadRequest("the bill's first line must be a header of column names")
    if len(set(header)) != len(header):
        raise BadRequest("the bill's header names a column twice")
    return header


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _mapping(names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Stored column -> the file's column, and the file's columns kept as extra JSON."""
    by_lower = {n.lower(): n for n in names}
    missing = [r for r in REQUIRED if r.lower() not in by_lower]
    if missing:
        raise BadRequest(
            f"the bill has no {missing[0]} column; a FOCUS export needs "
            f"{', '.join(REQUIRED)}. Nothing was imported"
        )
    mapped: dict[str, str] = {}
    for column, candidates in COLUMNS.items():
        for candidate in candidates:
            if candidate.lower() in by_lower:
                mapped[column] = by_lower[candidate.lower()]
                break
    used = set(mapped.values())
    return mapped, [n for n in names if n not in used]


def _checks(mapped: dict[str, str]) -> list[tuple[str, str, str]]:
    """(file column, SQL condition that is true for a bad row, reason) in check order."""
    checks = []
    for column in _NOT_NULL:
        checks.append(
            (mapped[column], f"{quote(mapped[column])} IS NULL", "is empty; every row needs one")
        )
    for column in _TIMES:
        if column in mapped:
            c = mapped[column]
            checks.append(
                (
                    c,
                    f"{quote(c)} IS NOT NULL AND {_time_sql(c)} IS NULL",
                    "is not a time; FOCUS times look like 2026-11-01T00:00:00Z",
                )
            )
    for column in _NUMBERS:
        if column in mapped:
            c = mapped[column]
            checks.append(
                (
                    c,
                    f"{quote(c)} IS NOT NULL AND (TRY_CAST({quote(c)} AS DOUBLE) IS NULL "
                    f"OR NOT isfinite(TRY_CAST({quote(c)} AS DOUBLE)))",
                    "is not a number",
                )
            )
    start, end = mapped["billing_period_start"], mapped["billing_period_end"]
    checks.append(
        (end, f"{_time_sql(end)} <= {_time_sql(start)}", "is not after BillingPeriodStart")
    )
    if "tags" in mapped:
        c = quote(mapped["tags"])
        checks.append(
            (
                mapped["tags"],
                f"{c} IS NOT NULL AND (NOT coalesce(json_valid({c}), false) "
                f"OR json_type({c}) <> 'OBJECT')",
                'is not a JSON object; Tags look like {"team": "payments"}',
            )
        )
    return checks


def _first_problem(cursor: duckdb.DuckDBPyConnection, mapped: dict[str, str]) -> str | None:
    checks = _checks(mapped)
    cases = " ".join(f"WHEN {cond} THEN {i}" for i, (_, cond, _) in enumerate(checks))
    row = cursor.execute(
        f"SELECT _row, CASE {cases} END AS problem FROM bill_raw "
        f"WHERE problem IS NOT NULL ORDER BY _row LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    number, index = row
    column, _, reason = checks[index]
    value = cursor.execute(
        f"SELECT {quote(column)} FROM bill_raw WHERE _row = $r", {"r": number}
    ).fetchone()
    shown = "the cell" if value is None or value[0] is None else repr(value[0][:60])
    return (
        f"row {number} (line {number + 1}), column {column}: {shown} {reason}. Nothing was "
        "imported; fix the row and import the whole file again"
    )


def _select(mapped: dict[str, str], extra: list[str]) -> str:
    parts = []
    for column in COLUMNS:
        source = mapped.get(column)
        if source is None:
            parts.append(f"NULL AS {column}")
        elif column in _TIMES:
            parts.append(f"{_time_sql(source)} AS {column}")
        elif column in _NUMBERS:
            parts.append(f"TRY_CAST({quote(source)} AS DOUBLE) AS {column}")
        else:
            parts.append(f"{quote(source)} AS {column}")
    pairs = ", ".join(f"{_literal(n)}, {quote(n)}" for n in extra)
    parts.append(f"json_object({pairs})::VARCHAR AS extra" if extra else "NULL AS extra")
    return f"SELECT _row AS row_number, {', '.join(parts)} FROM bill_raw ORDER BY _row"


def _rolled_over(cursor: duckdb.DuckDBPyConnection, mapped: dict[str, str]) -> list[str]:
    warnings = []
    for column in _TIMES:
        if column not in mapped:
            continue
        c = quote(mapped[column])
        rows = cursor.execute(
            f"SELECT _row FROM bill_raw WHERE {c} IS NOT NULL "
            f"AND TRY_CAST({c} AS TIMESTAMP_NS) IS NULL ORDER BY _row LIMIT 6"
        ).fetchall()
        if rows:
            listed = ", ".join(str(r[0]) for r in rows[:5]) + (" …" if len(rows) > 5 else "")
            plural = "s" if len(rows) > 1 else ""
            warnings.append(
                f"{mapped[column]} in row{plural} {listed} has an hour past 23; read as that "
                "many hours into the day"
            )
    return warnings


def parse(cursor: duckdb.DuckDBPyConnection, data: bytes, filename: str) -> Parsed:
    """Read and check a FOCUS file (``data``); raises BadRequest naming the first bad row."""
    kind = "parquet" if data[:4] == b"PAR1" or filename.lower().endswith(".parquet") else "csv"
    if not data.strip():
        raise BadRequest("the bill is empty; nothing was imported")
    fd, path = tempfile.mkstemp(suffix=f".{kind}", prefix="onepane-bill-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        names = _load(cursor, path, kind)
    finally:
        os.unlink(path)
    try:
        mapped, extra = _mapping(names)
        problem = _first_problem(cursor, mapped)
        if problem is not None:
            raise BadRequest(problem)
        if cursor.execute("SELECT count(*) FROM bill_raw").fetchone()[0] == 0:
            raise BadRequest("the bill has a header but no rows; nothing was imported")
        rows = cursor.execute(_select(mapped, extra)).to_arrow_table()
        warnings = _rolled_over(cursor, mapped)
    finally:
        cursor.execute("DROP TABLE IF EXISTS bill_raw")
    return Parsed(rows, _periods(rows), warnings, names)


def _iso(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _periods(rows: pa.Table) -> list[dict[str, Any]]:
    keys = {
        (r["provider"], r["billing_account_id"], r["billing_period_start"], r["billing_period_end"])
        for r in rows.select(
            ["provider", "billing_account_id", "billing_period_start", "billing_period_end"]
        ).to_pylist()
    }
    return [
        {"provider": p, "billing_account_id": a, "start": _iso(s), "end": _iso(e)}
        for p, a, s, e in sorted(keys, key=lambda k: (str(k[0]), str(k[1]), k[2]))
    ]


_DELETE = """
DELETE FROM billing_rows b USING (SELECT DISTINCT provider, billing_account_id,
                                         billing_period_start FROM new_bill) n
WHERE b.provider IS NOT DISTINCT FROM n.provider
  AND b.billing_account_id IS NOT DISTINCT FROM n.billing_account_id
  AND b.billing_period_start = n.billing_period_start
"""


def store(conn: duckdb.DuckDBPyConnection, parsed: Parsed, filename: str, now_ns: int) -> dict:
    """Replace the billing periods in ``parsed`` with its rows; in the writer's transaction."""
    import_id = conn.execute(
        "SELECT coalesce(max(import_id), 0) + 1 FROM billing_imports"
    ).fetchone()[0]
    conn.register("new_bill", parsed.rows)
    try:
        replaced = conn.execute(_DELETE).fetchone()[0]
        names = ", ".join(["row_number", *COLUMNS, "extra"])
        conn.execute(
            f"INSERT INTO billing_rows (import_id, {names}) SELECT $id, {names} FROM new_bill",
            {"id": import_id},
        )
    finally:
        conn.unregister("new_bill")
    conn.execute(
        "INSERT INTO billing_imports VALUES ($id, $file, make_timestamp_ns($now), $rows, "
        "$replaced, $periods)",
        {
            "id": import_id,
            "file": filename,
            "now": now_ns,
            "rows": parsed.rows.num_rows,
            "replaced": replaced,
            "periods": orjson.dumps(parsed.periods).decode(),
        },
    )
    return {
        "import_id": import_id,
        "file": filename,
        "rows": parsed.rows.num_rows,
        "replaced_rows": replaced,
        "billing_periods": parsed.periods,
        "warnings": parsed.warnings,
        "effective_cost": sum(v for v in parsed.rows["effective_cost"].to_pylist() if v),
    }
