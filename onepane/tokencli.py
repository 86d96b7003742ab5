"""`onepane token create|list|revoke`: tokens through a running server's API (with an admin
token in ``$ONEPANE_TOKEN``), or offline on the store file with ``--db PATH`` when no server
holds it: that is how the first admin token is made.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import orjson

from onepane.client import ApiClient
from onepane.errors import ConfigError, StoreError
from onepane.tracecli import common_flags, print_json
from store import db, tokens

_T = TypeVar("_T")


def add_commands(commands: Any) -> None:
    """Add ``token`` (create, list, revoke) to the subparsers."""
    token = commands.add_parser("token", help="API and ingest tokens: create, list, revoke")
    sub = token.add_subparsers(title="token commands", metavar="COMMAND", required=True)
    create = sub.add_parser("create", help="create a token; its secret is printed once")
    create.add_argument("--name", required=True, help="what the token is for: ci, team-x, ...")
    create.add_argument(
        "--scope", action="append", required=True, choices=tokens.SCOPES,
        help="ingest, read, gate or admin (admin: all); repeatable",
    )  # fmt: skip
    create.add_argument("--team", help="restrict the token's reads to this team's data")
    _flags(create)
    create.set_defaults(run=_run_create)
    listing = sub.add_parser("list", help="every token (never its secret)")
    _flags(listing)
    listing.set_defaults(run=_run_list)
    revoke = sub.add_parser("revoke", help="revoke a token: refused from then on")
    revoke.add_argument("token_id", metavar="ID", help="the id `onepane token list` shows")
    _flags(revoke)
    revoke.set_defaults(run=_run_revoke)


def _flags(parser: argparse.ArgumentParser) -> None:
    common_flags(parser)
    parser.add_argument(
        "--db", type=Path, default=None,
        help="work on this store file directly (no server may be running on it)",
    )  # fmt: skip


def _run_create(args: argparse.Namespace) -> int:
    if args.db is not None:
        now = time.time_ns()
        token, secret = _offline(
            args.db, lambda c: tokens.create(c, args.name, args.scope, args.team, now)
        )
        document = {"token": token.document(), "secret": secret}
    else:
        body = {"name": args.name, "scopes": args.scope, "team": args.team}
        document = ApiClient(args.server).post(
            "/api/v1/tokens", orjson.dumps(body), content_type="application/json"
        )
    if args.json:
        print_json(document)
        return 0
    print(document["secret"], flush=True)  # stdout: TOKEN=$(onepane token create ...)
    shown = document["token"]
    print(
        f"onepane: token {shown['id']} ({shown['name']}: {', '.join(shown['scopes'])}"
        + (f", team {shown['team']}" if shown["team"] else "")
        + "). Store the secret now: it is not shown again. Clients send it as "
        "Authorization: Bearer <secret>; the onepane CLI reads it from $ONEPANE_TOKEN.",
        file=sys.stderr,
    )
    return 0


def _run_list(args: argparse.Namespace) -> int:
    if args.db is not None:
        found = [t.document() for t in _offline(args.db, tokens.list_tokens)]
    else:
        found = ApiClient(args.server).get("/api/v1/tokens")["tokens"]
    if args.json:
        print_json({"tokens": found})
        return 0
    print(f"{'ID':>4}  {'NAME':<24} {'SCOPES':<24} {'TEAM':<16} {'CREATED':<20} REVOKED")
    for t in found:
        print(
            f"{t['id']:>4}  {t['name'][:24]:<24} {','.join(t['scopes']):<24} "
            f"{(t['team'] or '-')[:16]:<16} {_time(t['created_unix_nano']):<20} "
            f"{_time(t['revoked_unix_nano']) if t['revoked_unix_nano'] else '-'}"
        )
    return 0


def _run_revoke(args: argparse.Namespace) -> int:
    if args.db is not None:
        if not args.token_id.isdigit():
            raise ConfigError(f"a token id is a whole number, got {args.token_id[:20]!r}")
        now = time.time_ns()
        shown = _offline(args.db, lambda c: tokens.revoke(c, int(args.token_id), now)).document()
    else:
        shown = ApiClient(args.server).delete(f"/api/v1/tokens/{args.token_id}")["token"]
    if args.json:
        print_json({"token": shown})
    else:
        print(f"onepane: token {shown['id']} ({shown['name']}) revoked", file=sys.stderr)
    return 0


def _offline(path: Path, work: Callable[[duckdb.DuckDBPyConnection], _T]) -> _T:
    """``work`` in one transaction on the store file; ConfigError when a server holds it."""
    try:
        conn = db.connect(path)
    except StoreError as exc:
        raise ConfigError(
            f"cannot open {path}: a running server holds it ({exc.__cause__ or exc}). Use the "
            "server instead: `onepane token ... --server URL` with an admin token in "
            "$ONEPANE_TOKEN"
        ) from None
    try:
        with db.transaction(conn):
            return work(conn)
    finally:
        conn.close()


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
