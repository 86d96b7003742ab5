"""The workload catalog in onepane.yaml: kind, team and the unit a unit cost counts.

::

    catalog:
      shop/checkout-api: {kind: app, team: payments}
      ml/fraud-model: {kind: model, team: ml-platform, unit: predictions}
      ml/chat-assistant: {kind: model, unit: tokens}
      data/nightly-etl: {kind: pipeline, team: data}

What the catalog says wins over Kubernetes labels (``team``, ``onepane.dev/kind``), which
win over what Onepane infers (a workload with inference spans is a model, one with
pipeline runs or run by a Job is a pipeline, anything else an app).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from onepane.errors import ConfigError

KINDS = ("app", "model", "pipeline")
UNITS = ("requests", "predictions", "tokens", "runs")
DEFAULT_UNIT = {"app": "requests", "model": "predictions", "pipeline": "runs"}


@dataclass(frozen=True)
class Entry:
    workload: str
    kind: str | None = None
    team: str | None = None
    unit: str | None = None


def parse(section: Mapping[str, Any] | None) -> tuple[Entry, ...]:
    """The ``catalog`` section, checked: known kinds and units only."""
    entries = []
    for workload, item in (section or {}).items():
        where = f"catalog.{workload}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where} must be a mapping with kind, team and unit")
        unknown = set(item) - {"kind", "team", "unit"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; use kind, team, unit")
        kind, unit = item.get("kind"), item.get("unit")
        if kind is not None and kind not in KINDS:
            raise ConfigError(f"{where}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if unit is not None and unit not in UNITS:
            raise ConfigError(f"{where}.unit must be one of {', '.join(UNITS)}, got {unit!r}")
        team = item.get("team")
        entries.append(Entry(str(workload), kind, None if team is None else str(team), unit))
    return tuple(entries)


def replace(conn: duckdb.DuckDBPyConnection, entries: tuple[Entry, ...]) -> None:
    """Make the stored catalog what onepane.yaml says now."""
    conn.execute("DELETE FROM catalog")
    if entries:
        conn.executemany(
            "INSERT INTO catalog VALUES (?, ?, ?, ?)",
            [(e.workload, e.kind, e.team, e.unit) for e in entries],
        )
