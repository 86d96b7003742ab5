"""The demo company's drift references: what its models were trained on.

Each model's reference is its training data, drawn from the same generators the demo's
traffic uses (onepane/demo.py) before any drift: 5,000 rows of the fraud model's
``amount``, ``country`` and ``account_age_days`` and of the recsys model's
``items_viewed_7d`` and ``user_segment``. They are sent as CSV files the way
`onepane drift reference add` sends them, so the server infers the column types as it
would for any file. After the company's first simulated day the fraud model's order
amounts drift away from this reference, and its scheduled drift runs (onepane/demo.yaml)
flag that one column.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from onepane.client import ApiClient
from onepane.demo import FRAUD_MODEL_VERSION, RECSYS_MODEL_VERSION, fraud_features, recsys_features

REFERENCE_ROWS = 5000


@dataclass(frozen=True)
class DemoReference:
    model: str
    version: str
    columns: tuple[str, ...]
    draw: Callable[[random.Random], tuple[Any, ...]]  # one training row


REFERENCES = (
    DemoReference(
        "fraud-model",
        FRAUD_MODEL_VERSION,
        ("amount", "country", "account_age_days"),
        fraud_features,
    ),
    DemoReference(
        "recsys-model", RECSYS_MODEL_VERSION, ("items_viewed_7d", "user_segment"), recsys_features
    ),
)


def training_csv(
    reference: DemoReference, seed: int | None = None, rows: int = REFERENCE_ROWS
) -> bytes:
    """``rows`` rows of the model's training data as CSV (the same seed: the same file)."""
    rng = random.Random(f"{reference.model}-training-{seed}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(reference.columns)
    writer.writerows(reference.draw(rng) for _ in range(rows))
    return out.getvalue().encode()


def send(
    api: str, seed: int | None = None, references: tuple[DemoReference, ...] = REFERENCES
) -> list[dict[str, Any]]:
    """Register each model's reference with the server at ``api``; what it stored."""
    client = ApiClient(api, timeout_s=120)
    stored = []
    for reference in references:
        params = [
            ("model", reference.model),
            ("version", reference.version),
            ("filename", f"{reference.model}-{reference.version}-training.csv"),
        ]
        stored.append(
            client.post("/api/v1/drift/references", training_csv(reference, seed), params)
        )
    return stored
