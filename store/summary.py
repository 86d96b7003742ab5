"""Folding new spans into the per-trace summary table.

Spans of one trace arrive in several export batches, in any order. Rather than merge on
every commit, the writer folds everything committed since the last fold (by ``batch_no``)
about once a second, in one transaction that also moves the watermark, so a crash can
never fold a batch twice or skip one. Most traces complete within a second, so a fold
mostly inserts; a trace that straddles folds is updated in place.
"""

from __future__ import annotations

import duckdb

from onepane.errors import StoreError
from store import model_hours
from store.db import transaction

_FOLD_INPUT = """
CREATE OR REPLACE TEMP TABLE fold_input AS
SELECT trace_key,
       trace_id,
       min(start_time) AS start_time,
       max(end_time) AS end_time,
       arg_min(span_id, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_span_id,
       arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_service,
       arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_name,
       count(*) AS span_count,
       count(*) FILTER (WHERE status_code = 2) AS error_count,
       array_to_string(list_sort(list_distinct(list(role))), ',') AS roles,
       array_to_string(list_sort(list_distinct(list(service_name))), ',') AS services
FROM spans
WHERE batch_no > $from_batch AND batch_no <= $to_batch
GROUP BY trace_key, trace_id
"""

_UPDATE_EXISTING = """
UPDATE traces AS t SET
    start_time   = least(t.start_time, b.start_time),
    end_time     = greatest(t.end_time, b.end_time),
    duration_ns  = epoch_ns(greatest(t.end_time, b.end_time))
                   - epoch_ns(least(t.start_time, b.start_time)),
    root_span_id = coalesce(t.root_span_id, b.root_span_id),
    root_service = coalesce(t.root_service, b.root_service),
    root_name    = coalesce(t.root_name, b.root_name),
    span_count   = t.span_count + b.span_count,
    error_count  = t.error_count + b.error_count,
    roles        = merge_names(t.roles, b.roles),
    services     = merge_names(t.services, b.services)
FROM fold_input AS b
WHERE t.trace_key = b.trace_key AND t.trace_id = b.trace_id
"""

_INSERT_NEW = """
INSERT INTO traces
SELECT b.trace_key, b.trace_id, b.start_time, b.end_time,
       epoch_ns(b.end_time) - epoch_ns(b.start_time),
       b.root_span_id, b.root_service, b.root_name, b.span_count, b.error_count,
       b.roles, b.services
FROM fold_input AS b
ANTI JOIN traces AS t ON t.trace_key = b.trace_key AND t.trace_id = b.trace_id
"""


def summarized_through(conn: duckdb.DuckDBPyConnection) -> int:
    """The last batch_no already folded into ``traces``."""
    return conn.execute("SELECT summarized_through FROM store_state").fetchone()[0]


def last_batch(conn: duckdb.DuckDBPyConnection) -> int:
    """The highest batch_no committed so far (0 for an empty store), also when retention
    has deleted every span since."""
    return conn.execute(
        "SELECT greatest(coalesce(max(batch_no), 0), (SELECT summarized_through FROM store_state)) "
        "FROM spans"
    ).fetchone()[0]


MAX_FOLD_SPANS = 250_000

_BATCH_SIZES = """
SELECT batch_no, count(*) FROM spans
WHERE batch_no > ? AND batch_no <= ? GROUP BY batch_no ORDER BY batch_no
"""


def fold(conn: duckdb.DuckDBPyConnection, to_batch: int) -> None:
    """Fold every span batch up to ``to_batch`` into ``traces``.

    A long backlog (after a crash, or a bulk load) is folded in steps of at most
    ``MAX_FOLD_SPANS`` spans, so memory stays bounded; each step is atomic.
    """
    from_batch = summarized_through(conn)
    if to_batch <= from_batch:
        return
    try:
        for upto in _steps(conn, from_batch, to_batch):
            _fold_range(conn, from_batch, upto)
            from_batch = upto
    except duckdb.Error as exc:
        raise StoreError(
            f"could not fold spans into trace summaries: {exc}. Spans are safe; "
            "if this is out of memory, raise --memory-limit."
        ) from exc


def _steps(conn: duckdb.DuckDBPyConnection, from_batch: int, to_batch: int) -> list[int]:
    """Batch numbers to fold up to, one step per ``MAX_FOLD_SPANS`` spans."""
    sizes = conn.execute(_BATCH_SIZES, [from_batch, to_batch]).fetchall()
    steps, pending, previous = [], 0, from_batch
    for batch_no, spans in sizes:
        if pending and pending + spans > MAX_FOLD_SPANS:
            steps.append(previous)
            pending = 0
        pending += spans
        previous = batch_no
    if pending:
        steps.append(previous)
    if not steps or steps[-1] != to_batch:
        steps.append(to_batch)
    return steps


def _fold_range(conn: duckdb.DuckDBPyConnection, from_batch: int, to_batch: int) -> None:
    params = {"from_batch": from_batch, "to_batch": to_batch}
    try:
        with transaction(conn):
            conn.execute(_FOLD_INPUT, params)
            conn.execute(_UPDATE_EXISTING)
            conn.execute(_INSERT_NEW)
            model_hours.fold(conn, from_batch, to_batch)
            conn.execute("UPDATE store_state SET summarized_through = ?", [to_batch])
    finally:
        conn.execute("DROP TABLE IF EXISTS fold_input")
