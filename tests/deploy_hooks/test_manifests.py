"""Manifests to a Release: what each pod asks for and how many run, for every kind the gate
prices, and one clear ManifestError (file and line) for anything it cannot read."""

from __future__ import annotations

import pytest

from deploy_hooks import manifests
from deploy_hooks.manifests import ManifestError, Release

GIB = 1024**3
MIB = 1024**2


def _release(text: str, workload: str, source: str = "app.yaml", **kw: object) -> Release:
    return manifests.release(manifests.load([(source, text)]), workload, **kw)


def _error(text: str, workload: str = "prod/web", source: str = "app.yaml") -> str:
    with pytest.raises(ManifestError) as info:
        _release(text, workload, source)
    return str(info.value)


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: prod
spec:
  replicas: 3
  template:
    metadata:
      labels: {app: checkout}
    spec:
      nodeSelector: {pool: general}
      containers:
        - name: app
          image: registry.example.com:5000/shop/checkout:1.4.2
          resources:
            requests:
              cpu: 500m
              memory: 1Gi
        - name: proxy
          image: envoy:v1.30
          resources:
            limits:
              cpu: 250m
              memory: 256Mi
"""


# --- Deployment -------------------------------------------------------------------------


def test_a_deployment_is_replicas_times_the_pod() -> None:
    rel = _release(DEPLOYMENT, "prod/checkout")
    assert rel.workload == "prod/checkout"
    assert rel.controller == "Deployment"
    assert not rel.is_job
    [pod] = rel.components
    assert pod.name == "Deployment prod/checkout"
    # the proxy asks for nothing but limits: its requests are its limits
    assert pod.cpu == pytest.approx(0.75)
    assert pod.memory == GIB + 256 * MIB
    assert pod.gpus == 0.0
    assert (pod.replicas, pod.max_replicas, pod.autoscaled) == (3, 3, False)
    assert rel.node_selector == {"pool": "general"}
    assert rel.read == ("Deployment prod/checkout (app.yaml line 1)",)
    assert (rel.schedule, rel.completions) == (None, 1)


def test_requests_win_over_limits_per_resource() -> None:
    text = DEPLOYMENT.replace(
        "          resources:\n            limits:\n              cpu: 250m\n",
        "          resources:\n            requests: {cpu: 100m}\n            limits:\n"
        "              cpu: 250m\n",
    )
    [pod] = _release(text, "prod/checkout").components
    assert pod.cpu == pytest.approx(0.6)  # 500m + the proxy's own 100m request
    assert pod.memory == GIB + 256 * MIB  # its memory still from the limit


def test_replicas_default_to_one() -> None:
    text = DEPLOYMENT.replace("  replicas: 3\n", "")
    [pod] = _release(text, "prod/checkout").components
    assert (pod.replicas, pod.max_replicas) == (1, 1)


def test_replicas_zero_is_allowed() -> None:
    [pod] = _release(DEPLOYMENT.replace("replicas: 3", "replicas: 0"), "prod/checkout").components
    assert pod.replicas == 0


def test_version_from_the_image_tag_when_no_label() -> None:
    # registry with a port: the tag is after the last colon of the last path segment
    assert _release(DEPLOYMENT, "prod/checkout").version == "1.4.2"


def test_version_label_beats_the_image_tag() -> None:
    text = DEPLOYMENT.replace(
        "  namespace: prod\n",
        "  namespace: prod\n  labels:\n    app.kubernetes.io/version: 2.0.0\n",
    )
    assert _release(text, "prod/checkout").version == "2.0.0"


def test_version_label_on_the_pod_template() -> None:
    text = DEPLOYMENT.replace("labels: {app: checkout}", "labels: {app: checkout, version: v9}")
    assert _release(text, "prod/checkout").version == "v9"


def test_version_given_beats_the_manifest() -> None:
    assert _release(DEPLOYMENT, "prod/checkout", version="abc123").version == "abc123"


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("registry.example.com:5000/shop/checkout", None),
        ("checkout@sha256:0123abcd", None),
        ("checkout", None),
        ("ghcr.io/acme/checkout:2024.05.01", "2024.05.01"),
    ],
)
def test_version_from_image_only_when_it_has_a_tag(image: str, version: str | None) -> None:
    text = DEPLOYMENT.replace("registry.example.com:5000/shop/checkout:1.4.2", image).replace(
        "envoy:v1.30", "envoy"
    )
    assert _release(text, "prod/checkout").version == version


def test_namespace_comes_from_the_workload_when_the_manifest_has_none() -> None:
    text = DEPLOYMENT.replace("  namespace: prod\n", "")
    rel = _release(text, "staging/checkout")
    assert rel.workload == "staging/checkout"
    assert rel.components[0].name == "Deployment staging/checkout"


def test_a_manifest_in_another_namespace_is_not_the_workload() -> None:
    message = _error(DEPLOYMENT, "staging/checkout")
    assert "named 'checkout' in namespace staging" in message
    assert "found: Deployment checkout" in message


def test_init_containers_and_sidecars_count_as_the_scheduler_counts_them() -> None:
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  replicas: 2
  template:
    spec:
      initContainers:
        - name: log-shipper
          restartPolicy: Always
          resources: {requests: {cpu: 250m, memory: 128Mi}}
        - name: migrate
          resources: {requests: {cpu: "3", memory: 256Mi}}
      containers:
        - name: web
          image: web:1
          resources: {requests: {cpu: "1", memory: 2Gi}}
"""
    [pod] = _release(text, "prod/web").components
    # cpu: the migration (3) with the sidecar started before it (0.25) beats 1 + 0.25
    assert pod.cpu == pytest.approx(3.25)
    # memory: the app and the sidecar (2Gi + 128Mi) beat the migration (256Mi + 128Mi)
    assert pod.memory == 2 * GIB + 128 * MIB
    assert pod.replicas == 2


