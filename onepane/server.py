"""`onepane serve`: the one process that owns the DuckDB file, assembled from its parts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from collectors.gpu.nvml import NvmlSampler
from collectors.gpu.scraper import Scraper
from collectors.k8s.inventory import Inventory
from collectors.otlp.decoders import DecoderPool
from collectors.otlp.grpc_receiver import OTLPGrpcServer
from collectors.otlp.http import OTLPHttpServer
from collectors.otlp.ingest import Ingest
from cost import catalog, pricing
from cost.rollup import Roller
from drift.settings import DriftConfig
from onepane import auth, costapi, tls
from onepane.api import AdmissionServer, ApiContext, ApiServer
from onepane.config import CollectorsConfig, CostConfig
from onepane.driftapi import DriftService
from onepane.errors import ConfigError
from onepane.gateapi import GateConfig, GateService
from onepane.httpbase import Server
from onepane.metrics import (
    CollectorStatus,
    CostGauges,
    DriftGauges,
    ServerMetrics,
    StoreSize,
    store_bytes,
)
from onepane.retention import Retainer
from onepane.tokenapi import TokenService
from store import db, gpu, tokens
from store.checkpointer import Checkpointer
from store.db import CHECKPOINT_WAL_BYTES, INGEST_THREADS, MEMORY_LIMIT
from store.retention import RetentionConfig
from store.writer import CommitStats, Writer

_S = TypeVar("_S", bound=Server)
_T = TypeVar("_T")


@dataclass
class ServeConfig:
    """Everything `onepane serve` can be told; the defaults are the embedded setup."""

    db: Path = db.DEFAULT_DB_PATH
    host: str = "127.0.0.1"
    otlp_http_port: int = 4318
    otlp_grpc_port: int = 4317
    api_port: int = 8320
    decoders: int | None = None  # worker processes; None: one per core, 0: decode inline
    queue_rows: int = 200_000  # spans, metric points and log records waiting to be written
    commit_rows: int = 100_000
    max_in_flight: int = 64
    memory_limit: str = MEMORY_LIMIT
    db_threads: int = INGEST_THREADS
    checkpoint_wal_bytes: int = CHECKPOINT_WAL_BYTES
    collectors: CollectorsConfig = field(default_factory=CollectorsConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    api_tls: tls.TlsFiles | None = None  # serve the API over HTTPS


class OnepaneServer:
    """The store, the writer, the decoders, the OTLP receivers and the API, started together."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        files = config.api_tls
        api_tls = None if files is None else tls.server_context(files.cert, files.key, "API")
        self.conn = db.connect(
            config.db, memory_limit=config.memory_limit, threads=config.db_threads
        )
        self.schema_version = db.migrate(self.conn)
        try:
            with db.transaction(self.conn):  # before the writer starts: this thread owns conn
                self.price_version = pricing.record(self.conn, config.cost.prices, time.time_ns())
                catalog.replace(self.conn, config.cost.catalog)
            self.auth = auth.authenticator(tokens.active(self.conn), self._hosts())
        except BaseException:
            self.close_store()
            raise
        self.writer = Writer(
            self.conn, config.queue_rows, config.commit_rows, on_commit=self._committed
        )
        self.metrics.watch_queue(lambda: self.writer.queued_rows, config.queue_rows)
        self.checkpointer = Checkpointer(
            self.conn,
            Path(f"{config.db}.wal"),
            config.checkpoint_wal_bytes,
            on_checkpoint=self.metrics.checkpoint_seconds.observe,
        )
        self.metrics.registry.register(StoreSize(Path(config.db)))
        self.decoders = DecoderPool(config.decoders)
        self.readers = db.ReadCursors(self.conn)
        self.retainer = Retainer(
            config.retention,
            self.readers.cursor,
            self.writer.apply,
            self.writer.forget_resources,
            self.checkpointer.checkpoint,
            reports=Path(f"{config.db}.reports"),
            on_deleted=lambda table, rows: self.metrics.retention_deleted.labels(table).inc(rows),
            on_run=self.metrics.retention_last_run.set,
        )
        try:
            self._collectors(config.collectors)
        except BaseException:
            self.close_store()
            raise
        ingest = Ingest(
            self.decoders, self.writer, self.metrics, max_in_flight=config.max_in_flight
        )
        self.otlp_http = self._bind(
            "OTLP/HTTP",
            config.otlp_http_port,
            lambda address: OTLPHttpServer(address, ingest, self.auth),
        )
        self.otlp_grpc = self._bind(
            "OTLP/gRPC",
            config.otlp_grpc_port,
            lambda address: OTLPGrpcServer(address, ingest, self.auth),
        )
        context = ApiContext(
            self.readers,
            self.metrics,
            lambda: self.writer.queued_rows,
            self.schema_version,
            self.collector_status,
            apply=lambda write, rows: self.writer.apply(write, rows).result(300),
            rollup=self.roller.run_once,
            gate=self.gate,
            drift=self.drift,
            auth=self.auth,
            store_bytes=lambda: store_bytes(Path(config.db)),
        )
        context.tokens = TokenService(self.readers.cursor, context.apply, self.auth)
        self.api = self._bind(
            "API", config.api_port, lambda address: ApiServer(address, context, api_tls)
        )
        context.listeners.update(
            otlp_http=self.otlp_http_url, otlp_grpc=self.otlp_grpc_address, api=self.api_url
        )
        self.admission = None
        if config.gate.admission is not None:
            webhook = config.gate.admission
            self.admission = self._bind(
                "admission webhook",
                webhook.port,
                lambda address: AdmissionServer((webhook.host, address[1]), self.gate, webhook),
            )

    def _hosts(self) -> list[str]:
        """Every address the server listens on."""
        admission = self.config.gate.admission
        return [self.config.host] + ([admission.host] if admission is not None else [])

    def _collectors(self, config: CollectorsConfig) -> None:
        """The GPU scraper, the NVML sampler and the Kubernetes inventory, as configured."""
        self.scraper = Scraper(config.scrape, self._store_gpu_points)
        self.inventory = (
            Inventory(config.kube, self.writer.apply) if config.kube.source != "off" else None
        )
        self.nvml = None
        self._collectors_stopped = False
        self.roller = Roller(
            self.config.cost.rollup,
            self.readers.cursor,
            self.writer.apply,
            ready=lambda: self.inventory is None or self.inventory.synced(),
        )
        self.metrics.registry.register(CostGauges(lambda: self._read(costapi.gauges)))
        self.gate = GateService(
            self.config.gate,
            self.config.cost.prices,
            self.readers.cursor,
            lambda write, rows: self.writer.apply(write, rows).result(300),
            rollup=self.roller.run_once,
        )
        self.drift = DriftService(
            self.config.drift,
            self.readers.cursor,
            lambda write, rows: self.writer.apply(write, rows).result(300),
            reports=Path(f"{self.config.db}.reports"),
        )
        self.metrics.registry.register(DriftGauges(self.drift.shares))
        if config.nvml_interval_s is not None:
            self.nvml = NvmlSampler(config.nvml_interval_s, self._store_gpu_points, self._pod)
        self.metrics.registry.register(
            CollectorStatus(
                self.scraper.status,
                lambda: self.inventory.status() if self.inventory else {},
            )
        )

    def _store_gpu_points(self, points: pa.Table) -> Future:
        return self.writer.apply(lambda conn: gpu.insert_points(conn, points), points.num_rows)

    def _read(self, query: Callable[[Any], _T]) -> _T:
        return db.read_with(self.readers.cursor, query)

    def _pod(self, uid: str) -> tuple[str, str] | None:
        row = self._read(
            lambda c: c.execute(
                "SELECT namespace, name FROM k8s_pods WHERE uid = $uid", {"uid": uid}
            ).fetchone()
        )
        return (row[0], row[1]) if row else None

    def collector_status(self) -> dict[str, object]:
        return {
            "gpu_targets": self.scraper.status(),
            "kubernetes": self.inventory.status() if self.inventory else None,
            "nvml": None
            if self.nvml is None
            else {"samples": self.nvml.samples, "last_error": self.nvml.last_error},
        }

    def _bind(self, what: str, port: int, make: Callable[[tuple[str, int]], _S]) -> _S:
        try:
            return make((self.config.host, port))
        except OSError as exc:
            self._close_listeners()
            self.close_store()
            raise ConfigError(
                f"cannot listen for {what} on {self.config.host}:{port}: {exc.strerror or exc}. "
                "Is another Onepane running? Stop it or choose another port."
            ) from exc

    def _committed(self, stats: CommitStats) -> None:
        self.metrics.commit_seconds.observe(stats.seconds)
        self.metrics.commit_rows.observe(stats.rows)

    @property
    def otlp_http_url(self) -> str:
        return f"http://{self.config.host}:{self.otlp_http.port}"

    @property
    def otlp_grpc_address(self) -> str:
        return f"{self.config.host}:{self.otlp_grpc.port}"

    @property
    def api_url(self) -> str:
        scheme = "https" if self.config.api_tls is not None else "http"
        return f"{scheme}://{self.config.host}:{self.api.port}"

    @property
    def admission_url(self) -> str | None:
        """The admission webhook's URL (TLS), when gate.admission is configured."""
        if self.admission is None or self.config.gate.admission is None:
            return None
        return f"https://{self.config.gate.admission.host}:{self.admission.port}/validate"

    def start(self) -> None:
        """Recover what a crash left unfolded, start the decoders, then listen."""
        try:
            self.writer.start()
            self.checkpointer.start()
            self.decoders.warm_up()
        except BaseException:
            self.stop_collectors()
            self.writer.close()
            self.checkpointer.close()
            self.decoders.shutdown()
            self._close_listeners()
            self.close_store()
            raise
        self.otlp_http.serve_in_thread("onepane-otlp-http")
        self.otlp_grpc.start()
        self.api.serve_in_thread("onepane-api")
        if self.admission is not None:
            self.admission.serve_in_thread("onepane-admission")
        self.scraper.start()
        for collector in (self.inventory, self.nvml):
            if collector is not None:
                collector.start()
        self.roller.start()
        self.drift.start()
        self.retainer.start()
        threading.Thread(target=self.readers.warm_up, name="onepane-warm-up", daemon=True).start()

    def _close_listeners(self) -> None:
        """Release whichever ports were bound (on a failed start)."""
        for name in ("otlp_http", "api", "admission"):
            listener = getattr(self, name, None)
            if listener is not None:
                listener.server_close()
        grpc_server = getattr(self, "otlp_grpc", None)
        if grpc_server is not None:
            grpc_server.stop(0)

    def stop(self) -> None:
        """Stop listening, commit what was accepted into the queue, close the store."""
        self.otlp_http.shutdown()
        self.otlp_http.server_close()
        self.otlp_grpc.stop()
        self.stop_collectors()
        self.writer.close()
        self.checkpointer.close()
        self.api.shutdown()
        self.api.server_close()
        if self.admission is not None:
            self.admission.shutdown()
            self.admission.server_close()
        self.decoders.shutdown()
        self.close_store()

    def stop_collectors(self) -> None:
        """Stop scraping and watching; what they already handed the writer is committed."""
        if self._collectors_stopped:
            return
        self._collectors_stopped = True
        self.retainer.stop()
        self.drift.shutdown()
        self.roller.stop()
        self.scraper.stop()
        if self.inventory is not None:
            self.inventory.stop()
        if self.nvml is not None:
            self.nvml.stop()

    def close_store(self) -> None:
        self.conn.close()
