"""The ``drift`` section of onepane.yaml, as the server uses it (no heavy imports: the CLI
reads the configuration too)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelDrift:
    """``drift.models.<model>`` in onepane.yaml: its schedule and per-column tests."""

    model: str
    version: str | None = None
    every_s: float | None = None  # None: only by hand
    window: str | None = None
    methods: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftConfig:
    """The ``drift`` section of onepane.yaml."""

    workers: int = 2
    window: str = "24h"
    min_rows: int = 100
    drift_share: float = 0.5
    report_rows: int = 5000
    models: Mapping[str, ModelDrift] = field(default_factory=dict)
