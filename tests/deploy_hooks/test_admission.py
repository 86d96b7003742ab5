"""The admission webhook end to end: a live `onepane serve` with ``gate.admission`` in its
onepane.yaml listens over TLS; the test is the Kubernetes API server, POSTing
AdmissionReview v1 documents to ``/validate`` and verifying the server's certificate
against the CA that signed it, as the API server does with the webhook's ``caBundle``.

The cluster is a simulated one: one node; KServe's ``ml/ranker-predictor`` (no traffic);
``shop/checkout`` running one pod of 1 core and 2 GiB, which served 60 requests in the last
complete hour (one a minute from the top of the hour, so it served for 59 minutes). At the
default prices a pod costs 0.05 + 2 × 0.01 = 0.07 USD an hour; the policy allows 3 USD per
1k requests, so one replica (about 1.15 USD per 1k) passes and three (about 3.44) do not.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy_hooks import admission
from onepane import kubesim
from onepane.testing import LiveServer, serve_once, wait_for
from tests.cost.test_cost_unit import send_spans

S = 1_000_000_000
HOUR = 3600 * S
REL = 1e-9
POD_HOURLY = 1 * 0.05 + 2 * 0.01  # 1 core, 2 GiB at the default prices
REQUESTS = 60
SERVED_HOURS = 59 / 60  # the first request at the top of the hour, the last at minute 59
THROUGHPUT = REQUESTS / SERVED_HOURS  # requests an hour
LIMIT = 3.0  # USD per 1k requests
USER = "jane@example.com"
OVERRIDE = "onepane.dev/override-reason"

# The running pod: (namespace, pod, ReplicaSet, ...) as send_spans reads it.
CHECKOUT = ("shop", "checkout-6d5f7c8b9-x2k4m", "checkout-6d5f7c8b9")
# KServe's raw deployment of InferenceService ml/ranker: Deployment ranker-predictor.
RANKER = ("ml", "ranker-predictor-7d9f8c6b5-h7j9k", "ranker-predictor-7d9f8c6b5")

CONFIG = """\
pricing:
  defaults: {{cpu: 0.05, ram: 0.01, gpu: 2.0}}
cost:
  rollup_interval: 1h   # only the explicit POST /api/v1/cost/rollup brings hours up to date
  final_after: 6h
gate:
  policy:
    kinds:
      app: {{max_unit_cost: 3.00 USD per 1k requests}}
  admission:
    listen: 127.0.0.1:{port}
    cert: tls/server.crt      # relative to this file
    key: tls/server.key
    failure: {failure}
"""


# -- TLS: a CA of our own and a certificate for 127.0.0.1 ----------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_tls(directory: Path) -> Path:
    """ca.crt, server.crt and server.key in ``directory``; the CA's path."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("onepane-test-ca"))
        .issuer_name(_name("onepane-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("onepane-admission.onepane.svc"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("onepane-admission.onepane.svc"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "ca.crt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the webhook's client: what the Kubernetes API server sends ----------------------------


@dataclass
class Webhook:
    """One `onepane serve` with its admission listener."""

    server: LiveServer
    port: int
    tls: ssl.SSLContext

    def post(self, body: bytes, path: str = "/validate?timeout=10s") -> tuple[int, Any]:
        """POST ``body`` over HTTPS; (status, parsed JSON)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.tls, timeout=30)
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def review(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send an AdmissionReview; its response (checked for the envelope and the uid)."""
        status, body = self.post(
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
            ).encode()
        )
        assert status == 200, body
        assert (body["apiVersion"], body["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
        assert body["response"]["uid"] == request["uid"]
        return body["response"]

    def get(self, path: str, **query: str) -> Any:
        status, body = self.server.get_json(f"{path}?{urlencode(query)}")
        assert status == 200, body
        return body

    def decisions(self, **query: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/gate/decisions", **query)["decisions"]

    def deployments(self, **query: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/deployments", **query)["deployments"]


GROUPS = {"Deployment": "apps", "StatefulSet": "apps", "Job": "batch", "CronJob": "batch",
          "InferenceService": "serving.kserve.io", "ConfigMap": "", "Service": ""}  # fmt: skip


def request(
    obj: dict[str, Any] | None,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    user: str | None = USER,
    kind: str | None = None,
    namespace: str = "shop",
) -> dict[str, Any]:
    """The ``request`` of an AdmissionReview as the API server builds it."""
    kind = kind or (obj or old or {})["kind"]
    group = GROUPS[kind]
    version = "v1beta1" if kind == "InferenceService" else "v1"
    name = ((obj or old or {}).get("metadata") or {}).get("name", "")
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": kind.lower() + "s"}
    options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions",
                    "DELETE": "DeleteOptions"}[operation]  # fmt: skip
    user_info: dict[str, Any] = {"uid": "4f1c", "groups": ["system:authenticated"]}
    if user is not None:
        user_info["username"] = user
    return {
        "uid": str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": user_info,
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
    }


def deployment(
    name: str = "checkout",
    replicas: int = 1,
    gpus: int = 0,
    annotations: dict[str, str] | None = None,
    image_tag: str = "1.5.0",
) -> dict[str, Any]:
    """A Deployment as the API server hands it to the webhook (defaults applied)."""
    requests = {"cpu": "1", "memory": "2Gi"}
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"app": name},
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate"},
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": f"registry.example.com/shop/{name}:{image_tag}",
                            "resources": {"requests": requests, "limits": limits},
                            "terminationMessagePath": "/dev/termination-log",
                        }
                    ],
                    "restartPolicy": "Always",
                },
            },
        },
    }


