"""Drift end to end from the command line: `onepane drift reference add | list`, `run`,
`runs`, `show` and `report`, run as real processes against a live `onepane serve` that
receives its inference spans from the OpenTelemetry SDK's own OTLP/HTTP exporter.

The fraud model's reference (a CSV file) holds 2000 orders: an amount, a country (half
DE, 30 % FR, 20 % US), the account's age in days, whether the customer is new (30 %), a
customer id (text: not checked) and a label (ignored). Version 1.0 in production sees 400
orders drawn evenly from that very distribution: nothing drifts. Version 2.0 sees amounts
60 % higher and mostly US and BR customers (BR unseen in the reference); account ages and
new customers are as before: 2 of 4 columns drift, the default dataset drift share of 0.5.
The churn model's reference is a Parquet file, with column types given on the command line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import numpy as np
import polars as pl
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from onepane.testing import LiveServer, run_onepane, wait_for

MS = 1_000_000
REFERENCE_ROWS = 2000
PRODUCTION_ROWS = 400
CONFIG = """\
drift:
  workers: 1          # one worker process: Evidently is imported once
  report_rows: 500
"""


def send_predictions(
    server: LiveServer,
    model: str,
    rows: list[dict[str, Any]],
    version: str | None = None,
    service_version: str | None = None,
    end_ns: int | None = None,
) -> None:
    """One inference span per row, its values as ``ml.feature.<column>``, through the SDK's
    OTLP/HTTP exporter; the spans start 1 ms apart, the last at ``end_ns`` (now)."""
    resource = {"service.name": f"{model}-server", "k8s.namespace.name": "ml"}
    if service_version:
        resource["service.version"] = service_version
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{server.otlp_url}/v1/traces"),
            max_export_batch_size=512,
            max_queue_size=max(2048, len(rows)),
            schedule_delay_millis=60_000,
        )
    )
    tracer = provider.get_tracer("drift-test")
    last = end_ns or time.time_ns()
    model_attrs = {"ml.model.name": model}
    if version:
        model_attrs["ml.model.version"] = version
    for i, row in enumerate(rows):
        start = last - (len(rows) - i) * MS
        features = {f"ml.feature.{k}": v for k, v in row.items() if v is not None}
        span = tracer.start_span(
            f"{model}.predict",
            kind=SpanKind.INTERNAL,
            start_time=start,
            attributes={**model_attrs, **features, "ml.prediction": 0.5},
        )
        span.end(end_time=start + MS // 2)
    assert provider.force_flush(60_000), "the span export did not finish"
    provider.shutdown()


def rows_of(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Columns of equal length as row dicts (numpy scalars as Python values)."""
    names = list(columns)
    values = [np.asarray(columns[n]).tolist() for n in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def evenly(values: np.ndarray, size: int) -> np.ndarray:
    """``size`` values spread evenly over the sorted ``values``: the same distribution."""
    ordered = np.sort(values)
    step = len(values) // size
    return ordered[step // 2 :: step][:size]


def categories(shares: dict[str, int], rng: np.random.Generator) -> np.ndarray:
    """Exactly ``count`` of each category, shuffled."""
    out = np.array([k for k, n in shares.items() for _ in range(n)], dtype=object)
    rng.shuffle(out)
    return out


@dataclass
class Env:
    server: LiveServer
    directory: Path
    added_csv: CompletedProcess[str]
    added_parquet: CompletedProcess[str]

    def cli(self, *args: str, timeout: float = 300) -> CompletedProcess[str]:
        return run_onepane(*args, "--server", self.server.api_url, timeout=timeout)


def fraud_reference(rng: np.random.Generator) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [f"c-{i:05d}" for i in range(REFERENCE_ROWS)],
            "amount": np.round(rng.lognormal(4.0, 0.5, REFERENCE_ROWS), 2),
            "country": categories({"DE": 1000, "FR": 600, "US": 400}, rng).tolist(),
            "account_age_days": rng.integers(0, 2000, REFERENCE_ROWS),
            "is_new": (categories({"y": 600, "n": 1400}, rng) == "y").tolist(),
            "label": rng.integers(0, 2, REFERENCE_ROWS),
        }
    )


