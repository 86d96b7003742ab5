"""Model inputs in production: the ``ml.feature.<name>`` attributes of inference spans and
inference log records, one row per feature (the ``features`` table drift runs read).

The convention: an inference span (or a log record) carries ``ml.model.name``,
``ml.model.version`` and each input it was given as ``ml.feature.<name>``; numbers and
booleans become ``num``, strings ``text``. Other values (lists, maps) are kept as their
JSON text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pyarrow as pa

from collectors.otlp.decoded import STR, TS

PREFIX = "ml.feature."
FEATURE_SCHEMA = pa.schema(
    [
        ("time", TS),
        ("model_name", STR),
        ("model_version", STR),
        ("workload", STR),
        ("name", STR),
        ("num", pa.float64()),
        ("text", STR),
    ]
)
_CUT = len(PREFIX)


def feature_rows(
    out: list[tuple[Any, ...]],
    time_ns: int,
    model: str | None,
    version: str | None,
    workload: str,
    attrs: Mapping[str, Any],
) -> None:
    """Append to ``out`` a row per ``ml.feature.*`` attribute of one prediction of ``model``."""
    if not model:
        return
    for key, value in attrs.items():
        if not key.startswith(PREFIX) or len(key) == _CUT:
            continue
        name = key[_CUT:]
        kind = value.__class__
        if kind is float or kind is int or kind is bool:
            out.append((time_ns, model, version, workload, name, float(value), None))
        elif kind is str:
            out.append((time_ns, model, version, workload, name, None, value))
        elif value is not None:
            text = orjson.dumps(value).decode()
            out.append((time_ns, model, version, workload, name, None, text))


def model_of(attrs: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``ml.model.name`` (or the GenAI request model) and ``ml.model.version`` as text."""
    model = attrs.get("ml.model.name") or attrs.get("gen_ai.request.model")
    version = attrs.get("ml.model.version")
    return (None if model is None else str(model)), (None if version is None else str(version))
