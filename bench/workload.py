"""Realistic OTLP trace exports for the benchmarks.

Each trace runs request → api → inference → db across four services; every span carries
about 15 attributes and every resource its Kubernetes identity, as instrumented services
send them. Spans of one trace are split across the services' exports, as in production.
"""

from __future__ import annotations

import random
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SERVICES = (
    ("web-frontend", "shop", "request"),
    ("checkout-api", "shop", "api"),
    ("fraud-model", "ml", "inference"),
    ("checkout-api", "shop", "db"),
)
BASE_NS = 1_763_900_000_000_000_000


def _attrs(target, pairs: list[tuple[str, object]]) -> None:
    for key, value in pairs:
        kv = target.add()
        kv.key = key
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = str(value)


def _resource(resource, service: str, namespace: str, pod: int) -> None:
    _attrs(
        resource.attributes,
        [
            ("service.name", service),
            ("service.version", "2.14.1"),
            ("deployment.environment.name", "prod"),
            ("k8s.namespace.name", namespace),
            ("k8s.deployment.name", service),
            ("k8s.pod.name", f"{service}-7c9d5f6b8-{pod:05d}"),
            ("k8s.node.name", f"node-{pod % 7}"),
            ("host.arch", "amd64"),
            ("telemetry.sdk.language", "python"),
            ("telemetry.sdk.name", "opentelemetry"),
        ],
    )


_COMMON = [
    ("http.request.method", "POST"),
    ("url.scheme", "https"),
    ("server.port", 8080),
    ("network.protocol.version", "1.1"),
    ("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"),
    ("client.address", "10.42.7.19"),
    ("app.tenant", "acme"),
    ("app.region", "eu-west-1"),
]
_ROLE_ATTRS = {
    "request": [
        ("http.route", "/checkout"),
        ("http.response.status_code", 200),
        ("url.path", "/checkout"),
        ("server.address", "shop.example.com"),
        ("app.cart.items", 3),
        ("app.feature_flag", "new-checkout"),
        ("app.session.new", False),
    ],
    "api": [
        ("http.route", "/api/checkout"),
        ("http.response.status_code", 200),
        ("url.path", "/api/checkout"),
        ("server.address", "checkout-api"),
        ("app.order.id", 918273),
        ("app.payment.method", "card"),
        ("app.retry", 0),
    ],
    "inference": [
        ("ml.model.name", "fraud-model"),
        ("ml.model.version", "3.2.0"),
        ("ml.prediction", 0.0132),
        ("ml.feature.amount", 129.99),
        ("ml.feature.country", "DE"),
        ("ml.feature.account_age_days", 412),
        ("server.address", "fraud-model"),
    ],
    "db": [
        ("db.system.name", "postgresql"),
        ("db.operation.name", "SELECT"),
        ("db.query.text", "SELECT id, total FROM orders WHERE id = $1"),
        ("db.namespace", "shop"),
        ("server.address", "pg-primary"),
        ("db.response.returned_rows", 1),
        ("app.cache.hit", False),
    ],
}


def make_exports(
    n_exports: int, spans_per_export: int = 512, seed: int = 0, base_ns: int = BASE_NS
) -> list[bytes]:
    """Serialized ExportTraceServiceRequests; trace i has spans in four services' exports,
    the first starting at ``base_ns``."""
    rng = random.Random(seed)
    exports = []
    for index in range(n_exports):
        service, namespace, role = SERVICES[index % len(SERVICES)]
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        _resource(resource_spans.resource, service, namespace, index % 5)
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = f"opentelemetry.instrumentation.{role}"
        scope_spans.scope.version = "0.55b0"
        batch = index // len(SERVICES)
        for i in range(spans_per_export):
            trace_no = batch * spans_per_export + i
            span = scope_spans.spans.add()
            span.trace_id = trace_no.to_bytes(8, "big") + rng.randbytes(8)
            span.span_id = rng.randbytes(8)
            if role != "request":
                span.parent_span_id = rng.randbytes(8)
            span.name = {
                "request": "GET /checkout",
                "api": "POST /api/checkout",
                "inference": "predict fraud-model",
                "db": "SELECT orders",
            }[role]
            span.kind = 2 if role in ("request", "api") else 3 if role == "db" else 1
            start = base_ns + trace_no * 1_000_000 + rng.randrange(1_000_000)
            span.start_time_unix_nano = start
            span.end_time_unix_nano = start + int(rng.lognormvariate(16, 0.6))
            span.status.code = 2 if rng.random() < 0.01 else 0
            _attrs(span.attributes, _COMMON + _ROLE_ATTRS[role])
        exports.append(request.SerializeToString())
    return exports