def test_gpus_per_pod() -> None:
    text = DEPLOYMENT.replace("memory: 1Gi", "memory: 1Gi\n              nvidia.com/gpu: 2")
    [pod] = _release(text, "prod/checkout").components
    assert pod.gpus == 2.0


def test_a_pod_that_asks_only_for_gpus_can_be_priced() -> None:
    text = """\
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  template:
    spec:
      containers:
        - name: gpu
          resources: {limits: {nvidia.com/gpu: 1}}
"""
    [pod] = _release(text, "prod/web").components
    assert (pod.cpu, pod.memory, pod.gpus) == (0.0, 0.0, 1.0)


# --- HorizontalPodAutoscaler ------------------------------------------------------------

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  replicas: 4
  template:
    spec:
      containers:
        - name: web
          image: web:1.0
          resources: {requests: {cpu: "1", memory: 512Mi}}
"""
HPA = """\
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web-hpa, namespace: prod}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 10
"""


def test_an_hpa_sets_the_replica_range_of_its_target() -> None:
    rel = _release(WEB + HPA, "prod/web")
    [pod] = rel.components
    assert (pod.replicas, pod.max_replicas, pod.autoscaled) == (2, 10, True)
    assert rel.read == (
        "Deployment prod/web (app.yaml line 1)",
        "HorizontalPodAutoscaler: 2 to 10 replicas (app.yaml line 13)",
    )


def test_an_hpa_in_another_file_attaches_too() -> None:
    docs = manifests.load([("deploy.yaml", WEB), ("hpa.yaml", HPA)])
    rel = manifests.release(docs, "prod/web")
    assert rel.components[0].max_replicas == 10
    assert rel.read[1] == "HorizontalPodAutoscaler: 2 to 10 replicas (hpa.yaml line 2)"


def test_an_hpa_minimum_defaults_to_one() -> None:
    rel = _release(WEB + HPA.replace("  minReplicas: 2\n", ""), "prod/web")
    assert (rel.components[0].replicas, rel.components[0].max_replicas) == (1, 10)


@pytest.mark.parametrize(
    "hpa",
    [
        HPA.replace("name: web}", "name: api}"),
        HPA.replace("kind: Deployment,", "kind: StatefulSet,"),
        HPA.replace("namespace: prod}", "namespace: staging}"),
    ],
)
def test_an_hpa_for_something_else_is_ignored(hpa: str) -> None:
    [pod] = _release(WEB + hpa, "prod/web").components
    assert (pod.replicas, pod.max_replicas, pod.autoscaled) == (4, 4, False)


def test_an_hpa_with_max_below_min_is_an_error() -> None:
    message = _error(WEB + HPA.replace("maxReplicas: 10", "maxReplicas: 1"))
    assert message == "app.yaml line 19: maxReplicas 1 is below minReplicas 2"


def test_an_hpa_without_max_is_an_error() -> None:
    message = _error(WEB + HPA.replace("  maxReplicas: 10\n", ""))
    assert message == "app.yaml line 16: HorizontalPodAutoscaler has no maxReplicas"


# --- StatefulSet, Job, CronJob ----------------------------------------------------------


def test_a_statefulset() -> None:
    text = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data}
spec:
  serviceName: db
  replicas: 3
  template:
    metadata:
      labels: {app.kubernetes.io/version: "15.2"}
    spec:
      containers:
        - name: pg
          image: postgres:15
          resources: {requests: {cpu: "2", memory: 4Gi}}
"""
    rel = _release(text, "data/db")
    assert rel.controller == "StatefulSet"
    assert rel.version == "15.2"
    [pod] = rel.components
    assert (pod.cpu, pod.memory, pod.replicas) == (2.0, 4 * GIB, 3)


