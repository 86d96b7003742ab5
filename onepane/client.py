"""A small client for a running Onepane server's HTTP API, used by the CLI.

Errors the server reports come back as the matching Onepane errors (400 → BadRequest,
404 → NotFound, 409 → Ambiguous with the matches); a server that does not answer is
``ServerUnreachable``, which commands turn into exit code 2. When ``$ONEPANE_TOKEN`` is
set, every request carries it as ``Authorization: Bearer``; a refused token (401, 403) is
``AuthError``, exit code 2.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from onepane.errors import Ambiguous, BadRequest, NotFound, OnepaneError, ServerUnreachable

DEFAULT_SERVER = "http://127.0.0.1:8320"
SERVER_ENV = "ONEPANE_SERVER"
TOKEN_ENV = "ONEPANE_TOKEN"


class AuthError(OnepaneError):
    """The server wants a token, or a token with another scope or team."""

    exit_code = 2


def default_server() -> str:
    """``$ONEPANE_SERVER``, else the API address ``onepane up`` listens on."""
    return os.environ.get(SERVER_ENV) or DEFAULT_SERVER


class ApiClient:
    """GETs JSON documents from ``base`` (e.g. ``http://127.0.0.1:8320``)."""

    def __init__(self, base: str, timeout_s: float = 30.0, token: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s
        self.token = token or os.environ.get(TOKEN_ENV) or None

    def get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        return self._call(path, params)

    def get_bytes(self, path: str) -> bytes:
        """A document that is not JSON (an HTML report), as its bytes."""
        return self._call(path, (), raw=True)

    def post(
        self, path: str, body: bytes, params: Sequence[tuple[str, str]] = (), content_type: str = ""
    ) -> Any:
        return self._call(path, params, body, content_type or "application/octet-stream")

    def delete(self, path: str) -> Any:
        return self._call(path, (), method="DELETE")

    def _call(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        body: bytes | None = None,
        content_type: str = "",
        raw: bool = False,
        method: str | None = None,
    ) -> Any:
        url = self.base + path + (f"?{urlencode(params)}" if params else "")
        method = method or ("GET" if body is None else "POST")
        request = urllib.request.Request(url, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data = response.read()
                return data if raw else orjson.loads(data)
        except urllib.error.HTTPError as exc:
            raise _error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachable(
                f"cannot reach the Onepane server at {self.base}: {reason}. Start it with "
                f"`onepane up`, or point to it with --server URL (or ${SERVER_ENV})."
            ) from None

    def trace(self, trace_id: str) -> dict[str, Any]:
        """One trace by id or unique prefix of at least 8 hex characters."""
        return self.get(f"/api/v1/traces/{quote(trace_id, safe='')}")

    def search_traces(self, params: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        return self.get("/api/v1/traces", params)["traces"]


def _error(exc: urllib.error.HTTPError) -> OnepaneError:
    try:
        document = orjson.loads(exc.read())
        message = document["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError, OSError):
        document, message = {}, f"HTTP {exc.code} {exc.reason}"
    if exc.code == 400:
        return BadRequest(message)
    if exc.code == 404:
        return NotFound(message)
    if exc.code == 409:
        return Ambiguous(message, document.get("matches", []))
    if exc.code == 413:
        return BadRequest(message)
    if exc.code in (401, 403):
        where = "" if os.environ.get(TOKEN_ENV) else f" (set ${TOKEN_ENV} to a token)"
        return AuthError(f"the server refused the request{where}: {message}")
    return OnepaneError(f"the server answered {exc.code}: {message}")