# -- the servers -----------------------------------------------------------------------


def write_config(directory: Path, failure: str) -> tuple[Path, int]:
    port = free_port()
    config = directory / "onepane.yaml"
    config.write_text(CONFIG.format(port=port, failure=failure))
    return config, port


def client_context(ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


def post_api(server: LiveServer, path: str, body: bytes = b"") -> tuple[int, Any]:
    req = urllib.request.Request(server.api_url + path, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("admission-tls")
    make_tls(directory / "tls")
    return directory


@pytest.fixture(scope="module")
def webhook(tls_dir: Path) -> Iterator[Webhook]:
    """Fails closed; knows shop/checkout from its pods, spans and rolled-up costs."""
    config, port = write_config(tls_dir, "closed")
    now = time.time_ns()
    start = now // HOUR * HOUR - HOUR  # the last complete hour
    created = start - 2 * HOUR
    sim = kubesim.KubeSim()
    sim.serve()
    server = None
    try:
        sim.put("nodes", kubesim.node("node-a", created, cpu="16", memory="64Gi"))
        pods = (
            (CHECKOUT, "checkout", {"cpu": "1", "memory": "2Gi"}),
            (RANKER, "ranker-predictor", {"cpu": "2", "memory": "4Gi"}),
        )
        for (namespace, pod, replicaset), top, requests in pods:
            owner = kubesim.owner_ref("Deployment", top)
            sim.put(
                "replicasets", kubesim.owned("ReplicaSet", replicaset, namespace, owner, created)
            )
            sim.put(
                "pods",
                kubesim.pod(
                    pod,
                    namespace,
                    created,
                    node_name="node-a",
                    owner=kubesim.owner_ref("ReplicaSet", replicaset),
                    requests=requests,
                    started_ns=created,
                ),
            )
        server = LiveServer(
            tls_dir / "onepane.duckdb",
            *("--decoders", "1", "--kube-api", sim.server.url, "--config", str(config)),
        )
        wait_for(
            "the pods listed with their workloads",
            lambda: sorted(
                p["workload"] for p in server.get_json("/api/v1/k8s/pods?since=30d")[1]["pods"]
            ),
            lambda workloads: workloads == ["ml/ranker-predictor", "shop/checkout"],
        )
        send_spans(server, CHECKOUT, "1.4.0", [{"start": start + i * 60 * S} for i in range(60)])
        status, rolled = post_api(server, "/api/v1/cost/rollup")
        assert status == 200, rolled
        yield Webhook(server, port, client_context(tls_dir / "tls" / "ca.crt"))
    finally:
        if server is not None:
            code = server.stop()
            assert code == 0, "".join(server.output)
        sim.close()


@pytest.fixture(scope="module")
def open_webhook(tls_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    """A second server, with nothing seen and ``failure: open``."""
    directory = tmp_path_factory.mktemp("admission-open")
    (directory / "tls").symlink_to(tls_dir / "tls")
    config, port = write_config(directory, "open")
    server = LiveServer(directory / "onepane.duckdb", "--decoders", "1", "--config", str(config))
    try:
        yield Webhook(server, port, client_context(tls_dir / "tls" / "ca.crt"))
    finally:
        code = server.stop()
        assert code == 0, "".join(server.output)


def money(value: float) -> str:
    """The gate's figures: 4 decimals and the currency."""
    return f"{value:,.4f} USD"


def unit_cost(replicas: int, gpus: int = 0) -> float:
    """Projected USD per 1k requests of shop/checkout at the observed throughput."""
    return (POD_HOURLY + gpus * 2.0) * replicas / THROUGHPUT * 1000


def counts(hook: Webhook) -> tuple[int, int]:
    """How many decisions and deployment events the audit holds."""
    return len(hook.decisions(limit="10000")), len(hook.deployments(limit="10000"))


def test_the_startup_line_names_the_webhook_url(webhook: Webhook) -> None:
    banner = next(line for line in webhook.server.output if "serving OTLP/HTTP" in line)
    assert f"admission webhook on https://127.0.0.1:{webhook.port}/validate, store " in banner


# -- decisions -----------------------------------------------------------------------------


def test_a_deployment_under_its_policy_is_admitted_and_recorded(webhook: Webhook) -> None:
    review = request(deployment(replicas=1))
    response = webhook.review(review)
    assert response == {"uid": review["uid"], "allowed": True}

    [decision] = webhook.decisions(action="admission", workload="shop/checkout", limit="1")
    assert decision["release"]["read"][0].endswith(f"(AdmissionReview {review['uid']}))")
    assert (decision["action"], decision["verdict"], decision["exit_code"]) == (
        "admission",
        "pass",
        0,
    )
    assert (decision["workload"], decision["version"], decision["kind"]) == (
        "shop/checkout",
        "1.5.0",  # the image tag of what is being admitted
        "app",
    )
    assert (decision["actor"], decision["approver"], decision["override_reason"]) == (
        USER,
        None,
        None,
    )
    assert decision["environment"] == "production"
    # what a user checks by hand: 60 requests in 59 minutes, one pod at 0.07 USD an hour
    assert decision["observed"]["units"] == REQUESTS
    assert decision["observed"]["throughput_per_hour"] == pytest.approx(THROUGHPUT, rel=REL)
    assert decision["projection"]["hourly"] == pytest.approx(POD_HOURLY, rel=REL)
    assert decision["projection"]["unit_cost"] == pytest.approx(unit_cost(1), rel=REL)
    assert decision["projection"]["increase_pct"] == pytest.approx(0.0, abs=1e-9)
    [check] = decision["checks"]
    assert (check["threshold"], check["limit"], check["passed"]) == ("max_unit_cost", LIMIT, True)
    assert check["detail"] == f"{money(unit_cost(1))} per 1k requests"
    assert check["source"].endswith("onepane.yaml line 9 (gate.policy.kinds.app)")

    [event] = webhook.deployments(workload="shop/checkout", limit="1")
    assert {k: event[k] for k in ("workload", "version", "action", "verdict", "decision_id")} == {
        "workload": "shop/checkout",
        "version": "1.5.0",
        "action": "admission",
        "verdict": "pass",
        "decision_id": decision["decision_id"],
    }
    assert event["time"] == decision["time"]
    assert webhook.deployments(action="admission", limit="1") == [event]
    assert webhook.deployments(action="check", workload="shop/checkout") == []


def test_a_deployment_over_its_policy_is_denied_with_what_kubectl_prints(
    webhook: Webhook,
) -> None:
    review = request(deployment(replicas=3))
    response = webhook.review(review)
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    message = response["status"]["message"]
    [decision] = webhook.decisions(workload="shop/checkout", limit="1")
    assert decision["verdict"] == "blocked"
    assert decision["projection"]["unit_cost"] == pytest.approx(unit_cost(3), rel=REL)
    source = decision["checks"][0]["source"]
    assert message == (
        f"Onepane gate blocked shop/checkout 1.5.0: {money(unit_cost(3))} per 1k requests is "
        f"over the limit of 3 USD per 1k requests ({source}). To override, annotate the object "
        f'with {OVERRIDE}="<why>" (decision {decision["decision_id"]}).'
    )
    assert money(unit_cost(3)) == "3.4417 USD"  # three pods at 0.07 USD for 61 requests an hour
    [event] = webhook.deployments(workload="shop/checkout", limit="1")
    assert (event["verdict"], event["decision_id"]) == ("blocked", decision["decision_id"])
    # the decision the message names is the one stored
    assert webhook.get(f"/api/v1/gate/decisions/{decision['decision_id']}")["verdict"] == "blocked"


def test_a_gpu_pushes_a_single_replica_over_and_the_override_annotation_lets_it_through(
    webhook: Webhook,
) -> None:
    blocked = webhook.review(request(deployment(gpus=1)))
    assert blocked["allowed"] is False
    assert money(unit_cost(1, gpus=1)) in blocked["status"]["message"]

    reason = "INC-4711: the ranker needs the GPU until the CPU build is fixed"
    review = request(deployment(gpus=1, annotations={OVERRIDE: reason}), user="oncall@example.com")
    response = webhook.review(review)
    assert response["allowed"] is True
    assert "status" not in response
    [warning] = response["warnings"]
    [decision] = webhook.decisions(workload="shop/checkout", limit="1")
    assert warning.startswith("Onepane gate: shop/checkout 1.5.0 is over its policy (")
    assert f"{money(unit_cost(1, gpus=1))} per 1k requests is over the limit" in warning
    assert warning.endswith(f"let through by override (decision {decision['decision_id']})")
    assert (decision["verdict"], decision["exit_code"]) == ("overridden", 0)
    assert decision["override_reason"] == reason
    assert decision["approver"] == decision["actor"] == "oncall@example.com"
    assert webhook.decisions(verdict="overridden", limit="1") == [decision]
    [event] = webhook.deployments(workload="shop/checkout", limit="1")
    assert (event["verdict"], event["decision_id"]) == ("overridden", decision["decision_id"])


def test_an_override_without_a_user_names_an_unknown_approver(webhook: Webhook) -> None:
    obj = deployment(replicas=5, annotations={OVERRIDE: "load test"})
    assert webhook.review(request(obj, user=None))["allowed"] is True
    [decision] = webhook.decisions(workload="shop/checkout", limit="1")
    assert (decision["verdict"], decision["approver"], decision["actor"]) == (
        "overridden",
        "unknown",
        None,
    )


def test_an_override_of_a_release_within_its_policy_changes_nothing(webhook: Webhook) -> None:
    response = webhook.review(request(deployment(annotations={OVERRIDE: "just in case"})))
    assert response["allowed"] is True and "warnings" not in response
    [decision] = webhook.decisions(workload="shop/checkout", limit="1")
    assert (decision["verdict"], decision["approver"], decision["override_reason"]) == (
        "pass",
        None,
        None,
    )


def test_an_inference_service_is_decided_on_the_predictor_kserve_runs(webhook: Webhook) -> None:
    # KServe runs InferenceService ml/ranker as Deployment ranker-predictor: Onepane knows
    # the workload by that name, from its pods.
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "ranker", "namespace": "ml", "labels": {"version": "2.1.0"}},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "s3://models/ranker/2.1.0",
                    "resources": {"requests": {"cpu": "2", "memory": "4Gi"}},
                },
            }
        },
    }
    response = webhook.review(request(isvc, namespace="ml"))
    assert response["allowed"] is True, response
    [decision] = webhook.decisions(action="admission", limit="1")
    assert (decision["workload"], decision["version"], decision["verdict"]) == (
        "ml/ranker-predictor",
        "2.1.0",
        "pass",
    )
    assert decision["release"]["controller"] == "InferenceService"


