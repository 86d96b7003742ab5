"""Predictions per model version and hour: folded from inference spans with the trace
summaries, read by the model inventory.

The inventory of a window is exact: whole hours come from ``model_hours``, the window's
first partial hour and the spans not folded yet from ``spans`` itself. Its latency
percentiles are over the last 24 hours of the window (``LATENCY_NS``), a bounded scan.
"""

from __future__ import annotations

import duckdb

LATENCY_NS = 24 * 3600 * 1_000_000_000
_ISO = "'%Y-%m-%dT%H:%M:%S.%gZ'"

_FOLD = """
CREATE OR REPLACE TEMP TABLE model_fold AS
SELECT date_trunc('hour', start_time) AS hour, model_name, model_version, workload,
       environment, count(*) AS predictions, count(*) FILTER (WHERE status_code = 2) AS errors,
       min(start_time) AS first_seen, max(start_time) AS last_seen
FROM spans
WHERE batch_no > $from_batch AND batch_no <= $to_batch
  AND role = 'inference' AND model_name IS NOT NULL
GROUP BY ALL
"""
_SAME = """m.hour = f.hour AND m.model_name = f.model_name AND m.workload = f.workload
  AND m.model_version IS NOT DISTINCT FROM f.model_version
  AND m.environment IS NOT DISTINCT FROM f.environment"""
_UPDATE = f"""
UPDATE model_hours AS m SET
    predictions = m.predictions + f.predictions,
    errors      = m.errors + f.errors,
    first_seen  = least(m.first_seen, f.first_seen),
    last_seen   = greatest(m.last_seen, f.last_seen)
FROM model_fold AS f WHERE {_SAME}
"""
_INSERT = f"""
INSERT INTO model_hours
SELECT f.* FROM model_fold AS f
WHERE NOT EXISTS (SELECT 1 FROM model_hours AS m WHERE {_SAME})
"""


def fold(conn: duckdb.DuckDBPyConnection, from_batch: int, to_batch: int) -> None:
    """Add the inference spans of batches (from_batch, to_batch] to ``model_hours``; runs
    inside the trace-summary fold's transaction."""
    conn.execute(_FOLD, {"from_batch": from_batch, "to_batch": to_batch})
    try:
        conn.execute(_UPDATE)
        conn.execute(_INSERT)
    finally:
        conn.execute("DROP TABLE IF EXISTS model_fold")


# $start: the window's start; $whole: the first whole hour in it; $recent: where the
# latency percentiles start. Spans after the folded watermark are read from spans.
INVENTORY = f"""
WITH folded AS (SELECT summarized_through AS upto FROM store_state),
parts AS (
    SELECT model_name, model_version, workload, environment, predictions, errors,
           first_seen, last_seen
    FROM model_hours WHERE hour >= make_timestamp_ns($whole)
    UNION ALL
    SELECT model_name, model_version, workload, environment, 1,
           (status_code = 2)::BIGINT, start_time, start_time
    FROM spans
    WHERE role = 'inference' AND model_name IS NOT NULL
      AND start_time >= make_timestamp_ns($start) AND start_time < make_timestamp_ns($whole)
      AND batch_no <= (SELECT upto FROM folded)
    UNION ALL
    SELECT model_name, model_version, workload, environment, 1,
           (status_code = 2)::BIGINT, start_time, start_time
    FROM spans
    WHERE role = 'inference' AND model_name IS NOT NULL
      AND batch_no > (SELECT upto FROM folded) AND start_time >= make_timestamp_ns($start)
),
seen AS (
    SELECT model_name, model_version, workload, environment,
           sum(predictions)::BIGINT AS predictions, sum(errors)::BIGINT AS errors,
           min(first_seen) AS first_seen, max(last_seen) AS last_seen
    FROM parts
    WHERE ($model IS NULL OR model_name = $model)
      AND ($environment IS NULL OR environment = $environment)
    GROUP BY ALL
),
latency AS (
    SELECT model_name, model_version, workload, environment,
           quantile_cont(duration_ns, 0.5) / 1e6 AS p50_ms,
           quantile_cont(duration_ns, 0.95) / 1e6 AS p95_ms
    FROM spans
    WHERE role = 'inference' AND model_name IS NOT NULL
      AND start_time >= make_timestamp_ns($recent)
      AND ($model IS NULL OR model_name = $model)
      AND ($environment IS NULL OR environment = $environment)
    GROUP BY ALL
)
SELECT s.model_name AS model, s.model_version AS version, s.workload, i.team, s.environment,
       s.last_seen >= make_timestamp_ns($serving) AS serving,
       strftime(s.first_seen, {_ISO}) AS first_seen,
       strftime(s.last_seen, {_ISO}) AS last_seen,
       s.predictions, s.errors, l.p50_ms, l.p95_ms
FROM seen AS s
LEFT JOIN latency AS l
  ON l.model_name = s.model_name AND l.workload = s.workload
 AND l.model_version IS NOT DISTINCT FROM s.model_version
 AND l.environment IS NOT DISTINCT FROM s.environment
LEFT JOIN workload_identity AS i ON i.workload = s.workload
WHERE ($team IS NULL OR i.team = $team)
ORDER BY model, version, s.workload, s.environment
"""


def whole_hour(start_ns: int) -> int:
    """The first whole hour at or after ``start_ns``."""
    hour = 3600 * 1_000_000_000
    return -(-start_ns // hour) * hour
