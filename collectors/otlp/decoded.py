"""What every OTLP signal decoder shares: resources, rejections and the decoded result.

Decoders run in worker processes and return Arrow tables: the rows for the signal's
table and the resources they point at (each stored once, keyed by a hash of its
attributes). Items that cannot be stored are counted and described, and the rest of the
export is kept (OTLP partial success).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from collectors.otlp import semconv
from collectors.otlp.anyvalue import attributes

STR = pa.string()
TS = pa.timestamp("ns")
RESOURCE_SCHEMA = pa.schema([("resource_id", pa.int64()), ("attributes", STR)])
# Where an item came from; metric points and log records carry these columns in this order.
IDENTITY_FIELDS = [
    ("service_name", STR),
    ("service_version", STR),
    ("environment", STR),
    ("workload", STR),
    ("k8s_namespace", STR),
    ("k8s_pod", STR),
    ("scope_name", STR),
    ("scope_version", STR),
    ("resource_id", pa.int64()),
]
NOUNS = {"traces": "span", "metrics": "data point", "logs": "log record"}
_MAX_MESSAGES = 5
MAX_TIME_NS = 2**63 - 1  # the last nanosecond a stored timestamp holds: 2262-04-11
MAX_INT32 = 2**31 - 1


@dataclass
class Decoded:
    """The outcome of decoding one export: the rows to store and what was rejected."""

    signal: str
    table: pa.Table
    resources: pa.Table
    rejected: int = 0
    messages: list[str] = field(default_factory=list)
    described: int = 0  # how many of the rejected items the messages account for
    features: pa.Table | None = None  # model inputs (collectors/otlp/features.py), if any

    @property
    def accepted(self) -> int:
        return self.table.num_rows

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        shown = "; ".join(self.messages)
        more = self.rejected - max(self.described, len(self.messages))
        suffix = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} {NOUNS[self.signal]}(s) rejected: {shown}{suffix}"


@dataclass(frozen=True)
class Resource:
    """One OTLP resource: its stored id and the identity columns its items share."""

    resource_id: int
    identity: dict[str, Any]

    def columns(self, scope: Any) -> tuple[Any, ...]:
        """The ``IDENTITY_FIELDS`` values of an item of this resource and ``scope``."""
        ident = self.identity
        return (
            ident["service_name"],
            ident["service_version"],
            ident["environment"],
            ident["workload"],
            ident["k8s_namespace"],
            ident["k8s_pod"],
            scope.name or None,
            scope.version or None,
            self.resource_id,
        )


class Builder:
    """Collects resources and rejections while a decoder walks an export."""

    def __init__(self, signal: str, rejected: int = 0, messages: Sequence[str] = ()) -> None:
        self.signal = signal
        self.resources: dict[int, str] = {}
        self.rejected = rejected
        self.messages = list(messages)[:_MAX_MESSAGES]
        self.described = len(self.messages)  # rejected items the messages account for

    def reject(self, where: str, why: str, count: int = 1) -> None:
        self.rejected += count
        if len(self.messages) < _MAX_MESSAGES:
            self.messages.append(f"{where}: {why}" if count == 1 else f"{where} ({count}): {why}")
            self.described += count

    def resource(self, resource: Any) -> Resource:
        """Register an OTLP ``Resource`` message and return its id and identity."""
        resource_attrs = attributes(resource.attributes)
        resource_json = orjson.dumps(resource_attrs, option=orjson.OPT_SORT_KEYS).decode()
        resource_id = resource_key(resource_json)
        self.resources[resource_id] = resource_json
        return Resource(resource_id, semconv.resource_identity(resource_attrs))

    def finish(self, table: pa.Table, features: pa.Table | None = None) -> Decoded:
        resources = pa.Table.from_arrays(
            [
                pa.array(list(self.resources), pa.int64()),
                pa.array(list(self.resources.values()), STR),
            ],
            schema=RESOURCE_SCHEMA,
        )
        return Decoded(
            self.signal, table, resources, self.rejected, self.messages, self.described, features
        )


def table_from_rows(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    """Row tuples (in schema order) as an Arrow table."""
    columns = list(zip(*rows, strict=True)) or [() for _ in schema.names]
    arrays = [pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def resource_key(resource_json: str) -> int:
    """A stable 64-bit id for a resource, from its attributes in canonical JSON."""
    digest = hashlib.blake2b(resource_json.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def scope_json(scope: Any) -> str | None:
    """An instrumentation scope's attributes as JSON, or None when it has none."""
    scope_attrs = attributes(scope.attributes)
    return orjson.dumps(scope_attrs).decode() if scope_attrs else None


def range_problem(**values: int) -> str | None:
    """Why one of an item's times (``*_unix_nano``) or 32-bit counts and flags cannot be
    stored, or None when all of them can."""
    for name, value in values.items():
        if name.endswith("unix_nano"):
            if value > MAX_TIME_NS:
                return (
                    f"{name} {value} is after 2262-04-11, the last time Onepane stores; "
                    "send nanoseconds since 1970-01-01"
                )
        elif value > MAX_INT32:
            return f"{name} {value} is over {MAX_INT32}, the most Onepane stores"
    return None


def trace_key(trace_id: bytes) -> int:
    """The signed 64-bit key spans and logs are looked up by: the trace id's first 8 bytes."""
    return int.from_bytes(trace_id[:8], "big", signed=True)
