"""``onepane gate check | verify | decisions``: the unit-cost gate from a deploy pipeline.

Exit codes: 0 pass (or overridden), 1 blocked by policy, 2 could not decide (unknown
workload, bad manifest or policy, server unreachable); ``--fail-open`` turns 2 into 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from deploy_hooks import manifests, policy, report
from onepane.client import ApiClient, default_server
from onepane.errors import ConfigError, OnepaneError

ACTOR_ENV = ("ONEPANE_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_REQUESTEDFOR", "USER")
CI_ENV = (
    "GITHUB_REPOSITORY",
    "GITHUB_SHA",
    "GITHUB_RUN_ID",
    "GITHUB_REF",
    "CI_PROJECT_PATH",
    "CI_COMMIT_SHA",
    "CI_PIPELINE_ID",
    "CI_JOB_URL",
)


def add_commands(commands: Any) -> None:
    """Add ``gate`` (check, verify, decisions) to the ``onepane`` subparsers."""
    gate = commands.add_parser("gate", help="the unit-cost gate for CI, canaries and admission")
    sub = gate.add_subparsers(title="gate commands", metavar="COMMAND", required=True)

    check = sub.add_parser("check", help="project a release's cost from its manifests; decide")
    check.add_argument("--workload", required=True, help="namespace/name of the workload")
    check.add_argument(
        "--manifest",
        action="append",
        required=True,
        type=Path,
        metavar="FILE",
        help="a YAML file of the release (repeatable; - for stdin)",
    )
    check.add_argument("--version", help="the release's version (default: its labels or image tag)")
    check.add_argument("--policy", type=Path, help="a policy file (default: the server's)")
    check.add_argument("--observe", help="throughput from this far back (the server's: 7d)")
    check.add_argument("--dry-run", action="store_true", help="decide, but record nothing")
    _decision_flags(check)
    check.add_argument("--override-reason", help="break-glass: let a blocked release through")
    check.add_argument("--approver", help="who approved the override (default: the CI user)")
    check.add_argument(
        "--report-when",
        choices=("always", "increase", "blocked"),
        default="always",
        help="print the report always, only when cost rises, or when blocked",
    )
    check.set_defaults(run=_run_check)

    verify = sub.add_parser("verify", help="a canary's observed unit cost against the policy")
    verify.add_argument("--workload", required=True, help="namespace/name of the workload")
    verify.add_argument("--version", required=True, help="the canary's service.version")
    verify.add_argument("--window", help="how far back to look (the server's: 30m)")
    verify.add_argument("--min-units", help="fewer requests/predictions than this: undecided")
    _decision_flags(verify)
    verify.set_defaults(run=_run_verify)

    log = sub.add_parser("decisions", help="the audit log of gate decisions")
    log.add_argument("--workload")
    log.add_argument("--verdict", choices=("pass", "blocked", "overridden", "undecided"))
    log.add_argument("--since", help="only the last 1h, 7d, ...")
    log.add_argument("--limit", default="20")
    log.add_argument("--server", default=None, help="API base URL ($ONEPANE_SERVER)")
    log.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
    log.set_defaults(run=_run_decisions)


def _decision_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", dest="environment", help="environment (the server's default)")
    parser.add_argument("--server", default=None, help="API base URL ($ONEPANE_SERVER)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")
    parser.add_argument(
        "--json",
        dest="json_file",
        type=Path,
        metavar="FILE",
        help="also write the decision as JSON to FILE",
    )
    parser.add_argument(
        "--fail-open", action="store_true", help="exit 0 instead of 2 when the gate cannot decide"
    )
    parser.add_argument("--actor", help="who is releasing (default: $GITHUB_ACTOR, $USER…)")


def _actor(given: str | None) -> str | None:
    return given or next((os.environ[k] for k in ACTOR_ENV if os.environ.get(k)), None)


def _read(path: Path) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _check_body(args: argparse.Namespace) -> dict[str, Any]:
    texts = [(str(p), _read(p)) for p in args.manifest]
    manifests.release(manifests.load(texts), args.workload, args.version)  # fail early, here
    body: dict[str, Any] = {
        "workload": args.workload,
        "version": args.version,
        "environment": args.environment,
        "manifests": [{"source": s, "text": t} for s, t in texts],
        "observe": args.observe,
        "actor": _actor(args.actor),
        "ci": {k: os.environ[k] for k in CI_ENV if os.environ.get(k)},
        "dry_run": args.dry_run,
    }
    if args.policy is not None:
        text = _read(args.policy)
        policy.from_file_text(text, str(args.policy))
        body["policy"] = {"source": str(args.policy), "text": text}
    if args.override_reason is not None:
        approver = args.approver or _actor(None)
        if not args.override_reason.strip():
            raise ConfigError("--override-reason needs the reason, in words")
        if not approver:
            raise ConfigError("an override needs the approver's identity: --approver NAME")
        body["override"] = {"reason": args.override_reason, "approver": approver}
    return body


def _run_check(args: argparse.Namespace) -> int:
    def decide() -> dict[str, Any]:
        body = _check_body(args)
        client = ApiClient(args.server or default_server(), args.timeout)
        return client.post(
            "/api/v1/gate/check", orjson.dumps(body), content_type="application/json"
        )

    command = f"onepane gate check --workload {args.workload} " + " ".join(
        f"--manifest {p}" for p in args.manifest
    )
    return _decided(args, decide, command)


def _run_verify(args: argparse.Namespace) -> int:
    def decide() -> dict[str, Any]:
        params = [("workload", args.workload), ("version", args.version)]
        for name in ("window", "min_units", "environment"):
            if getattr(args, name):
                params.append((name, getattr(args, name)))
        actor = _actor(args.actor)
        if actor:
            params.append(("actor", actor))
        client = ApiClient(args.server or default_server(), args.timeout)
        return client.get("/api/v1/gate/verify", params)

    return _decided(args, decide, "")


def _decided(args: argparse.Namespace, decide: Any, command: str) -> int:
    """Run ``decide``; print, append and write the report; the exit code of the verdict."""
    try:
        decision = decide()
    except OnepaneError as exc:
        print(f"onepane gate: cannot decide: {exc}", file=sys.stderr)
        _publish(report.render_error(str(exc), args.fail_open))
        if args.json_file is not None:
            _write_json(args.json_file, {"verdict": "undecided", "exit_code": 2, "error": str(exc)})
        return 0 if args.fail_open else 2
    text = report.render(decision, command)
    when = getattr(args, "report_when", "always")
    increase = (decision.get("projection") or {}).get("increase_pct")
    if (
        when == "always"
        or decision["verdict"] != "pass"
        or (when == "increase" and increase is not None and increase > 0)
    ):
        _publish(text)
    if args.json_file is not None:
        _write_json(args.json_file, decision)
    code = int(decision["exit_code"])
    return 0 if code == 2 and args.fail_open else code


def _publish(text: str) -> None:
    sys.stdout.write(text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as out:
                out.write(text + "\n")
        except OSError as exc:
            print(f"onepane gate: cannot append to $GITHUB_STEP_SUMMARY: {exc}", file=sys.stderr)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    try:
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        print(f"onepane gate: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)


def _run_decisions(args: argparse.Namespace) -> int:
    params = [
        (k, str(v))
        for k, v in (
            ("workload", args.workload),
            ("verdict", args.verdict),
            ("since", args.since),
            ("limit", args.limit),
        )
        if v
    ]
    found = ApiClient(args.server or default_server()).get("/api/v1/gate/decisions", params)
    if args.as_json:
        sys.stdout.write(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"{'ID':>5}  {'TIME':<24} {'ACTION':<9} {'VERDICT':<10} {'WORKLOAD':<32} VERSION")
    for d in found["decisions"]:
        print(
            f"{d['decision_id']:>5}  {d['time']:<24} {d['action']:<9} {d['verdict']:<10} "
            f"{d['workload']:<32} {d.get('version') or ''}"
        )
    return 0
