"""FOCUS bill import through a real `onepane serve`: FOCUS's own examples, re-imports that
replace a billing period, FOCUS 1.0 and 1.3 names, Parquet, and bills rejected whole."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from onepane.testing import LiveServer, run_onepane

FOCUS = Path("/work/shared/data/focus")
EXAMPLES = sorted(FOCUS.glob("*.csv"))
IMPORTS = "/api/v1/billing/imports"

HEADER = (
    "BillingAccountId,ServiceProviderName,BillingPeriodStart,BillingPeriodEnd,"
    "ChargePeriodStart,ChargePeriodEnd,ResourceId,ListCost,EffectiveCost,Tags,x_CostCenter"
)


@pytest.fixture
def server(start_server: Callable[..., LiveServer]) -> LiveServer:
    """A live server that decodes in-process: bills need no OTLP decoder processes."""
    return start_server("--decoders", "0")


def post(server: LiveServer, name: str, data: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{server.api_url}{IMPORTS}?filename={name}", data=data, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def imported(server: LiveServer, name: str, data: bytes) -> dict:
    status, body = post(server, name, data)
    assert status == 201, body
    return body


def import_list(server: LiveServer) -> list[dict]:
    status, body = server.get_json(IMPORTS)
    assert status == 200
    return body["imports"]


def stored(server: LiveServer, sql: str) -> list[tuple]:
    """``sql`` on the server's DuckDB file, once the server has stopped."""
    assert server.stop() == 0
    with duckdb.connect(str(server.db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def data_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def bill(
    account: str = "111",
    provider: str = "AWS",
    month: str = "2026-11",
    costs: tuple[float, ...] = (1.25, 2.5),
    header: str = HEADER,
) -> bytes:
    """A small FOCUS CSV: one row per cost, on resources i-0, i-1 …, in one billing period."""
    start = f"{month}-01T00:00:00Z"
    year, mon = int(month[:4]), int(month[5:])
    end = f"{year + mon // 12}-{mon % 12 + 1:02d}-01T00:00:00Z"
    lines = [header]
    for i, cost in enumerate(costs):
        day = f"{month}-{i + 2:02d}"
        tags = '"{""team"": ""payments"", ""env"": ""prod""}"' if i == 0 else "null"
        lines.append(
            f"{account},{provider},{start},{end},{day}T00:00:00Z,{day}T01:00:00Z,i-{i},"
            f"{cost * 1.25},{cost},{tags},cc-{i}"
        )
    return ("\n".join(lines) + "\n").encode()


# -- FOCUS's examples ------------------------------------------------------------------


def test_every_focus_example_imports(server: LiveServer) -> None:
    assert len(EXAMPLES) == 7
    previous_rows, warned = 0, []
    for path in EXAMPLES:
        rows = data_rows(path)
        body = imported(server, path.name, path.read_bytes())
        assert body["file"] == path.name
        assert body["rows"] == len(rows) > 0
        # every example bills the same period, with no provider or account: each replaces it
        assert body["replaced_rows"] == previous_rows
        assert body["billing_periods"] == [
            {
                "provider": None,
                "billing_account_id": None,
                "start": "2023-01-01T00:00:00Z",
                "end": "2023-02-01T00:00:00Z",
            }
        ]
        assert body["effective_cost"] == pytest.approx(sum(float(r["EffectiveCost"]) for r in rows))
        hour_30 = [i + 1 for i, r in enumerate(rows) if r["ChargePeriodEnd"].endswith("T30:00:00Z")]
        if hour_30:
            warned.append(path.name)
            assert body["warnings"] == [
                f"ChargePeriodEnd in row {hour_30[0]} has an hour past 23; read as that "
                "many hours into the day"
            ]
        else:
            assert body["warnings"] == []
        previous_rows = len(rows)
    assert warned == [
        "commitment_discount_purchase_scenario_2.csv",
        "commitment_discount_purchase_scenario_3.csv",
    ]
    listed = import_list(server)
    assert [i["file"] for i in listed] == [p.name for p in EXAMPLES]
    assert [i["rows_kept"] for i in listed] == [0] * 6 + [2]

    # the last one, commitment_discount_usage_scenario_4.csv, is what the store keeps
    assert EXAMPLES[-1].name == "commitment_discount_usage_scenario_4.csv"
    rows = stored(
        server,
        "SELECT row_number, resource_id, pricing_category, billed_cost, effective_cost, "
        "commitment_discount_id, charge_period_start, charge_period_end, provider, tags, extra "
        "FROM billing_rows ORDER BY row_number",
    )
    assert [r[:6] for r in rows] == [
        (1, "<my-resource-id>", "Committed", 0.0, 1.0, "<my-commitment-discount-id>"),
        (2, "<my-resource-id>", "Standard", 0.5, 0.5, None),  # 'null' is stored as NULL
    ]
    assert {(r[6], r[7]) for r in rows} == {(datetime(2023, 1, 1, 0), datetime(2023, 1, 1, 1))}
    assert [(r[8], r[9]) for r in rows] == [(None, None), (None, None)]
    first, second = (json.loads(r[10]) for r in rows)
    assert first == {
        "ChargeFrequency": "Usage-Based",
        "ConsumedQuantity": "1.00",
        "ConsumedUnit": "Hour",
        "CommitmentDiscountQuantity": "1.00",
        "CommitmentDiscountStatus": "Used",
        "CommitmentDiscountUnit": "USD",
    }
    assert second["CommitmentDiscountQuantity"] is None
    assert second["CommitmentDiscountStatus"] is None
    assert second["ConsumedQuantity"] == "1.00"


def test_cli_import_of_the_hour_30_example_and_a_bill_with_tags_and_custom_columns(
    server: LiveServer,
) -> None:
    path = FOCUS / "commitment_discount_purchase_scenario_2.csv"
    result = run_onepane("cost", "import-bill", str(path), "--server", server.api_url)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "onepane: warning: ChargePeriodEnd in row 3 has an hour past 23; read as that "
        "many hours into the day"
    ]
    assert result.stdout.startswith(
        "imported 3 rows from commitment_discount_purchase_scenario_2.csv (import 1; "
        "billing periods 2023-01-01..2023-02-01; EffectiveCost 0.00); replaced 0 rows"
    )

    body = imported(server, "nov.csv", bill(costs=(1.25, 2.5, 4.0)))
    assert (body["rows"], body["replaced_rows"], body["warnings"]) == (3, 0, [])
    assert body["effective_cost"] == pytest.approx(7.75)
    assert body["billing_periods"] == [
        {
            "provider": "AWS",
            "billing_account_id": "111",
            "start": "2026-11-01T00:00:00Z",
            "end": "2026-12-01T00:00:00Z",
        }
    ]

    assert server.stop() == 0
    with duckdb.connect(str(server.db), read_only=True) as conn:
        example = conn.execute(
            "SELECT row_number, charge_period_start, charge_period_end, billed_cost, "
            "effective_cost FROM billing_rows WHERE import_id = 1 ORDER BY row_number"
        ).fetchall()
        rows = conn.execute(
            "SELECT resource_id, list_cost, effective_cost, tags, extra, billing_period_start "
            "FROM billing_rows WHERE import_id = 2 ORDER BY row_number"
        ).fetchall()
    assert example == [
        (1, datetime(2023, 1, 1, 0), datetime(2023, 2, 1, 10), 1.0, 0.0),
        (2, datetime(2023, 1, 1, 10), datetime(2023, 2, 1, 20), 1.0, 0.0),
        (3, datetime(2023, 1, 1, 20), datetime(2023, 2, 2, 6), 1.0, 0.0),  # "T30:00:00Z"
    ]
    assert [r[:3] for r in rows] == [
        ("i-0", 1.5625, 1.25),
        ("i-1", 3.125, 2.5),
        ("i-2", 5.0, 4.0),
    ]
    assert json.loads(rows[0][3]) == {"team": "payments", "env": "prod"}
    assert [r[3] for r in rows[1:]] == [None, None]  # 'null' Tags
    assert [json.loads(r[4]) for r in rows] == [{"x_CostCenter": f"cc-{i}"} for i in range(3)]
    assert rows[0][5] == datetime(2026, 11, 1)


# -- replacing a billing period --------------------------------------------------------


def test_reimporting_a_billing_period_replaces_it(server: LiveServer) -> None:
    nov = bill(costs=(1.25, 2.5, 4.0))
    assert imported(server, "nov.csv", nov)["replaced_rows"] == 0
    again = imported(server, "nov.csv", nov)  # the same file again: not counted twice
    assert (again["rows"], again["replaced_rows"]) == (3, 3)
    # same period, another account; another provider; another month: nothing replaced
    assert imported(server, "other-account.csv", bill(account="222"))["replaced_rows"] == 0
    assert imported(server, "gcp.csv", bill(provider="Google Cloud"))["replaced_rows"] == 0
    assert imported(server, "oct.csv", bill(month="2026-10", costs=(9.0,)))["replaced_rows"] == 0
    kept = {i["import_id"]: i["rows_kept"] for i in import_list(server)}
    assert kept == {1: 0, 2: 3, 3: 2, 4: 2, 5: 1}

    # a corrected export of October: its rows, and only its rows, count
    corrected = imported(server, "oct-v2.csv", bill(month="2026-10", costs=(2.0, 3.0)))
    assert (corrected["rows"], corrected["replaced_rows"]) == (2, 1)
    assert import_list(server)[-1]["replaced_rows"] == 1

    totals = stored(
        server,
        "SELECT provider, billing_account_id, strftime(billing_period_start, '%Y-%m'), "
        "count(*), sum(effective_cost), min(import_id) FROM billing_rows "
        "GROUP BY ALL ORDER BY ALL",
    )
    assert totals == [
        ("AWS", "111", "2026-10", 2, 5.0, 6),
        ("AWS", "111", "2026-11", 3, 7.75, 2),  # not 6 rows, not 15.5
        ("AWS", "222", "2026-11", 2, 3.75, 3),
        ("Google Cloud", "111", "2026-11", 2, 3.75, 4),
    ]


# -- FOCUS 1.0 and 1.3 names, any case -------------------------------------------------


def test_provider_from_focus_13_or_10_names_in_any_case(server: LiveServer) -> None:
    v13 = bill(provider="AWS")
    v10 = bill(provider="Microsoft", header=HEADER.replace("ServiceProviderName", "ProviderName"))
    lower = bill(provider="Oracle", header=HEADER.lower())
    upper = bill(provider="IBM", header=HEADER.upper())
    # FOCUS 1.3 files may carry the deprecated ProviderName too: ServiceProviderName wins
    both = bill(provider="Google Cloud", header=HEADER.replace("x_CostCenter", "ProviderName"))
    for name, data in (("v13", v13), ("v10", v10), ("lower", lower), ("upper", upper),
                       ("both", both)):  # fmt: skip
        body = imported(server, f"{name}.csv", data)
        assert body["rows"] == 2 and body["replaced_rows"] == 0, name
    rows = stored(
        server,
        "SELECT import_id, provider, billing_account_id, resource_id, effective_cost, tags, extra "
        "FROM billing_rows WHERE row_number = 1 ORDER BY import_id",
    )
    assert [r[:5] for r in rows] == [
        (1, "AWS", "111", "i-0", 1.25),
        (2, "Microsoft", "111", "i-0", 1.25),
        (3, "Oracle", "111", "i-0", 1.25),
        (4, "IBM", "111", "i-0", 1.25),
        (5, "Google Cloud", "111", "i-0", 1.25),
    ]
    assert all(json.loads(r[5]) == {"team": "payments", "env": "prod"} for r in rows)
    assert [json.loads(r[6]) for r in rows] == [
        {"x_CostCenter": "cc-0"},
        {"x_CostCenter": "cc-0"},
        {"x_costcenter": "cc-0"},  # kept under the file's own name
        {"X_COSTCENTER": "cc-0"},
        {"ProviderName": "cc-0"},
    ]


# -- Parquet ---------------------------------------------------------------------------


def parquet(data: bytes) -> bytes:
    """``data`` (CSV) as a typed Parquet file, as exporters write them: times, numbers."""
    table = pacsv.read_csv(io.BytesIO(data))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


_COMPARED = (
    "row_number, provider, billing_account_id, billing_period_start, billing_period_end, "
    "charge_period_start, charge_period_end, charge_category, pricing_category, resource_id, "
    "billed_cost, effective_cost, list_cost, commitment_discount_id, tags, extra"
)


def test_parquet_gives_the_same_rows_as_csv(server: LiveServer, tmp_path: Path) -> None:
    csv_bill = bill(costs=(1.25, 2.5, 4.0))
    pq_bill = parquet(bill(account="pq", costs=(1.25, 2.5, 4.0)))
    schema = pq.read_schema(io.BytesIO(pq_bill))
    assert pa.types.is_timestamp(schema.field("BillingPeriodStart").type)
    assert pa.types.is_floating(schema.field("EffectiveCost").type)
    assert imported(server, "nov.csv", csv_bill)["rows"] == 3
    body = imported(server, "nov.parquet", pq_bill)
    assert (body["rows"], body["replaced_rows"], body["warnings"]) == (3, 0, [])
    assert body["effective_cost"] == pytest.approx(7.75)
    # a Parquet file is known by its content too, whatever it is called; and by the CLI
    assert imported(server, "export.bin", pq_bill)["replaced_rows"] == 3
    example = FOCUS / "commitment_discount_usage_scenario_4.csv"
    (tmp_path / "usage.parquet").write_bytes(parquet(example.read_bytes()))
    result = run_onepane(
        "cost", "import-bill", str(tmp_path / "usage.parquet"), "--server", server.api_url
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported 2 rows from usage.parquet")
    assert result.stderr == ""

    assert server.stop() == 0
    with duckdb.connect(str(server.db), read_only=True) as conn:
        by_account = {
            account: conn.execute(
                f"SELECT {_COMPARED} FROM billing_rows WHERE billing_account_id = $a "
                "ORDER BY row_number",
                {"a": account},
            ).fetchall()
            for account in ("111", "pq")
        }
        example_rows = conn.execute(
            "SELECT row_number, resource_id, effective_cost, commitment_discount_id, extra "
            "FROM billing_rows WHERE billing_account_id IS NULL ORDER BY row_number"
        ).fetchall()
    csv_rows, pq_rows = by_account["111"], by_account["pq"]
    assert len(csv_rows) == 3
    assert [r[:2] + r[3:] for r in pq_rows] == [r[:2] + r[3:] for r in csv_rows]
    assert pq_rows[0][3] == datetime(2026, 11, 1)  # a UTC timestamp column, not shifted
    assert pq_rows[0][5] == datetime(2026, 11, 2)
    # from Parquet, a null number is NULL too; the CSV example's numbers come back as numbers
    assert [r[:4] for r in example_rows] == [
        (1, "<my-resource-id>", 1.0, "<my-commitment-discount-id>"),
        (2, "<my-resource-id>", 0.5, None),
    ]
    assert json.loads(example_rows[1][4])["CommitmentDiscountQuantity"] is None


# -- malformed bills -------------------------------------------------------------------


def _cut_in_last_row(data: bytes) -> bytes:
    return data[: data.rindex(b"payments")]  # inside the quoted Tags of the last row


def _malformed() -> list[tuple[str, bytes, list[str]]]:
    good = bill(costs=(1.25, 2.5)).decode()
    lines = good.splitlines()

    def with_cell(row: int, column: str, value: str) -> bytes:
        cells = next(csv.reader([lines[row]]))
        cells[HEADER.split(",").index(column)] = value
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(cells)
        return "\n".join([*lines[:row], out.getvalue().rstrip("\n"), *lines[row + 1 :]]).encode()

    two_rows_tags_last = "\n".join([lines[0], lines[2], lines[1]]) + "\n"
    drop = HEADER.split(",").index("ChargePeriodStart")
    missing = io.StringIO()
    for row in csv.reader(lines):
        csv.writer(missing, lineterminator="\n").writerow(row[:drop] + row[drop + 1 :])
    return [
        (
            "bad number",
            with_cell(2, "EffectiveCost", "2,50"),
            ["row 2 (line 3), column EffectiveCost: '2,50' is not a number"],
        ),
        (
            "bad time",
            with_cell(1, "ChargePeriodStart", "2026-11-31T00:00:00Z"),
            ["row 1 (line 2), column ChargePeriodStart: '2026-11-31T00:00:00Z' is not a time"],
        ),
        (
            "empty required cell",
            with_cell(2, "EffectiveCost", ""),
            ["row 2 (line 3), column EffectiveCost: the cell is empty; every row needs one"],
        ),
        (
            "null required cell",
            with_cell(2, "BillingPeriodStart", "null"),
            ["row 2 (line 3), column BillingPeriodStart: the cell is empty"],
        ),
        (
            "tags not an object",
            with_cell(2, "Tags", '["payments"]'),
            ["row 2 (line 3), column Tags: '[\"payments\"]' is not a JSON object"],
        ),
        (
            "tags not json",
            with_cell(1, "Tags", "team=payments"),
            ["row 1 (line 2), column Tags: 'team=payments' is not a JSON object"],
        ),
        (
            "period ends before it starts",
            with_cell(2, "BillingPeriodEnd", "2026-10-01T00:00:00Z"),
            [
                "row 2 (line 3), column BillingPeriodEnd: '2026-10-01T00:00:00Z' is not after "
                "BillingPeriodStart"
            ],
        ),
        (
            "missing required column",
            missing.getvalue().encode(),
            ["the bill has no ChargePeriodStart column", "BillingPeriodStart, BillingPeriodEnd"],
        ),
        (
            "half-written csv",
            _cut_in_last_row(two_rows_tags_last.encode()),
            ["the bill is not readable CSV", "a half-written file is rejected whole"],
        ),
        (
            "half-written parquet",
            (lambda p: p[: len(p) // 2])(parquet(good.encode())),
            ["the bill is not readable Parquet", "a half-written file is rejected whole"],
        ),
        ("header only", (lines[0] + "\n").encode(), ["the bill has a header but no rows"]),
        ("empty body", b"", ["the bill is empty"]),
    ]


def test_malformed_bills_are_rejected_whole(server: LiveServer, tmp_path: Path) -> None:
    good = imported(server, "nov.csv", bill(costs=(1.25, 2.5)))  # the period the bad ones name
    assert good["rows"] == 2
    before = import_list(server)
    for case, data, expected in _malformed():
        status, body = post(server, f"{case.replace(' ', '-')}.csv", data)
        assert status == 400, (case, body)
        for part in expected:
            assert part in body["error"], (case, body["error"])
        assert "othing was imported" in body["error"] or "rejected whole" in body["error"], case
        assert import_list(server) == before, case

    bad = tmp_path / "bad.csv"
    bad.write_bytes(_malformed()[0][1])
    result = run_onepane("cost", "import-bill", str(bad), "--server", server.api_url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "onepane: error: row 2 (line 3), column EffectiveCost: '2,50' is not a number. Nothing "
        "was imported; fix the row and import the whole file again"
    ]
    missing = run_onepane(
        "cost", "import-bill", str(tmp_path / "nope.csv"), "--server", server.api_url
    )
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        f"onepane: error: cannot read {tmp_path / 'nope.csv'}: No such file or directory"
    ]
    assert import_list(server) == before

    # the period named by every bad bill still holds the good import, untouched
    assert stored(
        server, "SELECT import_id, row_number, effective_cost FROM billing_rows ORDER BY ALL"
    ) == [(1, 1, 1.25), (1, 2, 2.5)]
