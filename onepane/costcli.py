"""`onepane cost ...`: allocation, unit costs, reconciliation and bill imports from the
terminal, through the server's API."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from onepane.client import ApiClient
from onepane.errors import BadRequest
from onepane.tracecli import common_flags, print_json

_COLUMNS = (
    ("CPU", "cpuCost"),
    ("RAM", "ramCost"),
    ("GPU", "gpuCost"),
    ("GPU IDLE", "gpuIdleCost"),
    ("SHARED", "sharedCost"),
    ("TOTAL", "totalCost"),
)


def add_commands(commands: Any) -> None:
    """Add ``cost`` (with import-bill, units, reconcile) to the ``onepane`` subparsers."""
    cost = commands.add_parser(
        "cost", help="cost by team, workload, kind, namespace or label; unit costs; the bill"
    )
    _allocation_flags(cost)
    common_flags(cost)
    cost.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    cost.set_defaults(run=_run_allocation)
    sub = cost.add_subparsers(title="cost commands", metavar="COMMAND")

    bill = sub.add_parser("import-bill", help="import a FOCUS billing export (CSV or Parquet)")
    bill.add_argument("file", type=Path, metavar="FILE")
    common_flags(bill)
    bill.set_defaults(run=_run_import)

    units = sub.add_parser("units", help="unit cost per workload and version")
    units.add_argument("--workload", help="only this workload (namespace/name)")
    units.add_argument("--window", default="7d", help="7d, 24h, today, START,END (7d)")
    units.add_argument("--step", help="one figure per step (1h, 1d); default: the window")
    units.add_argument("--by", choices=("version", "workload"), default="version")
    common_flags(units)
    units.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    units.set_defaults(run=_run_units)

    rec = sub.add_parser("reconcile", help="allocated vs billed per day, and the gap explained")
    rec.add_argument("--window", default="30d", help="30d, lastmonth, START,END (30d)")
    common_flags(rec)
    rec.set_defaults(run=_run_reconcile)


def _allocation_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by",
        default="team",
        help="team, workload, kind, namespace, node, pod or label:KEY; comma-separate "
        "several (team)",
    )
    parser.add_argument("--window", default="7d", help="7d, 24h, today, lastmonth, START,END")
    parser.add_argument("--step", help="one set per step (1d, 1h); default: the whole window")
    parser.add_argument("--idle", action="store_true", help="show the nodes' idle cost")
    parser.add_argument(
        "--share-idle", choices=("even", "weighted"), help="share the idle cost out instead"
    )
    parser.add_argument("--reconcile", action="store_true", help="scale to the imported FOCUS bill")


def _run_allocation(args: argparse.Namespace) -> int:
    params = [("window", args.window), ("aggregate", args.by)]
    if args.step:
        params.append(("step", args.step))
    if args.idle:
        params.append(("idle", "true"))
    if args.share_idle:
        params.append(("shareIdle", args.share_idle))
    if args.reconcile:
        params.append(("reconcile", "true"))
    document = ApiClient(args.server).get("/api/v1/allocation", params)
    if args.json:
        print_json(document)
        return 0
    rows = [
        [a["window"]["start"], name, *(a.get(key) for _, key in _COLUMNS)]
        for step in document["data"]
        for name, a in sorted(step.items(), key=lambda item: -item[1]["totalCost"])
    ]
    header = ["WINDOW START", args.by.upper(), *(title for title, _ in _COLUMNS)]
    _emit(header, rows, args.csv)
    if not rows:
        print("onepane: no cost in that window yet; is the inventory connected?", file=sys.stderr)
    return 0


def _run_units(args: argparse.Namespace) -> int:
    params = [("window", args.window), ("by", args.by)]
    params += [(k, v) for k, v in (("step", args.step), ("workload", args.workload)) if v]
    document = ApiClient(args.server).get("/api/v1/unit-costs", params)
    if args.json:
        print_json(document)
        return 0
    rows = [
        [u["start"], u["workload"], u.get("version"), u["kind"], u["count"], u["cost"],
         u["unit_cost"], u["unit"]]
        for u in document["unit_costs"]
    ]  # fmt: skip
    header = ["START", "WORKLOAD", "VERSION", "KIND", "COUNT", "COST", "UNIT COST", "PER"]
    _emit(header, rows, args.csv)
    return 0


def _run_reconcile(args: argparse.Namespace) -> int:
    document = ApiClient(args.server).get("/api/v1/reconciliation", [("window", args.window)])
    if args.json:
        print_json(document)
        return 0
    rows = []
    for day in document["days"]:
        parts = day.get("explained") or {}
        rows.append(
            [day["date"], day["allocated"], day["billed"], day["gap"], day["scale_factor"],
             parts.get("discounts"), parts.get("price_difference"), parts.get("not_billed")]
        )  # fmt: skip
    header = ["DAY", "ALLOCATED", "BILLED", "GAP", "FACTOR", "DISCOUNTS", "PRICE DIFF",
              "NOT BILLED"]  # fmt: skip
    _emit(header, rows, csv_out=False)
    totals = document["totals"]
    if totals.get("billed") is None:
        print("onepane: no billing rows in that window; import one with "
              "`onepane cost import-bill FILE`", file=sys.stderr)  # fmt: skip
    return 0


def _run_import(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read {args.file}: {exc.strerror or exc}") from None
    result = ApiClient(args.server, timeout_s=600).post(
        "/api/v1/billing/imports", data, [("filename", args.file.name)]
    )
    if args.json:
        print_json(result)
        return 0
    for warning in result["warnings"]:
        print(f"onepane: warning: {warning}", file=sys.stderr)
    periods = ", ".join(f"{p['start'][:10]}..{p['end'][:10]}" for p in result["billing_periods"])
    print(
        f"imported {result['rows']} rows from {result['file']} (import {result['import_id']}; "
        f"billing periods {periods}; EffectiveCost {result['effective_cost']:.2f}); "
        f"replaced {result['replaced_rows']} rows of earlier imports"
    )
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.2f}"
    return str(value)


def _emit(header: list[str], rows: list[list[Any]], csv_out: bool) -> None:
    if csv_out:
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
        return
    cells = [header, *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        line = "  ".join(
            c.ljust(w) if i < 2 or not rows else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        print(line.rstrip())
