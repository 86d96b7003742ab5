"""The OpenAPI document of the HTTP API on :8320."""

from __future__ import annotations

import functools
import re
from typing import Any

from onepane import __version__, openapi_views, tokenapi
from onepane.auth import api_scope

_ERROR = {
    "description": "Error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}

_UNAVAILABLE = {**_ERROR, "description": "The store cannot answer now; retry"}

_SPAN = {
    "type": "object",
    "description": "A span; `depth` and `children` give its place in the tree.",
    "properties": {
        "span_id": {"type": "string"},
        "parent_span_id": {"type": ["string", "null"]},
        "name": {"type": "string"},
        "kind": {
            "type": "string",
            "enum": ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"],
        },
        "role": {
            "type": "string",
            "enum": ["request", "api", "inference", "db", "pipeline", "internal"],
        },
        "service_name": {"type": "string"},
        "workload": {"type": "string", "description": "namespace/name"},
        "start_unix_nano": {"type": "integer"},
        "offset_ns": {"type": "integer", "description": "start relative to the trace start"},
        "duration_ns": {"type": "integer"},
        "duration_ms": {"type": "number"},
        "status": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "enum": ["UNSET", "OK", "ERROR"]},
                "message": {"type": ["string", "null"]},
            },
        },
        "depth": {"type": "integer"},
        "critical_path_ms": {
            "type": "number",
            "description": "this span's own time on the trace's critical path (0: not on it)",
        },
        "children": {"type": "array", "items": {"type": "string"}},
        "orphan": {"type": "boolean", "description": "its parent span was never received"},
        "attributes": {"type": "object"},
        "events": {"type": "array", "items": {"type": "object"}},
        "links": {"type": "array", "items": {"type": "object"}},
        "resource_id": {"type": "string", "description": "key into the trace's `resources`"},
    },
}

_LOG = {
    "type": "object",
    "description": "An OTLP log record.",
    "properties": {
        "trace_id": {"type": ["string", "null"]},
        "span_id": {"type": ["string", "null"]},
        "time_unix_nano": {"type": "integer"},
        "observed_time_unix_nano": {"type": ["integer", "null"]},
        "severity_number": {"type": "integer", "minimum": 0, "maximum": 24},
        "severity_text": {"type": ["string", "null"]},
        "body": {"description": "the AnyValue body: string, number, bool, map or list"},
        "event_name": {"type": ["string", "null"]},
        "service_name": {"type": "string"},
        "workload": {"type": "string"},
        "resource_id": {"type": "string"},
        "scope_name": {"type": ["string", "null"]},
        "attributes": {"type": "object"},
    },
}
_SPAN["properties"]["logs"] = {
    "type": "array",
    "items": _LOG,
    "description": "log records written inside this span, oldest first",
}

_SHARE = {
    "type": "object",
    "properties": {"ms": {"type": "number"}, "share": {"type": "number", "minimum": 0}},
}
_TIME_SPLIT = {
    "type": "object",
    "description": "The critical path's time split by role and by service, largest first",
    "properties": {
        "total_ms": {"type": "number"},
        "by_role": {
            "type": "object",
            "description": "request, api, inference, db, pipeline, internal (and missing: "
            "time under a parent span that is not stored)",
            "additionalProperties": _SHARE,
        },
        "by_service": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "service": {"type": "string"},
                    "workload": {"type": "string"},
                    "role": {"type": "string"},
                    "ms": {"type": "number"},
                    "share": {"type": "number"},
                },
            },
        },
        "headline": {"type": "string", "description": 'e.g. "62% in fraud-model inference"'},
    },
}
_SUMMARY_PROPERTIES = {
    "trace_id": {"type": "string"},
    "start_unix_nano": {"type": "integer"},
    "end_unix_nano": {"type": "integer"},
    "duration_ns": {"type": "integer"},
    "duration_ms": {"type": "number"},
    "root_span_id": {"type": ["string", "null"]},
    "root_service": {"type": ["string", "null"]},
    "root_name": {"type": ["string", "null"]},
    "span_count": {"type": "integer"},
    "error_count": {"type": "integer"},
    "roles": {"type": "array", "items": {"type": "string"}},
    "services": {"type": "array", "items": {"type": "string"}},
    "where_the_time_went": _TIME_SPLIT,
}
_TRACE_SUMMARY = {"type": "object", "properties": _SUMMARY_PROPERTIES}

