"""The OpenAPI document of the HTTP API on :8320."""

from __future__ import annotations

from typing import Any

from onepane import __version__

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
        "children": {"type": "array", "items": {"type": "string"}},
        "orphan": {"type": "boolean", "description": "its parent span was never received"},
        "attributes": {"type": "object"},
        "events": {"type": "array", "items": {"type": "object"}},
        "links": {"type": "array", "items": {"type": "object"}},
        "resource_id": {"type": "string", "description": "key into the trace's `resources`"},
    },
}

_TRACE = {
    "type": "object",
    "properties": {
        "trace_id": {"type": "string"},
        "start_unix_nano": {"type": "integer"},
        "duration_ns": {"type": "integer"},
        "duration_ms": {"type": "number"},
        "root_service": {"type": ["string", "null"]},
        "root_name": {"type": ["string", "null"]},
        "span_count": {"type": "integer"},
        "error_count": {"type": "integer"},
        "roles": {"type": "array", "items": {"type": "string"}},
        "services": {"type": "array", "items": {"type": "string"}},
        "root_span_ids": {"type": "array", "items": {"type": "string"}},
        "resources": {"type": "object", "additionalProperties": {"type": "object"}},
        "spans": {
            "type": "array",
            "items": _SPAN,
            "description": "every span, in depth-first order, children by start time",
        },
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at /api/v1/openapi.json."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Onepane API",
            "version": __version__,
            "description": "Traces, health and metrics of an Onepane server.",
        },
        "paths": {
            "/api/v1/traces/{trace_id}": {
                "get": {
                    "summary": "One trace as a tree, with roles and durations",
                    "parameters": [
                        {
                            "name": "trace_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The trace",
                            "content": {"application/json": {"schema": _TRACE}},
                        },
                        "400": _ERROR,
                        "404": _ERROR,
                    },
                }
            },
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