class StampedExports:
    """Trace exports whose every request is distinct and can be found in the store again:
    ``stamp(key)`` writes the 6-byte ``key`` over the first bytes of each span id and
    trace id, so span ids are ``key`` + a 2-byte index and ``spans.span_id`` starts with
    the key's 12 hex digits. Spans start about a minute before the object was made."""

    KEY_BYTES = 6

    def __init__(self, spans_per_export: int = 512, templates: int = 4) -> None:
        base_ns = time.time_ns() - 60 * 1_000_000_000
        self.spans = spans_per_export
        self._templates = [
            _with_marked_ids(body, spans_per_export)
            for body in make_exports(templates, spans_per_export, base_ns=base_ns)
        ]

    def stamp(self, key: int) -> bytes:
        body, offsets = self._templates[key % len(self._templates)]
        out = bytearray(body)
        stamp = key.to_bytes(self.KEY_BYTES, "big")
        for offset in offsets:
            out[offset : offset + self.KEY_BYTES] = stamp
        return bytes(out)

    @classmethod
    def key_hex(cls, key: int) -> str:
        """How a key starts the stored (hex) span ids of its request."""
        return key.to_bytes(cls.KEY_BYTES, "big").hex()


def _with_marked_ids(body: bytes, spans: int) -> tuple[bytes, list[int]]:
    """The export with span i's ids set to a marker + i, and where those markers sit."""
    request = ExportTraceServiceRequest.FromString(body)
    marker = b"\xa5\x5a\xc3\x3c\x96\x69"
    for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        index = i.to_bytes(2, "big")
        span.span_id = marker + index
        span.trace_id = marker + index + span.trace_id[8:]
    marked = request.SerializeToString()
    offsets, at = [], marked.find(marker)
    while at >= 0:
        offsets.append(at)
        at = marked.find(marker, at + 1)
    assert len(offsets) == 2 * spans, "a marker also occurs elsewhere in the export"
    return marked, offsets


_ROUTES = ("/checkout", "/api/checkout", "/api/cart", "/api/recommendations", "/login", "/")
_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
PODS_PER_METRIC_EXPORT = 20


def _series_attrs() -> list[list[tuple[str, object]]]:
    return [
        [
            ("http.route", route),
            ("http.request.method", method),
            ("http.response.status_code", code),
        ]
        for route in _ROUTES
        for method in ("GET", "POST")
        for code in (200, 500)
    ]


def make_metric_exports(n_exports: int, seed: int = 0) -> tuple[list[bytes], int]:
    """Serialized ExportMetricsServiceRequests as a Collector scraping 20 pods sends them:
    per pod a CPU and a memory gauge, a request counter and a duration histogram with 24
    series each (route × method × status). Returns the exports and the points in each."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    rng = random.Random(seed)
    series = _series_attrs()
    exports = []
    for index in range(n_exports):
        request = ExportMetricsServiceRequest()
        now = BASE_NS + index * 15_000_000_000
        for pod in range(PODS_PER_METRIC_EXPORT):
            service, namespace, _ = SERVICES[pod % len(SERVICES)]
            resource_metrics = request.resource_metrics.add()
            _resource(resource_metrics.resource, service, namespace, pod)
            scope = resource_metrics.scope_metrics.add()
            scope.scope.name = "opentelemetry.instrumentation.http"
            for name, unit, value in (
                ("k8s.pod.cpu.usage", "{cpu}", rng.random() * 2),
                ("k8s.pod.memory.working_set", "By", float(rng.randrange(1 << 28, 1 << 31))),
            ):
                metric = scope.metrics.add(name=name, unit=unit)
                metric.gauge.data_points.add(time_unix_nano=now, as_double=value)
            counter = scope.metrics.add(name="http.server.request.count", unit="{request}")
            counter.sum.aggregation_temporality = 2
            counter.sum.is_monotonic = True
            histogram = scope.metrics.add(name="http.server.request.duration", unit="s")
            histogram.histogram.aggregation_temporality = 2
            for attrs in series:
                count = rng.randrange(1, 100_000)
                point = counter.sum.data_points.add(
                    start_time_unix_nano=BASE_NS, time_unix_nano=now, as_int=count
                )
                _attrs(point.attributes, attrs)
                buckets = [count // 15] * 14 + [count - 14 * (count // 15)]
                point = histogram.histogram.data_points.add(
                    start_time_unix_nano=BASE_NS,
                    time_unix_nano=now,
                    count=count,
                    sum=count * 0.04,
                    bucket_counts=buckets,
                    explicit_bounds=_BOUNDS,
                    min=0.001,
                    max=9.5,
                )
                _attrs(point.attributes, attrs)
        exports.append(request.SerializeToString())
    points = PODS_PER_METRIC_EXPORT * (2 + 2 * len(series))
    return exports, points