JOB = """\
apiVersion: batch/v1
kind: Job
metadata: {name: train, namespace: ml}
spec:
  parallelism: 4
  completions: 8
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: trainer
          image: trainer:3
          resources:
            limits: {cpu: "8", memory: 32Gi, nvidia.com/gpu: "2"}
"""


def test_a_job_runs_parallelism_pods_for_completions() -> None:
    rel = _release(JOB, "ml/train")
    assert rel.controller == "Job"
    assert rel.is_job
    assert rel.completions == 8
    assert rel.schedule is None
    [pod] = rel.components
    assert (pod.cpu, pod.memory, pod.gpus) == (8.0, 32 * GIB, 2.0)
    assert (pod.replicas, pod.max_replicas) == (4, 4)


def test_a_job_defaults_to_one_pod_and_one_completion() -> None:
    text = JOB.replace("  parallelism: 4\n  completions: 8\n", "")
    rel = _release(text, "ml/train")
    assert (rel.components[0].replicas, rel.completions) == (1, 1)


def test_a_job_with_a_bad_parallelism() -> None:
    message = _error(JOB.replace("parallelism: 4", "parallelism: four"), "ml/train")
    assert message == "app.yaml line 5: parallelism must be a whole number ≥ 0, got 'four'"


CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: ml}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      parallelism: 2
      completions: 3
      template:
        metadata:
          labels: {onepane.dev/version: r42}
        spec:
          containers:
            - name: etl
              image: etl:2024.01
              resources: {requests: {cpu: "2", memory: 4Gi}}
"""


def test_a_cronjob_has_its_schedule_and_job_template() -> None:
    rel = _release(CRONJOB, "ml/nightly")
    assert rel.controller == "CronJob"
    assert rel.is_job
    assert rel.schedule == "0 2 * * *"
    assert rel.completions == 3
    assert rel.version == "r42"
    [pod] = rel.components
    assert (pod.cpu, pod.memory, pod.replicas) == (2.0, 4 * GIB, 2)


def test_a_cronjob_version_from_its_job_template_image() -> None:
    text = CRONJOB.replace("        metadata:\n          labels: {onepane.dev/version: r42}\n", "")
    assert _release(text, "ml/nightly").version == "2024.01"


def test_a_cronjob_without_a_schedule_is_an_error() -> None:
    message = _error(CRONJOB.replace('  schedule: "0 2 * * *"\n', ""), "ml/nightly")
    assert message == "app.yaml line 4: CronJob nightly has no schedule"


# --- KServe InferenceService ------------------------------------------------------------

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: fraud
  namespace: ml
  labels: {app.kubernetes.io/version: v7}
spec:
  predictor:
    minReplicas: 2
    maxReplicas: 6
    nodeSelector: {gpu: a100}
    model:
      modelFormat: {name: sklearn}
      storageUri: gs://models/fraud
      resources:
        requests: {cpu: "2", memory: 8Gi, nvidia.com/gpu: "1"}
  transformer:
    containers:
      - name: feast
        image: feast:1
        resources: {requests: {cpu: 500m, memory: 1Gi}}
"""


def test_an_inference_service_predictor_and_transformer() -> None:
    rel = _release(ISVC, "ml/fraud", source="isvc.yaml")
    assert rel.controller == "InferenceService"
    assert rel.version == "v7"
    assert not rel.is_job
    predictor, transformer = rel.components
    assert predictor.name == "InferenceService fraud predictor"
    assert (predictor.cpu, predictor.memory, predictor.gpus) == (2.0, 8 * GIB, 1.0)
    assert (predictor.replicas, predictor.max_replicas, predictor.autoscaled) == (2, 6, True)
    assert transformer.name == "InferenceService fraud transformer"
    assert (transformer.cpu, transformer.memory, transformer.gpus) == (0.5, GIB, 0.0)
    assert (transformer.replicas, transformer.max_replicas, transformer.autoscaled) == (
        1,
        1,
        False,
    )
    assert rel.node_selector == {"gpu": "a100"}
    assert rel.read == ("InferenceService ml/fraud (isvc.yaml line 1)",)