# -- when the gate cannot decide -----------------------------------------------------------


def test_an_unknown_workload_is_denied_when_the_gate_fails_closed(webhook: Webhook) -> None:
    before = counts(webhook)
    response = webhook.review(request(deployment(name="checkout-v2")))
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    message = response["status"]["message"]
    assert message.startswith(
        "Onepane gate could not decide on shop/checkout-v2: unknown workload 'shop/checkout-v2'"
    )
    assert "Did you mean shop/checkout?" in message
    assert message.endswith("(denied: the gate fails closed)")
    assert counts(webhook) == before  # nothing was decided


def test_a_deployment_that_asks_for_no_resources_cannot_be_priced(webhook: Webhook) -> None:
    obj = deployment()
    del obj["spec"]["template"]["spec"]["containers"][0]["resources"]
    response = webhook.review(request(obj))
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert message.startswith("Onepane gate could not decide on shop/checkout: ")
    assert "sets no resources.requests (or limits) in any container" in message
    assert message.endswith("(denied: the gate fails closed)")


def test_an_unknown_workload_is_admitted_with_a_warning_when_the_gate_fails_open(
    open_webhook: Webhook,
) -> None:
    review = request(deployment())
    response = open_webhook.review(review)
    assert response["allowed"] is True
    assert "status" not in response
    [warning] = response["warnings"]
    assert warning.startswith(
        "Onepane gate could not decide on shop/checkout: unknown workload 'shop/checkout'"
    )
    assert warning.endswith("(allowed: the gate fails open)")
    assert len(warning) <= 512  # what the API server accepts as one warning
    assert counts(open_webhook) == (0, 0)


