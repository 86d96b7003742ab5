"""Hostile files for the fuzz targets: gzip bombs and broken streams, FOCUS bills cut,
mangled and half-written, and YAML policies and manifests with hostile values, alias
bombs and deep nesting."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.otlp_inputs import TEXT, mutated

FOCUS = Path("/work/shared/data/focus")

GZIP_LIMIT = 1 << 20


@st.composite
def gzip_bodies(draw: st.DrawFn) -> bytes:
    """Compressed bodies: bombs (a small body inflating past the limit), several members,
    corrupt or cut-off streams, and plain random bytes."""
    kind = draw(st.sampled_from(["bomb", "members", "mutated", "random", "fits"]))
    if kind == "bomb":
        return gzip.compress(b"\0" * draw(st.integers(GZIP_LIMIT + 1, 8 * GZIP_LIMIT)), 9)
    if kind == "members":
        part = gzip.compress(b"x" * draw(st.integers(1, GZIP_LIMIT // 2)))
        return part * draw(st.integers(1, 5))
    if kind == "random":
        return draw(st.binary(max_size=200))
    body = gzip.compress(draw(st.binary(max_size=2000)))
    return draw(mutated(body)) if kind == "mutated" else body


def focus_examples() -> list[bytes]:
    return [p.read_bytes() for p in sorted(FOCUS.glob("*.csv"))]


@st.composite
def focus_mutations(draw: st.DrawFn) -> bytes:
    """A FOCUS example with cells replaced by hostile values, rows cut or duplicated, or the
    file cut off part-way (a half-written export)."""
    rows = list(csv.reader(io.StringIO(draw(st.sampled_from(focus_examples())).decode())))
    for _ in range(draw(st.integers(1, 3))):
        r = draw(st.integers(0, len(rows) - 1))
        action = draw(st.sampled_from(["cell", "cell", "drop", "short", "header"]))
        if action == "cell" and rows[r]:
            c = draw(st.integers(0, len(rows[r]) - 1))
            rows[r][c] = draw(
                st.one_of(
                    st.sampled_from(
                        ["", "null", "NaN", "inf", "-1e309", "1e400", "2023-13-45T99:99:99Z",
                         "2023-01-01T99:00:00Z", "{", '{"a":', "[1]", "\x00", "'; DROP TABLE x;--",
                         '"', "9" * 400, "2262-04-12T00:00:00Z", "0001-01-01T00:00:00Z"]
                    ),
                    st.text(max_size=12),
                )
            )  # fmt: skip
        elif action == "drop" and len(rows) > 1:
            del rows[r]
        elif action == "short" and rows[r]:
            rows[r] = rows[r][: draw(st.integers(0, len(rows[r]) - 1))]
        elif action == "header" and rows[0]:
            rows[0][draw(st.integers(0, len(rows[0]) - 1))] = draw(TEXT)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    data = out.getvalue().encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


FOCUS_BYTES = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda b: b"PAR1" + b),
    focus_mutations(),
)


_SCALAR_WORDS = (
    "25% -1 .nan .inf -.inf 1e400 0x10 ~ [] {} 2026-01-01 yes &a *missing 500m 2Gi 1e3 "
    "-2Gi 12Ei 1_000_000 $5 !!binary !!str !!int !!float"
)
YAML_SCALARS = st.one_of(
    st.sampled_from(
        [
            *_SCALAR_WORDS.split(" "),
            "'0.40 USD per 1k predictions'",
            "$5 per 1k requests",
            "1" * 500,
            "!!binary aGk=",
            "!!python/object/apply:os.system [ls]",
            "&a [*a]",
            "? complex key",
            "|\n  block",
        ]
    ),
    st.text(max_size=15).map(json.dumps),
)
POLICY_KEYS = ["gate", "policy", "all", "kinds", "teams", "workloads", "environments", "model",
               "app", "prod/fraud", "staging", "max_unit_cost", "max_increase", "max_monthly_cost",
               "nope"]  # fmt: skip
MANIFEST_KEYS = ["apiVersion", "kind", "metadata", "name", "namespace", "spec", "replicas",
                 "template", "containers", "resources", "requests", "limits", "cpu", "memory",
                 "nvidia.com/gpu", "jobTemplate", "schedule", "predictor", "minReplicas",
                 "maxReplicas", "scaleTargetRef", "items", "labels", "image", "overhead",
                 "initContainers", "restartPolicy", "nodeSelector", "parallelism", "completions",
                 "model", "sklearn"]  # fmt: skip
KINDS = ["Deployment", "StatefulSet", "Job", "CronJob", "InferenceService",
         "HorizontalPodAutoscaler", "List", "DeploymentList", "Service"]  # fmt: skip


def _yaml_tree(keys: list[str]) -> st.SearchStrategy[Any]:
    leaves = st.one_of(YAML_SCALARS, st.sampled_from(KINDS), st.integers(-(2**70), 2**70))
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.sampled_from(keys), children, max_size=4),
        ),
        max_leaves=20,
    )


def _render(node: Any, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(node, dict):
        if not node:
            return "{}"
        return "\n" + "\n".join(f"{pad}{k}: {_render(v, indent + 2)}" for k, v in node.items())
    if isinstance(node, list):
        if not node:
            return "[]"
        return "\n" + "\n".join(f"{pad}- {_render(v, indent + 2).lstrip()}" for v in node)
    return str(node)


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs in YAML: each level an anchor listing the level below ``width``
    times, so the last alias stands for ``width ** levels`` values."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join([*lines, f"kind: *l{levels - 1}", ""])


BOMB = _alias_bomb()


@st.composite
def hostile_yaml(draw: st.DrawFn, keys: list[str]) -> str:
    """YAML trees of the parser's own keys with hostile leaves, alias bombs, deep nesting,
    several documents, tabs and cut-off text."""
    kind = draw(st.sampled_from(["tree", "tree", "tree", "bomb", "deep", "docs", "cut"]))
    if kind == "bomb":
        return BOMB
    if kind == "deep":
        depth = draw(st.integers(50, 5000))
        return draw(
            st.sampled_from(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth])
        )
    text = _render(draw(_yaml_tree(keys))).lstrip("\n") or "x"
    if not text.lstrip().startswith(("-", "[", "{")) and ":" not in text:
        text = f"kind: {text}"
    if kind == "docs":
        text = f"{text}\n---\n{_render(draw(_yaml_tree(keys))).lstrip()}"
    if kind == "cut":
        text = text[: draw(st.integers(0, len(text)))] + draw(
            st.sampled_from(["\t", ":", "&", "'"])
        )
    return text