_TRACE = {
    "type": "object",
    "properties": {
        **_SUMMARY_PROPERTIES,
        "critical_path": {
            "type": "array",
            "description": "the critical path, earliest first: which span the trace waited on",
            "items": {
                "type": "object",
                "properties": {
                    "span_id": {"type": "string"},
                    "offset_ns": {"type": "integer"},
                    "duration_ms": {"type": "number"},
                },
            },
        },
        "complete": {"type": "boolean", "description": "every span's parent is stored"},
        "root_span_ids": {"type": "array", "items": {"type": "string"}},
        "resources": {"type": "object", "additionalProperties": {"type": "object"}},
        "log_count": {"type": "integer"},
        "logs": {
            "type": "array",
            "items": _LOG,
            "description": "the trace's log records whose span is not stored",
        },
        "spans": {
            "type": "array",
            "items": _SPAN,
            "description": "every span (with spans=N: those kept), in depth-first order, "
            "children by start time",
        },
        "spans_shown": {
            "type": "integer",
            "description": "how many of span_count the document lists (all of them "
            "without spans=N)",
        },
        "folded_logs": {
            "type": "array",
            "items": _LOG,
            "description": "the log records of the spans spans=N left out, each with its "
            "span_name (empty when nothing was left out)",
        },
    },
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_WINDOW = [
    _query("start", "from this time: ISO 8601 or Unix seconds"),
    _query("end", "until this time (exclusive): ISO 8601 or Unix seconds"),
    _query("since", "the last duration before end (or now): 90s, 15m, 1h, 7d"),
]
_WHO = [
    _query("workload", "only this workload (namespace/name)"),
    _query("service", "only this service.name"),
]
_SEARCH = [
    _query("service", "a span's service.name"),
    _query("workload", "a span's workload (namespace/name)"),
    _query("route", "a span's http.route"),
    _query("name", "a span's name"),
    _query("model", "a span's model (ml.model.name or gen_ai.request.model)"),
    _query("role", "a span's role: request, api, inference, db, pipeline, internal"),
    _query("version", "a span's service.version"),
    _query("min_duration_ms", "a matching span took at least this", {"type": "number"}),
    _query("max_duration_ms", "a matching span took at most this", {"type": "number"}),
    _query("status", "a matching span's status: error, ok or unset"),
    {
        **_query("attr", "key=value (or key: present) on the span or its resource; repeatable"),
        "schema": {"type": "array", "items": {"type": "string"}},
        "explode": True,
    },
    *_WINDOW,
    _query("sort", "newest (default) or slowest"),
    _query("limit", "at most this many traces (1-1000, default 20)", {"type": "integer"}),
]
_AMBIGUOUS = {
    "description": "The prefix matches several traces",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "matches": {"type": "array", "items": {"type": "object"}},
                },
            }
        }
    },
}
_METRIC_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _get(summary: str, parameters: list[dict[str, Any]], schema: dict[str, Any]) -> dict:
    return {
        "get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {
                    "description": summary,
                    "content": {"application/json": {"schema": schema}},
                },
                "400": _ERROR,
                "404": _ERROR,
                "503": _UNAVAILABLE,
            },
        }
    }