def test_the_plain_api_answers_the_same_review(webhook: Webhook, open_webhook: Webhook) -> None:
    for hook, allowed in ((webhook, False), (open_webhook, True)):
        review = request(deployment(name="checkout-v3"))
        body = json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": review}
        ).encode()
        status, answer = post_api(hook.server, "/api/v1/gate/admission", body)
        assert status == 200, answer
        assert answer["response"]["uid"] == review["uid"]
        assert answer["response"]["allowed"] is allowed
        assert "could not decide on shop/checkout-v3" in json.dumps(answer)


# -- what passes unchecked -----------------------------------------------------------------


def test_kinds_the_gate_does_not_price_and_deletes_pass_unrecorded(webhook: Webhook) -> None:
    before = counts(webhook)
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "checkout", "namespace": "shop"},
                  "data": {"a": "b"}}  # fmt: skip
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "checkout", "namespace": "shop"},
               "spec": {"ports": [{"port": 80}], "selector": {"app": "checkout"}}}  # fmt: skip
    reviews = [
        request(config_map),
        request(service),
        request(config_map, "UPDATE", old=config_map),
        # a DELETE of a release over its policy: nothing new runs
        request(None, "DELETE", old=deployment(replicas=3)),
        request(None, "DELETE", old=deployment(name="never-seen")),
    ]
    for review in reviews:
        assert webhook.review(review) == {"uid": review["uid"], "allowed": True}
    assert counts(webhook) == before


