"""Drift benchmark: one run over 1M production rows × 20 columns, against plain Evidently.

A seeded reference of 100,000 rows × 20 columns (14 numerical: normal, lognormal, uniform,
exponential, gamma with missing values, integer counts with many values; 6 categorical:
strings with 3 to 50 categories, small integer codes) is profiled and stored as the active
reference; production is 1,000,000 predictions of the same columns (20M rows of the
long `features` table, as ingest writes them), 7 of the columns shifted: 2 far past
Evidently's thresholds, 5 near them on either side. Building and loading all that is
setup, timed apart.

1. **Onepane**: `DriftService.run` as the server calls it (the server's store settings:
   one DuckDB thread, 256 MB; two worker processes, warmed first by one small run over
   the last 10 minutes and Evidently imported in each): read the reference and the
   window's features, judge every column, draw Evidently's report on samples, store.
   Median of 3 runs, with the split into those parts (the same functions the service
   calls, timed one by one); beside the wall times, the CPU seconds of this process and
   of the workers, steadier than wall times when the machine is busy (the load average
   is printed). Target: ≤ 10 s.
2. **Evidently** once, in the same process: `Report([DataDriftPreset()]).run(current,
   reference)` on the same full data as pandas frames (1M rows and the 100k reference),
   with its tests included so each column's verdict is Evidently's own `drift_detected`.
   Printed: its time, the speedup, and per column both tests, scores and verdicts. Target:
   the verdicts agree for ≥ 95% of the columns.

    python bench/drift.py [--rows 1000000] [--runs 3] [--skip-evidently]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_BENCH = Path(__file__).resolve().parent
# This script is bench/drift.py: its folder must not hide the `drift` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
from scipy.spatial import distance  # noqa: E402

from drift import profile, storage  # noqa: E402
from drift.run import (  # noqa: E402
    DRIFT,
    NO_DRIFT,
    RunOptions,
    report_from_samples,
    report_samples,
    verdict,
)
from drift.settings import DriftConfig  # noqa: E402
from onepane.driftapi import DriftService  # noqa: E402
from store import db  # noqa: E402

SEED = 7
REFERENCE_ROWS = 100_000
MODEL, VERSION, WORKLOAD = "fraud-scorer", "1.4.0", "ml/fraud-scorer"
HOUR_NS = 3_600 * 10**9
SPREAD_NS = 23 * HOUR_NS  # production predictions spread over the 23 hours before the end
WINDOW = "24h"
WARM_WINDOW = "10m"
CHUNK = 100_000  # predictions per insert while loading the store (2M feature rows)
TARGET_S, TARGET_AGREEMENT = 10.0, 0.95

# Evidently's test names (ValueDrift's method) as Onepane names them.
EVIDENTLY_METHODS = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "K-S p_value": "ks",
}
P_VALUE_TESTS = {"chisquare", "z", "ks"}


# -- data ------------------------------------------------------------------------------

Draw = Callable[[np.random.Generator, int, bool], np.ndarray]


@dataclass(frozen=True)
class Column:
    name: str
    draw: Draw  # (rng, size, production) -> values
    shift: str  # what production changes, or "" when nothing


def _js_mix(p: np.ndarray, q: np.ndarray, target: float) -> np.ndarray:
    """Shares (1 - t)·p + t·q with Jensen-Shannon distance ``target`` from p (bisection)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        t = (low + high) / 2
        if distance.jensenshannon(p, (1 - t) * p + t * q) < target:
            low = t
        else:
            high = t
    return (1 - low) * p + low * q


def _zipf(n: int, s: float = 1.1) -> np.ndarray:
    shares = 1.0 / np.arange(1, n + 1) ** s
    return shares / shares.sum()


def _normal(mean: float, std: float, shift_stds: float = 0.0, scale: float = 1.0) -> Draw:
    """N(mean, std); production moved by ``shift_stds`` stds and its spread × ``scale``
    (the normed Wasserstein distance of a shift is the shift in stds, of a scale change
    |scale - 1|·√(2/π))."""

    def draw(rng: np.random.Generator, size: int, prod: bool) -> np.ndarray:
        if not prod:
            return rng.normal(mean, std, size)
        return rng.normal(mean + shift_stds * std, std * scale, size)

    return draw


