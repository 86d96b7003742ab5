"""A simulated company that sends realistic traces, metrics and logs through the real
OpenTelemetry SDK.

The company runs a shop: a web frontend and a checkout API (apps), a fraud model and a
GPU recommendation model (models) and a nightly ETL cron job (a pipeline). Each service
has its own tracer, meter and logger providers whose ``Resource`` carries the Kubernetes
identity that Onepane joins on (namespace, deployment or cronjob/job, pod, node) plus the
owning team (``onepane.team``). Spans are created with explicit timestamps, so the
simulation never sleeps, and everything is exported with the SDK's OTLP/HTTP (protobuf)
exporters, exactly as a real instrumented service would send it:

* traces: request → API → model inference → database;
* metrics: ``http.server.request.duration`` histograms per route, an ``ml.predictions``
  counter per model version, and ``k8s.pod.cpu.usage`` / ``k8s.pod.memory.working_set``
  gauges per pod;
* logs: errors logged inside the failing span (a database timeout, a card processor
  failure), warnings for slow predictions, one line per order and per pipeline step.

It has a recurring incident: for four minutes every hour (the first one a minute after it
starts) the fraud model answers in ~800 ms instead of ~18 ms, so checkouts get slow and
`onepane traces --service fraud-model --slowest --since 1h` finds where the time went.

Its fraud model's input drifts: once the company has run one simulated day
(``day_seconds``), the order amounts it scores (``ml.feature.amount``) are about 2.5 times
what it was trained on (median 150 instead of 60); its other inputs keep their training
distribution, which onepane/demo_drift.py registers as the model's drift reference.

Everything random (latencies, failures, features, ids, pod names) comes from one
``random.Random(seed)``: the same seed and the same timestamps give the same traces.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import Logger, LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    format_trace_id,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

__all__ = ["DemoCompany", "DemoConfig", "fraud_features", "recsys_features", "traffic_rate"]

_MS = 1_000_000
_S = 1_000_000_000
_EXPORT_TIMEOUT_S = 10
_POD_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for pod names
_CLUSTER = "prod-eu-1"
_CHECKOUT_SHARE = 0.4
_CHECKOUT_FAILURE_RATE = 0.02
_SLOW_FRAUD_RATE = 0.05
FRAUD_MODEL_VERSION = "3.2.0"
RECSYS_MODEL_VERSION = "2.1.0"
_SLOW_PREDICTION_NS = 100 * 1_000_000
_INCIDENT_FRAUD_MS = 800.0  # median fraud-model latency during the recurring incident
AMOUNT_MEDIAN = 60.0  # the fraud model's order amounts: what it was trained on
DRIFTED_AMOUNT_MEDIAN = 150.0  # and what it sees after the company's first simulated day
_COUNTRIES = ("DE", "FR", "NL", "ES", "US", "BR")
_COUNTRY_WEIGHTS = (5, 4, 2, 2, 1, 1)
_SEGMENTS = ("new", "casual", "loyal")
_SEGMENT_WEIGHTS = (2, 5, 3)

Attrs = dict[str, AttributeValue]
# A piece of work inside a span: (parent context, start ns) -> (end ns, error message or None)
Body = Callable[[Context, int], tuple[int, str | None]]


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the simulated company."""

    endpoint: str = "http://127.0.0.1:4318"  # OTLP/HTTP base URL
    rate: float = 20.0  # mean traces per second at the daily peak
    seed: int | None = None
    day_seconds: float = 600.0  # one simulated "day" lasts this many real seconds
    metrics_interval_s: float = 10.0  # how often each service exports its metrics
    # The recurring incident: the fraud model gets slow for incident_length_s once every
    # incident_every_s, the first time incident_offset_s after the company starts.
    incident_every_s: float = 3600.0
    incident_length_s: float = 240.0
    incident_offset_s: float = 60.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"demo rate must be > 0 traces/s, got {self.rate}")
        if self.day_seconds <= 0:
            raise ValueError(f"demo day_seconds must be > 0, got {self.day_seconds}")
        if not 0 <= self.incident_length_s <= self.incident_every_s:
            raise ValueError("demo incident_length_s must be between 0 and incident_every_s")


