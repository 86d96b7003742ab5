"""The HTTP API on :8320: traces, health, Prometheus metrics and the OpenAPI document.

Each request reads through its own DuckDB cursor, so reads never wait for the writer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from onepane import httpbase, metrics, openapi
from onepane.errors import BadRequest, NotFound, OnepaneError
from store import traces
from store.db import ReadCursors

JSON = "application/json"


@dataclass
class ApiContext:
    """What the API reads from: the store connection, the metrics, the write queue."""

    readers: ReadCursors
    metrics: metrics.ServerMetrics
    queue_depth: Callable[[], int]
    schema_version: int


class ApiHandler(httpbase.Handler):
    server: ApiServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        try:
            self._route(path)
        except BadRequest as exc:
            self._json(400, {"error": str(exc)})
        except NotFound as exc:
            self._json(404, {"error": str(exc)})
        except OnepaneError as exc:
            self._json(503, {"error": str(exc)})

    do_HEAD = do_GET

    def _route(self, path: str) -> None:
        ctx = self.server.context
        if path == "/healthz":
            self._json(
                200,
                {
                    "status": "ok",
                    "write_queue_rows": ctx.queue_depth(),
                    "schema_version": ctx.schema_version,
                },
            )
        elif path == "/metrics":
            self.send_body(200, ctx.metrics.exposition(), metrics.CONTENT_TYPE)
        elif path in ("/api/v1/openapi.json", "/openapi.json"):
            self._json(200, openapi.document())
        elif path.startswith("/api/v1/traces/"):
            trace_id = path.removeprefix("/api/v1/traces/")
            cursor = ctx.readers.cursor()
            try:
                self._json(200, traces.get_trace(cursor, trace_id))
            finally:
                cursor.close()
        else:
            raise NotFound(f"no API route {path}; see /api/v1/openapi.json")

    def _json(self, status: int, document: Any) -> None:
        self.send_body(status, orjson.dumps(document), JSON)


class ApiServer(httpbase.Server):
    def __init__(self, address: tuple[str, int], context: ApiContext) -> None:
        super().__init__(address, ApiHandler)
        self.context = context
