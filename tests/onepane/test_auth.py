"""Tokens on every listener of a live `onepane serve`: OTLP/HTTP and OTLP/gRPC ingest with
the OpenTelemetry SDK's own exporters, the API's scopes, revocation, team-restricted reads,
the dashboards' API module, and the refusal to listen beyond loopback without tokens.

One server serves the module. Its first (admin) token is made offline on the store file, as
a user bootstraps; the others through the API with it. The catalog gives ``shop/checkout``
to team payments and ``bank/ledger`` to team finance.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from streamlit.testing.v1 import AppTest

from dashboards import api as dashboard_api
from onepane.testing import LiveServer, run_onepane, wait_for

CATALOG = """\
catalog:
  shop/checkout: {kind: app, team: payments}
  bank/ledger: {kind: app, team: finance}
"""
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass
class Served:
    server: LiveServer
    tokens: dict[str, str]  # name -> secret

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON body) of one API request, with ``token`` if given."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server.api_url + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        status, _, document = self.call("GET", path, token)
        return status, document


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("auth")
    db, config = tmp / "onepane.duckdb", tmp / "onepane.yaml"
    config.write_text(CATALOG)
    made = run_onepane("token", "create", "--db", str(db), "--name", "root", "--scope", "admin")
    assert made.returncode == 0, made.stderr
    assert "not shown again" in made.stderr
    tokens = {"admin": made.stdout.strip()}
    server = LiveServer(db, "--config", str(config), "--decoders", "0")
    try:
        result = Served(server, tokens)
        for name, scopes, team in [
            ("ingest", ["ingest"], None),
            ("read", ["read"], None),
            ("gate", ["gate"], None),
            ("payments", ["read"], "payments"),
        ]:
            body = {"name": name, "scopes": scopes, "team": team}
            status, _, created = result.call("POST", "/api/v1/tokens", tokens["admin"], body)
            assert status == 201, created
            assert created["token"]["scopes"] == scopes and created["token"]["team"] == team
            tokens[name] = created["secret"]
        yield result
    finally:
        server.stop()


def make_spans(service: str, namespace: str) -> tuple[str, list[ReadableSpan]]:
    """One server span of ``namespace/service`` (its workload), made by the SDK."""
    memory = InMemorySpanExporter()
    resource = Resource.create({"service.name": service, "service.namespace": namespace})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("auth-test").start_as_current_span("GET /", kind=SpanKind.SERVER) as s:
        trace_id = format(s.get_span_context().trace_id, "032x")
    provider.shutdown()
    return trace_id, list(memory.get_finished_spans())


def http_export(served: Served, spans: list[ReadableSpan], token: str | None) -> SpanExportResult:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    endpoint = f"{served.server.otlp_url}/v1/traces"
    exporter = HttpSpanExporter(endpoint=endpoint, headers=headers, timeout=10)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def grpc_export(served: Served, spans: list[ReadableSpan], token: str | None) -> SpanExportResult:
    headers = {"authorization": f"Bearer {token}"} if token else None
    exporter = GrpcSpanExporter(
        endpoint=served.server.grpc_address, insecure=True, headers=headers, timeout=10
    )
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def stored(served: Served, trace_id: str) -> bool:
    status, document = served.get(f"/api/v1/traces/{trace_id}", served.tokens["read"])
    assert status in (200, 404), document
    return status == 200


@pytest.mark.parametrize("export", [http_export, grpc_export], ids=["http", "grpc"])
def test_sdk_exporters_store_spans_only_with_an_ingest_token(served: Served, export) -> None:
    refused = {}
    for name in (None, "bogus", "read"):
        trace_id, spans = make_spans("checkout", "shop")
        token = {"bogus": "onepane_not-a-token", None: None}.get(name, served.tokens.get(name))
        refused[name] = (export(served, spans, token), stored(served, trace_id))
    assert refused == {n: (SpanExportResult.FAILURE, False) for n in (None, "bogus", "read")}
    for name in ("ingest", "admin"):
        trace_id, spans = make_spans("checkout", "shop")
        assert export(served, spans, served.tokens[name]) is SpanExportResult.SUCCESS
        assert stored(served, trace_id)


def test_otlp_http_refusals_are_status_bodies_in_the_request_encoding(served: Served) -> None:
    body = ExportTraceServiceRequest().SerializeToString()
    answers = {}
    for token, media in [(None, "application/x-protobuf"), ("read", "application/json")]:
        request = urllib.request.Request(
            f"{served.server.otlp_url}/v1/traces",
            data=body if media.endswith("protobuf") else b"{}",
            headers={"Content-Type": media},
        )
        if token:
            request.add_header("Authorization", f"Bearer {served.tokens[token]}")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        answers[token] = caught.value
    unauthenticated, forbidden = answers[None], answers["read"]
    assert unauthenticated.code == 401
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")
    assert unauthenticated.headers["Content-Type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(unauthenticated.read())
    assert status.code == 16  # google.rpc.Code UNAUTHENTICATED
    assert "Authorization: Bearer <token>" in status.message
    assert "onepane token create --scope ingest" in status.message
    assert forbidden.code == 403 and forbidden.headers["Content-Type"] == "application/json"
    message = json.loads(forbidden.read())["message"]
    assert "has scope read but this needs 'ingest'" in message


def test_otlp_grpc_refusals_name_what_to_send(served: Served) -> None:
    body = ExportTraceServiceRequest().SerializeToString()
    with grpc.insecure_channel(served.server.grpc_address) as channel:
        export = channel.unary_unary(TRACE_EXPORT)
        codes = {}
        for name in (None, "read"):
            metadata = [("authorization", f"Bearer {served.tokens[name]}")] if name else None
            with pytest.raises(grpc.RpcError) as caught:
                export(body, metadata=metadata, timeout=10)
            codes[name] = (caught.value.code(), caught.value.details())
        ok = export(body, metadata=[("authorization", f"Bearer {served.tokens['ingest']}")])
    assert ok == b""  # an empty ExportTraceServiceResponse: accepted
    assert codes[None][0] == grpc.StatusCode.UNAUTHENTICATED
    assert "send Authorization: Bearer <token>" in codes[None][1]
    assert codes["read"][0] == grpc.StatusCode.PERMISSION_DENIED
    assert "needs 'ingest'" in codes["read"][1]


def test_api_routes_need_their_scope(served: Served) -> None:
    t = served.tokens
    asked = {
        ("GET", "/healthz", None): 200,
        ("GET", "/api/v1/openapi.json", None): 200,
        ("GET", "/api/v1/traces", None): 401,
        ("GET", "/api/v1/traces", "ingest"): 403,
        ("GET", "/api/v1/traces", "read"): 200,
        ("GET", "/metrics", None): 401,
        ("GET", "/api/v1/tokens", "read"): 403,
        ("GET", "/api/v1/tokens", "admin"): 200,
        ("POST", "/api/v1/gate/check", "read"): 403,
        ("POST", "/api/v1/cost/rollup", "gate"): 403,
        ("POST", "/api/v1/cost/rollup", "admin"): 200,
        ("POST", "/api/v1/tokens", "gate"): 403,
    }
    answered = {
        (method, path, name): served.call(
            method, path, t.get(name or ""), {} if method == "POST" else None
        )[0]
        for method, path, name in asked
    }
    assert answered == asked
    _, headers, body = served.call("GET", "/api/v1/traces")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert "send Authorization: Bearer <token>" in body["error"]
    assert "onepane token create --scope read" in body["error"]
    for header in ("Basic dXNlcjpwYXNz", "Bearer", f"Token {t['read']}"):
        request = urllib.request.Request(served.server.api_url + "/api/v1/traces")
        request.add_header("Authorization", header)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 401
        assert "is not 'Bearer <token>'" in json.loads(caught.value.read())["error"]
    request = urllib.request.Request(served.server.api_url + "/metrics")
    request.add_header("Authorization", f"bearer {t['read']}")  # the scheme in any case
    with urllib.request.urlopen(request, timeout=10) as response:
        assert b"onepane_" in response.read()


def test_a_revoked_token_is_refused_at_once(served: Served) -> None:
    admin = served.tokens["admin"]
    status, _, created = served.call(
        "POST", "/api/v1/tokens", admin, {"name": "ci", "scopes": ["ingest"]}
    )
    assert status == 201 and created["secret"].startswith("onepane_")
    trace_id, spans = make_spans("checkout", "shop")
    assert http_export(served, spans, created["secret"]) is SpanExportResult.SUCCESS
    assert stored(served, trace_id)
    token_id = created["token"]["id"]
    status, _, revoked = served.call("DELETE", f"/api/v1/tokens/{token_id}", admin)
    assert status == 200 and revoked["token"]["revoked_unix_nano"] is not None
    _, spans = make_spans("checkout", "shop")
    assert http_export(served, spans, created["secret"]) is SpanExportResult.FAILURE
    assert grpc_export(served, spans, created["secret"]) is SpanExportResult.FAILURE
    status, listing = served.get("/api/v1/tokens", admin)
    [shown] = [token for token in listing["tokens"] if token["id"] == token_id]
    assert shown["revoked_unix_nano"] == revoked["token"]["revoked_unix_nano"]
    assert created["secret"] not in json.dumps(listing)
    assert all(set(token) >= {"id", "name", "scopes", "team"} for token in listing["tokens"])
    assert not any("sha256" in key or "secret" in key for t in listing["tokens"] for key in t)
    assert served.call("DELETE", "/api/v1/tokens/9999", admin)[0] == 404


def test_the_store_holds_no_secret(served: Served) -> None:
    files = [served.server.db, Path(f"{served.server.db}.wal")]
    content = b"".join(path.read_bytes() for path in files if path.exists())
    assert content
    for secret in served.tokens.values():
        assert secret.encode() not in content


def test_a_team_token_reads_only_its_team(served: Served) -> None:
    ingest, team = served.tokens["ingest"], served.tokens["payments"]
    own, spans = make_spans("checkout", "shop")
    assert http_export(served, spans, ingest) is SpanExportResult.SUCCESS
    other, spans = make_spans("ledger", "bank")
    assert http_export(served, spans, ingest) is SpanExportResult.SUCCESS

    found = wait_for(
        "the team's trace in a search",
        lambda: served.get("/api/v1/traces?workload=shop/checkout&limit=1000", team),
        lambda answer: answer[0] != 200 or own in {t["trace_id"] for t in answer[1]["traces"]},
    )
    assert found[0] == 200
    assert served.get(f"/api/v1/traces/{own}", team)[0] == 200
    status, refused = served.get(f"/api/v1/traces/{other}", team)
    assert status == 403 and "bank/ledger" in refused["error"]
    assert served.get(f"/api/v1/traces/{other}", served.tokens["read"])[0] == 200
    status, refused = served.get("/api/v1/traces?workload=bank/ledger", team)
    assert status == 403 and "not team 'payments'" in refused["error"]
    status, refused = served.get("/api/v1/traces", team)
    assert status == 403 and "shop/checkout" in refused["error"]  # it names what it may read

    assert served.get("/api/v1/unit-costs?workload=shop/checkout", team)[0] == 200
    assert served.get("/api/v1/unit-costs?workload=bank/ledger", team)[0] == 403
    status, refused = served.get("/api/v1/allocation?aggregate=team", team)
    assert status == 403 and "without --team" in refused["error"]
    assert served.get("/api/v1/allocation?aggregate=team", served.tokens["read"])[0] == 200
    assert served.get("/api/v1/models?team=finance", team)[0] == 403
    assert served.get("/api/v1/models", team)[0] == 200
    assert served.get("/metrics", team)[0] == 403


def test_the_dashboards_send_the_token(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPANE_SERVER", served.server.api_url)
    monkeypatch.delenv("ONEPANE_TOKEN", raising=False)
    with pytest.raises(dashboard_api.AuthRequired, match="401"):
        dashboard_api.get("/api/v1/traces")
    monkeypatch.setenv("ONEPANE_TOKEN", served.tokens["read"])
    assert "traces" in dashboard_api.get("/api/v1/traces")
    answers = dashboard_api.get_many({"t": ("/api/v1/traces", None), "h": ("/healthz", None)})
    assert "traces" in answers["t"] and answers["h"]["status"] == "ok"


def _page() -> None:
    import streamlit as st

    from dashboards import api

    try:
        st.write(f"{len(api.get('/api/v1/traces')['traces'])} traces")
    except api.ApiError as exc:
        st.error(str(exc))


def test_a_page_asks_for_a_token_on_401(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPANE_SERVER", served.server.api_url)
    monkeypatch.delenv("ONEPANE_TOKEN", raising=False)
    at = AppTest.from_function(_page, default_timeout=30).run()
    assert "401" in at.error[0].value
    [asked] = at.sidebar.text_input
    assert asked.key == "onepane_token_input" and asked.proto.type == asked.proto.PASSWORD
    asked.input(served.tokens["read"]).run()
    assert not at.error and at.markdown[0].value.endswith("traces")
    assert at.session_state["onepane_token"] == served.tokens["read"]
    assert not at.sidebar.text_input  # asked no more
    assert served.tokens["read"] not in str(dict(at.query_params))
