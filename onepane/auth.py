"""Bearer tokens on every listener: who may ingest, read, gate or administer.

Auth is on when the store holds a valid token, or when any listener is bound to an address
other than loopback (a server that does so without tokens refuses to start). Valid tokens
are kept in memory by the SHA-256 of their secret, so checking a request costs one hash and
one dictionary lookup, no query; the cache is reloaded whenever a token is created or
revoked through this server.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from collections.abc import Iterable

from onepane.errors import ConfigError, OnepaneError
from store.tokens import Token, hash_secret

CREATE_HINT = "create one with `onepane token create --scope {scope}`"


class Unauthenticated(OnepaneError):
    """No token, or one that is not valid (HTTP 401 / gRPC UNAUTHENTICATED)."""


class Forbidden(OnepaneError):
    """A valid token without the scope or team the request needs (HTTP 403 /
    gRPC PERMISSION_DENIED)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (any case of "Bearer")."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class Authenticator:
    """The valid tokens, by hash, and whether a request must carry one."""

    def __init__(self, tokens: dict[str, Token], exposed: bool) -> None:
        self._tokens = tokens
        self._exposed = exposed  # some listener is reachable from other machines
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._exposed or bool(self._tokens)

    def reload(self, tokens: dict[str, Token]) -> None:
        with self._lock:
            self._tokens = tokens

    def check(self, header: str | None, scope: str) -> Token | None:
        """The token that authorises ``scope``; None when auth is off. Raises Unauthenticated
        or Forbidden with what to do."""
        if not self.enabled:
            return None
        secret = bearer(header)
        if secret is None:
            hint = "" if header is None else " (the Authorization header is not 'Bearer <token>')"
            raise Unauthenticated(
                f"this server requires a token{hint}: send Authorization: Bearer <token>; "
                + CREATE_HINT.format(scope=scope)
            )
        digest = hash_secret(secret)
        token = self._tokens.get(digest)
        # The lookup is by a hash of the secret, so its timing tells nothing about the
        # secret; the final comparison is constant-time all the same.
        if token is None or not hmac.compare_digest(token.secret_sha256, digest):
            raise Unauthenticated(
                "the token is not valid (unknown or revoked): send a current one; "
                + CREATE_HINT.format(scope=scope)
            )
        if not token.allows(scope):
            raise Forbidden(
                f"token {token.name!r} has scope {', '.join(token.scopes)} but this needs "
                f"{scope!r}: use a token with that scope; " + CREATE_HINT.format(scope=scope)
            )
        return token


def authenticator(tokens: dict[str, Token], hosts: Iterable[str]) -> Authenticator:
    """The authenticator for listeners on ``hosts``; ConfigError when one is reachable from
    other machines and no token exists to protect it."""
    exposed = sorted({host for host in hosts if not is_loopback(host)})
    if exposed and not tokens:
        raise ConfigError(
            f"refusing to listen on {exposed[0]} without auth: create a token first with "
            "`onepane token create --db PATH --name admin --scope admin` or bind to 127.0.0.1"
        )
    return Authenticator(tokens, bool(exposed))


def api_scope(method: str, path: str) -> str | None:
    """The scope a request to the HTTP API needs; None for the open routes (health and the
    OpenAPI document)."""
    if path in ("/healthz", "/api/v1/openapi.json", "/openapi.json"):
        return None
    if path == "/api/v1/tokens" or path.startswith("/api/v1/tokens/"):
        return "admin"
    if method in ("GET", "HEAD"):
        return "read"
    if path.startswith("/api/v1/gate/"):
        return "gate"
    return "admin"  # billing imports, cost rollups, drift references and runs
