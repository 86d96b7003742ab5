"""The HTTP API on :8320: traces, OTLP metrics and logs, health, Prometheus metrics and the
OpenAPI document.

Each request reads through its own DuckDB cursor, so reads never wait for the writer.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from onepane import costapi, driftapi, gateapi, httpbase, metrics, openapi, teamscope, tls, viewsapi
from onepane.auth import Authenticator, Forbidden, Unauthenticated, api_scope
from onepane.errors import (
    Ambiguous,
    BadRequest,
    NotFound,
    OnepaneError,
    PayloadTooLarge,
)
from onepane.tokenapi import TokenService
from store import gpu, inventory, logs, search, stats, tracefold, traces
from store import metrics as metric_store
from store.db import ReadCursors
from store.window import Window, window

log = logging.getLogger(__name__)

JSON = "application/json"
MAX_BILL_BYTES = 512 * 1024 * 1024
MAX_GATE_BYTES = 16 * 1024 * 1024
_SEARCH_PARAMS = {
    *search.COLUMN_FILTERS,
    "min_duration_ms",
    "max_duration_ms",
    "status",
    "attr",
    "start",
    "end",
    "since",
    "sort",
    "limit",
}


_COST_ROUTES: dict[str, tuple[Callable[[Any, dict[str, str]], Any], set[str] | None]] = {
    "/api/v1/allocation": (costapi.allocation, costapi.ALLOCATION_PARAMS),
    "/allocation": (costapi.allocation, costapi.ALLOCATION_PARAMS),  # OpenCost's own path
    "/api/v1/unit-costs": (costapi.unit_costs, costapi.UNIT_PARAMS),
    "/api/v1/reconciliation": (costapi.reconciliation, costapi.RECONCILE_PARAMS),
    "/api/v1/prices": (lambda c, q: costapi.prices(c), set()),
    "/api/v1/workloads": (lambda c, q: costapi.workloads(c), set()),
    "/api/v1/billing/imports": (lambda c, q: costapi.imports(c), set()),
}


_MAX_INT = 1_000_000_000  # the largest whole-number parameter (a limit, spans=N)


@dataclass
class ApiContext:
    """What the API reads from: the store connection, the metrics, the write queue."""

    readers: ReadCursors
    metrics: metrics.ServerMetrics
    queue_depth: Callable[[], int]
    schema_version: int
    collectors: Callable[[], dict[str, Any]] = dict
    apply: Callable[[Callable[[Any], Any], int], Any] | None = None  # write, wait for commit
    rollup: Callable[[], dict[str, Any]] | None = None  # bring hourly costs up to date now
    gate: gateapi.GateService | None = None
    drift: driftapi.DriftService | None = None
    listeners: dict[str, str] = field(default_factory=dict)  # where to send telemetry
    auth: Authenticator | None = None  # None: every request is let in
    tokens: TokenService | None = None
    store_bytes: Callable[[], dict[str, int]] = dict  # size on disk of the db and its WAL


class ApiHandler(httpbase.Handler):
    server: ApiServer
    team: str | None = None  # the token's team: reads are restricted to it

    def setup(self) -> None:
        tls.handshake(self.request)  # HTTPS: in this request's thread, not the accept loop
        super().setup()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        try:
            self.query_lists = parse_qs(parts.query, keep_blank_values=True)
            self._authorize(path)
            self.query = {k: v[-1] for k, v in self.query_lists.items() if v[-1]}
            self._route(path)
        except Exception as exc:
            self._fail(exc)

    do_HEAD = do_GET

    def _authorize(self, path: str) -> None:
        """Check the request's token for the scope ``path`` needs; a team token's reads
        are narrowed to its team (``query_lists`` rewritten) or refused."""
        self.team = None  # a kept-alive connection's next request may carry another token
        auth, scope = self.server.context.auth, api_scope(self.command, path)
        if auth is None or scope is None:
            return
        token = auth.check(self.headers.get("Authorization"), scope)
        if token is None or token.team is None or scope != "read":
            return
        self.team = token.team
        self.query_lists = teamscope.restrict(
            path, self.query_lists, token.team, self._team_workloads
        )

    def _team_workloads(self) -> set[str]:
        return self._read_value(lambda c: teamscope.team_workloads(c, self.team or ""))

    def _refuse(self, exc: OnepaneError) -> None:
        if self.command not in ("GET", "HEAD"):
            self.close_connection = True  # the body is left unread
        if isinstance(exc, Unauthenticated):
            self.send_body(401, orjson.dumps({"error": str(exc)}), JSON, _CHALLENGE)
        else:
            self.send_body(403, orjson.dumps({"error": str(exc)}), JSON)

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        tokens = self.server.context.tokens
        try:
            self._authorize(path)
            if not path.startswith("/api/v1/tokens/") or tokens is None:
                raise NotFound(f"no API route DELETE {path}; see /api/v1/openapi.json")
            self._json(200, tokens.revoke(path.removeprefix("/api/v1/tokens/")))
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """The answer to a request that raised: its status and a JSON error."""
        if isinstance(exc, Unauthenticated | Forbidden):
            self._refuse(exc)
        elif isinstance(exc, BadRequest):
            self._json(400, {"error": str(exc)})
        elif isinstance(exc, NotFound):
            self._not_found(exc)
        elif isinstance(exc, Ambiguous):
            self._json(409, {"error": str(exc), "matches": exc.matches})
        elif isinstance(exc, PayloadTooLarge):
            self._json(413, {"error": str(exc)})
        elif isinstance(exc, OnepaneError):
            self._json(503, {"error": str(exc)})
        else:  # a bug: answer it, log it, keep serving
            self._internal_error(exc)

    def _internal_error(self, exc: Exception) -> None:
        log.exception("API %s %s failed", self.command, self.path[:200])
        self._json(500, {"error": f"internal error: {type(exc).__name__}: {exc}"[:500]})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the standard library answers itself (a request line over 64 KiB, a method
        the API does not take) in JSON like every other API error, not an HTML page; an
        unknown method is 405, not 501."""
        if code == 501:
            self._not_allowed(openapi.allowed_methods(urlsplit(self.path).path.rstrip("/") or "/"))
            return
        self.close_connection = True
        error = message or explain or "the request cannot be read"
        if code == 414:
            error = "the request line is over 64 KiB; send shorter filters"
        self.send_body(code, orjson.dumps({"error": error}), JSON)

    def _not_found(self, exc: NotFound) -> None:
        """404, or 405 with ``Allow`` when the path exists but not for this method."""
        allowed = openapi.allowed_methods(urlsplit(self.path).path.rstrip("/") or "/")
        if allowed and self.command not in allowed:
            self._not_allowed(allowed)
        else:
            self._json(404, {"error": str(exc)})

    def _not_allowed(self, allowed: tuple[str, ...]) -> None:
        if self.command not in ("GET", "HEAD"):
            self.close_connection = True  # a body, if any, is left unread
        methods = ", ".join(allowed) or "GET, HEAD, POST, DELETE"
        error = f"{self.command} is not allowed here; use {methods}"
        self.send_body(405, orjson.dumps({"error": error}), JSON, {"Allow": methods})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        ctx = self.server.context
        try:
            self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            self._authorize(path)
            if path == "/api/v1/billing/imports" and ctx.apply is not None:
                data = self.read_body(MAX_BILL_BYTES)
                name = self.query.get("filename") or "bill"
                self._read(lambda c: costapi.import_bill(c, ctx.apply, data, name), status=201)
            elif path == "/api/v1/cost/rollup" and ctx.rollup is not None:
                self._json(200, ctx.rollup())
            elif path.startswith("/api/v1/gate/") and ctx.gate is not None:
                self._gate_post(path, ctx.gate)
            elif path.startswith("/api/v1/drift/") and ctx.drift is not None:
                self._drift_post(path, ctx.drift)
            elif path == "/api/v1/tokens" and ctx.tokens is not None:
                self._json(201, ctx.tokens.create(_json_object(self.read_body(MAX_GATE_BYTES))))
            else:
                raise NotFound(f"no API route POST {path}; see /api/v1/openapi.json")
        except Exception as exc:
            self._fail(exc)

    def _route(self, path: str) -> None:
        ctx = self.server.context
        if path == "/healthz":
            self._json(
                200,
                {
                    "status": "ok",
                    "write_queue_rows": ctx.queue_depth(),
                    "schema_version": ctx.schema_version,
                    "store_bytes": ctx.store_bytes(),
                    "listeners": ctx.listeners,
                },
            )
        elif path == "/metrics":
            self.send_body(200, ctx.metrics.exposition(), metrics.CONTENT_TYPE)
        elif path in ("/api/v1/openapi.json", "/openapi.json"):
            self._json(200, openapi.document())
        elif path == "/api/v1/traces":
            query = self._trace_query()
            self._read(lambda cursor: {"traces": search.search(cursor, query)})
        elif path.startswith("/api/v1/traces/"):
            self._trace(path.removeprefix("/api/v1/traces/"))
        elif path == "/api/v1/metrics":
            self._read(
                lambda c: {"metrics": metric_store.catalog(c, self._window(), **self._who())}
            )
        elif path.startswith("/api/v1/metrics/") and path.count("/") >= 5:
            self._metric(*path.removeprefix("/api/v1/metrics/").rsplit("/", 1))
        elif path == "/api/v1/logs":
            self._read(lambda cursor: {"logs": self._logs(cursor)})
        elif path == "/api/v1/gpus":
            self._gpus()
        elif path == "/api/v1/gpus/heatmap":
            costapi.check_params(self.query_lists, {"since", "start", "end"})
            self._read(lambda c: {"cells": gpu.heatmap(c, self._window())})
        elif path == "/api/v1/stats":
            self._read(lambda c: stats.stats(c, self.query, self.query_lists))
        elif path == "/api/v1/models":
            self._models()
        elif path == "/api/v1/pipelines/runs":
            self._read(lambda c: viewsapi.pipeline_runs(c, self.query, self.query_lists))
        elif path == "/api/v1/k8s/pods":
            self._pods()
        elif path == "/api/v1/k8s/nodes":
            self._read(lambda cursor: {"nodes": inventory.nodes(cursor, self._window())})
        elif path == "/api/v1/tokens" and ctx.tokens is not None:
            self._json(200, ctx.tokens.list())
        elif path == "/api/v1/collectors":
            self._json(200, ctx.collectors())
        elif path.startswith(("/api/v1/gate/", "/api/v1/deployments")) and ctx.gate is not None:
            self._gate_get(path, ctx.gate)
        elif path.startswith("/api/v1/drift/") and ctx.drift is not None:
            self._drift_get(path, ctx.drift)
        elif path in _COST_ROUTES:
            query, allowed = _COST_ROUTES[path]
            if allowed is not None:
                costapi.check_params(self.query_lists, allowed)
            self._read(lambda cursor: query(cursor, self.query))
        else:
            raise NotFound(f"no API route {path}; see /api/v1/openapi.json")

    def _team_trace(self, document: dict[str, Any]) -> dict[str, Any]:
        if self.team is not None:
            teamscope.check_trace(document, self.team, self._team_workloads)
        return document

    def _gate_get(self, path: str, gate: gateapi.GateService) -> None:
        if path == "/api/v1/gate/verify":
            costapi.check_params(self.query_lists, gateapi.VERIFY_PARAMS)
            self._json(200, gate.verify(self.query))
        elif path == "/api/v1/gate/decisions":
            self._json(200, gate.decisions(self.query))
        elif path.startswith("/api/v1/gate/decisions/"):
            self._json(200, gate.decision(path.removeprefix("/api/v1/gate/decisions/")))
        elif path == "/api/v1/deployments":
            self._json(200, gate.deployments(self.query))
        else:
            raise NotFound(f"no API route {path}; see /api/v1/openapi.json")

    def _drift_get(self, path: str, drift: driftapi.DriftService) -> None:
        parts = path.removeprefix("/api/v1/drift/").split("/")
        if parts == ["references"]:
            self._json(200, drift.references(self.query))
        elif parts == ["distribution"]:
            self._json(200, drift.distribution(self.query))
        elif parts == ["columns"]:
            self._json(200, drift.columns(self.query))
        elif parts == ["runs"]:
            self._json(200, drift.runs(self.query))
        elif len(parts) == 2 and parts[0] == "runs":
            self._json(200, drift.get(parts[1]))
        elif len(parts) == 3 and parts[0] == "runs" and parts[2] == "report":
            self.send_body(200, drift.report(parts[1]).encode(), "text/html; charset=utf-8")
        else:
            raise NotFound(f"no API route {path}; see /api/v1/openapi.json")

    def _drift_post(self, path: str, drift: driftapi.DriftService) -> None:
        if path == "/api/v1/drift/references":
            data = self.read_body(MAX_BILL_BYTES)
            self._json(201, drift.add_reference(data, self.query))
        elif path == "/api/v1/drift/runs":
            self._json(201, drift.run_request(_json_object(self.read_body(MAX_GATE_BYTES))))
        else:
            raise NotFound(f"no API route POST {path}; see /api/v1/openapi.json")

    def _gate_post(self, path: str, gate: gateapi.GateService) -> None:
        body = self.read_body(MAX_GATE_BYTES)
        if path == "/api/v1/gate/check":
            self._json(200, gate.check(_json_object(body)))
        elif path == "/api/v1/gate/verify":
            self._json(200, gate.verify(self.query))
        elif path == "/api/v1/gate/admission":
            self._json(200, gate.admission(body))
        else:
            raise NotFound(f"no API route POST {path}; see /api/v1/openapi.json")

    def _read(self, query: Callable[[Any], Any], status: int = 200) -> None:
        """Answer with ``query`` run on a cursor of its own."""
        self._json(status, self._read_value(query))

    def _window(self) -> Window:
        q = self.query
        return window(q.get("start"), q.get("end"), q.get("since"))

    def _who(self) -> dict[str, str | None]:
        return {"workload": self.query.get("workload"), "service": self.query.get("service")}

    def _trace(self, trace_id: str) -> None:
        """One trace; with ``spans=N`` folded to the N spans that explain it."""
        cap = self._int("spans", 0)
        if "spans" in self.query and cap < 1:
            raise BadRequest("spans must be at least 1 (the most spans the answer lists)")
        doc = self._team_trace(self._read_value(lambda c: traces.get_trace(c, trace_id)))
        self._json(200, tracefold.fold(doc, cap or doc["span_count"]))  # unfolded: all spans

    def _int(self, name: str, default: int) -> int:
        text = self.query.get(name)
        if text is None:
            return default
        if not (text.isascii() and text.isdigit()):  # int() would fail on '²'
            raise BadRequest(f"{name} must be a whole number, got {text[:20]!r}")
        if len(text) > len(str(_MAX_INT)) or int(text) > _MAX_INT:  # past DuckDB's BIGINT
            raise BadRequest(f"{name} must be at most {_MAX_INT:,}, got {text[:20]!r}")
        return int(text)

    def _trace_query(self) -> search.TraceQuery:
        q = self.query
        unknown = set(self.query_lists) - _SEARCH_PARAMS
        if unknown:
            raise BadRequest(
                f"unknown search parameter {sorted(unknown)[0][:40]!r}; "
                f"use {', '.join(sorted(_SEARCH_PARAMS))}"
            )
        columns: dict[str, str | tuple[str, ...]] = {}
        for param, column in search.COLUMN_FILTERS.items():
            values = tuple(dict.fromkeys(v for v in self.query_lists.get(param, []) if v))
            if values:  # a repeated parameter matches any of its values
                columns[column] = values if len(values) > 1 else values[0]
        return search.TraceQuery(
            columns=columns,
            min_duration_ns=self._ms_as_ns("min_duration_ms"),
            max_duration_ns=self._ms_as_ns("max_duration_ms"),
            status=q.get("status") or None,
            attrs=tuple(search.parse_attr(a) for a in self.query_lists.get("attr", [])),
            window=self._window(),
            sort=q.get("sort") or "newest",
            limit=self._int("limit", 20),
        )

    def _ms_as_ns(self, name: str) -> int | None:
        text = self.query.get(name)
        if not text:
            return None
        try:
            ms = float(text)
        except ValueError:
            ms = -1.0
        if not 0 <= ms < 1e12:
            raise BadRequest(f"{name} must be a number of milliseconds, got {text[:20]!r}")
        return int(ms * 1_000_000)

    def _metric(self, name: str, view: str) -> None:
        name = unquote(name)
        if view == "points":
            limit = self._int("limit", 1000)
            self._read(
                lambda c: {
                    "metric": name,
                    "points": metric_store.points(
                        c, name, self._window(), **self._who(), limit=limit
                    ),
                }
            )
        elif view == "rate":
            self._read(
                lambda c: {
                    "metric": name,
                    "series": metric_store.rates(c, name, self._window(), **self._who()),
                }
            )
        else:
            raise NotFound(f"no metric view {view!r}; use points or rate")

    def _logs(self, cursor: Any) -> list[dict[str, Any]]:
        q = self.query
        return logs.search(
            cursor,
            self._window(),
            **self._who(),
            trace_id=q.get("trace_id"),
            severity=q.get("severity"),
            text=q.get("q"),
            limit=self._int("limit", 100),
        )

    def _models(self) -> None:
        """``GET /api/v1/models``: the model inventory, as JSON or (``format=csv``) CSV."""
        document = self._read_value(lambda c: viewsapi.models(c, self.query, self.query_lists))
        if self.query.get("format") == "csv":
            body = viewsapi.models_csv(document["models"])
            self.send_body(200, body, "text/csv; charset=utf-8")
        else:
            self._json(200, document)

    def _read_value(self, query: Callable[[Any], Any]) -> Any:
        """``query`` run on a cursor of its own."""
        cursor = self.server.context.readers.cursor()
        try:
            return query(cursor)
        finally:
            cursor.close()

    def _gpus(self) -> None:
        by = self.query.get("by", "gpu")
        if by not in ("gpu", "workload"):
            raise BadRequest(f"by must be gpu or workload, got {by[:20]!r}")
        key = "gpus" if by == "gpu" else "workloads"
        self._read(lambda c: {key: gpu.utilization(c, self._window(), by)})

    def _pods(self) -> None:
        q = self.query
        self._read(
            lambda c: {
                "pods": inventory.pods(
                    c,
                    self._window(),
                    workload=q.get("workload"),
                    namespace=q.get("namespace"),
                    node=q.get("node"),
                    limit=self._int("limit", 1000),
                )
            }
        )

    def _json(self, status: int, document: Any) -> None:
        self.send_body(status, orjson.dumps(document), JSON)


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="onepane"'}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object; see /api/v1/openapi.json")
    return document


