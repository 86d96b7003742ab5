"""``/api/v1/tokens``: create, list and revoke tokens on a running server (scope admin).

Writes go through the writer like every other write; once committed, the server's
authenticator is reloaded, so a new token works and a revoked one stops working at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import duckdb

from onepane.auth import Authenticator
from onepane.errors import BadRequest
from store import db, tokens

Apply = Callable[[Callable[[duckdb.DuckDBPyConnection], Any], int], Any]


class TokenService:
    def __init__(
        self, cursor: Callable[[], duckdb.DuckDBPyConnection], apply: Apply, auth: Authenticator
    ) -> None:
        self._cursor = cursor
        self._apply = apply
        self.auth = auth

    def list(self) -> dict[str, Any]:
        return {"tokens": [token.document() for token in self._read(tokens.list_tokens)]}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/tokens`` with ``{"name", "scopes", "team"}``: the token and, this
        once, its secret."""
        unknown = set(body) - {"name", "scopes", "team"}
        if unknown:
            raise BadRequest(f"unknown field {sorted(unknown)[0][:40]!r}; use name, scopes, team")
        name, scopes, team = body.get("name"), body.get("scopes"), body.get("team")
        if not isinstance(name, str):
            raise BadRequest('name must be text, e.g. {"name": "ci", "scopes": ["ingest"]}')
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise BadRequest('scopes must be a list, e.g. ["read", "gate"]')
        if team is not None and not isinstance(team, str):
            raise BadRequest("team must be text or null")
        tokens.check_scopes(scopes)
        now = time.time_ns()
        token, secret = self._apply(lambda c: tokens.create(c, name, scopes, team, now), 1)
        self._reload()
        return {"token": token.document(), "secret": secret}

    def revoke(self, text: str) -> dict[str, Any]:
        """``DELETE /api/v1/tokens/{id}``."""
        if not (text.isascii() and text.isdigit() and len(text) < 10):
            raise BadRequest(f"a token id is a whole number, got {text[:20]!r}")
        now = time.time_ns()
        token = self._apply(lambda c: tokens.revoke(c, int(text), now), 1)
        self._reload()
        return {"token": token.document()}

    def _reload(self) -> None:
        self.auth.reload(self._read(tokens.active))

    def _read(self, query: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        return db.read_with(self._cursor, query)


def openapi_paths(error: dict[str, Any]) -> dict[str, Any]:
    """The token routes in the OpenAPI document."""
    token = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string", "enum": list(tokens.SCOPES)}},
            "team": {"type": ["string", "null"]},
            "created_unix_nano": {"type": "integer"},
            "revoked_unix_nano": {"type": ["integer", "null"]},
        },
    }

    def answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    created = {"type": "object", "properties": {"token": token, "secret": {"type": "string"}}}
    return {
        "/api/v1/tokens": {
            "get": {
                "summary": "Every token, revoked ones too (never a secret or its hash)",
                "responses": {
                    "200": answer("The tokens", {"type": "object", "properties": {
                        "tokens": {"type": "array", "items": token}}}),
                },
            },
            "post": {
                "summary": "Create a token; its secret is in this answer only",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["name", "scopes"],
                        "properties": {
                            "name": {"type": "string"},
                            "scopes": token["properties"]["scopes"],
                            "team": {"type": ["string", "null"],
                                     "description": "restrict the token's reads to this team"},
                        },
                    }}},
                },
                "responses": {"201": answer("The token and its secret", created), "400": error},
            },
        },
        "/api/v1/tokens/{token_id}": {
            "delete": {
                "summary": "Revoke a token: refused from then on",
                "parameters": [{"name": "token_id", "in": "path", "required": True,
                                "schema": {"type": "integer"}}],
                "responses": {
                    "200": answer("The revoked token", {"type": "object",
                                                        "properties": {"token": token}}),
                    "400": error,
                    "404": error,
                },
            }
        },
    }  # fmt: skip
