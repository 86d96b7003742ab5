"""The dashboards' one door to Onepane: GET requests to the server's HTTP API.

The app never opens the DuckDB file (the server owns it); every figure on a page is what
one of these calls returned, so a page and `curl` always agree. Each request carries the
session's token (dashboards/auth.py) as ``Authorization: Bearer``; a 401 asks for one.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from dashboards import auth

DEFAULT_SERVER = "http://127.0.0.1:8320"
TIMEOUT_S = 30.0

Params = Mapping[str, str | int | float | list[str] | tuple[str, ...] | None]


class ApiError(Exception):
    """The server could not be reached or refused a request; the message says which."""


class AuthRequired(ApiError):
    """The API answered 401: it wants a (valid) token."""


def server_url() -> str:
    """The API's base URL: ``$ONEPANE_SERVER``, else the local default."""
    return (os.environ.get("ONEPANE_SERVER") or DEFAULT_SERVER).rstrip("/")


def url(path: str, params: Params | None = None) -> str:
    """The full URL of an API path with its non-empty parameters (a list repeats one:
    ``workload=a&workload=b``)."""
    query = [
        (k, str(item))
        for k, v in (params or {}).items()
        for item in (v if isinstance(v, list | tuple) else [v])
        if item not in (None, "")
    ]
    return server_url() + path + (f"?{urlencode(query)}" if query else "")


def get_bytes(path: str, params: Params | None = None, token: str | None = None) -> bytes:
    """The body of ``GET path`` (with ``token``, else the session's); ApiError with the
    server's own message otherwise, AuthRequired (after asking for a token) on 401."""
    request = urllib.request.Request(url(path, params))
    token = token or auth.token()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        message = _error_text(exc.read())
        if exc.code == 401:
            auth.ask(message)
            raise AuthRequired(f"{path}: 401 {message}") from None
        raise ApiError(f"{path}: {exc.code} {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiError(
            f"cannot reach the Onepane API at {server_url()} ({reason}); start it with "
            "`onepane up` or point $ONEPANE_SERVER at it"
        ) from None


def get(path: str, params: Params | None = None, token: str | None = None) -> dict[str, Any]:
    """``GET path`` as a JSON document."""
    return json.loads(get_bytes(path, params, token))


def get_many(requests: Mapping[str, tuple[str, Params | None]]) -> dict[str, Any]:
    """Several GETs at once (a page's first render waits for the slowest, not the sum).

    Each value is the document, or the ApiError it raised, so one failing panel does not
    blank the page."""
    return start_many(requests).result()


def start_many(requests: Mapping[str, tuple[str, Params | None]]) -> Pending:
    """Start several GETs at once and return at once: a page starts a slow call it needs
    last, draws what it can meanwhile, then takes the answers with ``.result()``."""
    token = auth.token()  # here: the worker threads cannot read the session
    pool = ThreadPoolExecutor(max_workers=max(1, min(8, len(requests))))
    futures = {
        name: pool.submit(get, path, params, token) for name, (path, params) in requests.items()
    }
    pool.shutdown(wait=False)  # the threads end with their calls
    return Pending(futures)


class Pending:
    """GETs under way (:func:`start_many`)."""

    def __init__(self, futures: Mapping[str, Future[dict[str, Any]]]) -> None:
        self._futures = futures

    def result(self) -> dict[str, Any]:
        """Each call's document, or the ApiError it raised (as :func:`get_many`)."""
        out: dict[str, Any] = {}
        for name, future in self._futures.items():
            try:
                out[name] = future.result()
            except ApiError as exc:
                out[name] = exc
                if isinstance(exc, AuthRequired):
                    auth.ask(str(exc))  # in the page's thread, where widgets can be drawn
        return out


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body[:200].decode(errors="replace")))
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")
