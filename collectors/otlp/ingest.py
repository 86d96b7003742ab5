"""What an OTLP export goes through, whatever its transport: admission, decoding, commit.

The HTTP and gRPC receivers both call ``Ingest.export``. It decodes the body in the
decoder pool, hands the rows to the writer and returns the OTLP response only once they
are committed, with a partial success when some items were rejected. Errors are
``OnepaneError`` subclasses; each receiver maps them to its own status codes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from collectors.otlp import wire
from collectors.otlp.decoded import Decoded
from collectors.otlp.decoders import DecoderPool
from onepane.errors import OnepaneError, Overloaded, Unavailable
from onepane.metrics import ServerMetrics
from store.writer import Writer

COMMIT_TIMEOUT_S = 60.0


def _traces_response(decoded: Decoded) -> Message:
    return ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(
            rejected_spans=decoded.rejected, error_message=decoded.error_message
        )
    )


def _metrics_response(decoded: Decoded) -> Message:
    return ExportMetricsServiceResponse(
        partial_success=ExportMetricsPartialSuccess(
            rejected_data_points=decoded.rejected, error_message=decoded.error_message
        )
    )


def _logs_response(decoded: Decoded) -> Message:
    return ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(
            rejected_log_records=decoded.rejected, error_message=decoded.error_message
        )
    )


_RESPONSES = {"traces": _traces_response, "metrics": _metrics_response, "logs": _logs_response}
_EMPTY_RESPONSES = {
    "traces": ExportTraceServiceResponse,
    "metrics": ExportMetricsServiceResponse,
    "logs": ExportLogsServiceResponse,
}


@dataclass
class Ingest:
    """The receivers' way into the store; at most ``max_in_flight`` exports at once."""

    decoders: DecoderPool
    writer: Writer
    metrics: ServerMetrics
    max_body_bytes: int = wire.MAX_BODY_BYTES
    max_in_flight: int = 64
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_in_flight)

    def admission(self) -> Slot:
        """An in-flight slot, taken before the body is read; 429 when none is free."""
        return Slot(self._slots, self.writer)

    def export(self, signal: str, body: bytes, json: bool) -> Message:
        """Decode, commit and answer one export (the caller holds a slot)."""
        decoded = self.decoders.decode(signal, body, json)
        counters = self.metrics.signals[signal]
        counters.received.inc(decoded.accepted + decoded.rejected)
        if decoded.rejected:
            counters.rejected.labels("invalid").inc(decoded.rejected)
        if decoded.accepted:
            self._store(decoded)
        if not decoded.rejected:
            return _EMPTY_RESPONSES[signal]()
        return _RESPONSES[signal](decoded)

    def _store(self, decoded: Decoded) -> None:
        """Hand rows to the writer and wait until they are committed."""
        counters = self.metrics.signals[decoded.signal]
        rows = decoded.accepted
        try:
            future = self.writer.submit(
                decoded.signal, decoded.table, decoded.resources, decoded.features
            )
            future.result(COMMIT_TIMEOUT_S)
        except TimeoutError:
            counters.rejected.labels("store").inc(rows)
            raise Unavailable("the store did not commit in time; retry") from None
        except Overloaded:
            counters.rejected.labels("overloaded").inc(rows)
            raise
        except OnepaneError:
            counters.rejected.labels("store").inc(rows)
            raise
        counters.accepted.inc(rows)


class Slot:
    """Holds one in-flight slot; when none is free the export is refused with 429."""

    def __init__(self, slots: threading.BoundedSemaphore, writer: Writer) -> None:
        self._slots = slots
        self._writer = writer

    def __enter__(self) -> None:
        if not self._slots.acquire(blocking=False):
            raise Overloaded(
                "too many exports in flight; retry later", retry_after=self._writer.retry_after()
            )

    def __exit__(self, *exc: object) -> None:
        self._slots.release()
