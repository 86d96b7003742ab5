"""Reads restricted to one team: what a token created with ``--team T`` may see.

A route that filters by team is forced to ``team=T``; a route that filters by workload
answers only for T's workloads (``workload`` is then required); one trace is shown only
when every span in it belongs to T. Every other read is refused, since it could show
other teams' data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from onepane.auth import Forbidden

OPEN = {"/healthz", "/api/v1/openapi.json", "/openapi.json"}
TEAM_FILTERED = {"/api/v1/models", "/api/v1/pipelines/runs", "/api/v1/gate/decisions"}
WORKLOAD_FILTERED = {
    "/api/v1/traces",
    "/api/v1/metrics",
    "/api/v1/logs",
    "/api/v1/unit-costs",
    "/api/v1/k8s/pods",
}
Workloads = Callable[[], set[str]]


def team_workloads(cursor: duckdb.DuckDBPyConnection, team: str) -> set[str]:
    """The workloads the catalog or the Kubernetes ``team`` label give to ``team``."""
    rows = cursor.execute(
        "SELECT workload FROM workload_identity WHERE team = $team", {"team": team}
    ).fetchall()
    return {row[0] for row in rows}


def restrict(
    path: str, query: Mapping[str, list[str]], team: str, workloads: Workloads
) -> dict[str, list[str]]:
    """The query parameters of ``GET path`` for a token of ``team``; Forbidden when the
    request would read another team's data or cannot be restricted."""
    if path in OPEN or path.startswith("/api/v1/traces/"):  # a trace is checked whole
        return dict(query)
    if path in TEAM_FILTERED:
        asked = sorted({value for value in query.get("team", []) if value} - {team})
        if asked:
            raise Forbidden(f"this token reads team {team!r} only, not {asked[0][:80]!r}")
        return {**query, "team": [team]}
    if path in WORKLOAD_FILTERED or path.startswith("/api/v1/metrics/"):
        asked = [value for value in query.get("workload", []) if value]
        own = workloads()
        if not asked:
            raise Forbidden(
                f"this token reads team {team!r} only: pass workload=NAMESPACE/NAME, one of "
                f"{_listed(own)}"
            )
        outside = sorted(set(asked) - own)
        if outside:
            raise Forbidden(
                f"workload {outside[0][:80]!r} is not team {team!r}'s; this token reads "
                f"{_listed(own)}"
            )
        return dict(query)
    raise Forbidden(
        f"{path[:80]} cannot be restricted to one team, and this token reads team {team!r} "
        "only: use a token created without --team"
    )


def check_trace(document: Mapping[str, Any], team: str, workloads: Workloads) -> None:
    """Forbidden unless every span of the trace belongs to one of ``team``'s workloads."""
    outside = sorted({span.get("workload") or "?" for span in document["spans"]} - workloads())
    if outside:
        raise Forbidden(
            f"trace {document['trace_id']} has spans of workload {outside[0][:80]!r}, which is "
            f"not team {team!r}'s; this token reads team {team!r} only"
        )


def _listed(workloads: set[str]) -> str:
    if not workloads:
        return "none yet (give workloads a team in the catalog of onepane.yaml)"
    shown = sorted(workloads)
    return ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