@dataclass(frozen=True)
class _Service:
    name: str
    version: str
    namespace: str
    team: str
    node: str


_SERVICES = (
    _Service("web-frontend", "2.14.1", "shop", "storefront", "node-1"),
    _Service("checkout-api", "1.8.3", "shop", "payments", "node-2"),
    _Service("recommendations-api", "1.3.0", "shop", "storefront", "node-3"),
    _Service("fraud-model", FRAUD_MODEL_VERSION, "ml", "ml-platform", "node-2"),
    _Service("recsys-model", RECSYS_MODEL_VERSION, "ml", "ml-platform", "gpu-node-1"),
)
_PIPELINE = _Service("nightly-etl", "0.9.4", "data", "data", "node-3")
_NAMESPACES = {svc.name: svc.namespace for svc in _SERVICES}
SERVICES, PIPELINE = _SERVICES, _PIPELINE  # the demo cluster (demo_cluster.py) runs these


class QueryCanceledError(Exception):
    """What the simulated Postgres driver raises on a statement timeout."""


class PaymentGatewayError(Exception):
    """What the simulated payment client raises when the card processor fails."""


def traffic_rate(config: DemoConfig, elapsed_s: float) -> float:
    """Mean traces per second ``elapsed_s`` real seconds after start.

    A sinusoid over one simulated day that starts at 60% of peak and rising, reaches
    ``config.rate`` and never drops below 20% of it.
    """
    phase = 2 * math.pi * elapsed_s / config.day_seconds
    return config.rate * (0.6 + 0.4 * math.sin(phase))


def fraud_features(
    rng: random.Random, amount_median: float = AMOUNT_MEDIAN
) -> tuple[float, str, int]:
    """One fraud-model input: order amount (lognormal around ``amount_median``), country
    and account age in days."""
    amount = round(rng.lognormvariate(math.log(amount_median), 0.9), 2)
    country = rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS)[0]
    return amount, country, int(rng.expovariate(1 / 400))


def recsys_features(rng: random.Random) -> tuple[int, str]:
    """One recsys-model input: items viewed in the last 7 days and the user's segment."""
    viewed = int(rng.expovariate(1 / 15))
    return viewed, rng.choices(_SEGMENTS, _SEGMENT_WEIGHTS)[0]


