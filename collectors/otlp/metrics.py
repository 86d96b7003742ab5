"""Decode an OTLP metrics export into an Arrow table of data points.

Every point type lands in one table, ``metric_points``: gauges and sums carry ``value``;
histograms, exponential histograms and summaries carry their count, sum and buckets or
quantiles. Each point keeps its start time (so cumulative counters can be turned into
rates across resets), its resource, scope and point attributes, and the workload of its
resource, so Kubernetes and GPU metrics join to workloads like spans do.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa

from collectors.otlp.anyvalue import attributes
from collectors.otlp.decoded import (
    IDENTITY_FIELDS,
    STR,
    TS,
    Builder,
    Decoded,
    Resource,
    range_problem,
    scope_json,
    table_from_rows,
)
from collectors.otlp.wire import read_request

_U64 = pa.uint64()
_F64 = pa.float64()
_I32 = pa.int32()

# Shared by every point of one metric in one scope.
METRIC_SCHEMA = pa.schema(
    [
        ("metric_name", STR),
        ("metric_type", STR),
        ("unit", STR),
        ("description", STR),
        ("temporality", pa.int8()),
        ("is_monotonic", pa.bool_()),
        *IDENTITY_FIELDS,
        ("scope_attributes", STR),
    ]
)
_POINT_HEAD = [("metric_idx", pa.int32()), ("start_time", TS), ("time", TS)]
_POINT_TAIL = [("flags", _I32), ("attributes", STR), ("exemplars", STR)]
_DISTRIBUTION = [("count", _U64), ("sum", _F64), ("min", _F64), ("max", _F64)]
# The columns each point type fills, in its row order.
POINT_SCHEMAS = {
    "number": pa.schema([*_POINT_HEAD, ("value", _F64), *_POINT_TAIL]),
    "histogram": pa.schema(
        [
            *_POINT_HEAD,
            *_DISTRIBUTION,
            ("explicit_bounds", pa.list_(_F64)),
            ("bucket_counts", pa.list_(_U64)),
            *_POINT_TAIL,
        ]
    ),
    "exponential_histogram": pa.schema(
        [
            *_POINT_HEAD,
            *_DISTRIBUTION,
            ("scale", _I32),
            ("zero_count", _U64),
            ("zero_threshold", _F64),
            ("positive_offset", _I32),
            ("positive_counts", pa.list_(_U64)),
            ("negative_offset", _I32),
            ("negative_counts", pa.list_(_U64)),
            *_POINT_TAIL,
        ]
    ),
    "summary": pa.schema(
        [
            *_POINT_HEAD,
            ("count", _U64),
            ("sum", _F64),
            ("quantiles", pa.list_(_F64)),
            ("quantile_values", pa.list_(_F64)),
            *_POINT_TAIL,
        ]
    ),
}
_POINT_COLUMNS = {
    name: field
    for schema in POINT_SCHEMAS.values()
    for name, field in zip(schema.names, schema, strict=True)
    if name != "metric_idx"
}
_POINT_ORDER = (
    "start_time",
    "time",
    "value",
    "count",
    "sum",
    "min",
    "max",
    "explicit_bounds",
    "bucket_counts",
    "scale",
    "zero_count",
    "zero_threshold",
    "positive_offset",
    "positive_counts",
    "negative_offset",
    "negative_counts",
    "quantiles",
    "quantile_values",
)
# The ``metric_points`` table: what the metric says, the point, where it came from.
METRIC_POINT_SCHEMA = pa.schema(
    [
        *(METRIC_SCHEMA.field(i) for i in range(6)),
        *(_POINT_COLUMNS[name] for name in _POINT_ORDER),
        *(METRIC_SCHEMA.field(i) for i in range(6, len(METRIC_SCHEMA))),
        *_POINT_TAIL,
    ]
)
NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK


def decode_metrics(body: bytes, json: bool) -> Decoded:
    """Decode an ``ExportMetricsServiceRequest`` body (protobuf or OTLP/JSON)."""
    request, rejected, messages = read_request(body, json, "metrics")
    builder = _PointBuilder(rejected, messages)
    for resource_metrics in request.resource_metrics:
        resource = builder.resource(resource_metrics.resource)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                builder.add_metric(metric, resource, scope_metrics.scope)
    return builder.finish(builder.table())


class _PointBuilder(Builder):
    """Accumulates one row per metric and one row per point, joined in ``table``."""

    def __init__(self, rejected: int, messages: list[str]) -> None:
        super().__init__("metrics", rejected, messages)
        self.metrics: list[tuple[Any, ...]] = []
        self.points: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in POINT_SCHEMAS}

    def add_metric(self, metric: Any, resource: Resource, scope: Any) -> None:
        which = metric.WhichOneof("data")
        if which is None:
            return  # a metric without data has no points to store or reject
        data = getattr(metric, which)
        if not metric.name:
            self.reject("metric with no name", "every metric needs a name", len(data.data_points))
            return
        temporality = getattr(data, "aggregation_temporality", None)
        if temporality is not None and not 0 <= temporality <= 2:
            why = (
                f"aggregation_temporality {temporality} is not an OTLP AggregationTemporality (0-2)"
            )
            self.reject(f"data points of {metric.name!r}", why, len(data.data_points))
            return
        self.metrics.append(
            (
                metric.name,
                which,
                metric.unit or None,
                metric.description or None,
                temporality,
                data.is_monotonic if which == "sum" else None,
                *resource.columns(scope),
                scope_json(scope),
            )
        )
        index = len(self.metrics) - 1
        kind = "number" if which in ("gauge", "sum") else which
        rows, row_of = self.points[kind], _ROW_OF[kind]
        for point in data.data_points:
            problem, row = row_of(point)
            if not problem and row[-1] is not None:  # the point has exemplars
                problem = _exemplars_problem(point.exemplars)
            if problem:
                self.reject(f"data point of {metric.name!r}", problem)
                continue
            rows.append((index, point.start_time_unix_nano or None, point.time_unix_nano, *row))

    def table(self) -> pa.Table:
        """Every point with its metric's columns, in the ``metric_points`` column order."""
        metrics = table_from_rows(self.metrics, METRIC_SCHEMA)
        parts = []
        for kind, rows in self.points.items():
            if not rows:
                continue
            points = table_from_rows(rows, POINT_SCHEMAS[kind])
            shared = metrics.take(points.column("metric_idx"))
            columns = {name: shared.column(name) for name in METRIC_SCHEMA.names}
            columns.update({name: points.column(name) for name in points.column_names[1:]})
            parts.append(
                pa.table(
                    [
                        columns.get(f.name, pa.nulls(points.num_rows, f.type))
                        for f in METRIC_POINT_SCHEMA
                    ],
                    schema=METRIC_POINT_SCHEMA,
                )
            )
        if not parts:
            return METRIC_POINT_SCHEMA.empty_table()
        return pa.concat_tables(parts)


