"""OTLP ``AnyValue`` / ``KeyValue`` lists turned into plain Python values, kept whole."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any


def any_value(value: Any) -> Any:
    """One ``AnyValue`` as a JSON-ready Python value (bytes as base64, as OTLP/JSON does)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, which)


_SCALARS = ("int_value", "bool_value", "double_value")


def attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    """A repeated ``KeyValue`` as a dict; strings and scalars take the short path."""
    out: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        text = value.string_value
        if text:
            out[pair.key] = text
            continue
        which = value.WhichOneof("value")
        out[pair.key] = getattr(value, which) if which in _SCALARS else any_value(value)
    return out
