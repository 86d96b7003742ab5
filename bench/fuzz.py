"""Hostile input, long runs: every fuzz target of tests/fuzz/targets.py with many inputs,
then schemathesis against a live server's OpenAPI document with every phase.

    .venv/bin/python bench/fuzz.py                      # 2000 inputs a target, 50 per operation
    ONEPANE_FUZZ_EXAMPLES=20000 .venv/bin/python bench/fuzz.py --only otlp
    .venv/bin/python bench/fuzz.py --api-examples 200 --api-max-time 600

Prints, per target, the inputs tried, the seconds and the failures found (must be 0), and
for the API the operations tested, the requests made and the failures. Exits 1 on any
failure, printing the smallest failing input.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onepane.testing import LiveServer
from tests.fuzz import apifuzz, targets


def fuzz_parsers(examples: int, only: str, seed: int) -> int:
    print(f"{'target':34} {'inputs':>8} {'seconds':>8} {'failures':>8}")
    failures = 0
    with duckdb.connect() as connection:
        for target in targets.targets(connection):
            if only not in target.name:
                continue
            outcome = targets.run(target, examples, seed=seed)
            failed = int(outcome.error is not None)
            failures += failed
            print(f"{outcome.name:34} {outcome.tried:8d} {outcome.seconds:8.1f} {failed:8d}")
            if outcome.error is not None:
                print("".join(traceback.format_exception(outcome.error))[-4000:])
            sys.stdout.flush()
    return failures


def fuzz_api(examples: int, max_time_s: int | None, seed: int) -> int:
    with tempfile.TemporaryDirectory(prefix="onepane-fuzz-") as tmp:
        server = LiveServer(Path(tmp) / "onepane.duckdb", "--decoders", "1")
        try:
            apifuzz.send_examples(server)
            before = apifuzz.span_count(server)
            start = time.perf_counter()
            report, output = apifuzz.schemathesis(
                server.api_url, examples, Path(tmp), max_time_s=max_time_s, seed=seed
            )
            seconds = time.perf_counter() - start
            after = apifuzz.span_count(server)
        finally:
            server.stop()
    found = apifuzz.figures(report)
    print(
        f"schemathesis: {found['operations']} operations tested, {found['requests']} requests, "
        f"{found['failures']} failures, {found['errors']} errors in {seconds:.0f} s; "
        f"spans stored before/after: {before}/{after}"
    )
    if found["failures"] or found["errors"] or before != after:
        print(output[-8000:])
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=int(os.environ.get("ONEPANE_FUZZ_EXAMPLES", "2000"))
    )
    parser.add_argument("--only", default="", help="only targets whose name contains this")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--api-examples", type=int, default=50, help="0: skip schemathesis")
    parser.add_argument("--api-max-time", type=int, default=None, help="seconds")
    args = parser.parse_args()
    print(f"seed {args.seed}, {args.examples} inputs a target")
    failures = fuzz_parsers(args.examples, args.only, args.seed)
    if args.api_examples:
        failures += fuzz_api(args.api_examples, args.api_max_time, args.seed)
    print(f"failures found: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