def _time_problem(point: Any) -> str | None:
    if not point.time_unix_nano:
        return "time_unix_nano is required"
    return range_problem(
        time_unix_nano=point.time_unix_nano,
        start_time_unix_nano=point.start_time_unix_nano,
        flags=point.flags,
    )


def _number_row(point: Any) -> tuple[str | None, tuple[Any, ...]]:
    problem = _time_problem(point)
    which = point.WhichOneof("value")
    if which is None and not point.flags & NO_RECORDED_VALUE:
        problem = problem or "a number data point needs as_double or as_int"
    recorded = which is not None and not point.flags & NO_RECORDED_VALUE
    value = float(getattr(point, which)) if recorded else None
    return problem, (value, *_tail(point))


def _histogram_row(point: Any) -> tuple[str | None, tuple[Any, ...]]:
    bounds, counts = list(point.explicit_bounds), list(point.bucket_counts)
    problem = _time_problem(point) or _buckets_problem(point.count, bounds, counts)
    return problem, (*_distribution(point), bounds or None, counts or None, *_tail(point))


def _exponential_row(point: Any) -> tuple[str | None, tuple[Any, ...]]:
    positive, negative = list(point.positive.bucket_counts), list(point.negative.bucket_counts)
    problem = _time_problem(point)
    in_buckets = point.zero_count + sum(positive) + sum(negative)
    if not problem and in_buckets and in_buckets != point.count:
        problem = f"buckets and zero_count add up to {in_buckets} but count is {point.count}"
    row = (
        *_distribution(point),
        point.scale,
        point.zero_count,
        point.zero_threshold,
        point.positive.offset,
        positive or None,
        point.negative.offset,
        negative or None,
        *_tail(point),
    )
    return problem, row