class _SeededIds(IdGenerator):
    """Trace and span ids drawn from the company's own random generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True


_DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
# CPU seconds one request costs each service, and its idle baseline (cores).
_CPU_PER_REQUEST = {"recsys-model": 0.04, "fraud-model": 0.03}
_CPU_IDLE = 0.05
_MEMORY_BASE = 180 * 1024 * 1024
_MEMORY_PER_RPS = 2 * 1024 * 1024


class _Telemetry:
    """One service's (or one pipeline run's) tracer, logger and meter providers, each
    with the SDK's batching OTLP/HTTP exporter, and the service's instruments."""

    def __init__(
        self,
        config: DemoConfig,
        resource: Resource,
        ids: IdGenerator,
        svc: _Service,
        *,
        metrics: bool,
    ) -> None:
        base = config.endpoint.rstrip("/")
        self.tracing = TracerProvider(resource=resource, id_generator=ids)
        self.tracing.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=_EXPORT_TIMEOUT_S),
                max_queue_size=8192,
                schedule_delay_millis=500,
                export_timeout_millis=_EXPORT_TIMEOUT_S * 1000,
            )
        )
        self.logging = LoggerProvider(resource=resource)
        self.logging.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=_EXPORT_TIMEOUT_S),
                schedule_delay_millis=500,
                export_timeout_millis=_EXPORT_TIMEOUT_S * 1000,
            )
        )
        self.tracer = self.tracing.get_tracer("onepane.demo", svc.version)
        self.logger = self.logging.get_logger("onepane.demo", svc.version)
        self.metering: MeterProvider | None = None
        self.requests = 0  # server spans started, for the CPU and memory gauges
        self._last = (0, time.monotonic())
        if metrics:
            self._add_metrics(config, resource, svc)

    def _add_metrics(self, config: DemoConfig, resource: Resource, svc: _Service) -> None:
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(
                endpoint=f"{config.endpoint.rstrip('/')}/v1/metrics", timeout=_EXPORT_TIMEOUT_S
            ),
            export_interval_millis=config.metrics_interval_s * 1000,
            export_timeout_millis=_EXPORT_TIMEOUT_S * 1000,
        )
        self.metering = MeterProvider(resource=resource, metric_readers=[reader])
        meter = self.metering.get_meter("onepane.demo", svc.version)
        self.durations = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS_S,
        )
        self.predictions = meter.create_counter(
            "ml.predictions", unit="{prediction}", description="Predictions served."
        )
        self._cpu_per_request = _CPU_PER_REQUEST.get(svc.name, 0.01)
        self._rps = 0.0
        meter.create_observable_gauge(
            "k8s.pod.cpu.usage", [self._cpu], unit="{cpu}", description="CPU cores in use."
        )
        meter.create_observable_gauge(
            "k8s.pod.memory.working_set",
            [self._memory],
            unit="By",
            description="Working set memory of the pod.",
        )

    def _cpu(self, options: CallbackOptions) -> list[Observation]:
        """CPU cores from the requests served since the last collection."""
        count, since = self._last
        now = time.monotonic()
        self._rps = (self.requests - count) / max(now - since, 1e-3)
        self._last = (self.requests, now)
        return [Observation(round(_CPU_IDLE + self._cpu_per_request * self._rps, 4))]

    def _memory(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(int(_MEMORY_BASE + _MEMORY_PER_RPS * self._rps))]

    def providers(self) -> list[TracerProvider | LoggerProvider | MeterProvider]:
        return [p for p in (self.tracing, self.logging, self.metering) if p is not None]

    def force_flush(self) -> None:
        for provider in self.providers():
            provider.force_flush(timeout_millis=_EXPORT_TIMEOUT_S * 1000)

    def shutdown(self) -> None:
        for provider in self.providers():
            provider.shutdown()


class DemoCompany:
    """A shop whose services, models and pipeline send traces, metrics and logs to an
    OTLP endpoint.

    Not meant to be shared between threads beyond one ``run`` loop plus direct
    ``emit_*`` calls, which a lock serialises.
    """

    def __init__(self, config: DemoConfig) -> None:
        self._config = config
        self.started_ns = time.time_ns()
        self._rng = random.Random(config.seed)
        self._ids = _SeededIds(self._rng)
        self._lock = threading.Lock()
        self._telemetry: dict[str, _Telemetry] = {}
        self._pods: dict[str, str] = {}
        for svc in _SERVICES:
            self._add_service(svc)
        self._pipeline: _Telemetry | None = None
        self.last_traces: dict[str, str] = {}  # flow (checkout, ...) -> latest trace id
        # Every pipeline run so far as (job, pod, start ns, end ns), for the demo cluster.
        self.pipeline_runs: deque[tuple[str, str, int, int]] = deque(maxlen=20)

    @property
    def pods(self) -> dict[str, str]:
        """Pod name of each long-running service (service name -> pod name)."""
        return dict(self._pods)

    # -- providers and resources -------------------------------------------------------

    def _add_service(self, svc: _Service) -> None:
        replicaset = f"{svc.name}-{self._random_chars(9)}"
        pod = f"{replicaset}-{self._random_chars(5)}"
        workload = {"k8s.deployment.name": svc.name, "k8s.replicaset.name": replicaset}
        resource = _resource(svc, pod, workload)
        self._pods[svc.name] = pod
        self._telemetry[svc.name] = _Telemetry(self._config, resource, self._ids, svc, metrics=True)

    def _pipeline_run(self, scheduled_ns: int) -> _Telemetry:
        """Fresh providers for one cron job run; the previous run's are retired."""
        job = f"{_PIPELINE.name}-{scheduled_ns // (60 * _S)}"  # Kubernetes: minutes since epoch
        workload = {"k8s.cronjob.name": _PIPELINE.name, "k8s.job.name": job}
        pod = f"{job}-{self._random_chars(5)}"
        if self._pipeline is not None:
            self._pipeline.shutdown()
        self._pipeline_pod = (job, pod)
        resource = _resource(_PIPELINE, pod, workload)
        self._pipeline = _Telemetry(self._config, resource, self._ids, _PIPELINE, metrics=False)
        return self._pipeline

    def _all_telemetry(self) -> list[_Telemetry]:
        every = list(self._telemetry.values())
        if self._pipeline is not None:
            every.append(self._pipeline)
        return every

    # -- random helpers ----------------------------------------------------------------

    def _random_chars(self, length: int) -> str:
        return "".join(self._rng.choice(_POD_HASH_ALPHABET) for _ in range(length))

    def _ms(self, median_ms: float, sigma: float = 0.4) -> int:
        """A lognormal duration in ns with the given median."""
        return int(self._rng.lognormvariate(math.log(median_ms), sigma) * _MS)

    @staticmethod
    def _now(now_ns: int | None) -> int:
        return time.time_ns() if now_ns is None else now_ns

    # -- span helpers ------------------------------------------------------------------

    def _start(
        self, service: str, name: str, kind: SpanKind, ctx: Context | None, at: int, attrs: Attrs
    ) -> Span:
        tracer = self._telemetry[service].tracer
        return tracer.start_span(name, context=ctx, kind=kind, attributes=attrs, start_time=at)

    def _leaf(
        self, service: str, name: str, ctx: Context, at: int, duration: int, attrs: Attrs
    ) -> int:
        """An INTERNAL span without children; returns its end time."""
        span = self._start(service, name, SpanKind.INTERNAL, ctx, at, attrs)
        span.end(end_time=at + duration)
        return at + duration

    def _server(self, service: str, method: str, route: str, ctx: Context | None, at: int) -> Span:
        attrs: Attrs = {
            "http.request.method": method,
            "http.route": route,
            "url.path": route,
            "url.scheme": "https" if ctx is None else "http",
            "server.port": 8080,
        }
        self._telemetry[service].requests += 1
        return self._start(service, f"{method} {route}", SpanKind.SERVER, ctx, at, attrs)

    def _served(
        self, service: str, method: str, route: str, start: int, end: int, error: str | None
    ) -> None:
        """Record a finished request in the service's duration histogram."""
        attrs: Attrs = {
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": 500 if error else 200,
        }
        self._telemetry[service].durations.record((end - start) / _S, attrs)

    def _log(
        self,
        service: str,
        span: Span,
        at: int,
        severity: SeverityNumber,
        body: str,
        attrs: Attrs | None = None,
    ) -> None:
        """A log record written inside ``span`` at ``at``."""
        _emit_log(self._telemetry[service].logger, span, at, severity, body, attrs)

    def _fail(self, service: str, span: Span, exc: Exception, at: int) -> None:
        """Mark the span where a failure happened and log the error inside it."""
        _fail(span, exc, at)
        attrs: Attrs = {
            "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "exception.message": str(exc),
        }
        self._log(
            service, span, at, SeverityNumber.ERROR, f"{_span_name(span)} failed: {exc}", attrs
        )

    def _http_hop(
        self, caller: str, callee: str, method: str, route: str, ctx: Context, at: int, body: Body
    ) -> tuple[int, str | None]:
        """``caller`` calls ``callee`` over HTTP: a CLIENT span around a SERVER span."""
        host = f"{callee}.{_NAMESPACES[callee]}.svc.cluster.local"
        client_attrs: Attrs = {
            "http.request.method": method,
            "server.address": host,
            "server.port": 8080,
            "url.full": f"http://{host}:8080{route}",
        }
        client = self._start(caller, method, SpanKind.CLIENT, ctx, at, client_attrs)
        arrive = at + self._ms(0.6, 0.3)
        server = self._server(callee, method, route, set_span_in_context(client), arrive)
        done, error = body(set_span_in_context(server), arrive + self._ms(0.2))
        done += self._ms(0.2)
        _end_http(server, done, error)
        self._served(callee, method, route, arrive, done, error)
        back = done + self._ms(0.6, 0.3)
        _end_http(client, back, error)
        return back, error

    def _db(
        self, service: str, ctx: Context, at: int, duration: int, attrs: Attrs
    ) -> tuple[Span, int]:
        """A database CLIENT span named ``<operation> <collection>``; the caller ends it."""
        name = f"{attrs['db.operation.name']} {attrs['db.collection.name']}"
        return self._start(service, name, SpanKind.CLIENT, ctx, at, attrs), at + duration

    # -- checkout flow -----------------------------------------------------------------

    def emit_checkout(self, now_ns: int | None = None) -> str:
        """Emit one checkout trace (frontend → checkout API → fraud model, Postgres).

        The trace starts at ``now_ns`` (default: now). About 2% fail with HTTP 500.
        Returns the trace id as 32 hex digits.
        """
        with self._lock:
            start = self._now(now_ns)
            failure = self._checkout_failure()
            root = self._server("web-frontend", "GET", "/checkout", None, start)
            ctx = set_span_in_context(root)
            at = self._leaf("web-frontend", "load session", ctx, start, self._ms(1.5), {})

            def api(c: Context, t: int) -> tuple[int, str | None]:
                return self._checkout_api(c, t, failure)

            done, error = self._http_hop(
                "web-frontend", "checkout-api", "POST", "/api/checkout", ctx, at, api
            )
            if error is None:
                done = self._leaf("web-frontend", "render checkout", ctx, done, self._ms(4), {})
            end = done + self._ms(0.3)
            _end_http(root, end, error)
            self._served("web-frontend", "GET", "/checkout", start, end, error)
            return format_trace_id(root.get_span_context().trace_id)

    def _checkout_failure(self) -> str | None:
        if self._rng.random() >= _CHECKOUT_FAILURE_RATE:
            return None
        return self._rng.choice(("db", "payment"))

    def _checkout_api(self, ctx: Context, at: int, failure: str | None) -> tuple[int, str | None]:
        at = self._leaf("checkout-api", "validate cart", ctx, at, self._ms(2), {"cart.items": 3})
        at, _ = self._http_hop(
            "checkout-api", "fraud-model", "POST", "/v1/predict", ctx, at, self._fraud_model
        )
        at, error = self._select_orders(ctx, at, failure == "db")
        if error is None:
            at, error = self._charge_card(ctx, at, failure == "payment")
        return at, error

    def _select_orders(self, ctx: Context, at: int, fail: bool) -> tuple[int, str | None]:
        attrs: Attrs = {
            "db.system.name": "postgresql",
            "db.operation.name": "SELECT",
            "db.collection.name": "orders",
            "db.namespace": "shop",
            "db.query.text": (
                "SELECT id, status, total_cents FROM orders"
                " WHERE customer_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT $3"
            ),
            "server.address": "orders-db.shop.svc.cluster.local",
            "server.port": 5432,
        }
        duration = 5 * _S if fail else self._ms(6, 0.6)
        span, end = self._db("checkout-api", ctx, at, duration, attrs)
        if fail:
            message = "canceling statement due to statement timeout"
            self._fail("checkout-api", span, QueryCanceledError(message), end)
            span.end(end_time=end)
            return end, message
        span.set_attribute("db.response.returned_rows", self._rng.randint(0, 20))
        span.end(end_time=end)
        return end, None

    def _charge_card(self, ctx: Context, at: int, fail: bool) -> tuple[int, str | None]:
        attrs: Attrs = {"payment.provider": "cardco", "payment.currency": "EUR"}
        span = self._start("checkout-api", "charge card", SpanKind.INTERNAL, ctx, at, attrs)
        end = at + (10 * _S if fail else self._ms(120, 0.5))
        if fail:
            message = "card processor did not answer within 10s"
            self._fail("checkout-api", span, PaymentGatewayError(message), end)
            span.end(end_time=end)
            return end, message
        order: Attrs = {"order.id": f"ord-{self._rng.getrandbits(40):010x}"}
        self._log("checkout-api", span, end, SeverityNumber.INFO, "card charged", order)
        span.end(end_time=end)
        return end, None

    def _fraud_model(self, ctx: Context, at: int) -> tuple[int, str | None]:
        median = DRIFTED_AMOUNT_MEDIAN if self.amount_drifted(at) else AMOUNT_MEDIAN
        amount, country, age = fraud_features(self._rng, median)
        score = min(0.999, self._rng.betavariate(1.3, 14) * (3 if age < 14 else 1))
        duration = self._ms(18, 0.35)
        if self.in_incident(at):
            duration = self._ms(_INCIDENT_FRAUD_MS, 0.2)
        elif self._rng.random() < _SLOW_FRAUD_RATE:
            duration *= 10
        attrs: Attrs = {
            "ml.model.name": "fraud-model",
            "ml.model.version": FRAUD_MODEL_VERSION,
            "ml.prediction": round(score, 4),
            "ml.feature.amount": amount,
            "ml.feature.country": country,
            "ml.feature.account_age_days": age,
        }
        return self._predict("fraud-model", ctx, at, duration, attrs), None

    def amount_drifted(self, at_ns: int) -> bool:
        """Whether the fraud model's amounts have drifted at ``at_ns``: from one simulated
        day after the company started."""
        return at_ns - self.started_ns >= self._config.day_seconds * _S

    def in_incident(self, at_ns: int) -> bool:
        """Whether the fraud model is in its recurring slow spell at ``at_ns``."""
        config = self._config
        elapsed = (at_ns - self.started_ns) / _S - config.incident_offset_s
        return elapsed >= 0 and elapsed % config.incident_every_s < config.incident_length_s

    def _predict(self, service: str, ctx: Context, at: int, duration: int, attrs: Attrs) -> int:
        """An inference span; counts the prediction and warns when it was slow."""
        span = self._start(service, f"predict {service}", SpanKind.INTERNAL, ctx, at, attrs)
        end = at + duration
        version = {"ml.model.name": service, "ml.model.version": attrs["ml.model.version"]}
        self._telemetry[service].predictions.add(1, version)
        if duration > _SLOW_PREDICTION_NS:
            body = f"slow prediction: {duration / _MS:.0f} ms"
            self._log(service, span, end, SeverityNumber.WARN, body, version)
        span.end(end_time=end)
        return end

    # -- recommendations flow ----------------------------------------------------------

    def emit_recommendation(self, now_ns: int | None = None) -> str:
        """Emit one recommendations trace (API → GPU recsys model → Redis feature store).

        The trace starts at ``now_ns`` (default: now). Returns the trace id as 32 hex digits.
        """
        with self._lock:
            start = self._now(now_ns)
            root = self._server("recommendations-api", "GET", "/api/recommendations", None, start)
            ctx = set_span_in_context(root)
            done, error = self._http_hop(
                "recommendations-api",
                "recsys-model",
                "POST",
                "/v1/recommend",
                ctx,
                start + self._ms(0.8),
                self._recsys_model,
            )
            attrs: Attrs = {"recommendations.count": 12}
            done = self._leaf(
                "recommendations-api", "rank and filter", ctx, done, self._ms(3), attrs
            )
            end = done + self._ms(0.3)
            _end_http(root, end, error)
            self._served("recommendations-api", "GET", "/api/recommendations", start, end, error)
            return format_trace_id(root.get_span_context().trace_id)

    def _recsys_model(self, ctx: Context, at: int) -> tuple[int, str | None]:
        attrs: Attrs = {
            "db.system.name": "redis",
            "db.operation.name": "HGETALL",
            "db.collection.name": "user_features",
            "db.namespace": "0",
            "db.query.text": "HGETALL user_features:?",
            "server.address": "feature-store.ml.svc.cluster.local",
            "server.port": 6379,
        }
        span, at = self._db("recsys-model", ctx, at, self._ms(1.2, 0.5), attrs)
        span.end(end_time=at)
        viewed, segment = recsys_features(self._rng)
        inference: Attrs = {
            "ml.model.name": "recsys-model",
            "ml.model.version": RECSYS_MODEL_VERSION,
            "ml.prediction": round(self._rng.betavariate(5, 3), 4),
            "ml.feature.items_viewed_7d": viewed,
            "ml.feature.user_segment": segment,
        }
        return self._predict("recsys-model", ctx, at, self._ms(11), inference), None

    # -- nightly pipeline --------------------------------------------------------------

    def emit_pipeline_run(self, now_ns: int | None = None) -> str:
        """Emit one finished run of the nightly ETL cron job (extract, transform, load).

        A run takes a few simulated minutes and *ends* at ``now_ns`` (default: now).
        Returns the trace id as 32 hex digits.
        """
        with self._lock:
            end = self._now(now_ns)
            steps = [
                ("extract", self._ms(70_000, 0.3)),
                ("transform", self._ms(150_000, 0.3)),
                ("load", self._ms(45_000, 0.3)),
            ]
            start = end - sum(duration for _, duration in steps) - 4 * _S
            run = self._pipeline_run(start)
            tracer = run.tracer
            run_id = f"{self._rng.getrandbits(64):016x}"
            base: Attrs = {"pipeline.name": _PIPELINE.name, "pipeline.run.id": run_id}
            root = tracer.start_span(
                "pipeline run nightly-etl",
                kind=SpanKind.INTERNAL,
                attributes=base,
                start_time=start,
            )
            at = start + 2 * _S
            for step, duration in steps:
                at = self._pipeline_step(run, root, step, at, duration, base)
            root.end(end_time=end)
            self.pipeline_runs.append((*self._pipeline_pod, start, end))
            return format_trace_id(root.get_span_context().trace_id)

    def _pipeline_step(
        self, run: _Telemetry, root: Span, step: str, at: int, duration: int, base: Attrs
    ) -> int:
        ctx = set_span_in_context(root)
        attrs: Attrs = {**base, "pipeline.step": step}
        span = run.tracer.start_span(step, context=ctx, attributes=attrs, start_time=at)
        query = _PIPELINE_QUERIES[step]
        rows = self._rng.randint(40_000, 90_000)
        db_attrs: Attrs = {**query, "db.response.returned_rows": rows}
        name = f"{query['db.operation.name']} {query['db.collection.name']}"
        db_start = at + duration // 20
        db = run.tracer.start_span(
            name,
            context=set_span_in_context(span),
            kind=SpanKind.CLIENT,
            attributes=db_attrs,
            start_time=db_start,
        )
        db.end(end_time=db_start + duration * 9 // 10)
        body = f"{step}: {rows} rows {'read' if step == 'extract' else 'written'}"
        _emit_log(run.logger, span, at + duration, SeverityNumber.INFO, body, attrs)
        span.end(end_time=at + duration)
        return at + duration + _S

    # -- lifecycle ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Emit traffic with a daily shape until ``stop`` is set.

        Requests arrive as a Poisson process at ``traffic_rate``; 40% are checkouts, the
        rest recommendations. A pipeline run is emitted shortly after start and then
        every ``day_seconds / 4`` seconds.
        """
        started = time.monotonic()
        next_request = started
        next_pipeline = started + min(2.0, self._config.day_seconds / 4)
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_pipeline:
                self.last_traces["pipeline"] = self.emit_pipeline_run()
                next_pipeline += self._config.day_seconds / 4
            if now >= next_request:
                self._emit_request()
                rate = traffic_rate(self._config, now - started)
                next_request = max(next_request, now - 1.0) + self._rng.expovariate(rate)
            stop.wait(max(0.0, min(next_request, next_pipeline) - time.monotonic()))

    def _emit_request(self) -> None:
        if self._rng.random() < _CHECKOUT_SHARE:
            self.last_traces["checkout"] = self.emit_checkout()
        else:
            self.last_traces["recommendation"] = self.emit_recommendation()

    def force_flush(self) -> None:
        """Export every span, log record and metric so far (waits up to the export timeout
        per provider)."""
        for telemetry in self._all_telemetry():
            telemetry.force_flush()

    def shutdown(self) -> None:
        """Flush and shut down every provider; the company emits nothing after."""
        with self._lock:
            for telemetry in self._all_telemetry():
                telemetry.shutdown()


_PIPELINE_QUERIES: dict[str, Attrs] = {
    "extract": {
        "db.system.name": "postgresql",
        "db.operation.name": "SELECT",
        "db.collection.name": "orders",
        "db.namespace": "shop",
        "db.query.text": "SELECT * FROM orders WHERE created_at >= $1 AND created_at < $2",
        "server.address": "orders-db-replica.shop.svc.cluster.local",
        "server.port": 5432,
    },
    "transform": {
        "db.system.name": "duckdb",
        "db.operation.name": "INSERT",
        "db.collection.name": "daily_revenue",
        "db.namespace": "etl",
        "db.query.text": (
            "INSERT INTO daily_revenue SELECT country, date_trunc('day', created_at), "
            "sum(total_cents) FROM staged_orders WHERE created_at >= ? GROUP BY ALL"
        ),
    },
    "load": {
        "db.system.name": "postgresql",
        "db.operation.name": "INSERT",
        "db.collection.name": "daily_revenue",
        "db.namespace": "warehouse",
        "db.query.text": (
            "INSERT INTO daily_revenue (country, day, revenue_cents) VALUES ($1, $2, $3)"
        ),
        "server.address": "warehouse-db.data.svc.cluster.local",
        "server.port": 5432,
    },
}


def _resource(svc: _Service, pod: str, workload: dict[str, str]) -> Resource:
    return Resource.create(
        {
            "service.name": svc.name,
            "service.version": svc.version,
            "deployment.environment.name": "prod",
            "k8s.cluster.name": _CLUSTER,
            "k8s.namespace.name": svc.namespace,
            **workload,
            "k8s.pod.name": pod,
            "k8s.node.name": svc.node,
            "onepane.team": svc.team,
        }
    )


def _end_http(span: Span, end: int, error: str | None) -> None:
    """End an HTTP span with status 200, or 500 and ERROR status when ``error`` is set."""
    span.set_attribute("http.response.status_code", 500 if error else 200)
    if error:
        span.set_attribute("error.type", "500")
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=end)


def _emit_log(
    logger: Logger, span: Span, at: int, severity: SeverityNumber, body: str, attrs: Attrs | None
) -> None:
    logger.emit(
        timestamp=at,
        observed_timestamp=at,
        context=set_span_in_context(span),
        severity_number=severity,
        severity_text=severity.name,
        body=body,
        attributes=attrs,
    )


def _span_name(span: Span) -> str:
    return getattr(span, "name", "span")


def _fail(span: Span, exc: Exception, at: int) -> None:
    """Mark the span where a failure happened: exception event, error type, ERROR status."""
    span.record_exception(exc, timestamp=at)
    span.set_attribute("error.type", f"{type(exc).__module__}.{type(exc).__qualname__}")
    span.set_status(Status(StatusCode.ERROR, str(exc)))
