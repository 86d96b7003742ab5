"""Tokens in the store: created, listed, revoked and looked up by the hash of their secret.

A secret looks like ``onepane_<43 url-safe characters>`` and is returned once, by
``create``; the store keeps only its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import duckdb

from onepane.errors import BadRequest, NotFound

SCOPES = ("ingest", "read", "gate", "admin")
PREFIX = "onepane_"
_COLUMNS = (
    "SELECT token_id, name, scopes, team, secret_sha256, epoch_ns(created_at), "
    "epoch_ns(revoked_at) FROM tokens"
)


@dataclass(frozen=True)
class Token:
    token_id: int
    name: str
    scopes: tuple[str, ...]
    team: str | None
    secret_sha256: str
    created_ns: int
    revoked_ns: int | None = None

    def allows(self, scope: str) -> bool:
        """``admin`` implies every scope."""
        return "admin" in self.scopes or scope in self.scopes

    def document(self) -> dict[str, Any]:
        """What the API and the CLI show: never the hash."""
        return {
            "id": self.token_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "team": self.team,
            "created_unix_nano": self.created_ns,
            "revoked_unix_nano": self.revoked_ns,
        }


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The scopes, deduplicated in their canonical order; BadRequest for an unknown one."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        given = repr(unknown[0])[:40] if unknown else "none"
        raise BadRequest(f"scope {given} is not one of {', '.join(SCOPES)}; give at least one")
    return tuple(s for s in SCOPES if s in scopes)


def create(
    conn: duckdb.DuckDBPyConnection,
    name: str,
    scopes: list[str] | tuple[str, ...],
    team: str | None,
    now_ns: int,
) -> tuple[Token, str]:
    """A new token and its secret (the only time the secret exists outside the caller)."""
    if not name.strip() or len(name) > 200:
        raise BadRequest("a token needs a name of 1 to 200 characters, e.g. --name ci-ingest")
    if team is not None and (not team.strip() or len(team) > 200):
        raise BadRequest("team must be 1 to 200 characters")
    secret = new_secret()
    row = conn.execute("SELECT coalesce(max(token_id), 0) + 1 FROM tokens").fetchone()
    token = Token(row[0], name, check_scopes(scopes), team, hash_secret(secret), now_ns)
    conn.execute(
        "INSERT INTO tokens VALUES ($id, $name, $scopes, $team, $hash, "
        "make_timestamp_ns($created), NULL)",
        {
            "id": token.token_id,
            "name": token.name,
            "scopes": list(token.scopes),
            "team": team,
            "hash": token.secret_sha256,
            "created": now_ns,
        },
    )
    return token, secret


def list_tokens(conn: duckdb.DuckDBPyConnection) -> list[Token]:
    """Every token, revoked ones too, oldest first."""
    return [_token(row) for row in conn.execute(f"{_COLUMNS} ORDER BY token_id").fetchall()]


def active(conn: duckdb.DuckDBPyConnection) -> dict[str, Token]:
    """The tokens not revoked, by the hash of their secret."""
    rows = conn.execute(f"{_COLUMNS} WHERE revoked_at IS NULL").fetchall()
    return {token.secret_sha256: token for token in map(_token, rows)}


def lookup(conn: duckdb.DuckDBPyConnection, secret_sha256: str) -> Token | None:
    """The valid token whose secret hashes to ``secret_sha256``."""
    row = conn.execute(
        f"{_COLUMNS} WHERE secret_sha256 = $hash AND revoked_at IS NULL", {"hash": secret_sha256}
    ).fetchone()
    return _token(row) if row else None


def revoke(conn: duckdb.DuckDBPyConnection, token_id: int, now_ns: int) -> Token:
    """Revoke a token (revoking one already revoked keeps its first revocation time)."""
    conn.execute(
        "UPDATE tokens SET revoked_at = coalesce(revoked_at, make_timestamp_ns($now)) "
        "WHERE token_id = $id",
        {"id": token_id, "now": now_ns},
    )
    row = conn.execute(f"{_COLUMNS} WHERE token_id = $id", {"id": token_id}).fetchone()
    if row is None:
        raise NotFound(f"no token {token_id}; see `onepane token list`")
    return _token(row)


def _token(row: tuple[Any, ...]) -> Token:
    token_id, name, scopes, team, digest, created, revoked = row
    return Token(token_id, name, tuple(scopes), team, digest, created, revoked)
