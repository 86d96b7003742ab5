"""Hostile-input fuzz targets shared by the test suite (few examples) and bench/fuzz.py (many).

Each target is a hypothesis strategy of inputs and a function that feeds one input to a
real Onepane parser: the OTLP decoders, gzip decompression, the FOCUS billing import, the
gate policy parser and the manifest parser. The property is always the same: the parser
returns a result, or raises an ``OnepaneError`` whose message says what was wrong; any
other exception, or an input that takes longer than the deadline, is a failure.
"""

from __future__ import annotations

import csv
import io
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import hypothesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.otlp import wire
from collectors.otlp.decoders import decode
from cost import billing
from deploy_hooks import manifests, policy
from onepane.errors import OnepaneError
from tests.fuzz.file_inputs import (
    FOCUS_BYTES,
    GZIP_LIMIT,
    MANIFEST_KEYS,
    POLICY_KEYS,
    gzip_bodies,
    hostile_yaml,
)
from tests.fuzz.otlp_inputs import (
    DEEP_LOG_BODIES,
    OTLP_EXAMPLES,
    PROTOBUF_BODIES,
    json_documents,
    json_mutations,
    protobuf_mutations,
)

HANG_S = 20.0  # per input; a parse of these small inputs takes milliseconds
SUITE_EXAMPLES = 10  # per target in the test suite; bench/fuzz.py runs many more


def expect_clear(call: Callable[[], Any]) -> Any:
    """``call()``'s result, or None when it raised an OnepaneError with a message."""
    try:
        return call()
    except OnepaneError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} with an empty message"
        return None


def check_decode(signal: str, body: bytes, json_body: bool) -> None:
    """Decode ``body``; a result must account for every item (stored + rejected)."""
    result = expect_clear(lambda: decode(signal, body, json_body))
    if result is None:
        return
    assert result.table.num_rows == result.accepted
    assert result.rejected >= 0
    if result.rejected:
        assert result.error_message, "items were rejected without a message"
    if not json_body:
        message = wire._SHAPES[signal].message.FromString(body)
        assert result.accepted + result.rejected == _item_count(signal, message)


def _item_count(signal: str, message: Any) -> int:
    if signal == "traces":
        return sum(len(s.spans) for r in message.resource_spans for s in r.scope_spans)
    if signal == "logs":
        return sum(len(s.log_records) for r in message.resource_logs for s in r.scope_logs)
    total = 0
    for r in message.resource_metrics:
        for s in r.scope_metrics:
            for m in s.metrics:
                which = m.WhichOneof("data")
                total += len(getattr(m, which).data_points) if which else 0
    return total


def check_gzip(body: bytes) -> None:
    out = expect_clear(lambda: wire.decompress(body, "gzip", GZIP_LIMIT))
    assert out is None or len(out) <= GZIP_LIMIT


def check_billing(connection: duckdb.DuckDBPyConnection, data: bytes, filename: str) -> None:
    """Parse a bill: rejected whole, or every data row in the result; no table left over."""
    result = expect_clear(lambda: billing.parse(connection.cursor(), data, filename))
    leftover = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'bill_raw'"
    ).fetchone()[0]
    assert leftover == 0, "a rejected bill left its rows behind"
    if result is not None and not data.startswith(b"PAR1"):
        lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        data_rows = [row for row in lines[1:] if row]
        assert result.rows.num_rows == len(data_rows), "a bill was imported in part"


def check_policy(text: str) -> None:
    result = expect_clear(lambda: policy.from_file_text(text, "policy.yaml"))
    if result is not None:
        for env in [None, *result.environments()]:
            result.limits(env or "prod", "prod/fraud", "ml", "model")
        for limits in result.rules.values():
            for limit in limits.values():
                assert limit.describe()


def check_manifests(text: str) -> None:
    docs = expect_clear(lambda: manifests.load([("deploy.yaml", text)]))
    if docs is None:
        return
    for doc in docs[:5]:
        meta = doc.value.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        workload = f"{meta.get('namespace') or 'default'}/{name}" if name else "default/x"
        expect_clear(lambda w=workload: manifests.release(docs, str(w)))


@dataclass(frozen=True)
class Target:
    """One fuzz target: what it feeds and how."""

    name: str
    inputs: st.SearchStrategy[Any]
    check: Callable[[Any], None]


def targets(connection: duckdb.DuckDBPyConnection) -> list[Target]:
    """Every target, for the suite and for bench/fuzz.py."""
    out = []
    for kind in OTLP_EXAMPLES:
        out += [
            Target(
                f"otlp {kind} random bytes",
                st.tuples(st.binary(max_size=400), st.booleans()),
                lambda v, k=kind: check_decode(k, v[0], v[1]),
            ),
            Target(
                f"otlp {kind} protobuf",
                st.one_of(PROTOBUF_BODIES[kind], DEEP_LOG_BODIES)
                if kind == "logs"
                else PROTOBUF_BODIES[kind],
                lambda v, k=kind: check_decode(k, v, False),
            ),
            Target(
                f"otlp {kind} mutated protobuf",
                protobuf_mutations(kind),
                lambda v, k=kind: check_decode(k, v, False),
            ),
            Target(
                f"otlp {kind} json",
                json_documents(kind),
                lambda v, k=kind: check_decode(k, v, True),
            ),
            Target(
                f"otlp {kind} mutated json",
                json_mutations(kind),
                lambda v, k=kind: check_decode(k, v, True),
            ),
        ]
    out += [
        Target("gzip bodies", gzip_bodies(), check_gzip),
        Target(
            "focus bill",
            st.tuples(FOCUS_BYTES, st.sampled_from(["bill.csv", "bill.parquet"])),
            lambda v: check_billing(connection, v[0], v[1]),
        ),
        Target("gate policy", hostile_yaml(POLICY_KEYS), check_policy),
        Target("manifests", hostile_yaml(MANIFEST_KEYS), check_manifests),
    ]
    return out


@dataclass
class Outcome:
    """What one fuzz run of a target did."""

    name: str
    tried: int
    seconds: float
    error: BaseException | None


class Hang(Exception):
    """One input kept a parser busy past ``HANG_S``."""


def _hang(signum: int, frame: Any) -> None:
    raise Hang(f"one input took over {HANG_S:g} s: a parser that hangs")


def _check_within(target: Target, value: Any) -> None:
    """``target.check(value)`` with a SIGALRM after ``HANG_S``; an alarm already set (by
    pytest-timeout) is put back with the time it had left."""
    if threading.current_thread() is not threading.main_thread():
        target.check(value)
        return
    previous = signal.signal(signal.SIGALRM, _hang)
    started = time.monotonic()
    pending, _ = signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        target.check(value)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if pending:
            left = pending - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def run(target: Target, examples: int, seed: int | None = None) -> Outcome:
    """Feed ``examples`` inputs to ``target``; a failure is shrunk to its smallest input.
    Each input gets ``HANG_S`` seconds (a busy shared machine makes hypothesis's own
    deadline flaky, so it is off)."""
    tried = 0

    def one(value: Any) -> None:
        nonlocal tried
        tried += 1
        _check_within(target, value)

    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=seed is None,
    )(given(target.inputs)(one))
    if seed is not None:
        test = hypothesis.seed(seed)(test)
    start = time.perf_counter()
    try:
        test()
        error = None
    except Exception as exc:  # the falsifying input is in the exception's notes
        error = exc
    return Outcome(target.name, tried, time.perf_counter() - start, error)
