"""The OTLP/HTTP receiver: ``POST /v1/traces`` on :4318, exactly as the OTLP spec says.

A request is answered 200 only after its spans are committed. Bad bodies get 400, bodies
over the limit 413 (also after decompression), other content types 415, a full write queue
429 with Retry-After, a store that cannot write 503; every error body is a
``google.rpc.Status`` in the request's encoding.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from collectors.otlp import wire
from collectors.otlp.decoders import DecoderPool
from onepane import httpbase
from onepane.errors import (
    BadRequest,
    OnepaneError,
    Overloaded,
    PayloadTooLarge,
    StoreError,
    Unavailable,
    UnsupportedMediaType,
)
from onepane.metrics import ServerMetrics
from store.writer import SpanWriter

_STATUS_FOR = {
    BadRequest: 400,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Overloaded: 429,
    Unavailable: 503,
    StoreError: 503,
}
COMMIT_TIMEOUT_S = 60.0


@dataclass
class Ingest:
    """What the receiver needs from the rest of the server."""

    decoders: DecoderPool
    writer: SpanWriter
    metrics: ServerMetrics
    max_body_bytes: int = wire.MAX_BODY_BYTES
    max_in_flight: int = 64


class OTLPHttpHandler(httpbase.Handler):
    server: OTLPHttpServer

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/v1/traces":
            self.close_connection = True  # the body is left unread
            self._error(
                404, f"no OTLP endpoint at {self.path}; send traces to /v1/traces", wire.PROTOBUF
            )
            return
        media, body_read = None, False
        try:
            media = wire.media_type(self.headers.get("Content-Type"))
            # The slot is taken before the body is read, so at most max_in_flight bodies
            # (each at most 64 MiB, also after gunzip) are in memory at once.
            with self.server.admission():
                body = self.read_body(self.server.ingest.max_body_bytes)
                body_read = True
                self._export_traces(body, media)
        except OnepaneError as exc:
            if not body_read:  # an unread body would be parsed as the next request
                self.close_connection = True
            self._fail(exc, media or wire.JSON)
        except Exception as exc:  # a bug: answer 500 with a Status, keep serving
            traceback.print_exc()
            self.close_connection = True
            self._error(500, f"internal error: {exc!r}; please report it", media or wire.JSON)

    def do_GET(self) -> None:
        self._error(405, "OTLP endpoints take POST", wire.PROTOBUF, {"Allow": "POST"})

    def _export_traces(self, body: bytes, media: str) -> None:
        ingest = self.server.ingest
        body = wire.decompress(body, self.headers.get("Content-Encoding"), ingest.max_body_bytes)
        decoded = ingest.decoders.traces(body, media == wire.JSON)
        ingest.metrics.spans_received.inc(decoded.accepted + decoded.rejected)
        if decoded.rejected:
            ingest.metrics.spans_rejected.labels("invalid").inc(decoded.rejected)
        if decoded.accepted:
            self._store(decoded.table, decoded.resources)
        response = ExportTraceServiceResponse()
        if decoded.rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=decoded.rejected, error_message=decoded.error_message
                )
            )
        self._count(200)
        self.send_body(200, wire.encode_message(response, media), media)

    def _store(self, spans: pa.Table, resources: pa.Table) -> None:
        """Hand spans to the writer and wait until they are committed."""
        ingest = self.server.ingest
        try:
            ingest.writer.submit(spans, resources).result(COMMIT_TIMEOUT_S)
        except TimeoutError:
            ingest.metrics.spans_rejected.labels("store").inc(spans.num_rows)
            raise Unavailable("the store did not commit in time; retry") from None
        except Overloaded:
            ingest.metrics.spans_rejected.labels("overloaded").inc(spans.num_rows)
            raise
        except OnepaneError:
            ingest.metrics.spans_rejected.labels("store").inc(spans.num_rows)
            raise
        ingest.metrics.spans_accepted.inc(spans.num_rows)

    def _fail(self, exc: OnepaneError, media: str) -> None:
        status = next((code for kind, code in _STATUS_FOR.items() if isinstance(exc, kind)), 500)
        headers = {}
        if isinstance(exc, Overloaded):
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        self._error(status, str(exc), media, headers)

    def _error(
        self, status: int, message: str, media: str, headers: dict[str, str] | None = None
    ) -> None:
        self._count(status)
        self.send_body(status, wire.status_body(status, message, media), media, headers)

    def _count(self, status: int) -> None:
        self.server.ingest.metrics.requests.labels("traces", "http", str(status)).inc()


class OTLPHttpServer(httpbase.Server):
    """The OTLP/HTTP listener; at most ``max_in_flight`` exports are decoded or written at once."""

    def __init__(self, address: tuple[str, int], ingest: Ingest) -> None:
        super().__init__(address, OTLPHttpHandler)
        self.ingest = ingest
        self._slots = threading.BoundedSemaphore(ingest.max_in_flight)

    def admission(self) -> _Slot:
        return _Slot(self._slots, self.ingest.writer)


class _Slot:
    """Holds one in-flight slot; when none is free the export is refused with 429."""

    def __init__(self, slots: threading.BoundedSemaphore, writer: SpanWriter) -> None:
        self._slots = slots
        self._writer = writer

    def __enter__(self) -> None:
        if not self._slots.acquire(blocking=False):
            raise Overloaded(
                "too many exports in flight; retry later", retry_after=self._writer.retry_after()
            )

    def __exit__(self, *exc: object) -> None:
        self._slots.release()
