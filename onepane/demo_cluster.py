"""The demo company's Kubernetes cluster and GPUs, served the way real ones are.

Five nodes, two of them GPU nodes with one NVIDIA A10G each: ``gpu-node-1`` (on-demand)
runs the recsys model, busy by day and nearly idle at night; ``gpu-node-2`` (spot) runs
the ``recsys-trainer`` CronJob's nightly training job and sits idle by day. The inventory
is served as a Kubernetes API (onepane/kubesim.py) and each GPU node as a dcgm-exporter
page (onepane/dcgmsim.py), so Onepane reads them through its real collectors.

The simulated day is the company's: ``day_seconds`` long, day in its first half (traffic
above its mean), night in the second.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from onepane import dcgmsim, kubesim
from onepane.demo import PIPELINE, SERVICES, DemoCompany, DemoConfig, traffic_rate
from onepane.demo_bill import BilledNode, focus_csv

_S = 1_000_000_000
GPU_NODES = {"gpu-node-1": "on-demand", "gpu-node-2": "spot"}
_KINDS = {"fraud-model": "model", "recsys-model": "model"}
_REQUESTS = {
    "web-frontend": {"cpu": "500m", "memory": "512Mi"},
    "checkout-api": {"cpu": "1", "memory": "1Gi"},
    "recommendations-api": {"cpu": "500m", "memory": "1Gi"},
    "fraud-model": {"cpu": "2", "memory": "4Gi"},
    "recsys-model": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
    PIPELINE.name: {"cpu": "2", "memory": "8Gi"},
}
TRAINER = "recsys-trainer"
_TRAINER_REQUESTS = {"cpu": "6", "memory": "24Gi", "nvidia.com/gpu": "1"}
_ZONE = "eu-west-1a"


@dataclass
class _Run:
    """One run of a CronJob: its Job and pod names and uids."""

    job: str
    pod: str
    job_uid: str
    started_ns: int


def is_night(config: DemoConfig, elapsed_s: float) -> bool:
    """Night is the second half of each simulated day."""
    return (elapsed_s % config.day_seconds) >= config.day_seconds / 2


class DemoCluster:
    """Serves the demo's Kubernetes API and dcgm-exporter pages and moves them with the day."""

    def __init__(self, company: DemoCompany, config: DemoConfig, seed: int | None = None) -> None:
        self._company = company
        self._config = config
        self._rng = random.Random(seed)
        self._started = time.monotonic()
        self.sim = kubesim.KubeSim()
        self._trainer_cronjob = kubesim.owner_ref("CronJob", TRAINER)
        self._etl_cronjob = kubesim.owner_ref("CronJob", PIPELINE.name)
        self._trainer: _Run | None = None
        self._finished_trainers: list[_Run] = []
        self._etl_seen = 0
        self._etl_pods: list[tuple[str, str]] = []
        self.gpus = {
            name: dcgmsim.SimGpu(0, f"GPU-{self._uuid()}", hostname=name) for name in GPU_NODES
        }
        self._add_nodes()
        self._add_services()
        self.kube_server: kubesim.KubeSimServer | None = None
        self.dcgm_server: dcgmsim.DcgmServer | None = None

    def _uuid(self) -> str:
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    # -- the fixed part --------------------------------------------------------------

    def _add_nodes(self) -> None:
        created = time.time_ns() - 30 * 86_400 * _S
        self.billed_nodes: list[BilledNode] = []
        base = {
            "topology.kubernetes.io/region": "eu-west-1",
            "topology.kubernetes.io/zone": _ZONE,
        }
        for name in ("node-1", "node-2", "node-3"):
            labels = {
                **base,
                "node.kubernetes.io/instance-type": "m6i.2xlarge",
                "karpenter.sh/capacity-type": "on-demand",
            }
            self.sim.put("nodes", kubesim.node(name, created, labels=labels))
            self.billed_nodes.append(BilledNode(name, "m6i.2xlarge", "on-demand", created))
        for name, capacity in GPU_NODES.items():
            labels = {
                **base,
                "node.kubernetes.io/instance-type": "g5.2xlarge",
                "karpenter.sh/capacity-type": capacity,
                "nvidia.com/gpu.product": "NVIDIA-A10G",
                "nvidia.com/gpu.count": "1",
                "nvidia.com/gpu.memory": "23028",
            }
            self.sim.put("nodes", kubesim.node(name, created, gpus=1, labels=labels))
            self.billed_nodes.append(BilledNode(name, "g5.2xlarge", capacity, created))

    def _add_services(self) -> None:
        started = time.time_ns() - 30 * 86_400 * _S + 3_600 * _S
        pods = self._company.pods
        for svc in SERVICES:
            pod_name = pods[svc.name]
            replicaset, template_hash = pod_name.rsplit("-", 1)[0], pod_name.split("-")[-2]
            deployment = kubesim.owner_ref("Deployment", svc.name)
            self.sim.put(
                "replicasets",
                kubesim.owned("ReplicaSet", replicaset, svc.namespace, deployment, started),
            )
            labels = self._labels(svc.name, svc.team, _KINDS.get(svc.name, "app"))
            labels["pod-template-hash"] = template_hash
            self.sim.put(
                "pods",
                kubesim.pod(
                    pod_name,
                    svc.namespace,
                    started,
                    node_name=svc.node,
                    owner=kubesim.owner_ref("ReplicaSet", replicaset),
                    labels=labels,
                    requests=_REQUESTS[svc.name],
                    limits={k: v for k, v in _REQUESTS[svc.name].items() if k != "cpu"},
                    started_ns=started + 5 * _S,
                ),
            )
        gpu = self.gpus["gpu-node-1"]
        gpu.pod = ("ml", pods["recsys-model"], "recsys-model")

    @staticmethod
    def _labels(app: str, team: str, kind: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": app, "team": team, "onepane.dev/kind": kind}

    # -- what changes with the day ---------------------------------------------------

    def tick(self, now_ns: int | None = None, elapsed_s: float | None = None) -> None:
        """Move GPUs and jobs to where the simulated clock is now (or ``elapsed_s`` into
        the company's life, at wall time ``now_ns``)."""
        now_ns = now_ns or time.time_ns()
        elapsed = time.monotonic() - self._started if elapsed_s is None else elapsed_s
        busy = traffic_rate(self._config, elapsed) / self._config.rate  # 0.2 .. 1.0
        recsys = self.gpus["gpu-node-1"]
        recsys.util = max(2.0, min(100.0, 8 + 85 * (busy - 0.2) / 0.8 + self._rng.gauss(0, 3)))
        recsys.fb_used_mib, recsys.power_w = 9_800.0, 60 + 2.2 * recsys.util
        night = is_night(self._config, elapsed)
        if night and self._trainer is None:
            self._start_trainer(now_ns)
        elif not night and self._trainer is not None:
            self._finish_trainer(now_ns)
        trainer = self.gpus["gpu-node-2"]
        if self._trainer is not None:
            trainer.util = min(100.0, 93 + self._rng.gauss(0, 2))
            trainer.fb_used_mib, trainer.power_w = 20_500.0, 270 + self._rng.gauss(0, 8)
        else:
            trainer.util, trainer.fb_used_mib, trainer.power_w = 0.0, 0.0, 22.0
        self._sync_etl()

    def _start_trainer(self, now_ns: int) -> None:
        minute = now_ns // (60 * _S)
        job = f"{TRAINER}-{minute}"
        pod = f"{job}-{''.join(self._rng.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
        job_obj = kubesim.owned("Job", job, "ml", self._trainer_cronjob, now_ns)
        self.sim.put("jobs", job_obj)
        run = _Run(job, pod, job_obj["metadata"]["uid"], now_ns)
        self.sim.put("pods", self._trainer_pod(run, "Running"))
        self.gpus["gpu-node-2"].pod = ("ml", pod, "trainer")
        self._trainer = run

    def _trainer_pod(self, run: _Run, phase: str, finished_ns: int | None = None) -> dict:
        return kubesim.pod(
            run.pod,
            "ml",
            run.started_ns,
            node_name="gpu-node-2",
            owner=kubesim.owner_ref("Job", run.job, run.job_uid),
            labels={**self._labels(TRAINER, "ml-platform", "model"), "job-name": run.job},
            requests=_TRAINER_REQUESTS,
            limits={"nvidia.com/gpu": "1", "memory": "24Gi"},
            phase=phase,
            started_ns=run.started_ns + 2 * _S,
            finished_ns=finished_ns,
        )

    def _finish_trainer(self, now_ns: int) -> None:
        run, self._trainer = self._trainer, None
        assert run is not None
        pod = self._trainer_pod(run, "Succeeded", finished_ns=now_ns)
        pod["metadata"]["uid"] = self.sim.get("pods", "ml", run.pod)["metadata"]["uid"]
        self.sim.put("pods", pod)
        self.gpus["gpu-node-2"].pod = None
        self._finished_trainers.append(run)
        while len(self._finished_trainers) > 2:  # successfulJobsHistoryLimit
            old = self._finished_trainers.pop(0)
            self.sim.delete("pods", "ml", old.pod)
            self.sim.delete("jobs", "ml", old.job)

    def _sync_etl(self) -> None:
        runs = list(self._company.pipeline_runs)[self._etl_seen :]
        for job, pod, start, end in runs:
            job_obj = kubesim.owned("Job", job, PIPELINE.namespace, self._etl_cronjob, start)
            self.sim.put("jobs", job_obj)
            self.sim.put(
                "pods",
                kubesim.pod(
                    pod,
                    PIPELINE.namespace,
                    start,
                    node_name=PIPELINE.node,
                    owner=kubesim.owner_ref("Job", job, job_obj["metadata"]["uid"]),
                    labels={
                        **self._labels(PIPELINE.name, PIPELINE.team, "pipeline"),
                        "job-name": job,
                    },
                    requests=_REQUESTS[PIPELINE.name],
                    phase="Succeeded",
                    started_ns=start,
                    finished_ns=end,
                ),
            )
            self._etl_pods.append((job, pod))
        self._etl_seen += len(runs)
        while len(self._etl_pods) > 3:
            job, pod = self._etl_pods.pop(0)
            self.sim.delete("pods", PIPELINE.namespace, pod)
            self.sim.delete("jobs", PIPELINE.namespace, job)

    # -- serving ---------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", kube_port: int = 0, dcgm_port: int = 0) -> None:
        self.kube_server = self.sim.serve(host, kube_port)
        pages = {
            f"/{name}/metrics": (lambda gpu=gpu: dcgmsim.render([gpu]))
            for name, gpu in self.gpus.items()
        }
        self.dcgm_server = dcgmsim.DcgmServer((host, dcgm_port), pages)
        self.dcgm_server.serve_in_thread("onepane-demo-dcgm")

    @property
    def dcgm_targets(self) -> list[str]:
        assert self.dcgm_server is not None
        return [self.dcgm_server.url(f"/{name}/metrics") for name in self.gpus]

    def run(self, stop: threading.Event, every_s: float = 1.0) -> None:
        while not stop.is_set():
            self.tick()
            stop.wait(every_s)

    def bill(self, now_ns: int | None = None) -> bytes:
        """The company's FOCUS bill for its nodes' life so far (onepane/demo_bill.py)."""
        return focus_csv(self.billed_nodes, now_ns or time.time_ns())

    def close(self) -> None:
        self.sim.close()
        if self.dcgm_server is not None:
            self.dcgm_server.shutdown()
            self.dcgm_server.server_close()
