"""The deploy gate: unit-cost policy, release projection from manifests, the `onepane gate`
commands and the Kubernetes admission webhook."""