def test_an_inference_service_answers_to_its_predictor_name() -> None:
    rel = _release(ISVC, "ml/fraud-predictor")
    assert rel.controller == "InferenceService"
    assert rel.components[0].name == "InferenceService fraud predictor"


def test_max_replicas_never_below_min() -> None:
    [predictor, _] = _release(ISVC.replace("    maxReplicas: 6\n", ""), "ml/fraud").components
    assert (predictor.replicas, predictor.max_replicas, predictor.autoscaled) == (2, 2, False)


def test_kserve_defaults_when_the_model_sets_no_resources() -> None:
    text = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris, namespace: ml}
spec:
  predictor:
    sklearn:
      storageUri: gs://models/iris
"""
    rel = _release(text, "ml/iris")
    [predictor] = rel.components
    assert (predictor.cpu, predictor.memory, predictor.gpus) == (1.0, 2 * GIB, 0.0)
    assert (predictor.replicas, predictor.max_replicas) == (1, 1)
    assert rel.read[1] == "predictor sklearn: no resources, KServe's default 1 CPU and 2Gi assumed"
    assert rel.version is None


def test_kserve_defaults_do_not_change_the_manifest() -> None:
    text = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris, namespace: ml}
spec:
  predictor:
    containers:
      - name: kserve-container
        image: iris:1
"""
    docs = manifests.load([("isvc.yaml", text)])
    first = manifests.release(docs, "ml/iris")
    assert "resources" not in docs[0].value["spec"]["predictor"]["containers"][0]
    # the same documents read twice give the same release, its note included
    assert manifests.release(docs, "ml/iris") == first
    assert any("KServe's default" in line for line in first.read)


def test_an_inference_service_without_a_predictor() -> None:
    text = (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        "metadata: {name: iris, namespace: ml}\nspec:\n  transformer: {}\n"
    )
    assert _error(text, "ml/iris") == "app.yaml line 4: InferenceService has no predictor"


# --- kind: List, several documents ------------------------------------------------------


def test_a_list_is_opened_and_keeps_its_lines() -> None:
    text = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: api, namespace: prod}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: api, namespace: prod}
    spec:
      replicas: 2
      template:
        spec:
          containers:
            - name: api
              image: api:3.1
              resources:
                requests:
                  cpu: 250m
"""
    docs = manifests.load([("list.yaml", text)])
    assert [d.value["kind"] for d in docs] == ["Service", "Deployment"]
    rel = manifests.release(docs, "prod/api")
    assert rel.read == ("Deployment prod/api (list.yaml line 7)",)
    assert (rel.components[0].cpu, rel.components[0].replicas) == (0.25, 2)
    bad = text.replace("cpu: 250m", "cpu: 1 core")
    assert _error(bad, "prod/api", "list.yaml") == (
        "list.yaml line 19: requests.cpu '1 core' is not a quantity (like 500m, 2Gi, 1)"
    )


def test_the_workload_is_found_among_many_objects() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n---\n" + WEB
    rel = _release(text, "prod/web")
    assert rel.controller == "Deployment"
    assert rel.read == ("Deployment prod/web (app.yaml line 5)",)


def test_empty_documents_are_skipped() -> None:
    assert _release("---\n---\n" + WEB + "---\n", "prod/web").controller == "Deployment"


# --- errors: one clear message with source and line -------------------------------------


def test_garbage_yaml() -> None:
    message = _error("kind: Deployment\nmetadata: {name: web\nspec: [\n", source="bad.yaml")
    assert message.startswith("bad.yaml line 3: not valid YAML")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- 1\n- 2\n", "app.yaml line 1: document 1 is not a Kubernetes object"),
        (WEB + "---\njust some text\n", "app.yaml line 13: document 2 is not a Kubernetes object"),
        ("apiVersion: v1\nmetadata: {name: a}\n", "app.yaml line 1: document 1 is not a"),
        ("kind: 5\n", "app.yaml line 1: document 1 is not a Kubernetes object"),
    ],
)
def test_a_document_that_is_not_a_kubernetes_object(text: str, expected: str) -> None:
    assert _error(text).startswith(expected)


def test_no_objects_at_all() -> None:
    assert _error("# nothing\n") == "the manifests hold no Kubernetes objects"


def test_workload_not_found_lists_what_was_found() -> None:
    message = _error(WEB + "---\n" + JOB, "prod/checkout")
    assert message == (
        "no Deployment, StatefulSet, Job, CronJob or InferenceService named 'checkout' in "
        "namespace prod in the manifests (found: Deployment web, Job train); check --workload"
    )


def test_workload_not_found_among_other_kinds() -> None:
    message = _error("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
    assert "(found: none of these kinds)" in message


@pytest.mark.parametrize("workload", ["web", "prod/", "/web"])
def test_workload_must_be_namespace_slash_name(workload: str) -> None:
    assert _error(WEB, workload) == (
        f"workload {workload!r} must be namespace/name, e.g. prod/checkout"
    )


def test_two_objects_of_the_same_name() -> None:
    text = WEB + "---\n" + WEB.replace("kind: Deployment", "kind: StatefulSet")
    assert _error(text) == "2 objects named 'web' in the manifests; give one"


def test_a_deployment_with_no_resources_at_all() -> None:
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: web
          image: web:1
        - name: sidecar
          image: side:1
          resources: {}
"""
    message = _error(text)
    assert message.startswith(
        "app.yaml line 7: Deployment prod/web sets no resources.requests (or limits) in any "
        "container, so the gate cannot price it"
    )
    assert "add resources.requests.cpu and .memory" in message


