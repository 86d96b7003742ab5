"""deploy/rbac.yaml: a valid, read-only ClusterRole that allows every call the inventory
makes against a Kubernetes API."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from kubernetes import client

from collectors.k8s.inventory import Inventory, KubeConfig
from onepane import kubesim
from store import db
from store.writer import Writer

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
_MODELS = {
    "Namespace": "V1Namespace",
    "ServiceAccount": "V1ServiceAccount",
    "ClusterRole": "V1ClusterRole",
    "ClusterRoleBinding": "V1ClusterRoleBinding",
}


def _documents() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}


def test_manifest_parses_as_the_kubernetes_models() -> None:
    api = client.ApiClient()
    docs = _documents()
    assert set(docs) == set(_MODELS)
    for kind, doc in docs.items():
        model = api._ApiClient__deserialize(doc, _MODELS[kind])  # the client's own validation
        assert model.kind == kind
    binding = docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "onepane", "namespace": "onepane"}
    ]


def _allowed() -> set[tuple[str, str, str]]:
    rules = _documents()["ClusterRole"]["rules"]
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_cluster_role_only_reads() -> None:
    verbs = {verb for _, _, verb in _allowed()}
    assert verbs <= {"get", "list", "watch"}
    assert "*" not in {resource for _, resource, _ in _allowed()}


def test_every_call_the_inventory_makes_is_allowed(tmp_path: Path) -> None:
    """Run the real inventory against the in-memory API, with an owner lookup that misses
    the list (a ReplicaSet created after it), and check each (group, resource, verb)."""
    sim = kubesim.KubeSim()
    now = time.time_ns()
    sim.put("nodes", kubesim.node("node-1", now))
    server = sim.serve()
    conn = db.connect(tmp_path / "rbac.duckdb")
    writer = Writer(conn)
    writer.start()
    inventory = Inventory(KubeConfig(source="url", url=server.url), writer.apply, log=print)
    inventory.start()
    try:
        deadline = time.monotonic() + 10
        while not inventory.synced() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert inventory.synced()
        deployment = kubesim.owner_ref("Deployment", "api")
        sim.put("replicasets", kubesim.owned("ReplicaSet", "api-5d8f7", "shop", deployment, now))
        sim.put(
            "pods",
            kubesim.pod(
                "api-5d8f7-abcde",
                "shop",
                now,
                node_name="node-1",
                owner=kubesim.owner_ref("ReplicaSet", "api-5d8f7"),
            ),
        )
        while sim.get_requests == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.get_requests == 1
    finally:
        inventory.stop()
        writer.close()
        conn.close()
        sim.close()
    assert {verb for _, _, verb in sim.access} == {"get", "list", "watch"}
    assert sim.access <= _allowed(), sorted(sim.access - _allowed())
