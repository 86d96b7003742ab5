"""The OpenAPI description of the routes the persona views read: span statistics, the
model inventory, pipeline runs, the GPU heatmap and the drift distributions."""

from __future__ import annotations

from typing import Any

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT = {"type": "integer"}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def _figures() -> dict[str, dict[str, Any]]:
    return {
        "count": _INT, "errors": _INT, "error_pct": _NUM, "rate_per_s": _NUM,
        "p50_ms": _NUM, "p95_ms": _NUM, "p99_ms": _NUM,
    }  # fmt: skip


def _share(*names: str) -> dict[str, Any]:
    """A bin or category with both sides' counts and shares."""
    keys = {name: _STR if name == "category" else _NUM for name in names}
    counts = {k: _INT for k in ("reference_count", "production_count")}
    shares = {k: _NUM for k in ("reference_share", "production_share")}
    return _object(**keys, **counts, **shares)


def _with_csv(path: dict[str, Any]) -> dict[str, Any]:
    """``path`` whose GET also answers ``format=csv`` with a CSV table."""
    path["get"]["responses"]["200"]["content"]["text/csv"] = {"schema": _STR}
    return path


def paths(get: Any, query: Any, window: list[dict[str, Any]], list_of: Any) -> dict[str, Any]:
    """The paths, built with openapi.py's own helpers."""
    workloads = {
        **query("workload", "only these workloads (namespace/name); repeatable"),
        "schema": {"type": "array", "items": _STR},
        "explode": True,
    }
    group = _object(
        key=_STR, workload=_STR, service=_STR_OR_NULL, route=_STR_OR_NULL, method=_STR_OR_NULL,
        model=_STR_OR_NULL, version=_STR_OR_NULL, max_ms=_NUM, **_figures(),
    )  # fmt: skip
    point = _object(key=_STR, workload=_STR, time=_STR, **_figures())
    model = _object(
        model=_STR, version=_STR_OR_NULL, workload=_STR, team=_STR_OR_NULL,
        environment=_STR_OR_NULL, serving={"type": "boolean"}, first_seen=_STR, last_seen=_STR,
        predictions=_INT, errors=_INT, p50_ms=_NUM, p95_ms=_NUM, drift_status=_STR_OR_NULL,
        drift_share=_NUM_OR_NULL, drift_run_id={"type": ["integer", "null"]},
        drift_time=_STR_OR_NULL, unit=_STR_OR_NULL, unit_cost=_NUM_OR_NULL, cost=_NUM_OR_NULL,
    )  # fmt: skip
    run = _object(
        workload=_STR, team=_STR_OR_NULL, trace_id=_STR, name=_STR, start=_STR, end=_STR,
        duration_ms=_NUM, status={"type": "string", "enum": ["ok", "error"]}, spans=_INT,
        errors=_INT, cost=_NUM_OR_NULL,
    )  # fmt: skip
    summary = _object(
        workload=_STR, team=_STR_OR_NULL, runs=_INT, failed=_INT, avg_duration_ms=_NUM,
        cost_per_run=_NUM_OR_NULL,
    )  # fmt: skip
    return {
        "/api/v1/stats": get(
            "Rate, errors (OTLP status error or HTTP 5xx) and p50/p95/p99 latency per route, "
            "model version, service or workload: totals over the window and per time bucket",
            [
                query(
                    "by",
                    "route (default), model, service or workload",
                    {"type": "string", "enum": ["route", "model", "service", "workload"]},
                ),
                workloads,
                query("service", "only this service.name"),
                query("model", "only this model (by=model)"),
                query("version", "only this model version"),
                query("step", "the bucket: 1m, 5m, 1h...; default about 60 buckets"),
                *window,
            ],
            _object(
                by=_STR,
                window=_object(start=_STR, end=_STR),
                step=_STR,
                step_s=_INT,
                groups={"type": "array", "items": group},
                series={"type": "array", "items": point},
            ),
        ),
        "/api/v1/models": _with_csv(
            get(
                "The model inventory: every model and version seen on inference spans in the "
                "window, with owner, first and last seen, latency (p50/p95 over the window's "
                "last 24 hours), latest drift and unit cost",
                [
                    query("since", "the window (default 30d)"),
                    query("model", "only this model"),
                    query("team", "only this team's models"),
                    query("environment", "only this deployment.environment.name"),
                    query(
                        "format",
                        "json (default) or csv",
                        {"type": "string", "enum": ["json", "csv"]},
                    ),
                ],
                list_of("models", model),
            )
        ),
        "/api/v1/pipelines/runs": get(
            "Pipeline runs (traces whose root span is a pipeline span), newest first, with "
            "duration, status and cost; a summary per workload",
            [
                workloads,
                query("team", "only this team's pipelines"),
                query("since", "the window (default 7d)"),
                query("status", "ok or error", {"type": "string", "enum": ["ok", "error"]}),
                query("limit", "at most this many runs (default 100)", _INT),
            ],
            _object(
                runs={"type": "array", "items": run},
                summary={"type": "array", "items": summary},
            ),
        ),
        "/api/v1/drift/distribution": get(
            "One feature's distribution in the model's active reference and in production "
            "over the window: equal-width bins over the range both cover (numerical) or "
            "categories (the reference's most common first), counts and shares of each side",
            [
                {**query("model", "the model (ml.model.name)"), "required": True},
                {**query("feature", "the feature (ml.feature.<name>)"), "required": True},
                query("version", "the model version (default: every version)"),
                query("bins", "numerical bins, 1-200 (default 20)", _INT),
                *window,
            ],
            _object(
                model=_STR,
                version=_STR_OR_NULL,
                feature=_STR,
                type={"type": "string", "enum": ["numerical", "categorical"]},
                reference=_object(
                    reference_id=_INT,
                    version=_STR,
                    source=_STR,
                    rows=_INT,
                    created=_STR,
                    count=_INT,
                    missing=_INT,
                ),
                production=_object(count=_INT, missing=_INT, start=_STR, end=_STR),
                bins={"type": ["array", "null"], "items": _share("lower", "upper")},
                categories={"type": ["array", "null"], "items": _share("category")},
            ),
        ),
        "/api/v1/drift/columns": get(
            "Per-feature drift history: each run's verdict per column, newest run first",
            [
                {**query("model", "the model"), "required": True},
                query("version", "only runs of this version"),
                query("feature", "only this feature"),
                query("since", "only runs in this last duration"),
                query("limit", "at most this many runs (1-10000, default 200)", _INT),
            ],
            list_of(
                "columns",
                _object(
                    run_id=_INT,
                    time=_STR,
                    model=_STR,
                    version=_STR_OR_NULL,
                    name=_STR,
                    type=_STR,
                    status=_STR,
                    method=_STR_OR_NULL,
                    score=_NUM_OR_NULL,
                    threshold=_NUM_OR_NULL,
                    drifted={"type": ["boolean", "null"]},
                    reference_count=_INT,
                    current_count=_INT,
                    run_drift_share=_NUM_OR_NULL,
                ),
            ),
        ),
        "/api/v1/gpus/heatmap": get(
            "GPU utilisation (0-1) per GPU and UTC hour of day over the window (default 7d)",
            window,
            list_of(
                "cells",
                _object(
                    hostname=_STR,
                    gpu=_INT,
                    uuid=_STR_OR_NULL,
                    hour=_INT,
                    avg_utilization=_NUM,
                    samples=_INT,
                ),
            ),
        ),
    }
