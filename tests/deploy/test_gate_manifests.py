"""deploy/admission-webhook.yaml and deploy/argo-rollouts-analysis.yaml: valid Kubernetes
objects that call the endpoints Onepane serves, for every kind the gate checks."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml
from kubernetes import client

from deploy_hooks import admission, gate
from onepane import gateapi

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_PLURALS = {
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "jobs": "Job",
    "cronjobs": "CronJob",
    "inferenceservices": "InferenceService",
}


def _docs(name: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / name).read_text())}


def test_the_webhook_configuration_parses_and_covers_every_gated_kind() -> None:
    docs = _docs("admission-webhook.yaml")
    api = client.ApiClient()
    config = api._ApiClient__deserialize(
        docs["ValidatingWebhookConfiguration"], "V1ValidatingWebhookConfiguration"
    )
    service = api._ApiClient__deserialize(docs["Service"], "V1Service")
    [hook] = config.webhooks
    assert hook.admission_review_versions == ["v1"]
    assert hook.side_effects == "NoneOnDryRun"  # dry runs are answered, never recorded
    assert hook.client_config.service.path == "/validate"  # what AdmissionHandler serves
    assert hook.client_config.service.name == service.metadata.name
    [port] = service.spec.ports
    assert port.port == hook.client_config.service.port and port.target_port == 8443
    kinds = {_PLURALS[r] for rule in hook.rules for r in rule.resources}
    assert kinds == set(admission.GATED)
    assert all(set(rule.operations) == {"CREATE", "UPDATE"} for rule in hook.rules)
    assert docs["Certificate"]["spec"]["dnsNames"][0] == "onepane-webhook.onepane.svc"


def test_the_argo_template_reads_the_verdict_of_the_verify_endpoint() -> None:
    template = _docs("argo-rollouts-analysis.yaml")["AnalysisTemplate"]
    [metric] = template["spec"]["metrics"]
    url = urlsplit(metric["provider"]["web"]["url"])
    assert url.path == "/api/v1/gate/verify"
    assert set(parse_qs(url.query)) <= gateapi.VERIFY_PARAMS
    assert metric["provider"]["web"]["jsonPath"] == "{$.verdict}"
    assert metric["successCondition"] == f'result == "{gate.PASS}"'
    assert metric["failureCondition"] == f'result == "{gate.BLOCKED}"'
    args = {a["name"] for a in template["spec"]["args"]}
    assert {"workload", "version", "window"} <= args
