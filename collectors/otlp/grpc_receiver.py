"""The OTLP/gRPC receiver on :4317: TraceService, MetricsService and LogsService ``Export``.

It shares ``Ingest`` with the HTTP receiver, so the same decoders, the same writer and
the same rule apply: an export is answered OK only once its rows are committed. gRPC
itself decompresses gzip and enforces the message size limit (after decompression).
Errors carry a ``google.rpc.Status`` in ``grpc-status-details-bin``; a full write queue
answers ``RESOURCE_EXHAUSTED`` with a ``RetryInfo`` delay, which OpenTelemetry SDKs and
the Collector honour; a bad body answers ``INVALID_ARGUMENT`` with the reason.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from collectors.otlp.ingest import Ingest
from onepane.auth import Authenticator, Forbidden, Unauthenticated
from onepane.errors import (
    BadRequest,
    OnepaneError,
    Overloaded,
    PayloadTooLarge,
    StoreError,
    Unavailable,
)

SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": "traces",
    "opentelemetry.proto.collector.metrics.v1.MetricsService": "metrics",
    "opentelemetry.proto.collector.logs.v1.LogsService": "logs",
}
_CODE_FOR = {
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    PayloadTooLarge: grpc.StatusCode.INVALID_ARGUMENT,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    StoreError: grpc.StatusCode.UNAVAILABLE,
}
# Seconds a client should wait after UNAVAILABLE from the store or a decoder restart.
_UNAVAILABLE_RETRY_S = 1


class OTLPGrpcServer:
    """The OTLP/gRPC listener; one thread per in-flight export, as many as HTTP may have."""

    def __init__(
        self, address: tuple[str, int], ingest: Ingest, auth: Authenticator | None = None
    ) -> None:
        self.ingest = ingest
        self.auth = auth
        limit = ingest.max_body_bytes
        self._server = grpc.server(
            ThreadPoolExecutor(ingest.max_in_flight, thread_name_prefix="onepane-otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
            # Calls beyond this are refused by gRPC itself before their bodies are kept.
            maximum_concurrent_rpcs=ingest.max_in_flight * 2,
        )
        self._server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    service,
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            self._handler(signal),
                            request_deserializer=None,  # raw bytes: decoded in the pool
                            response_serializer=_serialize,
                        )
                    },
                )
                for service, signal in SERVICES.items()
            ]
        )
        host, port = address
        try:
            self.port = self._server.add_insecure_port(f"{_bracketed(host)}:{port}")
        except RuntimeError as exc:
            raise OSError(f"address in use or not available ({exc})") from exc
        if not self.port:
            raise OSError("address in use or not available")

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking calls; calls in flight get ``grace_s`` to finish."""
        self._server.stop(grace_s).wait()

    def _handler(self, signal: str) -> Callable[[bytes, grpc.ServicerContext], Message]:
        def export(body: bytes, context: grpc.ServicerContext) -> Message:
            return self._export(signal, body, context)

        return export

    def _export(self, signal: str, body: bytes, context: grpc.ServicerContext) -> Message:
        ingest = self.ingest
        try:
            if self.auth is not None:
                self.auth.check(_authorization(context), "ingest")
            with ingest.admission():
                response = ingest.export(signal, body, json=False)
        except OnepaneError as exc:
            self._abort(signal, context, exc)
        except Exception as exc:  # a bug: answer INTERNAL, keep serving
            traceback.print_exc()
            self._count(signal, grpc.StatusCode.INTERNAL)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc!r}; please report it")
        self._count(signal, grpc.StatusCode.OK)
        return response

    def _abort(self, signal: str, context: grpc.ServicerContext, exc: OnepaneError) -> NoReturn:
        kinds = _CODE_FOR.items()
        code = next((c for kind, c in kinds if isinstance(exc, kind)), grpc.StatusCode.INTERNAL)
        self._count(signal, code)
        status = status_pb2.Status(code=code.value[0], message=str(exc))
        metadata: list[tuple[str, Any]] = []
        retry_s = _retry_seconds(exc)
        if retry_s is not None:
            info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_s))
            detail = any_pb2.Any()
            detail.Pack(info)
            status.details.append(detail)
            # The OpenTelemetry SDKs read this key; the Collector reads the status details.
            metadata.append(("google.rpc.retryinfo-bin", info.SerializeToString()))
        metadata.append(("grpc-status-details-bin", status.SerializeToString()))
        context.set_trailing_metadata(tuple(metadata))
        context.abort(code, str(exc))

    def _count(self, signal: str, code: grpc.StatusCode) -> None:
        self.ingest.metrics.requests.labels(signal, "grpc", code.name).inc()


def _retry_seconds(exc: OnepaneError) -> int | None:
    if isinstance(exc, Overloaded):
        return max(1, round(exc.retry_after))
    if isinstance(exc, Unavailable | StoreError):
        return _UNAVAILABLE_RETRY_S
    return None


def _authorization(context: grpc.ServicerContext) -> str | None:
    """The ``authorization`` metadata (gRPC keys are lower case), as OTLP exporters send it
    from their ``headers``."""
    return next((v for k, v in context.invocation_metadata() if k == "authorization"), None)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