def _list_of(key: str, items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": items}}}


_METRIC_PATHS = {
    "/api/v1/metrics": _get(
        "Metrics received: type, unit, temporality, series and point counts, workloads",
        [*_WINDOW, *_WHO],
        _list_of("metrics", {"type": "object"}),
    ),
    "/api/v1/metrics/{name}/points": _get(
        "Raw data points of one metric, oldest first, with their attributes",
        [
            _METRIC_NAME,
            *_WINDOW,
            *_WHO,
            _query(
                "limit", "at most this many points (1-10000, default 1000)", {"type": "integer"}
            ),
        ],
        _list_of("points", {"type": "object"}),
    ),
    "/api/v1/metrics/{name}/rate": _get(
        "Per-second rates of a sum per series; cumulative counters across resets",
        [_METRIC_NAME, *_WINDOW, *_WHO],
        _list_of("series", {"type": "object"}),
    ),
    "/api/v1/logs": _get(
        "Log records, newest first",
        [
            *_WINDOW,
            *_WHO,
            _query("trace_id", "only records written inside this trace"),
            _query("severity", "at least this severity: trace, debug, info, warn, error, fatal"),
            _query("q", "text the body contains (case-insensitive)"),
            _query("limit", "at most this many records (1-5000, default 100)", {"type": "integer"}),
        ],
        _list_of("logs", _LOG),
    ),
}

_GPU_PATHS = {
    "/api/v1/gpus": _get(
        "GPU utilisation over the window: per GPU (or MIG instance) with the workloads that "
        "held it, or per workload; utilisation is 0-1, from GR_ENGINE_ACTIVE when present",
        [
            *_WINDOW,
            _query(
                "by",
                "gpu (default) or workload",
                {"type": "string", "enum": ["gpu", "workload"]},
            ),
        ],
        {
            "type": "object",
            "properties": {
                "gpus": {"type": "array", "items": {"type": "object"}},
                "workloads": {"type": "array", "items": {"type": "object"}},
            },
        },
    ),
    "/api/v1/k8s/pods": _get(
        "Pods alive during the window: node, lifetime, owner workload, requests and limits, "
        "physical GPUs (a time-sliced share counts 1/replicas)",
        [
            *_WINDOW,
            _query("workload", "namespace/name"),
            _query("namespace", "only this namespace"),
            _query("node", "only pods on this node"),
            _query("limit", "at most this many pods (default 1000)", {"type": "integer"}),
        ],
        _list_of("pods", {"type": "object"}),
    ),
    "/api/v1/k8s/nodes": _get(
        "Nodes that existed during the window: instance type, capacity type, GPU product "
        "and replicas, capacity and allocatable",
        _WINDOW,
        _list_of("nodes", {"type": "object"}),
    ),
    "/api/v1/collectors": _get(
        "State of the dcgm scrape targets, the Kubernetes list/watch and the NVML sampler",
        [],
        {"type": "object"},
    ),
}


_COST_WINDOW = _query(
    "window",
    "7d, 24h, today, yesterday, week, lastweek, month, lastmonth, or START,END (ISO 8601 or "
    "Unix seconds); durations end with the current hour",
)
_ALLOCATION_NUMBERS = (
    "cpuCores", "cpuCoreRequestAverage", "cpuCoreUsageAverage", "cpuCoreHours", "cpuCost",
    "cpuCostAdjustment", "cpuEfficiency", "gpuCount", "gpuHours", "gpuCost", "gpuCostAdjustment",
    "networkCost", "loadBalancerCost", "pvCost", "pvBytes", "ramBytes",
    "ramByteRequestAverage", "ramByteUsageAverage", "ramByteHours", "ramCost",
    "ramCostAdjustment", "ramEfficiency", "sharedCost", "externalCost", "totalCost",
    "totalEfficiency",
)  # fmt: skip
_PARTS = ("discounts", "price_difference", "not_billed", "other")
_ALLOCATION = {
    "type": "object",
    "description": "One allocation, as OpenCost's /allocation gives it, plus Onepane's "
    "gpuIdleCost, gpuUtilization, priceSources and priceVersions",
    "properties": {
        "name": {"type": "string"},
        "properties": {"type": "object"},
        "window": {
            "type": "object",
            "properties": {"start": {"type": "string"}, "end": {"type": "string"}},
        },
        "start": {"type": "string"},
        "end": {"type": "string"},
        "minutes": {"type": "number"},
        **{key: {"type": "number"} for key in _ALLOCATION_NUMBERS},
        "gpuUtilization": {"type": ["number", "null"], "description": "0-1; null: unmeasured"},
        "gpuIdleCost": {
            "type": ["number", "null"],
            "description": "GPU cost × (1 − measured utilisation); null: GPU time unmeasured",
        },
        "priceSources": {"type": "array", "items": {"type": "string"}},
        "priceVersions": {"type": "array", "items": {"type": "integer"}},
    },
}
_RECONCILE_FIGURES = {
    "allocated": {"type": ["number", "null"]},
    "billed": {"type": ["number", "null"], "description": "EffectiveCost; null: not billed"},
    "gap": {"type": ["number", "null"], "description": "billed - allocated"},
    "gap_pct": {"type": ["number", "null"]},
    "scale_factor": {"type": ["number", "null"], "description": "billed / allocated"},
}


def _post(summary: str, parameters: list[dict[str, Any]], status: str, schema: dict) -> dict:
    return {
        "post": {
            "summary": summary,
            "parameters": parameters,
            "responses": {
                status: {
                    "description": summary,
                    "content": {"application/json": {"schema": schema}},
                },
                "400": _ERROR,
                "404": _ERROR,
                "413": {**_ERROR, "description": "The request body is over the size limit"},
                "503": _UNAVAILABLE,
            },
        }
    }


_COST_PATHS = {
    "/api/v1/allocation": _get(
        "Cost allocation in OpenCost's /allocation shape: one set of allocations per step, "
        "by workload, team, kind, namespace, node, pod or label (also at /allocation)",
        [
            {**_COST_WINDOW, "description": f"{_COST_WINDOW['description']} (7d)"},
            _query(
                "aggregate",
                "workload (default), controller, namespace, team, kind, node, pod, "
                "controllerKind or label:KEY; several joined by commas",
            ),
            _query("step", "one set per step, at least 1h (default: the whole window)"),
            _query("idle", "true: add __idle__, what the nodes cost beyond the allocations"),
            _query("includeIdle", "the same as idle"),
            _query(
                "shareIdle",
                "share the idle cost out over the allocations instead (sharedCost)",
                {"type": "string", "enum": ["none", "false", "even", "weighted", "true"]},
            ),
            _query("reconcile", "true: scale each node's day to its imported FOCUS bill"),
            _query("accumulate", "true: one set for the whole window, whatever the step"),
            _query("resolution", "accepted for OpenCost clients; costs are hourly"),
        ],
        {
            "type": "object",
            "properties": {
                "code": {"type": "integer"},
                "status": {"type": "string"},
                "data": {
                    "type": "array",
                    "description": "one set per step: allocation name -> allocation",
                    "items": {"type": "object", "additionalProperties": _ALLOCATION},
                },
            },
        },
    ),
    "/api/v1/unit-costs": _get(
        "Unit cost per workload, step and version: per 1k requests, 1k predictions, 1M "
        "tokens or run",
        [
            {**_COST_WINDOW, "description": f"{_COST_WINDOW['description']} (7d)"},
            _query("step", "one figure per step, at least 1h (default: the whole window)"),
            _query("workload", "only this workload (namespace/name)"),
            _query(
                "by",
                "version (default) or workload (versions merged)",
                {"type": "string", "enum": ["version", "workload"]},
            ),
        ],
        _list_of("unit_costs", {"type": "object"}),
    ),
    "/api/v1/reconciliation": _get(
        "Allocated vs billed (FOCUS EffectiveCost) per day and node, the gap and the parts "
        "that explain it, and the bill rows that match no node",
        [{**_COST_WINDOW, "description": f"{_COST_WINDOW['description']} (30d)"}],
        {
            "type": "object",
            "properties": {
                "window": {"type": "object"},
                "totals": {"type": "object", "properties": _RECONCILE_FIGURES},
                "days": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "date": {"type": "string"},
                            **_RECONCILE_FIGURES,
                            "explained": {
                                "type": "object",
                                "description": "parts that add up to the gap",
                                "properties": {k: {"type": "number"} for k in _PARTS},
                            },
                            "nodes": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
                "nodes": {"type": "array", "items": {"type": "object"}},
                "unmatched_billing": {"type": "array", "items": {"type": "object"}},
            },
        },
    ),
    "/api/v1/billing/imports": {
        **_get("The FOCUS bills imported", [], _list_of("imports", {"type": "object"})),
        **_post(
            "Import a FOCUS billing export (CSV or Parquet, the request body), checked whole: "
            "one bad row rejects the file; a billing period imported again is replaced",
            [_query("filename", "the file's name, kept with the import")],
            "201",
            {"type": "object"},
        ),
    },
    "/api/v1/prices": _get(
        "Every price version: valid from, currency, and its rules with their sources",
        [],
        _list_of("versions", {"type": "object"}),
    ),
    "/api/v1/workloads": _get(
        "Kind, team and unit per workload, and where the kind came from: catalog, label, "
        "inferred or default",
        [],
        _list_of("workloads", {"type": "object"}),
    ),
    "/api/v1/cost/rollup": {
        "post": {
            "summary": "Bring the hourly costs up to date now",
            "responses": {
                "200": {
                    "description": "What the rollup computed",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}


_DECISION = {
    "type": "object",
    "description": "A gate decision: inputs, projected or observed figures, thresholds, verdict",
    "properties": {
        "decision_id": {"type": ["integer", "null"], "description": "null on a dry run"},
        "action": {"type": "string", "enum": ["check", "verify", "admission"]},
        "workload": {"type": "string"},
        "version": {"type": ["string", "null"]},
        "kind": {"type": "string", "enum": ["app", "model", "pipeline"]},
        "team": {"type": ["string", "null"]},
        "unit": {"type": "string"},
        "environment": {"type": "string"},
        "verdict": {"type": "string", "enum": ["pass", "blocked", "overridden", "undecided"]},
        "exit_code": {"type": "integer", "enum": [0, 1, 2]},
        "actor": {"type": ["string", "null"]},
        "override_reason": {"type": ["string", "null"]},
        "approver": {"type": ["string", "null"]},
        "currency": {"type": "string"},
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "threshold": {
                        "type": "string",
                        "enum": ["max_unit_cost", "max_increase", "max_monthly_cost"],
                    },
                    "limit": {"type": "number"},
                    "limit_text": {"type": "string"},
                    "source": {"type": "string", "description": "file, line and policy key"},
                    "value": {"type": ["number", "null"]},
                    "passed": {"type": ["boolean", "null"], "description": "null: not checked"},
                    "detail": {"type": "string"},
                },
            },
        },
        "projection": {"type": "object", "description": "check and admission: projected cost"},
        "observed": {"type": "object"},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["action", "workload", "environment", "verdict", "exit_code", "checks"],
}
_VERIFY = [
    {**_query("workload", "namespace/name"), "required": True},
    {**_query("version", "the canary's service.version"), "required": True},
    _query("window", "how far back to look (30m)"),
    _query("environment", "the policy's environment (the server's default)"),
    _query("min_units", "fewer requests/predictions than this: undecided (100)"),
    _query("actor", "who asked, for the audit log"),
]
_AUDIT = [
    _query("workload", "namespace/name"),
    _query("version", "release version"),
    _query("verdict", "pass, blocked, overridden or undecided"),
    _query("action", "check, verify or admission"),
    _query("environment", "environment"),
    _query("team", "team"),
    _query("kind", "app, model or pipeline"),
    _query("since", "only the last 1h, 7d, ..."),
    _query("limit", "at most this many, newest first (100)"),
]
_GATE_PATHS = {
    "/api/v1/gate/check": _post(
        "Decide on a release: project its cost from its manifests and apply the policy; the "
        "decision is stored before it is answered",
        [],
        "200",
        _DECISION,
    ),
    "/api/v1/gate/verify": {
        **_get(
            "A canary's observed unit cost against the policy; for an Argo Rollouts "
            "AnalysisTemplate web metric (verdict: pass, blocked or undecided)",
            _VERIFY,
            _DECISION,
        ),
        **_post("The same as GET, for clients that must POST", _VERIFY, "200", _DECISION),
    },
    "/api/v1/gate/decisions": _get(
        "The audit log: every gate decision, newest first", _AUDIT, _list_of("decisions", _DECISION)
    ),
    "/api/v1/gate/decisions/{decision_id}": {
        "get": {
            **_get("One gate decision", [], _DECISION)["get"],
            "parameters": [
                {
                    "name": "decision_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                }
            ],
        }
    },
    "/api/v1/deployments": _get(
        "Releases the gate saw (check and admission), with their verdicts, newest first",
        _AUDIT,
        _list_of("deployments", {"type": "object"}),
    ),
    "/api/v1/gate/admission": _post(
        "A Kubernetes AdmissionReview v1, answered with the same policy as a check (the TLS "
        "listener in gate.admission serves it at /validate)",
        [],
        "200",
        {"type": "object", "description": "AdmissionReview with response.allowed"},
    ),
}


_DRIFT_STATUSES = ["drift", "no drift", "no data", "missing", "insufficient data", "error"]
_REFERENCE = {
    "type": "object",
    "description": "A reference dataset of a model (and version) and its columns' statistics",
    "properties": {
        "reference_id": {"type": "integer"},
        "model": {"type": "string", "description": "ml.model.name"},
        "version": {"type": "string", "description": "ml.model.version; '*': every version"},
        "created": {"type": "string"},
        "source": {"type": "string", "description": "the file it was read from"},
        "rows": {"type": "integer"},
        "active": {"type": "boolean", "description": "the one runs of its version compare with"},
        "columns": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "type": {"type": "string", "enum": ["numerical", "categorical"]},
                    "type_source": {"type": "string", "enum": ["inferred", "given"]},
                    "count": {"type": "integer", "description": "values present"},
                    "missing": {"type": "integer", "description": "null, NaN or infinite"},
                    "n_unique": {"type": "integer"},
                    "mean": {"type": ["number", "null"]},
                    "std": {"type": ["number", "null"]},
                    "min": {"type": ["number", "null"]},
                    "max": {"type": ["number", "null"]},
                },
            },
        },
    },
    "required": ["reference_id", "model", "version", "rows", "active", "columns"],
}
_RUN_PROPERTIES = {
    "run_id": {"type": "integer"},
    "time": {"type": "string"},
    "model": {"type": "string"},
    "version": {"type": ["string", "null"], "description": "null: every version"},
    "reference_id": {"type": "integer"},
    "window_start": {"type": "string"},
    "window_end": {"type": "string"},
    "trigger": {"type": "string", "enum": ["manual", "schedule"]},
    "rows": {"type": "integer", "description": "predictions in the window"},
    "status": {"type": "string", "enum": ["drift", "no drift", "insufficient data"]},
    "columns": {"type": "integer", "description": "columns with a verdict"},
    "drifted": {"type": "integer"},
    "drift_share": {"type": ["number", "null"], "description": "drifted / columns"},
    "share_threshold": {
        "type": "number",
        "description": "the dataset drifts when drift_share is at least this (drift.drift_share)",
    },
    "seconds": {"type": "number"},
    "report_status": {
        "type": "string",
        "enum": ["pending", "ready", "none", "failed"],
        "description": "Evidently's report: drawn a few seconds after the run is stored",
    },
    "report_note": {"type": ["string", "null"], "description": "what the report was drawn on"},
}
_RUN_COLUMN = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string", "enum": ["numerical", "categorical"]},
        "status": {"type": "string", "enum": _DRIFT_STATUSES},
        "method": {
            "type": ["string", "null"],
            "description": "Evidently's test: wasserstein, jensenshannon, ks, chisquare, psi...",
        },
        "score": {"type": ["number", "null"]},
        "threshold": {"type": ["number", "null"]},
        "drifted": {"type": ["boolean", "null"]},
        "reference_count": {"type": "integer"},
        "current_count": {"type": "integer", "description": "production values in the window"},
        "unseen": {
            "type": ["integer", "null"],
            "description": "categorical: production values of categories not in the reference",
        },
        "detail": {"type": ["string", "null"], "description": "why there is no verdict"},
    },
}
_RUN = {
    "type": "object",
    "description": "A drift run: the dataset verdict and every column's test",
    "properties": {
        **_RUN_PROPERTIES,
        "column_results": {
            "type": "array",
            "items": _RUN_COLUMN,
            "description": "drifted columns first, then by score",
        },
    },
    "required": ["run_id", "model", "status", "rows", "columns", "drifted", "column_results"],
}
_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_COLUMNS_BY_NAME = {"type": "object", "additionalProperties": {"type": "string"}}
_RUN_POST = _post(
    "Run drift now: the model's production inputs over the window against its active "
    "reference; stored before it is answered",
    [],
    "201",
    _RUN,
)["post"]
_RUN_POST["responses"]["404"] = {**_ERROR, "description": "No reference for the model"}
_DRIFT_PATHS = {
    "/api/v1/drift/references": {
        **_get(
            "Reference datasets, newest first, with their columns' types and statistics",
            [_query("model", "only this model (ml.model.name)")],
            _list_of("references", _REFERENCE),
        ),
        "post": {
            **_post(
                "Register a reference dataset (CSV or Parquet, the request body): each column "
                "profiled once and stored; it becomes the active reference of (model, version)",
                [
                    {**_query("model", "the model's ml.model.name"), "required": True},
                    _query("version", "the model version it is the reference of ('*': all)"),
                    _query("filename", "the file's name; .parquet is read as Parquet"),
                    _query("format", "csv or parquet (default: from filename, else csv)"),
                    _query("numerical", "columns to treat as numerical: a,b"),
                    _query("categorical", "columns to treat as categorical: c,d"),
                    _query("ignore", "columns that are not model inputs: id,label"),
                ],
                "201",
                {
                    **_REFERENCE,
                    "properties": {
                        **_REFERENCE["properties"],
                        "skipped": {
                            **_COLUMNS_BY_NAME,
                            "description": "columns not checked, and why (e.g. text)",
                        },
                    },
                },
            )["post"],
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/vnd.apache.parquet": {
                        "schema": {"type": "string", "format": "binary"}
                    },
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
        },
    },
    "/api/v1/drift/runs": {
        **_get(
            "Drift runs, newest first (without their columns)",
            [
                _query("model", "only this model"),
                _query("version", "only runs of this version"),
                _query("status", "drift, no drift or insufficient data"),
                _query("limit", "at most this many (default 100)", {"type": "integer"}),
            ],
            _list_of("runs", {"type": "object", "properties": _RUN_PROPERTIES}),
        ),
        "post": {
            **_RUN_POST,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "model": {"type": "string", "description": "ml.model.name"},
                                "version": {
                                    "type": "string",
                                    "description": "only this version (default: every one)",
                                },
                                "window": {
                                    "type": "string",
                                    "description": "30m, 24h, 7d (drift.window: 24h)",
                                },
                                "methods": {
                                    **_COLUMNS_BY_NAME,
                                    "description": "column -> an Evidently test (psi, ks, ...)",
                                },
                                "thresholds": {
                                    "type": "object",
                                    "additionalProperties": {"type": "number"},
                                    "description": "column -> the threshold of its test",
                                },
                            },
                            "required": ["model"],
                            "additionalProperties": False,
                        }
                    }
                },
            },
        },
    },
    "/api/v1/drift/runs/{run_id}": {
        "get": {**_get("One drift run, column by column", [], _RUN)["get"], "parameters": [_RUN_ID]}
    },
    "/api/v1/drift/runs/{run_id}/report": {
        "get": {
            "summary": "Evidently's HTML report of a run (drawn on up to drift.report_rows "
            "values per column; the verdicts come from every value)",
            "parameters": [_RUN_ID],
            "responses": {
                "200": {
                    "description": "Evidently's DataDriftPreset report",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                "400": _ERROR,
                "404": _ERROR,
            },
        }
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at /api/v1/openapi.json."""
    return _secured(_document())


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Onepane API",
            "version": __version__,
            "description": "Trace search and lookup, OTLP metrics and logs, GPUs and the "
            "Kubernetes inventory, cost allocation and reconciliation, the deploy gate, "
            "model input drift, and health of an Onepane server.",
        },
        "paths": {
            "/api/v1/traces": _get(
                "Find traces with a span matching every filter; summaries with the time split",
                _SEARCH,
                _list_of("traces", _TRACE_SUMMARY),
            ),
            "/api/v1/traces/{trace_id}": {
                "get": {
                    "summary": "One trace as a tree, with its critical path and where the "
                    "time went",
                    "parameters": [
                        {
                            "name": "trace_id",
                            "in": "path",
                            "required": True,
                            "description": "the 32 hex characters, or a unique prefix of 8+",
                            "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{8,32}$"},
                        },
                        _query(
                            "spans",
                            "fold the trace to at most this many spans: the roots, failed "
                            "spans, the critical path's and the longest, with their parents "
                            "(the rest's log records in folded_logs; counts, critical path "
                            "and time split stay the whole trace's)",
                            {"type": "integer", "minimum": 1},
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "The trace",
                            "content": {"application/json": {"schema": _TRACE}},
                        },
                        "400": _ERROR,
                        "404": _ERROR,
                        "409": _AMBIGUOUS,
                    },
                }
            },
            **_METRIC_PATHS,
            **_GPU_PATHS,
            **_COST_PATHS,
            **_GATE_PATHS,
            **_DRIFT_PATHS,
            **openapi_views.paths(_get, _query, _WINDOW, _list_of),
            **tokenapi.openapi_paths(_ERROR),
            "/healthz": {
                "get": {
                    "summary": "Liveness and write-queue state",
                    "responses": {
                        "200": {
                            "description": "Serving",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "status": {"type": "string"},
                                            "write_queue_rows": {"type": "integer"},
                                            "schema_version": {"type": "integer"},
                                            "store_bytes": {
                                                "type": "object",
                                                "description": "size on disk of the store "
                                                "file (db) and its write-ahead log (wal)",
                                                "properties": {
                                                    "db": {"type": "integer"},
                                                    "wal": {"type": "integer"},
                                                },
                                            },
                                            "listeners": {
                                                "type": "object",
                                                "description": "where to send telemetry",
                                                "properties": {
                                                    "otlp_http": {"type": "string"},
                                                    "otlp_grpc": {"type": "string"},
                                                    "api": {"type": "string"},
                                                },
                                            },
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus exposition of the server's own metrics",
                    "responses": {"200": {"description": "text/plain exposition"}},
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
        },
    }


_SECURITY = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from `onepane token create`, sent as Authorization: Bearer "
        "<token>. Scopes: read (GET), gate (POST /api/v1/gate/*), admin (everything else, "
        "and tokens). Required once the server holds a token or listens beyond loopback.",
    }
}


def _secured(doc: dict[str, Any]) -> dict[str, Any]:
    """The bearer scheme on every operation but the open ones, with its 401 and 403."""
    doc["components"] = {**doc.get("components", {}), "securitySchemes": _SECURITY}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            scope = api_scope(method.upper(), path)
            if scope is None:
                operation["security"] = []
                continue
            operation["security"] = [{"bearer": []}]
            note = f"Needs a token with scope {scope} (or admin) when auth is on."
            if note not in operation.get("description", ""):  # operations may be shared
                operation["description"] = f"{operation.get('description', '')} {note}".strip()
            operation["responses"].setdefault("401", {**_ERROR, "description": "No valid token"})
            operation["responses"].setdefault(
                "403", {**_ERROR, "description": "The token lacks the scope or team this needs"}
            )
    return doc


@functools.cache
def _routes() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    routes = []
    for path, operations in _document()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
        methods = {m.upper() for m in operations if m != "parameters"}
        methods |= {"HEAD"} if "GET" in methods else set()
        routes.append((re.compile(f"^{pattern}$"), tuple(sorted(methods))))
    return tuple(routes)


def allowed_methods(path: str) -> tuple[str, ...]:
    """The methods the document lists for ``path`` (a request path, no query); none when
    the document has no such path."""
    for pattern, methods in _routes():
        if pattern.match(path):
            return methods
    return ()