def _summary_row(point: Any) -> tuple[str | None, tuple[Any, ...]]:
    quantiles = [q.quantile for q in point.quantile_values]
    values = [q.value for q in point.quantile_values]
    problem = _time_problem(point)
    if not problem and any(not 0.0 <= q <= 1.0 for q in quantiles):
        problem = "summary quantiles must be between 0 and 1"
    row = (point.count, point.sum, quantiles or None, values or None, *_tail(point))
    return problem, row


_ROW_OF: dict[str, Callable[[Any], tuple[str | None, tuple[Any, ...]]]] = {
    "number": _number_row,
    "histogram": _histogram_row,
    "exponential_histogram": _exponential_row,
    "summary": _summary_row,
}


def _distribution(point: Any) -> tuple[Any, ...]:
    return (
        point.count,
        point.sum if point.HasField("sum") else None,
        point.min if point.HasField("min") else None,
        point.max if point.HasField("max") else None,
    )


def _buckets_problem(count: int, bounds: list[float], counts: list[int]) -> str | None:
    if not counts:
        return None
    if len(counts) != len(bounds) + 1:
        return (
            f"{len(counts)} bucket_counts for {len(bounds)} explicit_bounds; "
            "there must be one more count than bounds"
        )
    problem = _bounds_problem(tuple(bounds))
    if problem:
        return problem
    if sum(counts) != count:
        return f"bucket_counts add up to {sum(counts)} but count is {count}"
    return None


@functools.lru_cache(maxsize=256)
def _bounds_problem(bounds: tuple[float, ...]) -> str | None:
    """Checked once per distinct set of bounds: a metric's points almost always share one."""
    if any(math.isnan(b) for b in bounds):
        return "explicit_bounds must be numbers"
    if any(not a < b for a, b in itertools.pairwise(bounds)):
        return "explicit_bounds must be strictly increasing"
    return None


def _tail(point: Any) -> tuple[Any, ...]:
    attrs = attributes(point.attributes)
    attrs_json = orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS).decode() if attrs else "{}"
    exemplars = getattr(point, "exemplars", None)
    return point.flags, attrs_json, _exemplars_json(exemplars) if exemplars else None


def _exemplars_problem(exemplars: Any) -> str | None:
    """Why a point's exemplars cannot be stored (ids of the wrong length), or None."""
    for exemplar in exemplars:
        trace_id, span_id = exemplar.trace_id, exemplar.span_id
        if trace_id and (len(trace_id) != 16 or trace_id == bytes(16)):
            return (
                f"exemplar trace_id must be empty or 16 non-zero bytes, got {len(trace_id)} bytes"
            )
        if span_id and (len(span_id) != 8 or span_id == bytes(8)):
            return f"exemplar span_id must be empty or 8 non-zero bytes, got {len(span_id)} bytes"
    return None


def _exemplars_json(exemplars: Any) -> str:
    return orjson.dumps(
        [
            {
                "time_unix_nano": e.time_unix_nano,
                "value": getattr(e, e.WhichOneof("value")) if e.WhichOneof("value") else None,
                "trace_id": e.trace_id.hex() or None,
                "span_id": e.span_id.hex() or None,
                "attributes": attributes(e.filtered_attributes),
            }
            for e in exemplars
        ]
    ).decode()
