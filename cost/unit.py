"""Unit cost per workload, step and version: what one unit of its work cost.

* app: per 1k requests (its request and api spans, the SERVER spans it answered);
* model: per 1k predictions (its inference spans), and per 1M tokens when its inference
  spans carry ``gen_ai.usage.input_tokens`` / ``output_tokens``;
* pipeline: per run (pipeline spans that start a trace; without spans, the Job pods
  that started).

The unit follows the workload's kind; ``unit:`` in the catalog overrides it. A version's
cost is the cost of the pods that served it (a pod's version is the ``service.version``
on most of its spans in that hour, else in the window: an hour without traffic still
costs its version); pods that sent no spans in the window are counted in the workload's
cost under version ``null``. Spans that name no pod (no ``k8s.pod.name``) do
not say which pod served them: when those of a workload's hour all carry one version,
the pods without a version of their own are counted under it.
"""

from __future__ import annotations

from typing import Any

import duckdb

from cost.allocation import HOUR_NS
from cost.catalog import DEFAULT_UNIT
from cost.window import CostWindow, iso

_PER = {"requests": 1000.0, "predictions": 1000.0, "tokens": 1_000_000.0, "runs": 1.0}
LABEL = {"requests": "1k requests", "predictions": "1k predictions", "tokens": "1M tokens",
         "runs": "run"}  # fmt: skip

_SQL = """
WITH pod_cost AS (
    SELECT hour, workload, namespace, pod, sum(total_cost) AS cost
    FROM cost_pod_hours
    WHERE hour >= make_timestamp_ns($start) AND hour < make_timestamp_ns($end)
      AND ($workload IS NULL OR workload = $workload)
    GROUP BY ALL
),
counted AS (
    SELECT * FROM workload_hour_counts
    WHERE hour >= make_timestamp_ns($start) AND hour < make_timestamp_ns($end)
      AND ($workload IS NULL OR workload = $workload)
),
pod_version AS (
    SELECT hour, workload, namespace, pod, arg_max(version, spans) AS version
    FROM counted WHERE pod IS NOT NULL GROUP BY ALL
),
pod_version_window AS (  -- what a pod served over the window, for its hours without spans
    SELECT workload, namespace, pod, arg_max(version, spans) AS version
    FROM counted WHERE pod IS NOT NULL GROUP BY ALL
),
workload_version AS (  -- spans without a pod, all of one version: the version served
    SELECT hour, workload, any_value(version) AS version
    FROM counted WHERE pod IS NULL
    GROUP BY ALL HAVING count(DISTINCT version) = 1 AND count(version) = count(*)
),
version_cost AS (
    SELECT c.hour, c.workload, {version_pv} AS version, sum(c.cost) AS cost
    FROM pod_cost c
    LEFT JOIN pod_version v ON v.hour = c.hour AND v.workload = c.workload
                           AND v.namespace = c.namespace AND v.pod = c.pod
    LEFT JOIN workload_version wv ON wv.hour = c.hour AND wv.workload = c.workload
    LEFT JOIN pod_version_window pw ON pw.workload = c.workload AND pw.namespace = c.namespace
                                   AND pw.pod = c.pod
    GROUP BY ALL
),
version_counts AS (
    SELECT hour, workload, {version_c} AS version, sum(requests) AS requests,
           sum(predictions) AS predictions, sum(runs) AS runs,
           sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) AS tokens
    FROM counted GROUP BY ALL
),
job_runs AS (  -- runs of pipelines that send no pipeline spans: their Job pods
    SELECT * FROM (
        SELECT make_timestamp_ns(epoch_ns(start_time) // {hour} * {hour}) AS hour, workload,
               NULL::VARCHAR AS version, count(*) AS job_pods
        FROM k8s_pods
        WHERE owner_kind IN ('Job', 'CronJob')
          AND start_time >= make_timestamp_ns($start) AND start_time < make_timestamp_ns($end)
          AND ($workload IS NULL OR workload = $workload)
        GROUP BY ALL) j
    WHERE NOT EXISTS (SELECT 1 FROM counted c
                      WHERE c.workload = j.workload AND c.hour = j.hour AND c.runs > 0)
),
joined AS (
    SELECT coalesce(c.hour, n.hour, j.hour) AS hour,
           coalesce(c.workload, n.workload, j.workload) AS workload,
           coalesce(c.version, n.version) AS version,
           c.cost, n.requests, n.predictions, n.runs, n.tokens, j.job_pods
    FROM version_cost c
    FULL OUTER JOIN version_counts n
      ON n.hour = c.hour AND n.workload = c.workload
     AND n.version IS NOT DISTINCT FROM c.version
    FULL OUTER JOIN job_runs j
      ON j.hour = coalesce(c.hour, n.hour) AND j.workload = coalesce(c.workload, n.workload)
     AND coalesce(c.version, n.version) IS NULL
)
SELECT (epoch_ns(j.hour) - $start) // $step AS step_i, j.workload, j.version,
       any_value(coalesce(w.kind, 'app')), any_value(w.team), any_value(w.unit),
       sum(j.cost), sum(j.requests), sum(j.predictions), sum(j.runs), sum(j.tokens),
       sum(j.job_pods)
FROM joined j LEFT JOIN workload_identity w ON w.workload = j.workload
GROUP BY ALL
ORDER BY j.workload, step_i, j.version NULLS LAST
"""


def unit_costs(
    cursor: duckdb.DuckDBPyConnection,
    window: CostWindow,
    workload: str | None = None,
    by_version: bool = True,
) -> list[dict[str, Any]]:
    """One entry per workload, step (and version): its cost, its count of units, their ratio."""
    version = "coalesce(v.version, wv.version, pw.version)" if by_version else "NULL::VARCHAR"
    sql = _SQL.format(
        version_pv=version, version_c="version" if by_version else "NULL::VARCHAR", hour=HOUR_NS
    )
    params = {"start": window.start_ns, "end": window.end_ns, "step": window.step_ns,
              "workload": workload}  # fmt: skip
    out = []
    for row in cursor.execute(sql, params).fetchall():
        step_i, name, ver, kind, team, unit, cost, requests, predictions, runs, tokens, jobs = row
        unit = unit or DEFAULT_UNIT.get(kind, "requests")
        counts = {
            "requests": int(requests or 0),
            "predictions": int(predictions or 0),
            "runs": int(runs or 0) or int(jobs or 0),
            "tokens": int(tokens or 0),
        }
        count = counts[unit]
        step_start, step_end = window.steps[step_i]
        entry: dict[str, Any] = {
            "workload": name,
            "kind": kind,
            "team": team,
            "start": iso(step_start),
            "end": iso(step_end),
            "unit": LABEL[unit],
            "cost": cost,
            "count": count,
            "unit_cost": cost / count * _PER[unit] if cost is not None and count else None,
        }
        if by_version:
            entry["version"] = ver
        if kind == "model" and counts["tokens"] and unit != "tokens":
            entry["tokens"] = counts["tokens"]
            entry["cost_per_1m_tokens"] = (
                cost / counts["tokens"] * 1e6 if cost is not None else None
            )
        out.append(entry)
    return out