def test_an_update_that_changes_neither_pods_nor_replicas_passes_unchecked(
    webhook: Webhook,
) -> None:
    # a release over its policy already running: a label, an annotation, a status change
    old = deployment(replicas=3)
    new = deployment(replicas=3)
    new["metadata"]["labels"]["owner"] = "team-shop"
    new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "7"
    new["status"] = {"replicas": 3, "readyReplicas": 3}
    before = counts(webhook)
    review = request(new, "UPDATE", old=old)
    assert webhook.review(review) == {"uid": review["uid"], "allowed": True}
    assert counts(webhook) == before

    # the same update scaling it up is checked, and blocked
    scaled = deployment(replicas=4)
    response = webhook.review(request(scaled, "UPDATE", old=old))
    assert response["allowed"] is False
    assert money(unit_cost(4)) in response["status"]["message"]
    assert counts(webhook) == (before[0] + 1, before[1] + 1)

    # and so is one that changes the pod template only (a new image)
    retagged = deployment(replicas=3, image_tag="1.6.0")
    response = webhook.review(request(retagged, "UPDATE", old=old))
    assert response["allowed"] is False
    assert "blocked shop/checkout 1.6.0" in response["status"]["message"]


def test_a_job_its_cronjob_started_passes_but_a_job_of_its_own_is_gated(
    webhook: Webhook,
) -> None:
    def job(name: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
        pod = {"containers": [{"name": "etl", "image": "etl:3.0.0",
                               "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}],
               "restartPolicy": "Never"}  # fmt: skip
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": "data", "ownerReferences": owners},
            "spec": {"completions": 1, "parallelism": 1, "template": {"spec": pod}},
        }

    before = counts(webhook)
    cron_owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly-etl",
                  "uid": str(uuid.uuid4()), "controller": True}  # fmt: skip
    review = request(job("nightly-etl-29500000", [cron_owner]), namespace="data")
    assert webhook.review(review) == {"uid": review["uid"], "allowed": True}
    assert counts(webhook) == before

    # a Job of its own is checked: Onepane has never seen it, so the closed gate denies it
    response = webhook.review(request(job("backfill", []), namespace="data"))
    assert response["allowed"] is False
    assert "could not decide on data/backfill" in response["status"]["message"]


def test_a_dry_run_is_answered_but_not_recorded(webhook: Webhook) -> None:
    before = counts(webhook)
    denied = webhook.review(request(deployment(replicas=3), dry_run=True))
    assert denied["allowed"] is False
    message = denied["status"]["message"]
    assert message.startswith(f"Onepane gate blocked shop/checkout 1.5.0: {money(unit_cost(3))}")
    assert message.endswith(f'{OVERRIDE}="<why>" (a dry run: not recorded).')

    allowed = webhook.review(request(deployment(replicas=1), dry_run=True))
    assert allowed["allowed"] is True
    overridden = webhook.review(
        request(deployment(replicas=3, annotations={OVERRIDE: "trying"}), dry_run=True)
    )
    assert overridden["allowed"] is True
    assert overridden["warnings"][0].endswith("let through by override (a dry run: not recorded)")
    assert counts(webhook) == before


# -- the listener --------------------------------------------------------------------------


def test_a_body_that_is_not_an_admission_review_is_a_400(webhook: Webhook) -> None:
    bodies = {
        b"not json": "the body is not JSON",
        b"[]": "the body is not an AdmissionReview with a request and its uid",
        b'{"kind": "AdmissionReview"}': "the body is not an AdmissionReview",
        b'{"kind": "AdmissionReview", "request": {"kind": {"kind": "Deployment"}}}': (
            "the body is not an AdmissionReview with a request and its uid"
        ),
        b'{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}': (
            "the body is not an AdmissionReview"
        ),
        b'{"kind": "AdmissionReview", "request": {"uid": "1", "kind": "Deployment"}}': (
            "request.kind must be {group, version, kind}"
        ),
    }
    for body, error in bodies.items():
        status, answer = webhook.post(body)
        assert status == 400, (body, answer)
        assert answer["error"].startswith(error), (body, answer)
    status, answer = webhook.post(b"{}", path="/mutate")
    assert status == 404
    assert answer["error"] == "no webhook at /mutate; the API server must call /validate"
    # the same body through the plain API
    status, answer = post_api(webhook.server, "/api/v1/gate/admission", b"[]")
    assert (status, answer["error"]) == (
        400,
        "the body is not an AdmissionReview with a request and its uid",
    )


def test_the_listener_serves_the_configured_certificate(webhook: Webhook, tls_dir: Path) -> None:
    with (
        socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as raw,
        webhook.tls.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        served = tls.getpeercert(binary_form=True)
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    configured = x509.load_pem_x509_certificate((tls_dir / "tls" / "server.crt").read_bytes())
    assert served == configured.public_bytes(serialization.Encoding.DER)
    # a client that does not trust the CA refuses it, as an API server with the wrong
    # caBundle would
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as raw,
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_clients_that_fail_the_handshake_do_not_stop_the_listener(webhook: Webhook) -> None:
    # one client connects and says nothing: its handshake waits in its own thread
    silent = socket.create_connection(("127.0.0.1", webhook.port), timeout=10)
    try:
        # plain HTTP to the TLS port: no HTTP answer, the connection is closed
        with socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as plain:
            plain.sendall(
                b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"
            )
            received = b""
            try:
                while chunk := plain.recv(4096):
                    received += chunk
            except ConnectionResetError:
                pass
            assert not received.startswith(b"HTTP/")
        # a TLS client that gives up mid-handshake
        with socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as half:
            half.sendall(b"\x16\x03\x01\x00\x05hello")
        started = time.monotonic()
        review = request(deployment())
        assert webhook.review(review)["allowed"] is True
        assert time.monotonic() - started < 5
    finally:
        silent.close()
    assert webhook.server.proc.poll() is None


def test_reviews_at_once_each_get_their_own_answer(webhook: Webhook) -> None:
    from concurrent.futures import ThreadPoolExecutor

    reviews = [request(deployment(replicas=r), dry_run=True) for r in (1, 3, 1, 3, 1, 3, 1, 3)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(webhook.review, reviews))
    assert [a["uid"] for a in answers] == [r["uid"] for r in reviews]
    assert [a["allowed"] for a in answers] == [True, False] * 4


# -- a listener that cannot start ----------------------------------------------------------


def test_serve_exits_2_with_one_line_when_the_certificate_cannot_be_used(tmp_path: Path) -> None:
    make_tls(tmp_path / "tls")
    config = tmp_path / "onepane.yaml"
    port = free_port()

    def serve(admission: str) -> tuple[int, str]:
        config.write_text(f"gate:\n  admission:\n{admission}")
        done = serve_once(tmp_path / "onepane.duckdb", "--config", str(config))
        return done.returncode, done.stderr

    code, err = serve(f"    listen: 127.0.0.1:{port}\n    cert: tls/missing.crt\n"
                      "    key: tls/server.key\n")  # fmt: skip
    assert code == 2
    assert err == f"onepane: error: gate.admission.cert: no file {tmp_path}/tls/missing.crt\n"

    code, err = serve(f"    listen: 127.0.0.1:{port}\n    cert: tls/server.crt\n"
                      "    key: /nonexistent/tls.key\n")  # fmt: skip
    assert (code, err) == (2, "onepane: error: gate.admission.key: no file /nonexistent/tls.key\n")

    # files that are there but are not a certificate and its key
    code, err = serve(f"    listen: 127.0.0.1:{port}\n    cert: tls/server.key\n"
                      "    key: tls/server.crt\n")  # fmt: skip
    assert code == 2
    assert err.startswith(
        f"onepane: error: cannot use {tmp_path}/tls/server.key and {tmp_path}/tls/server.crt "
        "for the admission webhook: "
    )
    assert err.count("\n") == 1

    code, err = serve(f"    listen: 127.0.0.1:{port}\n    key: tls/server.key\n")
    assert (code, err) == (
        2,
        "onepane: error: gate.admission.cert is required: the API server only calls "
        "webhooks over TLS\n",
    )

    code, err = serve(f"    listen: 127.0.0.1:{port}\n    cert: tls/server.crt\n"
                      "    key: tls/server.key\n    failure: ignore\n")  # fmt: skip
    assert (code, err) == (
        2,
        "onepane: error: gate.admission.failure must be open or closed, got 'ignore'\n",
    )


def test_serve_exits_2_when_the_webhook_port_is_taken(tmp_path: Path) -> None:
    make_tls(tmp_path / "tls")
    config = tmp_path / "onepane.yaml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(f"gate:\n  admission:\n    listen: 127.0.0.1:{port}\n"
                          "    cert: tls/server.crt\n    key: tls/server.key\n")  # fmt: skip
        done = serve_once(tmp_path / "onepane.duckdb", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith(f"onepane: error: cannot listen for admission webhook on "
                                  f"127.0.0.1:{port}: ")  # fmt: skip
    assert done.stderr.count("\n") == 1


def test_a_bug_in_the_gate_is_answered_by_the_failure_setting() -> None:
    # in process: no object the API server sends makes the gate fail other than by saying
    # why, but should it, `failure:` still decides, not the API server's failurePolicy
    def broken(*args: Any) -> dict[str, Any]:
        raise KeyError("cpu")

    body = json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
         "request": request(deployment())}
    ).encode()  # fmt: skip
    closed = admission.review(body, broken, fail_open=False)["response"]
    assert closed["allowed"] is False
    assert closed["status"] == {
        "code": 500,
        "message": "Onepane gate could not decide on shop/checkout: internal error: KeyError: "
        "'cpu' (denied: the gate fails closed)",
    }
    opened = admission.review(body, broken, fail_open=True)["response"]
    assert opened["allowed"] is True
    assert opened["warnings"] == [
        "Onepane gate could not decide on shop/checkout: internal error: KeyError: 'cpu' "
        "(allowed: the gate fails open)"
    ]
