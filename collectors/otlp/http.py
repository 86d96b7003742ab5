"""The OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs`` on :4318,
exactly as the OTLP spec says.

A request is answered 200 only after its rows are committed. Bad bodies get 400, bodies
over the limit 413 (also after decompression), other content types 415, a full write queue
429 with Retry-After, a store that cannot write 503; every error body is a
``google.rpc.Status`` in the request's encoding.
"""

from __future__ import annotations

import traceback

from collectors.otlp import wire
from collectors.otlp.ingest import Ingest
from onepane import httpbase
from onepane.auth import Authenticator, Forbidden, Unauthenticated
from onepane.errors import (
    BadRequest,
    OnepaneError,
    Overloaded,
    PayloadTooLarge,
    StoreError,
    Unavailable,
    UnsupportedMediaType,
)

_STATUS_FOR = {
    Unauthenticated: 401,
    Forbidden: 403,
    BadRequest: 400,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Overloaded: 429,
    Unavailable: 503,
    StoreError: 503,
}
PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}


class OTLPHttpHandler(httpbase.Handler):
    server: OTLPHttpServer
    signal = "unknown"

    def do_POST(self) -> None:
        try:
            self._post()
        except ConnectionError:  # the client hung up (its timeout): no one to answer
            self.close_connection = True

    def _post(self) -> None:
        signal = self.signal = PATHS.get(self.path.split("?", 1)[0], "unknown")
        if signal == "unknown":
            self.close_connection = True  # the body is left unread
            self._error(
                404,
                f"no OTLP endpoint at {self.path[:200]}; "
                "send to /v1/traces, /v1/metrics or /v1/logs",
                wire.PROTOBUF,
            )
            return
        media, body_read = None, False
        try:
            media = wire.media_type(self.headers.get("Content-Type"))
            if self.server.auth is not None:
                self.server.auth.check(self.headers.get("Authorization"), "ingest")
            # The slot is taken before the body is read, so at most max_in_flight bodies
            # (each at most 64 MiB, also after gunzip) are in memory at once.
            ingest = self.server.ingest
            with ingest.admission():
                body = self.read_body(ingest.max_body_bytes)
                body_read = True
                body = wire.decompress(
                    body, self.headers.get("Content-Encoding"), ingest.max_body_bytes
                )
                response = ingest.export(signal, body, media == wire.JSON)
            self._count(200)
            self.send_body(200, wire.encode_message(response, media), media)
        except OnepaneError as exc:
            if not body_read:  # an unread body would be parsed as the next request
                self.close_connection = True
            self._fail(exc, media or wire.JSON)
        except ConnectionError:
            raise
        except Exception as exc:  # a bug: answer 500 with a Status, keep serving
            traceback.print_exc()
            self.close_connection = True
            self._error(500, f"internal error: {exc!r}; please report it", media or wire.JSON)

    def do_GET(self) -> None:
        self.signal = PATHS.get(self.path.split("?", 1)[0], "unknown")
        self._error(405, "OTLP endpoints take POST", wire.PROTOBUF, {"Allow": "POST"})

    def _fail(self, exc: OnepaneError, media: str) -> None:
        status = next((code for kind, code in _STATUS_FOR.items() if isinstance(exc, kind)), 500)
        headers = {}
        if isinstance(exc, Overloaded):
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        elif isinstance(exc, Unauthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="onepane"'
        self._error(status, str(exc), media, headers)

    def _error(
        self, status: int, message: str, media: str, headers: dict[str, str] | None = None
    ) -> None:
        self._count(status)
        self.send_body(status, wire.status_body(status, message, media), media, headers)

    def _count(self, status: int) -> None:
        self.server.ingest.metrics.requests.labels(self.signal, "http", str(status)).inc()


class OTLPHttpServer(httpbase.Server):
    """The OTLP/HTTP listener."""

    def __init__(
        self, address: tuple[str, int], ingest: Ingest, auth: Authenticator | None = None
    ) -> None:
        super().__init__(address, OTLPHttpHandler)
        self.ingest = ingest
        self.auth = auth