def test_a_deployment_with_no_containers() -> None:
    text = WEB.replace(
        "      containers:\n        - name: web\n          image: web:1.0\n"
        '          resources: {requests: {cpu: "1", memory: 512Mi}}\n',
        "      containers: []\n",
    )
    assert _error(text) == "app.yaml line 7: Deployment prod/web has no containers"


def test_a_deployment_without_a_template() -> None:
    text = "kind: Deployment\nmetadata: {name: web, namespace: prod}\nspec:\n  replicas: 1\n"
    assert _error(text) == "app.yaml line 3: Deployment has no spec.template mapping"


@pytest.mark.parametrize(
    ("quantity", "line", "expected"),
    [
        ("2 cores", 12, "requests.cpu '2 cores' is not a quantity (like 500m, 2Gi, 1)"),
        ("1.5 GB", 13, "requests.memory '1.5 GB' is not a quantity"),
        ("'-1'", 12, "requests.cpu '-1' must be 0 or more"),
    ],
)
def test_an_unreadable_quantity(quantity: str, line: int, expected: str) -> None:
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  template:
    spec:
      containers:
        - name: web
          image: web:1
          resources:
            requests:
              cpu: CPU
              memory: MEM
"""
    cpu, mem = (quantity, "1Gi") if line == 12 else ("1", quantity)
    message = _error(text.replace("CPU", cpu).replace("MEM", mem))
    assert message.startswith(f"app.yaml line {line}: {expected}")


def test_an_unreadable_limit_is_named_as_a_limit() -> None:
    text = WEB.replace('{requests: {cpu: "1", memory: 512Mi}}', "{limits: {memory: lots}}")
    assert (
        _error(text)
        == "app.yaml line 11: limits.memory 'lots' is not a quantity (like 500m, 2Gi, 1)"
    )


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ("5", "app.yaml line 11: resources must be a mapping"),
        ("{requests: [1, 2]}", "app.yaml line 11: resources.requests must be a mapping"),
    ],
)
def test_resources_of_the_wrong_shape(resources: str, expected: str) -> None:
    text = WEB.replace('{requests: {cpu: "1", memory: 512Mi}}', resources)
    assert _error(text).startswith(expected)


@pytest.mark.parametrize(
    ("predictor", "expected"),
    [
        ("    containers: [x]\n", "a container must be a mapping"),
        ("    containers: {a: 1}\n", "containers must be a list"),
        ("    containers:\n      - name: c\n        resources: 5\n", "resources must be a mapping"),
    ],
)
def test_a_malformed_inference_service_is_a_manifest_error(predictor: str, expected: str) -> None:
    text = "kind: InferenceService\nmetadata: {name: m, namespace: ml}\nspec:\n  predictor:\n"
    message = _error(text + predictor, "ml/m")
    assert message.startswith("app.yaml line ")
    assert expected in message


def test_replicas_must_be_a_whole_number() -> None:
    message = _error(WEB.replace("replicas: 4", 'replicas: "4"'))
    assert message == "app.yaml line 5: replicas must be a whole number ≥ 0, got '4'"
    assert "got -1" in _error(WEB.replace("replicas: 4", "replicas: -1"))
