"""`onepane drift ...`: references, drift runs and their reports, through the server's API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from onepane.client import ApiClient
from onepane.errors import BadRequest
from onepane.tracecli import common_flags, print_json

EXIT_DRIFT = 1


def add_commands(commands: Any) -> None:
    """Add ``drift`` (reference add|list, run, runs, show, report) to the subparsers."""
    drift = commands.add_parser("drift", help="model input drift: references, runs, reports")
    sub = drift.add_subparsers(title="drift commands", metavar="COMMAND", required=True)

    reference = sub.add_parser("reference", help="reference datasets per model and version")
    refs = reference.add_subparsers(title="reference commands", metavar="COMMAND", required=True)
    add = refs.add_parser("add", help="register a reference dataset (CSV or Parquet)")
    add.add_argument("file", type=Path, metavar="FILE")
    add.add_argument("--model", required=True, help="the model's ml.model.name")
    add.add_argument("--version", help="the model version it is the reference of (default: all)")
    add.add_argument("--numerical", default="", help="columns to treat as numerical: a,b")
    add.add_argument("--categorical", default="", help="columns to treat as categorical: c,d")
    add.add_argument("--ignore", default="", help="columns that are not model inputs: id,label")
    common_flags(add)
    add.set_defaults(run=_run_add)
    listing = refs.add_parser("list", help="the references stored")
    listing.add_argument("--model", help="only this model")
    common_flags(listing)
    listing.set_defaults(run=_run_references)

    run = sub.add_parser("run", help="run drift now for a model over a window")
    run.add_argument("--model", required=True, help="the model's ml.model.name")
    run.add_argument("--version", help="only this version (default: every version)")
    run.add_argument("--window", help="how far back: 30m, 24h, 7d (the server's default: 24h)")
    run.add_argument(
        "--method", action="append", default=[], metavar="COLUMN=TEST",
        help="an Evidently test for a column (psi, ks, wasserstein, ...); repeatable",
    )  # fmt: skip
    run.add_argument(
        "--threshold", action="append", default=[], metavar="COLUMN=VALUE",
        help="the threshold for a column's test; repeatable",
    )  # fmt: skip
    run.add_argument("--fail-on-drift", action="store_true", help="exit 1 when the data drifts")
    common_flags(run)
    run.set_defaults(run=_run_run)

    runs = sub.add_parser("runs", help="recent drift runs")
    runs.add_argument("--model", help="only this model")
    runs.add_argument("--version", help="only this version")
    runs.add_argument("--limit", type=int, default=20)
    common_flags(runs)
    runs.set_defaults(run=_run_runs)

    show = sub.add_parser("show", help="one drift run, column by column")
    show.add_argument("run_id", metavar="RUN_ID")
    common_flags(show)
    show.set_defaults(run=_run_show)

    report = sub.add_parser("report", help="save a run's Evidently HTML report")
    report.add_argument("run_id", metavar="RUN_ID")
    report.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    common_flags(report)
    report.set_defaults(run=_run_report)


def _run_add(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read {args.file}: {exc.strerror or exc}") from None
    params = [("model", args.model), ("filename", args.file.name)]
    params += [(k, getattr(args, k)) for k in ("version", "numerical", "categorical", "ignore")]
    result = ApiClient(args.server, timeout_s=600).post(
        "/api/v1/drift/references", data, [(k, v) for k, v in params if v]
    )
    if args.json:
        print_json(result)
        return 0
    for name, why in result["skipped"].items():
        print(f"onepane: warning: column {name!r} is not checked: {why}", file=sys.stderr)
    columns = result["columns"]
    kinds = ", ".join(f"{c['name']} ({c['type']})" for c in columns)
    print(
        f"reference {result['reference_id']} for {result['model']} version {result['version']}: "
        f"{result['rows']} rows, {len(columns)} columns: {kinds}"
    )
    return 0


def _run_references(args: argparse.Namespace) -> int:
    found = ApiClient(args.server).get(
        "/api/v1/drift/references", [("model", args.model)] if args.model else []
    )["references"]
    if args.json:
        print_json(found)
        return 0
    _table(
        ["ID", "MODEL", "VERSION", "CREATED", "ROWS", "COLUMNS", "ACTIVE", "SOURCE"],
        [
            [r["reference_id"], r["model"], r["version"], r["created"][:19], r["rows"],
             len(r["columns"]), "yes" if r["active"] else "no", r["source"]]
            for r in found
        ],
    )  # fmt: skip
    return 0


def _pairs(items: list[str], flag: str, number: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column or not value:
            raise BadRequest(f"{flag} takes COLUMN=VALUE, got {item!r}")
        if number:
            try:
                out[column] = float(value)
            except ValueError:
                raise BadRequest(f"{flag} {item!r}: {value!r} is not a number") from None
        else:
            out[column] = value
    return out


def _run_run(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"model": args.model}
    if args.version:
        body["version"] = args.version
    if args.window:
        body["window"] = args.window
    if args.method:
        body["methods"] = _pairs(args.method, "--method", number=False)
    if args.threshold:
        body["thresholds"] = _pairs(args.threshold, "--threshold", number=True)
    result = ApiClient(args.server, timeout_s=600).post(
        "/api/v1/drift/runs", orjson.dumps(body), content_type="application/json"
    )
    if args.json:
        print_json(result)
    else:
        _print_run(result, args.server)
    return EXIT_DRIFT if args.fail_on_drift and result["status"] == "drift" else 0


def _run_runs(args: argparse.Namespace) -> int:
    params = [(k, str(getattr(args, k))) for k in ("model", "version", "limit") if getattr(args, k)]
    found = ApiClient(args.server).get("/api/v1/drift/runs", params)["runs"]
    if args.json:
        print_json(found)
        return 0
    _table(
        ["RUN", "TIME", "MODEL", "VERSION", "ROWS", "STATUS", "DRIFTED", "SHARE", "TRIGGER"],
        [
            [r["run_id"], r["time"][:19], r["model"], r["version"] or "all", r["rows"],
             r["status"], f"{r['drifted']}/{r['columns']}", _share(r["drift_share"]),
             r["trigger"]]
            for r in found
        ],
    )  # fmt: skip
    return 0


def _run_show(args: argparse.Namespace) -> int:
    result = ApiClient(args.server).get(f"/api/v1/drift/runs/{_run_id(args.run_id)}")
    if args.json:
        print_json(result)
    else:
        _print_run(result, args.server)
    return 0


def _run_report(args: argparse.Namespace) -> int:
    html = ApiClient(args.server).get_bytes(f"/api/v1/drift/runs/{_run_id(args.run_id)}/report")
    if args.output is None:
        sys.stdout.buffer.write(html)
        return 0
    try:
        args.output.write_bytes(html)
    except OSError as exc:
        raise BadRequest(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {args.output} ({len(html) // 1024} KiB)")
    return 0


def _run_id(text: str) -> str:
    if not text.isascii() or not text.isdigit():
        raise BadRequest(f"RUN_ID must be a number, got {text!r}")
    return text


def _print_run(run: dict[str, Any], server: str) -> None:
    version = run["version"] or "every version"
    print(
        f"drift run {run['run_id']}: {run['model']} ({version}), {run['window_start'][:19]} .. "
        f"{run['window_end'][:19]}, {run['rows']} predictions, reference {run['reference_id']}"
    )
    share = _share(run["drift_share"])
    print(
        f"verdict: {run['status'].upper()} ({run['drifted']} of {run['columns']} columns "
        f"drifted, share {share}; dataset drift at {run['share_threshold']:.0%}) "
        f"in {run['seconds']:.2f} s"
    )
    _table(
        ["COLUMN", "TYPE", "STATUS", "METHOD", "SCORE", "THRESHOLD", "VALUES", "DETAIL"],
        [
            [c["name"], c["type"], c["status"], c["method"] or "-", _number(c["score"]),
             _number(c["threshold"]), c["current_count"], _detail(c)]
            for c in run["column_results"]
        ],
    )  # fmt: skip
    if run["report_status"] in ("pending", "ready"):
        ready = "" if run["report_status"] == "ready" else " (Evidently is drawing it)"
        print(f"report: {server.rstrip('/')}/api/v1/drift/runs/{run['run_id']}/report{ready}")
    if run.get("report_note"):
        print(f"({run['report_note']})")


def _detail(column: dict[str, Any]) -> str:
    parts = [column["detail"]] if column["detail"] else []
    if column["unseen"]:
        parts.append(f"{column['unseen']} values of categories not in the reference")
    return "; ".join(parts) or "-"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [header, *[[str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
