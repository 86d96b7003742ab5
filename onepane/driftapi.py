"""Drift in the server: references, runs (by hand and on a schedule), their results.

A run reads the window's features and the reference's statistics through a read cursor,
then judges the columns and draws Evidently's report in worker processes (spawned, fed
with arrays), so ingest and the API never wait behind Evidently. Results are stored
through the writer before they are answered.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.otlp.decoders import init_worker
from drift import distribution, methods, profile, storage
from drift.run import (
    DRIFT,
    NO_DRIFT,
    RunOptions,
    judge_column,
    report_from_samples,
    report_samples,
    verdict,
)
from drift.settings import DriftConfig, ModelDrift
from onepane.costapi import whole_param
from onepane.errors import BadRequest, NotFound, OnepaneError, Unavailable
from store.window import parse_duration
from store.window import window as query_window

log = logging.getLogger(__name__)

RUN_KEYS = {"model", "version", "window", "methods", "thresholds"}
LIST_PARAMS = {"model", "version", "status", "limit"}
DISTRIBUTION_PARAMS = {"model", "version", "feature", "since", "start", "end", "bins"}
COLUMN_PARAMS = {"model", "version", "feature", "since", "limit"}
DEFAULT_BINS, MAX_BINS = 20, 200
MAX_WINDOW_NS = 400 * 86_400 * 10**9
_NO_REPORT = "no column had enough data for a verdict, so there is no report"


@dataclass
class DriftService:
    """Adds references and runs drift; reads through ``cursor()``, writes through ``apply``."""

    config: DriftConfig
    cursor: Callable[[], Any]
    apply: Callable[[Callable[[Any], Any], int], Any]
    reports: Path  # Evidently's HTML reports, one file per run (kept out of DuckDB: ~4 MB each)
    on_run: Callable[[dict[str, Any]], None] | None = None
    now: Callable[[], int] = field(default=time.time_ns)

    def __post_init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._one_run = threading.Lock()  # runs take turns: each already uses every worker
        self._stop = threading.Event()
        self._reports = ThreadPoolExecutor(1, thread_name_prefix="onepane-drift-report")
        self._scheduler: threading.Thread | None = None

    # -- references ----------------------------------------------------------------

    def add_reference(self, data: bytes, q: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/v1/drift/references?model=&version=``: profile the file, store it."""
        model, version = _required(q, "model"), q.get("version") or "*"
        given = {name: profile.NUMERICAL for name in _names(q.get("numerical"))}
        given |= {name: profile.CATEGORICAL for name in _names(q.get("categorical"))}
        source = q.get("filename") or "reference"
        frame = profile.read_table(data, source, q.get("format"))
        profiled = profile.profile(frame, given, ignore=_names(q.get("ignore")))
        now = self.now()
        reference_id = self.apply(
            lambda conn: storage.save_reference(conn, model, version, source, profiled, now),
            len(profiled.columns),
        )
        cursor = self.cursor()
        try:
            [found] = [
                r for r in storage.references(cursor, model) if r["reference_id"] == reference_id
            ]
        finally:
            cursor.close()
        return {**found, "skipped": profiled.skipped}

    # -- per feature ---------------------------------------------------------------

    def distribution(self, q: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/v1/drift/distribution?model=&feature=``: one feature's reference and
        production distributions (over ``since``, default 24h) in the same bins."""
        _check_params(q, DISTRIBUTION_PARAMS)
        model = _required(q, "model", "the ml.model.name of the inference spans")
        feature = _required(q, "feature", "a column of the model's drift reference")
        version = q.get("version") or None
        bins = whole_param(q.get("bins"), DEFAULT_BINS, "bins")
        if not 1 <= bins <= MAX_BINS:
            raise BadRequest(f"bins must be between 1 and {MAX_BINS}, got {bins}")
        start, end = self._span(q, "24h")
        cursor = self.cursor()
        try:
            reference_id, reference = storage.active_reference(cursor, model, version)
            column = reference.get(feature)
            if column is None:
                raise BadRequest(
                    f"feature {feature[:80]!r} is not in the reference of {model!r}; "
                    f"its features: {', '.join(sorted(reference))}"
                )
            summary = storage.reference_summary(cursor, reference_id)
            types = {feature: column.type}
            _, current = storage.production(cursor, model, version, start, end, types)
        finally:
            cursor.close()
        cur = current.get(feature)
        return {
            "model": model,
            "version": version,
            "feature": feature,
            "type": column.type,
            "reference": {**summary, "count": column.count, "missing": column.missing},
            "production": {
                "count": 0 if cur is None else cur.count,
                "missing": 0 if cur is None else cur.missing,
                "start": distribution.iso(start),
                "end": distribution.iso(end),
            },
            **distribution.document(column, cur, bins),
        }

    def columns(self, q: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/v1/drift/columns?model=``: each feature's outcome run after run,
        newest run first (``limit`` runs, default 200)."""
        _check_params(q, COLUMN_PARAMS)
        model = _required(q, "model", "the ml.model.name of the inference spans")
        version, feature = q.get("version") or None, q.get("feature") or None
        limit = whole_param(q.get("limit"), 200, "limit")
        if not 1 <= limit <= 10_000:
            raise BadRequest(f"limit must be between 1 and 10000, got {limit}")
        since = self.now() - parse_duration(q["since"], "since") if q.get("since") else None
        cursor = self.cursor()
        try:
            known = storage.model_features(cursor, model)
            if not known:
                models = storage.drift_models(cursor)
                raise NotFound(
                    f"no drift reference or run for model {model[:80]!r}"
                    + (f"; models with drift data: {', '.join(models)}" if models else "")
                )
            if feature is not None and feature not in known:
                raise BadRequest(
                    f"feature {feature[:80]!r} is not a feature of model {model!r}; "
                    f"its features: {', '.join(known)}"
                )
            found = storage.column_history(cursor, model, version, feature, since, limit)
        finally:
            cursor.close()
        return {"columns": found}

    def _span(self, q: Mapping[str, str], default: str) -> tuple[int, int]:
        """The window ``since``/``start``/``end`` ask for, as (start, end) Unix ns."""
        since = q.get("since") or (None if q.get("start") else default)
        now = self.now()
        asked = query_window(q.get("start"), q.get("end"), since, now_ns=now)
        end = asked.end_ns if asked.end_ns is not None else now
        start = asked.start_ns if asked.start_ns is not None else end - parse_duration(default)
        if start >= end:
            raise BadRequest("start must be before end")
        return start, end

    def references(self, q: Mapping[str, str]) -> dict[str, Any]:
        cursor = self.cursor()
        try:
            return {"references": storage.references(cursor, q.get("model") or None)}
        finally:
            cursor.close()

    # -- runs ----------------------------------------------------------------------

    def run_request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/drift/runs``: {model, version?, window?, methods?, thresholds?}."""
        unknown = set(body) - RUN_KEYS
        if unknown:
            raise BadRequest(
                f"unknown field {sorted(unknown)[0]!r}; use {', '.join(sorted(RUN_KEYS))}"
            )
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("model is required: the ml.model.name of the inference spans")
        version = body.get("version")
        if version is not None and not isinstance(version, str):
            raise BadRequest("version must be text")
        window = body.get("window")
        if window is not None and not isinstance(window, str):
            raise BadRequest("window must be a duration like 30m, 24h, 7d")
        chosen = _mapping(body.get("methods"), "methods", str)
        thresholds = _mapping(body.get("thresholds"), "thresholds", float)
        return self.run(model, version or None, window, chosen, thresholds, "manual")

    def run(
        self,
        model: str,
        version: str | None,
        window: str | None = None,
        chosen: Mapping[str, str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        trigger: str = "manual",
    ) -> dict[str, Any]:
        """Run drift for ``model`` (and ``version``) over the window ending now; stored."""
        settings = self.config.models.get(model, ModelDrift(model))
        span = parse_duration(window or settings.window or self.config.window, "window")
        if not 0 < span <= MAX_WINDOW_NS:
            raise BadRequest("window must be more than 0 and at most 400d")
        options = RunOptions(
            methods={**settings.methods, **(chosen or {})},
            thresholds={**settings.thresholds, **(thresholds or {})},
            min_rows=self.config.min_rows,
            drift_share=self.config.drift_share,
            report_rows=self.config.report_rows,
        )
        with self._one_run:
            started = time.perf_counter()
            end = self.now()
            start = end - span
            cursor = self.cursor()
            try:
                reference_id, reference = storage.active_reference(cursor, model, version)
                _check_columns(options, reference)
                types = {name: c.type for name, c in reference.items()}
                rows, current = storage.production(cursor, model, version, start, end, types)
            finally:
                cursor.close()
            self._check_methods(options, reference)
            columns = self._judge(reference, current, rows, options)
            outcome = verdict(columns, rows, options)
            judged = [c for c in columns if c["status"] in (DRIFT, NO_DRIFT)]
            samples = report_samples(reference, current, judged, options) if judged else None
            document = {
                "time_ns": end,
                "start_ns": start,
                "end_ns": end,
                "model_name": model,
                "model_version": version,
                "reference_id": reference_id,
                "trigger": trigger,
                "rows": rows,
                **outcome,
                "seconds": time.perf_counter() - started,
                "report_status": "pending" if judged else "none",
                "report_note": None if judged else _NO_REPORT,
                "column_results": columns,
            }
            run_id = self.apply(lambda conn: storage.save_run(conn, document), len(columns) + 1)
        if samples is not None:  # the verdicts are stored: the report follows on its own
            self._reports.submit(self._draw_report, run_id, samples, judged, options)
        found = self.get(str(run_id))
        if self.on_run is not None:
            self.on_run(found)
        return found

    def _check_methods(self, options: RunOptions, reference: Mapping[str, Any]) -> None:
        """BadRequest unless each chosen test is one Evidently has for its column's type
        (asked in a worker: Evidently's registry is never imported in the server)."""
        pool = self._workers()
        checks = [
            pool.submit(methods.check_method, method, reference[name].type)
            for name, method in options.methods.items()
        ]
        for check in checks:
            check.result()

    def _judge(
        self,
        reference: Mapping[str, Any],
        current: Mapping[str, Any],
        rows: int,
        options: RunOptions,
    ) -> list[dict[str, Any]]:
        pool = self._workers()
        futures: list[Future] = [
            pool.submit(judge_column, ref, current.get(name), rows, options)
            for name, ref in reference.items()
        ]
        try:
            return [f.result() for f in futures]
        except BrokenProcessPool:
            with self._pool_lock:
                if self._pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
            raise Unavailable("a drift worker process died; run drift again") from None

    def _draw_report(
        self,
        run_id: int,
        samples: tuple[dict[str, Any], dict[str, Any]],
        judged: list[dict[str, Any]],
        options: RunOptions,
    ) -> None:
        """Evidently's report in a worker, stored when drawn (or why it could not be)."""
        try:
            html, note = (
                self._workers().submit(report_from_samples, *samples, judged, options).result()
            )
            self._write_report(run_id, html)
            status = "ready"
        except Exception as exc:  # the verdicts stand without the report
            status = "failed"
            if self._stop.is_set():  # its worker was stopped with the server
                note = "the server stopped while Evidently drew the report; run drift again"
            else:
                log.exception("Evidently's report of drift run %s failed", run_id)
                note = f"Evidently could not draw the report: {type(exc).__name__}: {exc}"
        try:
            self.apply(lambda conn: storage.set_report(conn, run_id, status, note), 1)
        except OnepaneError as exc:  # shutting down: the run stays without its report
            log.warning("the report of drift run %s was not stored: %s", run_id, exc)

    def wait_for_reports(self) -> None:
        """Block until every report asked for so far is stored (tests, benchmarks)."""
        self._reports.submit(lambda: None).result()

    def _workers(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    max(1, self.config.workers), mp_context=context, initializer=init_worker
                )
            return self._pool

    # -- results -------------------------------------------------------------------

    def runs(self, q: Mapping[str, str]) -> dict[str, Any]:
        unknown = set(q) - LIST_PARAMS
        if unknown:
            raise BadRequest(
                f"unknown parameter {sorted(unknown)[0][:40]!r}; "
                f"use {', '.join(sorted(LIST_PARAMS))}"
            )
        limit = whole_param(q.get("limit"), 100, "limit")
        cursor = self.cursor()
        try:
            found = storage.runs(
                cursor, q.get("model"), q.get("version"), q.get("status"), min(limit, 10_000)
            )
        finally:
            cursor.close()
        return {"runs": found}

    def get(self, run_id: str) -> dict[str, Any]:
        cursor = self.cursor()
        try:
            return storage.run(cursor, whole_param(run_id, 0, "run id"))
        finally:
            cursor.close()

    def _write_report(self, run_id: int, html: str) -> None:
        """The report as ``<reports>/<run_id>.html``, whole or not at all."""
        self.reports.mkdir(parents=True, exist_ok=True)
        final = self.reports / f"{run_id}.html"
        partial = final.with_suffix(".html.partial")
        partial.write_text(html, encoding="utf-8")
        partial.replace(final)

    def report(self, run_id: str) -> str:
        number = whole_param(run_id, 0, "run id")
        cursor = self.cursor()
        try:
            storage.report_state(cursor, number)
        finally:
            cursor.close()
        try:
            return (self.reports / f"{number}.html").read_text(encoding="utf-8")
        except OSError as exc:
            raise NotFound(
                f"the report of drift run {number} is gone from {self.reports}: "
                f"{exc.strerror or exc}; run drift again for a new one"
            ) from None

    def shares(self) -> list[tuple[str, str, float]]:
        cursor = self.cursor()
        try:
            return storage.latest_shares(cursor)
        finally:
            cursor.close()

    # -- schedule ------------------------------------------------------------------

    def start(self) -> None:
        """Run each model with ``every`` set on its schedule, in a thread of its own."""
        self.apply(storage.abandon_reports, 1)  # reports a stopped server never drew
        scheduled = [m for m in self.config.models.values() if m.every_s]
        if scheduled:
            self._scheduler = threading.Thread(
                target=self._schedule, args=(scheduled,), name="onepane-drift", daemon=True
            )
            self._scheduler.start()

    def _schedule(self, scheduled: list[ModelDrift]) -> None:
        due = {m.model: time.monotonic() + min(m.every_s or 0, 60.0) for m in scheduled}
        while not self._stop.wait(1.0):
            for settings in scheduled:
                if time.monotonic() < due[settings.model]:
                    continue
                due[settings.model] = time.monotonic() + (settings.every_s or 0)
                try:
                    self.run(settings.model, settings.version, trigger="schedule")
                except OnepaneError as exc:
                    log.warning("scheduled drift run of %s: %s", settings.model, exc)
                except Exception:
                    log.exception("scheduled drift run of %s failed", settings.model)

    def shutdown(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join(5)
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            _stop_workers(pool)
        self._reports.shutdown(cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the worker processes now rather than wait for a drift run or report in
    progress (Evidently can take minutes): the run is answered with an error, the report
    is marked as not drawn."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(5)


def _check_columns(options: RunOptions, reference: Mapping[str, Any]) -> None:
    for name in {*options.methods, *options.thresholds}:
        if name not in reference:
            raise BadRequest(
                f"column {name!r} is not in the reference; its columns: "
                f"{', '.join(sorted(reference))}"
            )


def _required(q: Mapping[str, str], key: str, what: str = "") -> str:
    value = q.get(key)
    if not value:
        raise BadRequest(f"{key} is required" + (f": {what}" if what else ""))
    return value


def _check_params(q: Mapping[str, str], allowed: set[str]) -> None:
    unknown = set(q) - allowed
    if unknown:
        raise BadRequest(
            f"unknown parameter {sorted(unknown)[0][:40]!r}; use {', '.join(sorted(allowed))}"
        )


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def _mapping(value: Any, name: str, kind: type) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be an object of column: value")
    out = {}
    for key, item in value.items():
        if kind is float and isinstance(item, int | float) and not isinstance(item, bool):
            out[str(key)] = float(item)
        elif kind is str and isinstance(item, str) and item:
            out[str(key)] = item
        else:
            raise BadRequest(f"{name}.{key} must be a {'number' if kind is float else 'name'}")
    return out