class ApiServer(httpbase.Server):
    """The API listener: HTTPS when given a TLS context."""

    def __init__(
        self,
        address: tuple[str, int],
        context: ApiContext,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(address, ApiHandler)
        self.context = context
        self.tls = tls_context is not None
        if tls_context is not None:
            self.socket = tls.wrap(self.socket, tls_context)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that fails the TLS handshake or hangs up is not the server's error."""
        if not self.tls:
            super().handle_error(request, client_address)


class AdmissionHandler(httpbase.Handler):
    """The webhook's TLS listener: AdmissionReview v1 by POST to /validate."""

    server: AdmissionServer

    def setup(self) -> None:
        tls.handshake(self.request)  # in this request's thread, not the accept loop
        super().setup()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        try:
            if path not in ("/validate", ""):
                raise NotFound(f"no webhook at {path}; the API server must call /validate")
            body = self.read_body(MAX_GATE_BYTES)
            self.send_body(200, orjson.dumps(self.server.gate.admission(body)), JSON)
        except BadRequest as exc:
            self.send_body(400, orjson.dumps({"error": str(exc)}), JSON)
        except NotFound as exc:
            self.send_body(404, orjson.dumps({"error": str(exc)}), JSON)
        except PayloadTooLarge as exc:
            self.send_body(413, orjson.dumps({"error": str(exc)}), JSON)
        except Exception as exc:  # a bug: answer it (the API server's failurePolicy applies)
            log.exception("admission webhook %s failed", self.path[:200])
            error = f"internal error: {type(exc).__name__}: {exc}"[:500]
            self.send_body(500, orjson.dumps({"error": error}), JSON)


class AdmissionServer(httpbase.Server):
    """HTTPS with the configured certificate and key."""

    def __init__(
        self, address: tuple[str, int], gate: gateapi.GateService, files: gateapi.AdmissionConfig
    ) -> None:
        context = tls.server_context(files.cert, files.key, "admission webhook")
        super().__init__(address, AdmissionHandler)
        self.socket = tls.wrap(self.socket, context)
        self.gate = gate

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that fails the TLS handshake or hangs up is not the server's error."""