def _same(make: Callable[[np.random.Generator, int], np.ndarray]) -> Draw:
    return lambda rng, size, prod: make(rng, size)


def _with_missing(draw: Draw, share: float) -> Draw:
    def with_nan(rng: np.random.Generator, size: int, prod: bool) -> np.ndarray:
        values = draw(rng, size, prod)
        values[rng.random(size) < share] = np.nan
        return values

    return with_nan


def _categories(labels: list[Any], ref: np.ndarray, prod: np.ndarray | None = None) -> Draw:
    """Labels drawn with shares ``ref`` (production: ``prod``, when given)."""
    keys = np.array(labels, dtype=object if isinstance(labels[0], str) else np.int64)

    def draw(rng: np.random.Generator, size: int, is_prod: bool) -> np.ndarray:
        shares = prod if is_prod and prod is not None else ref
        return keys[rng.choice(len(keys), size=size, p=shares)]

    return draw


def columns() -> list[Column]:
    """The 20 columns: 14 numerical, 6 categorical; 7 shifted in production."""
    ch_ref = _zipf(10, 0.8)
    ch_prod = _js_mix(ch_ref, np.roll(ch_ref, 3), 0.095)
    tier_ref = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
    tier_prod = _js_mix(tier_ref, tier_ref[::-1], 0.105)
    cat_ref = _zipf(50, 1.0)
    cat_prod = _js_mix(cat_ref, cat_ref[::-1], 0.2)
    return [
        Column("amount", _normal(50.0, 10.0), ""),
        Column("latency_ms", _same(lambda r, n: r.lognormal(3.0, 0.6, n)), ""),
        Column("score", _same(lambda r, n: r.uniform(0.0, 1.0, n)), ""),
        Column("items", _same(lambda r, n: r.poisson(40, n)), ""),
        Column("user_age", _same(lambda r, n: r.integers(18, 91, n)), ""),
        Column("session_s", _same(lambda r, n: r.exponential(120.0, n)), ""),
        Column(
            "balance",
            _with_missing(_same(lambda r, n: r.gamma(2.0, 500.0, n)), 0.02),
            "",  # 2% missing in both
        ),
        Column("income", _same(lambda r, n: r.lognormal(10.0, 0.8, n)), ""),
        Column("distance_km", _same(lambda r, n: r.lognormal(1.0, 1.0, n)), ""),
        Column("ratio", _same(lambda r, n: r.uniform(0.0, 1.0, n) ** 2), ""),
        Column("temperature", _normal(20.0, 5.0, shift_stds=0.105), "mean +0.105 std"),
        Column("pressure", _normal(1000.0, 30.0, shift_stds=0.095), "mean +0.095 std"),
        Column("residual", _normal(0.0, 1.0, scale=1.14), "std ×1.14 (W≈0.112)"),
        Column(
            "page_views",
            lambda r, n, prod: r.negative_binomial(3, 0.02 if not prod else 0.016, n),
            "mean 147 → 184",
        ),
        Column("country", _categories([f"country-{i:02d}" for i in range(20)], _zipf(20)), ""),
        Column("device", _categories(["mobile", "desktop", "tablet"], _zipf(3, 0.7)), ""),
        Column(
            "channel",
            _categories([f"channel-{i}" for i in range(10)], ch_ref, ch_prod),
            "shares mixed, JS 0.095",
        ),
        Column(
            "product",
            _categories([f"product-{i:02d}" for i in range(50)], cat_ref, cat_prod),
            "shares mixed, JS 0.2",
        ),
        Column(
            "plan_tier", _categories([0, 1, 2, 3, 4], tier_ref, tier_prod), "shares mixed, JS 0.105"
        ),
        Column("weekday", _categories(list(range(7)), np.full(7, 1 / 7)), ""),
    ]


