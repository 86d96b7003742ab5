"""`onepane trace ID` and `onepane traces ...`: incident lookup from the terminal, through
the server's API (``--server``, default ``$ONEPANE_SERVER`` or http://127.0.0.1:8320)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from typing import Any

import orjson

from onepane.client import ApiClient, default_server
from onepane.errors import Ambiguous
from onepane.waterfall import render_matches, render_trace

_TEXT_FILTERS = ("service", "workload", "route", "name", "model", "role", "version")


def add_commands(commands: Any) -> None:
    """Add ``trace`` and ``traces`` to the ``onepane`` command's subparsers."""
    trace = commands.add_parser(
        "trace",
        help="show one trace as a waterfall, with its critical path and where the time went",
    )
    trace.add_argument("trace_id", metavar="ID", help="trace id, or a unique prefix of 8+ hex")
    trace.add_argument(
        "--all", action="store_true", help="show every span (do not fold repeated siblings)"
    )
    trace.add_argument("--width", type=int, default=None, help="line width (the terminal's)")
    common_flags(trace)
    trace.set_defaults(run=_run_trace)

    traces = commands.add_parser(
        "traces", help="find traces: by service, route, model, duration, errors, attributes"
    )
    for name in _TEXT_FILTERS:
        traces.add_argument(f"--{name}", help=f"a span's {name} is exactly this")
    traces.add_argument("--min-duration", help="a matching span took at least this (500ms, 2s)")
    traces.add_argument("--max-duration", help="a matching span took at most this")
    traces.add_argument("--errors", action="store_true", help="a matching span failed")
    traces.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="a span or resource attribute has this value (or is present); repeatable",
    )
    traces.add_argument("--since", help="only the last 15m, 1h, 7d... (1h unless --start)")
    traces.add_argument("--start", help="from this time (ISO 8601 or Unix seconds)")
    traces.add_argument("--end", help="up to this time")
    order = traces.add_mutually_exclusive_group()
    order.add_argument("--slowest", action="store_true", help="slowest first")
    order.add_argument("--newest", action="store_true", help="newest first (the default)")
    traces.add_argument("--limit", type=int, default=20, help="at most this many (20)")
    traces.add_argument("--width", type=int, default=None, help="line width (the terminal's)")
    common_flags(traces)
    traces.set_defaults(run=_run_traces)


def common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=default_server(),
        help="Onepane API URL ($ONEPANE_SERVER or http://127.0.0.1:8320)",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead")


def _run_trace(args: argparse.Namespace) -> int:
    client = ApiClient(args.server)
    try:
        trace = client.trace(args.trace_id)
    except Ambiguous as exc:
        print(f"onepane: {exc}", file=sys.stderr)
        for match in exc.matches:
            print(f"  {_match_line(match)}", file=sys.stderr)
        return 1
    if args.json:
        print_json(trace)
    else:
        width = args.width or _terminal_width()
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        sys.stdout.write(render_trace(trace, width, collapse=not args.all, color=color))
    return 0


def _run_traces(args: argparse.Namespace) -> int:
    traces = ApiClient(args.server).search_traces(_search_params(args))
    if args.json:
        print_json({"traces": traces})
    elif not traces:
        print("onepane: no traces match", file=sys.stderr)
    else:
        sys.stdout.write(render_matches(traces, args.width or _terminal_width()))
    return 0


def _search_params(args: argparse.Namespace) -> list[tuple[str, str]]:
    params = [(name, value) for name in _TEXT_FILTERS if (value := getattr(args, name))]
    for flag, param in (("min_duration", "min_duration_ms"), ("max_duration", "max_duration_ms")):
        text = getattr(args, flag)
        if text is not None:
            params.append((param, f"{_duration_ms(text, '--' + flag.replace('_', '-')):g}"))
    if args.errors:
        params.append(("status", "error"))
    params += [("attr", attr) for attr in args.attr]
    since = args.since or (None if args.start else "1h")
    params += [(k, v) for k, v in (("since", since), ("start", args.start), ("end", args.end)) if v]
    params.append(("sort", "slowest" if args.slowest else "newest"))
    params.append(("limit", str(args.limit)))
    return params


def _duration_ms(text: str, flag: str) -> float:
    """``500ms``, ``1.5s``, ``2m``; a bare number is milliseconds."""
    from store.window import parse_duration

    if re.fullmatch(r"\s*\d+(\.\d+)?\s*", text):
        return float(text)
    return parse_duration(text, flag) / 1e6


def _match_line(match: dict[str, Any]) -> str:
    if "root_name" not in match:
        return match["trace_id"]
    return (
        f"{match['trace_id']}  {match['root_service']} {match['root_name']}  "
        f"{match['duration_ms']:.1f} ms  {match['span_count']} span"
        + ("" if match["span_count"] == 1 else "s")
    )


def print_json(document: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _terminal_width() -> int:
    return max(80, shutil.get_terminal_size((120, 40)).columns)
