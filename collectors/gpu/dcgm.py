"""Read dcgm-exporter's /metrics (Prometheus text format) into GPU points.

Parsing is prometheus-client's own text parser. Only the metrics Onepane keeps
(utilisation, graphics-engine activity, framebuffer, power) are read; DCGM's blank
sentinels become missing values. Label spellings differ between dcgm-exporter versions
(``Hostname`` before 3.x, ``hostname`` after), and a Prometheus in between may have
renamed ``pod`` to ``exported_pod``: all are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families

from store.gpu import KEPT_METRICS, POINT_SCHEMA, is_blank

_KEPT = frozenset(KEPT_METRICS)


@dataclass(frozen=True)
class Parsed:
    """The points of one scrape, and what was left out."""

    points: pa.Table
    gpus: int  # distinct GPUs (or MIG instances) seen
    blanks: int  # kept-metric values that were DCGM blank sentinels


def label(labels: Mapping[str, str], *names: str) -> str | None:
    """The first non-empty label of ``names``."""
    for name in names:
        value = labels.get(name)
        if value:
            return value
    return None


def _int_label(labels: Mapping[str, str], name: str) -> int | None:
    value = labels.get(name, "")
    return int(value) if value.isascii() and value.isdigit() else None


def point_row(labels: Mapping[str, str], metric: str, value: float | None) -> tuple[object, ...]:
    """One point's columns after time, source and target, from dcgm-exporter labels."""
    return (
        metric,
        value,
        label(labels, "Hostname", "hostname"),
        _int_label(labels, "gpu"),
        label(labels, "UUID", "uuid"),
        label(labels, "modelName"),
        label(labels, "GPU_I_PROFILE"),
        _int_label(labels, "GPU_I_ID"),
        label(labels, "exported_namespace", "namespace"),
        label(labels, "exported_pod", "pod"),
        label(labels, "exported_container", "container"),
    )


def points_table(rows: Iterable[tuple[object, ...]]) -> pa.Table:
    """Rows in POINT_SCHEMA column order as an Arrow table."""
    columns = list(zip(*rows, strict=True)) or [[] for _ in POINT_SCHEMA]
    return pa.Table.from_arrays(
        [pa.array(column, field.type) for column, field in zip(columns, POINT_SCHEMA, strict=True)],
        schema=POINT_SCHEMA,
    )


def parse(text: str, target: str, scraped_ns: int, source: str = "dcgm") -> Parsed:
    """Points of the kept metrics in a dcgm-exporter page.

    A sample's own timestamp wins over ``scraped_ns``. Raises ValueError when the page is
    not Prometheus text.
    """
    rows, gpus, blanks = [], set(), 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in _KEPT:
                continue
            value: float | None = sample.value
            if is_blank(sample.value):
                value, blanks = None, blanks + 1
            # The text format's timestamps are whole milliseconds; the parser hands them
            # over as float seconds, so go back through milliseconds for exact ns.
            at = (
                scraped_ns
                if sample.timestamp is None
                else round(sample.timestamp * 1000) * 1_000_000
            )
            row = point_row(sample.labels, sample.name, value)
            gpus.add(row[2:8])
            rows.append((at, source, target, *row))
    return Parsed(points_table(rows), len(gpus), blanks)