def build_data(
    cols: list[Column], rows: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The reference and production columns (seeded)."""
    rng = np.random.default_rng(SEED)
    reference = {c.name: c.draw(rng, REFERENCE_ROWS, False) for c in cols}
    production = {c.name: c.draw(rng, rows, True) for c in cols}
    return reference, production


# -- store -----------------------------------------------------------------------------


def load_features(conn: Any, production: dict[str, np.ndarray], end_ns: int) -> None:
    """Production into `features` as ingest writes it: a row per feature per prediction
    (numbers in num, strings in text; a missing value is no row), predictions in time
    order, each one's features together."""
    names = list(production)
    n_rows = len(next(iter(production.values())))
    step = SPREAD_NS // n_rows
    texts = sorted({v for a in production.values() if a.dtype == object for v in set(a)})
    text_index = {t: i for i, t in enumerate(texts)}
    name_dict, text_dict = pa.array(names), pa.array(texts)
    width = len(names)
    for first in range(0, n_rows, CHUNK):
        size = min(CHUNK, n_rows - first)
        nums = np.full((size, width), np.nan)
        codes = np.full((size, width), -1, dtype=np.int32)
        present = np.ones((size, width), dtype=bool)
        for j, name in enumerate(names):
            values = production[name][first : first + size]
            if values.dtype == object:
                codes[:, j] = [text_index[v] for v in values]
            else:
                nums[:, j] = values
                present[:, j] = ~np.isnan(nums[:, j])
        keep = present.ravel()
        times = end_ns - SPREAD_NS + (first + np.arange(size, dtype=np.int64)) * step
        name_codes = np.tile(np.arange(width, dtype=np.int32), size)[keep]
        text_codes = codes.ravel()[keep]
        num = nums.ravel()[keep]
        chunk = pa.table(  # noqa: F841 (DuckDB reads it by its name)
            {
                "time": pa.array(np.repeat(times, width)[keep], pa.timestamp("ns")),
                "name": pa.DictionaryArray.from_arrays(pa.array(name_codes), name_dict),
                "num": pa.array(num, mask=text_codes >= 0),
                "text": pa.DictionaryArray.from_arrays(
                    pa.array(text_codes, mask=text_codes < 0), text_dict
                ),
            }
        )
        conn.execute(
            "INSERT INTO features SELECT time, $model, $version, $workload, name, num, text "
            "FROM chunk",
            {"model": MODEL, "version": VERSION, "workload": WORKLOAD},
        )


def register_reference(conn: Any, reference: dict[str, np.ndarray], now_ns: int) -> Any:
    profiled = profile.profile(pl.DataFrame(reference))
    with db.transaction(conn):
        storage.save_reference(conn, MODEL, "*", "reference.parquet", profiled, now_ns)
    return profiled


# -- Onepane ---------------------------------------------------------------------------


def _import_evidently() -> None:
    """In a worker: import what the report needs (then hold the worker a moment, so that
    the other worker takes the other call)."""
    from evidently import Report  # noqa: F401
    from evidently.presets import DataDriftPreset  # noqa: F401

    time.sleep(0.5)


def warm_workers(service: DriftService) -> float:
    """One small run (over the last few minutes): starts the workers and draws a report in
    one of them; then Evidently imported in each, as after a few runs of the server."""
    started = time.perf_counter()
    service.run(MODEL, None, WARM_WINDOW)
    pool = service._workers()
    for future in [pool.submit(_import_evidently) for _ in range(service.config.workers)]:
        future.result()
    return time.perf_counter() - started


_TICK = os.sysconf("SC_CLK_TCK")


def _worker_cpu(service: DriftService) -> float:
    """CPU seconds the service's worker processes have used so far (Linux /proc)."""
    pool = service._pool
    total = 0.0
    for pid in list(pool._processes) if pool is not None else []:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    return total


@dataclass
class Times:
    """Wall seconds of each run, with the CPU seconds of this process (DuckDB's thread
    included) and of the workers: on a busy machine the CPU seconds are the steadier."""

    wall: list[float]
    main_cpu: list[float]
    worker_cpu: list[float]

    def line(self) -> str:
        median = statistics.median
        return (
            f"median {median(self.wall):.2f} s (runs {_runs(self.wall)}); CPU: this process "
            f"{median(self.main_cpu):.2f} s, workers {median(self.worker_cpu):.2f} s"
        )


class Clock:
    def __init__(self, service: DriftService) -> None:
        self.service = service
        self.last = self._now()

    def _now(self) -> tuple[float, float, float]:
        return time.perf_counter(), time.process_time(), _worker_cpu(self.service)

    def lap(self, into: Times) -> None:
        now = self._now()
        into.wall.append(now[0] - self.last[0])
        into.main_cpu.append(now[1] - self.last[1])
        into.worker_cpu.append(now[2] - self.last[2])
        self.last = now


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def timed_runs(service: DriftService, runs: int) -> tuple[Times, dict[str, Any]]:
    """``runs`` whole runs of the service, as the API calls it; the last run's result."""
    times, result = Times([], [], []), {}
    clock = Clock(service)
    for _ in range(runs):
        result = service.run(MODEL, None, WINDOW)
        clock.lap(times)
        service.wait_for_reports()  # the report follows the answer: not part of the run
        clock = Clock(service)
    return times, result


def split(service: DriftService, end_ns: int, runs: int) -> dict[str, Times]:
    """The parts of a run, each timed by calling what DriftService.run calls."""
    config = service.config
    options = RunOptions(
        min_rows=config.min_rows, drift_share=config.drift_share, report_rows=config.report_rows
    )
    parts = {
        "read reference + features (SQL, polars)": Times([], [], []),
        "judge columns (2 workers)": Times([], [], []),
        "draw the report's samples (this process)": Times([], [], []),
        "store the run (answered here)": Times([], [], []),
        "Evidently report, after the answer (one worker)": Times([], [], []),
    }
    read, judge, sample, store, draw = parts.values()
    span = 24 * HOUR_NS
    for _ in range(runs):
        clock = Clock(service)
        started = time.perf_counter()
        cursor = service.cursor()
        try:
            reference_id, reference = storage.active_reference(cursor, MODEL, None)
            types = {name: c.type for name, c in reference.items()}
            rows, current = storage.production(cursor, MODEL, None, end_ns - span, end_ns, types)
        finally:
            cursor.close()
        clock.lap(read)
        judged = service._judge(reference, current, rows, options)
        outcome = verdict(judged, rows, options)
        clock.lap(judge)
        ok = [c for c in judged if c["status"] in (DRIFT, NO_DRIFT)]
        samples = report_samples(reference, current, ok, options)
        clock.lap(sample)
        document = {
            "time_ns": end_ns,
            "start_ns": end_ns - span,
            "end_ns": end_ns,
            "model_name": MODEL,
            "model_version": None,
            "reference_id": reference_id,
            "trigger": "manual",
            "rows": rows,
            **outcome,
            "seconds": time.perf_counter() - started,
            "report_status": "pending",
            "report_note": None,
            "column_results": judged,
        }
        run_id = service.apply(lambda c, d=document: storage.save_run(c, d), len(judged) + 1)
        clock.lap(store)
        drawn = service._workers().submit(report_from_samples, *samples, ok, options).result()
        service._write_report(run_id, drawn[0])
        service.apply(lambda c, i=run_id, n=drawn[1]: storage.set_report(c, i, "ready", n), 1)
        clock.lap(draw)
    return parts


# -- Evidently -------------------------------------------------------------------------


def evidently_columns(snapshot: Any) -> dict[str, dict[str, Any]]:
    """Each column's test, score, threshold and verdict from a DataDriftPreset snapshot."""
    found: dict[str, dict[str, Any]] = {}
    dump = snapshot.dict()
    for metric in dump["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        method = EVIDENTLY_METHODS.get(config["method"], config["method"])
        score, threshold = float(metric["value"]), float(config["threshold"])
        if method in P_VALUE_TESTS:
            drifted = score <= threshold if method == "ks" else score < threshold
        else:
            drifted = score >= threshold
        found[config["column"]] = {"method": method, "score": score, "drifted": drifted}
    for test in dump.get("tests") or []:  # Evidently's own verdict, when tests are included
        params = test.get("metric_config", {}).get("params", {})
        if test.get("id") == "drift" and params.get("column") in found:
            found[params["column"]]["drifted"] = test["status"] == "FAIL"
    return found


def run_evidently(
    reference: dict[str, np.ndarray], production: dict[str, np.ndarray]
) -> tuple[float, dict[str, dict[str, Any]]]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    current_df, reference_df = pd.DataFrame(production), pd.DataFrame(reference)
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(current_df, reference_df)
    seconds = time.perf_counter() - started
    return seconds, evidently_columns(snapshot)


# -- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="production predictions")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true", help="Onepane's run only")
    args = parser.parse_args()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} at start")
    cols = columns()
    end = time.time_ns() // HOUR_NS * HOUR_NS
    folder = Path(tempfile.mkdtemp(prefix="onepane-bench-drift-"))
    try:
        started = time.perf_counter()
        reference, production = build_data(cols, args.rows)
        generated = time.perf_counter()
        setup = db.connect(folder / "drift.duckdb", memory_limit="2GB", threads=2)
        load_features(setup, production, end)
        (stored_rows,) = setup.execute("SELECT count(*) FROM features").fetchone()
        loaded = time.perf_counter()
        register_reference(setup, reference, end)
        registered = time.perf_counter()
        setup.close()
        print(
            f"data: reference {REFERENCE_ROWS:,} rows × {len(cols)} columns, production "
            f"{args.rows:,} rows × {len(cols)} columns ({stored_rows:,} feature rows); "
            f"{sum(1 for c in cols if c.shift)} columns shifted"
        )
        print(
            f"setup (not timed below): numpy data {generated - started:.1f} s, loading the "
            f"features table {loaded - generated:.1f} s, profiling and storing the reference "
            f"{registered - loaded:.1f} s"
        )

        conn = db.connect(folder / "drift.duckdb")  # the server's settings: 1 thread, 256 MB
        readers = db.ReadCursors(conn)
        readers.warm_up()

        def apply(write: Callable[[Any], Any], rows: int) -> Any:
            with db.transaction(conn):
                return write(conn)

        service = DriftService(
            DriftConfig(workers=2), readers.cursor, apply, folder / "reports", now=lambda: end + 1
        )
        try:
            warm = warm_workers(service)
            print(
                f"warm-up (not timed below): one run over the last {WARM_WINDOW} starts the 2 "
                f"workers, then Evidently is imported in each: {warm:.1f} s"
            )
            times, ours = timed_runs(service, args.runs)
            median = statistics.median(times.wall)
            print(
                f"Onepane drift run, {ours['rows']:,} rows × {len(cols)} columns: "
                f"{times.line()}  (target ≤ {TARGET_S:.0f} s): "
                f"{'met' if median <= TARGET_S else 'NOT met'}"
            )
            print(
                f"  verdict: {ours['status']}, {ours['drifted']} of {ours['columns']} columns "
                "drifted"
            )
            print(f"  split (each part timed alone, {args.runs} times):")
            for name, part in split(service, end + 1, args.runs).items():
                print(f"    {name}: {part.line()}")
        finally:
            service.shutdown()
            readers.close()
            conn.close()

        theirs: dict[str, dict[str, Any]] = {}
        if not args.skip_evidently:
            seconds, theirs = run_evidently(reference, production)
            print(
                f"Evidently DataDriftPreset, same data ({args.rows:,} + {REFERENCE_ROWS:,} "
                f"rows, pandas): {seconds:.1f} s (one run); Onepane is {seconds / median:.1f}× "
                "faster"
            )
        report(cols, ours, theirs)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average at the end: {load}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(cols: list[Column], ours: dict[str, Any], theirs: dict[str, dict[str, Any]]) -> None:
    by_name = {c["name"]: c for c in ours["column_results"]}
    print(
        f"  {'column':<12} {'shift':<24} {'test':<14} {'score':>9} {'Evidently':>9}  "
        f"{'verdict':<9} {'Evidently':<9}"
    )
    agree = 0
    for col in cols:
        mine, other = by_name[col.name], theirs.get(col.name)
        our_verdict = mine["status"]
        if other is None:
            their_score, their_verdict, same = "", "", ""
        else:
            their_score = f"{other['score']:9.5f}"
            their_verdict = "drift" if other["drifted"] else "no drift"
            same = "" if their_verdict == our_verdict else "  ← differs"
            if other["method"] != mine["method"]:
                same += f"  (Evidently's test: {other['method']})"
            agree += their_verdict == our_verdict
        score = "" if mine["score"] is None else f"{mine['score']:9.5f}"
        print(
            f"  {col.name:<12} {col.shift or '-':<24} {mine['method'] or '-':<14} {score:>9} "
            f"{their_score:>9}  {our_verdict:<9} {their_verdict:<9}{same}"
        )
    if theirs:
        share = agree / len(cols)
        print(
            f"verdicts agree for {agree} of {len(cols)} columns ({share:.0%})  (target ≥ "
            f"{TARGET_AGREEMENT:.0%}): {'met' if share >= TARGET_AGREEMENT else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
