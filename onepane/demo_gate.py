"""The demo company's release history: what its pipelines sent the gate.

Two app releases that pass, a GPU model release blocked by its unit cost, and a model
release over the allowed increase let through by an override, each sent the way
`onepane gate check` sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from onepane.client import ApiClient


@dataclass(frozen=True)
class DemoRelease:
    workload: str
    version: str
    manifest: str
    actor: str
    override: dict[str, str] | None = None


def _deployment(
    name: str, namespace: str, version: str, replicas: int, resources: str, node_selector: str = ""
) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{app.kubernetes.io/name: {name}, app.kubernetes.io/version: "{version}"}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app.kubernetes.io/name: {name}}}}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: {name}, app.kubernetes.io/version: "{version}"}}
    spec:{node_selector}
      containers:
        - name: {name}
          image: registry.example.com/{namespace}/{name}:{version}
          resources:
            requests: {resources}
"""


GPU_NODES = "\n      nodeSelector: {node.kubernetes.io/instance-type: g5.2xlarge}"
RELEASES = (
    DemoRelease(
        "shop/web-frontend",
        "2.15.0",
        _deployment("web-frontend", "shop", "2.15.0", 1, "{cpu: 500m, memory: 512Mi}"),
        "dana (storefront)",
    ),
    DemoRelease(
        "shop/checkout-api",
        "1.9.0",
        _deployment("checkout-api", "shop", "1.9.0", 1, "{cpu: '1', memory: 1Gi}"),
        "sam (payments)",
    ),
    DemoRelease(
        "ml/fraud-model",
        "3.3.0",
        _deployment(
            "fraud-model", "ml", "3.3.0", 2, "{cpu: '2', memory: 8Gi, nvidia.com/gpu: 1}", GPU_NODES
        ),
        "lee (ml-platform)",
    ),
    DemoRelease(
        "ml/recsys-model",
        "2.1.0",
        _deployment(
            "recsys-model",
            "ml",
            "2.1.0",
            2,
            "{cpu: '4', memory: 16Gi, nvidia.com/gpu: 1}",
            GPU_NODES,
        ),
        "lee (ml-platform)",
        {
            "reason": "peak season: a second replica for the recommendation carousel, "
            "capacity review in January",
            "approver": "maria (head of ML platform)",
        },
    ),
)


def send(api: str, releases: tuple[DemoRelease, ...] = RELEASES) -> list[dict[str, Any]]:
    """Run each release through the gate on the server at ``api``; the decisions."""
    client = ApiClient(api, timeout_s=60)
    client.post("/api/v1/cost/rollup", b"")  # this hour's traffic counted
    decisions = []
    for release in releases:
        body = {
            "workload": release.workload,
            "version": release.version,
            "manifests": [{"source": f"deploy/{release.workload}.yaml", "text": release.manifest}],
            "actor": release.actor,
            "ci": {"CI_PROJECT_PATH": f"demo/{release.workload.split('/')[1]}"},
        }
        if release.override:
            body["override"] = release.override
        decisions.append(
            client.post("/api/v1/gate/check", orjson.dumps(body), content_type="application/json")
        )
    return decisions
