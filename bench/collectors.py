"""What the GPU scrape and the Kubernetes inventory cost a live `onepane serve`, in CPU.

A separate process plays the cluster, so its CPU is not counted: eight dcgm-exporter
targets of eight GPUs each (64 GPUs x 20 metrics per scrape) and a Kubernetes API with
5,000 pods on 170 nodes, changed 50 times a minute (new pods scheduled and started, old
ones deleted). The benchmark then measures the server process's CPU (user + system from
/proc) over several windows:

* baseline: the server with no collectors (its writer's once-a-second fold, the
  checkpointer), as the reference in the same run;
* GPU scrape: the 64 GPUs scraped every second; the share at the 15 s default is the
  excess over baseline divided by 15;
* inventory: after the initial list (its one-off CPU is printed), 50 pod changes a minute.

Run: .venv/bin/python bench/collectors.py [--windows 5] [--window-s 12]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import live_server, median, remove_store
from onepane import dcgmsim, kubesim
from onepane.testing import LiveServer

TICKS = os.sysconf("SC_CLK_TCK")
GPU_NODES, GPUS_PER_NODE = 8, 8
PODS, NODES = 5_000, 170
CHURN_PER_MIN = 50
_S = 1_000_000_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _pod(sim: kubesim.KubeSim, index: int, now: int, rng: random.Random) -> dict:
    app = f"svc-{index % 400}"
    replicaset = f"{app}-5d8f7c9b4"
    return kubesim.pod(
        f"{replicaset}-{rng.getrandbits(32):08x}",
        f"team-{index % 25}",
        now,
        node_name=f"node-{index % NODES}",
        owner=kubesim.owner_ref("ReplicaSet", replicaset),
        labels={"app": app, "team": f"team-{index % 25}", "pod-template-hash": "5d8f7c9b4"},
        requests={"cpu": "250m", "memory": "512Mi"},
        limits={"memory": "512Mi"},
        started_ns=now,
    )


def _gpu_pages() -> dict[str, object]:
    pages = {}
    for node in range(GPU_NODES):
        gpus = [
            dcgmsim.SimGpu(
                index,
                f"GPU-{node:04x}{index:04x}-0000-0000-0000-000000000000",
                hostname=f"gpu-node-{node}",
                util=37.0 + index,
                fb_used_mib=8000.0,
                power_w=150.0,
                pod=(f"team-{index}", f"svc-{index}-5d8f7c9b4-{node:08x}", "main"),
            )
            for index in range(GPUS_PER_NODE)
        ]
        pages[f"/gpu-node-{node}/metrics"] = lambda gpus=gpus: dcgmsim.render(gpus)
    return pages


def play_cluster(ready: mp.Queue, churn: mp.Event, stop: mp.Event) -> None:
    """The cluster process: dcgm targets, a Kubernetes API, and churn while ``churn`` is set."""
    rng = random.Random(1)
    now = time.time_ns()
    sim = kubesim.KubeSim()
    for node in range(NODES):
        sim.put("nodes", kubesim.node(f"node-{node}", now - 86_400 * _S))
    for app in range(400):
        deployment = kubesim.owner_ref("Deployment", f"svc-{app}")
        for team in range(25):
            if app % 25 == team:
                rs = kubesim.owned(
                    "ReplicaSet", f"svc-{app}-5d8f7c9b4", f"team-{team}", deployment, now
                )
                sim.put("replicasets", rs)
    live = [_pod(sim, i, now - 3600 * _S, rng) for i in range(PODS)]
    for pod in live:
        sim.put("pods", pod)
    kube = sim.serve()
    dcgm = dcgmsim.DcgmServer(("127.0.0.1", 0), _gpu_pages())
    dcgm.serve_in_thread("bench-dcgm")
    ready.put((kube.url, [dcgm.url(path) for path in dcgm.pages]))
    index = PODS
    while not stop.wait(60 / CHURN_PER_MIN):  # one change: a pod added, or one deleted
        if not churn.is_set():
            continue
        if rng.random() < 0.5:
            old = live.pop(rng.randrange(len(live)))
            sim.delete("pods", old["metadata"]["namespace"], old["metadata"]["name"])
        else:
            pod = _pod(sim, index, time.time_ns(), rng)
            index += 1
            live.append(sim.put("pods", pod))


def windows(server: LiveServer, count: int, seconds: float) -> list[float]:
    """CPU share of one core in each of ``count`` windows."""
    shares = []
    for _ in range(count):
        before, started = cpu_seconds(server.proc.pid), time.monotonic()
        time.sleep(seconds)
        shares.append((cpu_seconds(server.proc.pid) - before) / (time.monotonic() - started))
    return shares


def _wait(server: LiveServer, done: callable, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not done(server.get_json("/api/v1/collectors")[1]):
        if time.monotonic() > deadline:
            raise SystemExit("collectors did not get going in time")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window-s", type=float, default=12.0)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    ready, churn, stop = ctx.Queue(), ctx.Event(), ctx.Event()
    cluster = ctx.Process(target=play_cluster, args=(ready, churn, stop), daemon=True)
    cluster.start()
    kube_url, targets = ready.get(timeout=300)
    n, w = args.windows, args.window_s
    print(
        f"cluster: {len(targets)} dcgm targets x {GPUS_PER_NODE} GPUs x 20 metrics; "
        f"{PODS} pods on {NODES} nodes; {n} windows of {w:.0f} s, median share of one core"
    )

    server = live_server(None, "--decoders", "0")
    time.sleep(3)  # past start-up
    base = median(windows(server, n, w))
    server.stop()
    remove_store(server)
    print(f"baseline (no collectors)        {base:7.2%}")

    flags = [arg for url in targets for arg in ("--gpu-target", url)]
    server = live_server(None, "--decoders", "0", *flags, "--scrape-interval", "1s")
    _wait(server, lambda s: all(t["scrapes"] >= 2 for t in s["gpu_targets"]))
    gpu = median(windows(server, n, w))
    rows = server.get_json("/api/v1/gpus?since=1h")[1]["gpus"]
    server.stop()
    remove_store(server)
    excess = max(gpu - base, 0.0)
    print(
        f"GPU scrape every 1 s            {gpu:7.2%}  ({excess:.2%} over baseline, "
        f"{len(rows)} GPUs stored)"
    )
    print(f"GPU scrape every 15 s           {excess / 15:7.3%}  target < 2%")

    server = live_server(None, "--decoders", "0", "--kube-api", kube_url)
    started_cpu = cpu_seconds(server.proc.pid)
    started = time.monotonic()
    _wait(server, lambda s: (s["kubernetes"] or {}).get("pods", {}).get("synced"))
    list_cpu, list_s = cpu_seconds(server.proc.pid) - started_cpu, time.monotonic() - started
    churn.set()
    time.sleep(5)
    inventory = median(windows(server, n, w))
    events = server.get_json("/api/v1/collectors")[1]["kubernetes"]["pods"]["events"]
    server.stop()
    remove_store(server)
    churn.clear()
    print(
        f"inventory initial list          {list_cpu:6.2f} s CPU in {list_s:.1f} s "
        f"({PODS} pods, {NODES} nodes, one-off)"
    )
    print(
        f"inventory, {CHURN_PER_MIN} changes/min       {inventory:7.2%}  "
        f"({max(inventory - base, 0):.2%} over baseline; {events} watch events)  target < 5%"
    )
    stop.set()
    cluster.join(10)


if __name__ == "__main__":
    main()