def churn_reference(rng: np.random.Generator) -> pl.DataFrame:
    n = 1500
    return pl.DataFrame(
        {
            "user": [f"u{i}" for i in range(n)],
            "monthly_fee": np.round(rng.normal(40, 8, n), 2),
            "plan": categories({"basic": 750, "pro": 600, "team": 150}, rng).tolist(),
            "support_calls": rng.integers(0, 5, n),
        }
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    directory = tmp_path_factory.mktemp("drift-cli")
    (directory / "onepane.yaml").write_text(CONFIG)
    rng = np.random.default_rng(7)
    fraud = fraud_reference(rng)
    fraud.write_csv(directory / "fraud-training.csv")
    churn = churn_reference(rng)
    churn.write_parquet(directory / "churn-training.parquet")
    server = LiveServer(
        directory / "onepane.duckdb",
        *("--decoders", "1", "--config", str(directory / "onepane.yaml")),
    )
    try:
        env = Env(server, directory, None, None)  # type: ignore[arg-type]
        env.added_csv = env.cli(
            *("drift", "reference", "add", str(directory / "fraud-training.csv")),
            *("--model", "fraud", "--ignore", "label"),
        )
        env.added_parquet = env.cli(
            *("drift", "reference", "add", str(directory / "churn-training.parquet")),
            *("--model", "churn", "--version", "5.0", "--numerical", "support_calls"),
            *("--ignore", "user"),
        )
        n = PRODUCTION_ROWS
        same = {
            "amount": evenly(fraud["amount"].to_numpy(), n),
            "country": categories({"DE": 200, "FR": 120, "US": 80}, rng),
            "account_age_days": evenly(fraud["account_age_days"].to_numpy(), n),
            "is_new": categories({"y": 120, "n": 280}, rng) == "y",  # sent as booleans
        }
        for column in same.values():
            rng.shuffle(column)
        send_predictions(server, "fraud", rows_of(same), version="1.0")
        shifted = {
            **same,
            "amount": same["amount"] * 1.6,
            "country": categories({"US": 300, "BR": 60, "DE": 40}, rng),
        }
        send_predictions(server, "fraud", rows_of(shifted), version="2.0")
        churned = {
            "monthly_fee": evenly(churn["monthly_fee"].to_numpy(), 300),
            "plan": categories({"basic": 150, "pro": 120, "team": 30}, rng),
            "support_calls": evenly(churn["support_calls"].to_numpy(), 300),
        }
        # No ml.model.version on these spans: the service's version (5.0) stands for it.
        send_predictions(server, "churn", rows_of(churned), service_version="5.0")
        yield env
    finally:
        server.stop()


@pytest.fixture(scope="module")
def drifted(env: Env) -> dict[str, Any]:
    """`onepane drift run --json` of fraud 2.0 (which drifts)."""
    done = env.cli(
        "drift", "run", "--model", "fraud", "--version", "2.0", "--window", "1h", "--json"
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    # Evidently's report is drawn after the run is answered: wait for it.
    wait_for(
        "the run's report",
        lambda: env.server.get_json(f"/api/v1/drift/runs/{run['run_id']}")[1]["report_status"],
        lambda status: status != "pending",
        seconds=120,
    )
    return run


def columns_of(stdout: str) -> dict[str, list[str]]:
    """The COLUMN table `onepane drift run` prints: column -> its cells."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("COLUMN"))
    out = {}
    for line in lines[header + 1 :]:
        if not line or line.startswith(("report:", "(")):
            break
        cells = line.split()
        out[cells[0]] = cells[1:]
    return out


# -- references --------------------------------------------------------------------------


def test_reference_add_from_a_csv_file_infers_the_column_types(env: Env) -> None:
    done = env.added_csv
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"reference 1 for fraud version *: {REFERENCE_ROWS} rows, 4 columns: "
        "account_age_days (numerical), amount (numerical), country (categorical), "
        "is_new (categorical)"
    )
    # The customer id is text, so it is left out with a warning; the label was ignored.
    assert "column 'customer_id' is not checked: text" in done.stderr
    assert "label" not in done.stdout + done.stderr


def test_reference_add_from_a_parquet_file_takes_the_given_types(env: Env) -> None:
    done = env.added_parquet
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "reference 2 for churn version 5.0: 1500 rows, 3 columns: monthly_fee (numerical), "
        "plan (categorical), support_calls (numerical)"
    )
    listed = env.cli("drift", "reference", "list", "--model", "churn", "--json")
    [reference] = json.loads(listed.stdout)
    assert reference["source"] == "churn-training.parquet"
    calls = next(c for c in reference["columns"] if c["name"] == "support_calls")
    # Five distinct whole numbers would be categorical; --numerical said otherwise.
    assert (calls["type"], calls["type_source"], calls["count"]) == ("numerical", "given", 1500)


def test_reference_list_shows_each_reference(env: Env) -> None:
    done = env.cli("drift", "reference", "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "ID", "MODEL", "VERSION", "CREATED", "ROWS", "COLUMNS", "ACTIVE", "SOURCE",
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[2], r[4], r[5], r[6], r[7]) for r in rows] == [
        ("2", "churn", "5.0", "1500", "3", "yes", "churn-training.parquet"),
        ("1", "fraud", "*", "2000", "4", "yes", "fraud-training.csv"),
    ]


def test_reference_add_of_a_missing_file_says_so(env: Env) -> None:
    done = env.cli("drift", "reference", "add", str(env.directory / "nope.csv"), "--model", "x")
    assert done.returncode == 1
    assert done.stderr.startswith("onepane: error: cannot read ")
    assert "nope.csv" in done.stderr and done.stderr.count("\n") == 1


# -- runs --------------------------------------------------------------------------------


def test_no_shift_is_not_flagged_and_fail_on_drift_exits_0(env: Env) -> None:
    done = env.cli(
        *("drift", "run", "--model", "fraud", "--version", "1.0", "--window", "1h"),
        "--fail-on-drift",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("drift run ")
    assert (
        "fraud (1.0), " in lines[0] and f", {PRODUCTION_ROWS} predictions, reference 1" in lines[0]
    )
    assert lines[1].startswith(
        "verdict: NO DRIFT (0 of 4 columns drifted, share 0%; dataset drift at 50%)"
    )
    columns = columns_of(done.stdout)
    assert {name: cells[:3] for name, cells in columns.items()} == {
        "amount": ["numerical", "no", "drift"],
        "account_age_days": ["numerical", "no", "drift"],
        "is_new": ["categorical", "no", "drift"],
        "country": ["categorical", "no", "drift"],
    }
    assert columns["amount"][3] == "wasserstein" and columns["country"][3] == "jensenshannon"
    assert float(columns["amount"][4]) < 0.02  # the normed Wasserstein distance
    assert float(columns["country"][4]) < 1e-6  # the very same shares
    assert "/api/v1/drift/runs/" in done.stdout and "/report" in done.stdout


def test_a_known_shift_is_detected_and_fail_on_drift_exits_1(env: Env) -> None:
    done = env.cli(
        *("drift", "run", "--model", "fraud", "--version", "2.0", "--window", "1h"),
        "--fail-on-drift",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[1].startswith(
        "verdict: DRIFT (2 of 4 columns drifted, share 50%; dataset drift at 50%)"
    )
    columns = columns_of(done.stdout)
    # Drifted columns first, then by score.
    assert set(list(columns)[2:]) == {"account_age_days", "is_new"}
    assert columns["amount"][1] == "drift" and float(columns["amount"][3]) > 1.0
    assert columns["country"][1] == "drift"
    assert columns["account_age_days"][1:3] == ["no", "drift"]
    # Booleans in the reference file and in the spans are the same two categories.
    assert columns["is_new"][1:4] == ["no", "drift", "jensenshannon"]
    assert float(columns["is_new"][4]) < 1e-6
    # BR is not in the reference: 60 such values, as the detail says.
    assert "60 values of categories not in the reference" in done.stdout


def test_run_json_is_the_apis_run_document(env: Env, drifted: dict[str, Any]) -> None:
    assert (drifted["model"], drifted["version"], drifted["trigger"]) == ("fraud", "2.0", "manual")
    assert (drifted["status"], drifted["columns"], drifted["drifted"]) == ("drift", 4, 2)
    assert drifted["drift_share"] == 0.5
    assert drifted["rows"] == PRODUCTION_ROWS
    by_name = {c["name"]: c for c in drifted["column_results"]}
    country = by_name["country"]
    assert (country["method"], country["threshold"], country["drifted"]) == (
        "jensenshannon", 0.1, True,
    )  # fmt: skip
    assert (country["reference_count"], country["current_count"], country["unseen"]) == (
        REFERENCE_ROWS, PRODUCTION_ROWS, 60,
    )  # fmt: skip
    assert by_name["amount"]["score"] > 1.0 and by_name["amount"]["threshold"] == 0.1
    assert (by_name["is_new"]["status"], by_name["is_new"]["unseen"]) == ("no drift", 0)


def test_the_services_version_stands_for_a_missing_model_version(env: Env) -> None:
    done = env.cli(
        *("drift", "run", "--model", "churn", "--version", "5.0", "--window", "1h", "--json"),
        *("--method", "monthly_fee=psi", "--threshold", "monthly_fee=0.2"),
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert (run["rows"], run["reference_id"], run["status"]) == (300, 2, "no drift")
    fee = next(c for c in run["column_results"] if c["name"] == "monthly_fee")
    # The test and threshold asked for on the command line, run by Evidently itself.
    assert (fee["method"], fee["threshold"], fee["drifted"]) == ("psi", 0.2, False)
    assert 0 <= fee["score"] < 0.2


def test_runs_lists_the_runs_newest_first(env: Env, drifted: dict[str, Any]) -> None:
    done = env.cli("drift", "runs", "--model", "fraud")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "RUN", "TIME", "MODEL", "VERSION", "ROWS", "STATUS", "DRIFTED", "SHARE", "TRIGGER",
    ]  # fmt: skip
    first = lines[1].split()
    assert first[0] == str(drifted["run_id"])
    assert first[2:] == ["fraud", "2.0", "400", "drift", "2/4", "50%", "manual"]
    assert all(line.split()[2] == "fraud" for line in lines[1:])
    listed = json.loads(
        env.cli("drift", "runs", "--model", "fraud", "--limit", "1", "--json").stdout
    )
    assert [r["run_id"] for r in listed] == [drifted["run_id"]]


def test_show_prints_a_run_column_by_column(env: Env, drifted: dict[str, Any]) -> None:
    done = env.cli("drift", "show", str(drifted["run_id"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(f"drift run {drifted['run_id']}: fraud (2.0)")
    assert "verdict: DRIFT (2 of 4 columns drifted" in done.stdout
    assert set(columns_of(done.stdout)) == {"amount", "country", "account_age_days", "is_new"}
    assert "Evidently's report on 500 values per column" in done.stdout


def test_report_writes_evidentlys_html(env: Env, drifted: dict[str, Any]) -> None:
    out = env.directory / "fraud-drift.html"
    done = env.cli("drift", "report", str(drifted["run_id"]), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out} (")
    html = out.read_text()
    assert html.lstrip().lower().startswith(("<!doctype html", "<html"))
    assert "amount" in html and "country" in html


def test_errors_are_one_line_with_what_to_do(env: Env) -> None:
    done = env.cli("drift", "run", "--model", "nobody", "--window", "1h")
    assert done.returncode == 1
    assert done.stderr.startswith("onepane: error: no reference for model 'nobody'; ")
    assert "onepane drift reference add --model nobody" in done.stderr
    assert "models with references: churn, fraud" in done.stderr
    assert done.stderr.count("\n") == 1

    done = env.cli("drift", "run", "--model", "fraud", "--method", "amount")
    assert (done.returncode, done.stderr) == (
        1, "onepane: error: --method takes COLUMN=VALUE, got 'amount'\n",
    )  # fmt: skip

    done = env.cli("drift", "run", "--model", "fraud", "--method", "amount=nonsense")
    assert done.returncode == 1
    assert "'nonsense' is not an Evidently drift test for numerical columns" in done.stderr

    done = env.cli("drift", "show", "999")
    assert (done.returncode, done.stderr) == (1, "onepane: error: no drift run 999\n")
