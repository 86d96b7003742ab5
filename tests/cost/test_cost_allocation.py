"""The hourly cost rollup (cost/allocation.py, cost/rollup.py) on a real DuckDB store.

Nodes and pods go in as the Kubernetes inventory writes them (objects built like the API's
JSON, turned into rows by the collector's own functions); usage arrives as metric points
and GPU samples, as the OTLP and DCGM collectors store them. Then the rollup runs as the
server's does, and what a user would check is checked: every node-hour's cost is what its
pods were allocated plus the idle rest, no pod is charged beyond what its node cost, and
the /allocation query hands out exactly what the nodes cost.

The property test compares every row with a small model written from the docstrings
(max(request, usage), physical GPU-hours, usage above the node's capacity shared out);
the hand-checked cases after it use prices simple enough to work out on paper.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.k8s.objects import node_row, pod_row
from cost import allocation, pricing, rollup
from cost.allocation import HOUR_NS
from cost.pricing import GIB, NodeInfo
from cost.query import IDLE, AllocationQuery
from cost.query import allocation as allocation_query
from cost.window import CostWindow
from onepane import kubesim
from store import db, inventory

MINUTE = 60_000_000_000
MIB = 1024**2
T0 = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp()) * 1_000_000_000  # hour-aligned
REL = 1e-9
Row = dict[str, Any]


def close(actual: float | None, expected: float | None) -> bool:
    """Equal within 1e-9 relative (and 1e-12 absolute, for figures that should be 0)."""
    if actual is None or expected is None:
        return actual is expected
    return abs(actual - expected) <= max(REL * max(abs(actual), abs(expected)), 1e-12)


# -- the store, filled as the collectors fill it ------------------------------------------


class Store:
    """A DuckDB store with the inventory, usage points and GPU samples a test puts in."""

    def __init__(self, path: Path | str) -> None:
        self.conn = db.connect(path)

    def nodes(self, *nodes: Row, deleted_ns: Mapping[str, int] | None = None) -> None:
        """Nodes as the inventory stores them; ``deleted_ns`` by name: when they went."""
        deleted_ns = deleted_ns or {}
        rows = []
        for node in nodes:
            name = node["metadata"]["name"]
            gone = deleted_ns.get(name)
            rows.append(node_row(node, gone if gone is not None else T0, deleted=gone is not None))
        self._upsert("nodes", rows)

    def pods(self, *pods: tuple[Row, str]) -> None:
        """(pod, Deployment name) pairs, as the inventory stores them."""
        self._upsert("pods", [pod_row(pod, ("Deployment", owner), T0) for pod, owner in pods])

    def _upsert(self, kind: str, rows: list[Row]) -> None:
        with db.transaction(self.conn):
            inventory.upsert(self.conn, kind, inventory.rows_table(kind, rows))

    def usage(
        self,
        namespace: str,
        pod: str,
        metric: str,
        points: list[tuple[int, float]],
        container: str | None = None,
    ) -> None:
        """Gauge points of one series, as the OTLP metrics decoder stores them."""
        attributes = json.dumps({"k8s.container.name": container} if container else {})
        self.conn.executemany(
            "INSERT INTO metric_points (metric_name, metric_type, time, value, service_name, "
            "workload, k8s_namespace, k8s_pod, resource_id, flags, attributes) "
            "VALUES (?, 'gauge', make_timestamp_ns(?), ?, 'kubeletstats', ?, ?, ?, 7, 0, ?)",
            [
                (metric, t, v, f"{namespace}/kubeletstats", namespace, pod, attributes)
                for t, v in points
            ],
        )

    def gpu_samples(self, namespace: str, pod: str, samples: list[tuple[int, float]]) -> None:
        """DCGM samples of the GPU a pod holds: (time, utilisation 0..1)."""
        self.conn.executemany(
            "INSERT INTO gpu_samples (time, source, hostname, gpu, namespace, pod, utilization) "
            "VALUES (make_timestamp_ns(?), 'dcgm', 'gpu-host', 0, ?, ?, ?)",
            [(t, namespace, pod, u) for t, u in samples],
        )

    def prices(self, section: Mapping[str, Any], now_ns: int) -> int:
        with db.transaction(self.conn):
            return pricing.record(self.conn, pricing.price_set(section), now_ns)

    def rollup(self, start_ns: int, end_ns: int, now_ns: int) -> allocation.Rolled:
        """One rollup run over [start, end), in one transaction, as the server's writer does."""
        with db.transaction(self.conn):
            return rollup.step(
                self.conn, start_ns, end_ns, now_ns, rollup.floor_hour(now_ns - HOUR_NS)
            )

    def rows(self, table: str) -> list[Row]:
        cursor = self.conn.execute(f"SELECT *, epoch_ns(hour) AS hour_ns FROM {table}")
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def pod_hours(self) -> dict[tuple[str, int], Row]:
        return {(r["pod"], r["hour_ns"]): r for r in self.rows("cost_pod_hours")}

    def node_hours(self) -> dict[tuple[str, int], Row]:
        return {(r["node"], r["hour_ns"]): r for r in self.rows("cost_node_hours")}

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store in a DuckDB file, as `onepane serve` keeps it."""
    s = Store(tmp_path / "onepane.duckdb")
    yield s
    s.close()


def check_node_hours(s: Store) -> None:
    """For every node and hour: node cost = allocated + idle, in total and per resource;
    idle is never negative; allocated is what the pods on it in that hour were charged."""
    pods_by_node: dict[tuple[str, int], list[Row]] = defaultdict(list)
    for row in s.rows("cost_pod_hours"):
        pods_by_node[(row["node"], row["hour_ns"])].append(row)
    for (node, hour), n in s.node_hours().items():
        where = f"{node} at {datetime.fromtimestamp(hour / 1e9, UTC):%H:%M}"
        assert close(n["node_cost"], n["cpu_cost"] + n["ram_cost"] + n["gpu_cost"]), where
        allocated = n["allocated_cpu_cost"] + n["allocated_ram_cost"] + n["allocated_gpu_cost"]
        assert close(n["node_cost"], allocated + n["idle_cost"]), where
        assert close(
            n["idle_cost"], n["idle_cpu_cost"] + n["idle_ram_cost"] + n["idle_gpu_cost"]
        ), where
        on_node = pods_by_node.get((node, hour), [])
        for resource in ("cpu", "ram", "gpu"):
            whole, given_out = n[f"{resource}_cost"], n[f"allocated_{resource}_cost"]
            idle = n[f"idle_{resource}_cost"]
            assert close(whole, given_out + idle), (where, resource)
            assert idle >= -1e-9 * max(1.0, whole), (where, resource, n)
            charged = sum(p[f"{resource}_cost"] for p in on_node)
            assert close(given_out, charged), (where, resource, given_out, charged)
        assert close(allocated, sum(p["total_cost"] for p in on_node)), where


# -- the property: random clusters against a model of the docstrings -----------------------

START = T0 - 2 * HOUR_NS  # the rollup covers six hours from here
END = T0 + 4 * HOUR_NS
CAPACITY_LABEL = "karpenter.sh/capacity-type"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    cores: int
    mem_mib: int
    gpus: int  # physical
    replicas: int | None  # nvidia.com/gpu.replicas (time-slicing)
    spot: bool
    instance_type: str | None
    created: int
    deleted: int | None

    def labels(self) -> dict[str, str]:
        labels = {CAPACITY_LABEL: "spot" if self.spot else "on-demand"}
        if self.instance_type:
            labels["node.kubernetes.io/instance-type"] = self.instance_type
        if self.gpus:
            labels["nvidia.com/gpu.product"] = "NVIDIA-A10G"
        if self.replicas:
            labels["nvidia.com/gpu.replicas"] = str(self.replicas)
        return labels

    def obj(self) -> Row:
        # the device plugin advertises each physical GPU `replicas` times when time-slicing
        return kubesim.node(
            self.name,
            self.created,
            cpu=str(self.cores),
            memory=f"{self.mem_mib}Mi",
            gpus=self.gpus * (self.replicas or 1),
            labels=self.labels(),
        )

    def info(self) -> NodeInfo:
        return NodeInfo(
            self.name,
            float(self.cores),
            float(self.mem_mib * MIB),
            float(self.gpus),
            self.instance_type,
            None,
            "spot" if self.spot else "on-demand",
            None,
            self.labels(),
        )


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str
    owner: str
    node: NodeSpec
    cpu_m: int | None
    mem_mib: int | None
    gpus: int | None
    start: int
    end: int | None

    def obj(self) -> Row:
        requests = {}
        if self.cpu_m is not None:
            requests["cpu"] = f"{self.cpu_m}m"
        if self.mem_mib is not None:
            requests["memory"] = f"{self.mem_mib}Mi"
        if self.gpus is not None:
            requests["nvidia.com/gpu"] = str(self.gpus)
        return kubesim.pod(
            self.name,
            self.namespace,
            self.start,
            node_name=self.node.name,
            requests=requests,
            phase="Succeeded" if self.end is not None else "Running",
            started_ns=self.start,
            finished_ns=self.end,
        )


@dataclass(frozen=True)
class Point:
    pod: PodSpec
    cpu: bool
    container: str | None  # None: pod-level (k8s.pod.*), else container.* of that container
    time: int
    value: float

    @property
    def metric(self) -> str:
        if self.container is None:
            return "k8s.pod.cpu.usage" if self.cpu else "k8s.pod.memory.working_set"
        return "container.cpu.usage" if self.cpu else "container.memory.working_set"


@dataclass(frozen=True)
class Case:
    now: int
    nodes: tuple[NodeSpec, ...]
    pods: tuple[PodSpec, ...]
    points: tuple[Point, ...]
    gpu_samples: tuple[tuple[PodSpec, int, float], ...]
    prices: Mapping[str, Any]


def _mostly(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``strategy``, or now and then None."""
    return st.one_of(st.none(), strategy, strategy, strategy)


def _price(draw: st.DrawFn, high: float) -> float:
    return draw(st.one_of(st.just(0.0), st.floats(high / 100, high, allow_nan=False)))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    minutes = st.integers
    now_min = 3 * 60 + draw(minutes(1, 60))  # now lies in the last of the six hours
    now = T0 + now_min * MINUTE
    nodes = []
    for i in range(draw(minutes(1, 2))):
        created_min = draw(minutes(-110, now_min - 1))
        deleted_min = draw(st.one_of(st.none(), minutes(created_min + 1, created_min + 300)))
        gpus = draw(st.sampled_from([0, 0, 1, 2]))
        nodes.append(
            NodeSpec(
                name=f"node-{i}",
                cores=draw(st.sampled_from([1, 2, 4, 8])),
                mem_mib=draw(st.sampled_from([1024, 4096, 16384])),
                gpus=gpus,
                replicas=draw(st.sampled_from([None, 2, 4])) if gpus else None,
                spot=draw(st.booleans()),
                instance_type=draw(st.sampled_from([None, "m6i.large", "g5.xlarge"])),
                created=T0 + created_min * MINUTE,
                deleted=(
                    T0 + deleted_min * MINUTE
                    if deleted_min is not None and deleted_min < now_min
                    else None
                ),
            )
        )
    pods = []
    for i in range(draw(st.sampled_from([1, 2, 3, 4, 5, 6, 0]))):
        node = draw(st.sampled_from(nodes))
        first = (node.created - T0) // MINUTE
        last = (node.deleted - T0) // MINUTE if node.deleted else now_min
        start = draw(minutes(first, last - 1))
        end = draw(minutes(start + 1, last))
        if node.deleted is None and draw(st.booleans()):
            end = None  # still running
        slots = node.gpus * (node.replicas or 1)
        pods.append(
            PodSpec(
                name=f"pod-{i}",
                namespace=draw(st.sampled_from(["shop", "ml"])),
                owner=draw(st.sampled_from(["api", "worker"])),
                node=node,
                cpu_m=draw(_mostly(minutes(0, node.cores * 1500))),
                mem_mib=draw(_mostly(minutes(0, node.mem_mib * 3 // 2))),
                gpus=draw(_mostly(minutes(0, 2 * slots))) if slots else None,
                start=T0 + start * MINUTE,
                end=None if end is None else T0 + end * MINUTE,
            )
        )
    points = []
    samples = []
    for pod in pods:
        first = (pod.start - T0) // MINUTE
        last = ((pod.end or now) - T0) // MINUTE
        for _ in range(draw(minutes(0, 4))):
            cpu = draw(st.booleans())
            high = pod.node.cores * 2.0 if cpu else float(pod.node.mem_mib * 2 * MIB)
            points.append(
                Point(
                    pod,
                    cpu,
                    draw(st.sampled_from([None, None, "main", "sidecar"])),
                    T0 + draw(minutes(max(first - 20, -120), min(last + 20, 239))) * MINUTE,
                    draw(st.floats(0.0, high, allow_nan=False)),
                )
            )
        if pod.gpus:
            for _ in range(draw(minutes(0, 3))):
                t = T0 + draw(minutes(first, max(first, last - 1))) * MINUTE
                samples.append((pod, t, draw(st.floats(0.0, 1.0))))
    prices: dict[str, Any] = {
        "defaults": {
            "cpu": _price(draw, 0.1),
            "spot_cpu": _price(draw, 0.05),
            "ram": _price(draw, 0.02),
            "spot_ram": _price(draw, 0.01),
            "gpu": _price(draw, 4.0),
            "spot_gpu": _price(draw, 2.0),
        }
    }
    if draw(st.booleans()):
        key = draw(st.sampled_from(["hourly", "on_demand", "spot"]))
        itype = draw(st.sampled_from(["m6i.large", "g5.xlarge"]))
        prices["nodes"] = [{"instance_type": itype, key: _price(draw, 3.0)}]
    if draw(st.booleans()):
        prices["gpus"] = [{"product": "NVIDIA-A10G", "hourly": _price(draw, 3.0)}]
    return Case(now, tuple(nodes), tuple(pods), tuple(points), tuple(samples), prices)


def load(s: Store, case: Case) -> None:
    s.nodes(
        *(n.obj() for n in case.nodes),
        deleted_ns={n.name: n.deleted for n in case.nodes if n.deleted is not None},
    )
    s.pods(*((p.obj(), p.owner) for p in case.pods))
    for p in case.points:
        s.usage(p.pod.namespace, p.pod.name, p.metric, [(p.time, p.value)], p.container)
    for pod, t, u in case.gpu_samples:
        s.gpu_samples(pod.namespace, pod.name, [(t, u)])
    s.prices(case.prices, case.now)


def overlap(start: int, end: int, hour: int) -> float:
    return max(0, min(end, hour + HOUR_NS) - max(start, hour)) / HOUR_NS


def usage(case: Case, pod: PodSpec, hour: int, cpu: bool) -> float | None:
    """The hour's usage: the average of the pod-level series, else the sum over containers
    of each container's average."""
    series: dict[str | None, list[float]] = defaultdict(list)
    for p in case.points:
        if p.pod is pod and p.cpu == cpu and hour <= p.time < hour + HOUR_NS:
            series[p.container].append(p.value)
    if None in series:
        return sum(series[None]) / len(series[None])
    if series:
        return sum(sum(v) / len(v) for v in series.values())
    return None


def model(case: Case) -> tuple[dict[tuple[str, int], Row], dict[tuple[str, int], Row]]:
    """What the docstrings say every node-hour and pod-hour should be."""
    prices = pricing.price_set(case.prices)
    rates = {n.name: pricing.rates(prices, n.info()) for n in case.nodes}
    hours = range(START, END, HOUR_NS)
    nodes: dict[tuple[str, int], Row] = {}
    for n in case.nodes:
        r = rates[n.name]
        for hour in hours:
            frac = overlap(n.created, n.deleted or case.now, hour)
            if frac > 0:
                nodes[(n.name, hour)] = {
                    "hours": frac,
                    "cpu": frac * r.cpu_hourly * n.cores,
                    "ram": frac * r.ram_hourly * n.mem_mib * MIB / GIB,
                    "gpu": frac * r.gpu_hourly * n.gpus,
                }
    pods: dict[tuple[str, int], Row] = {}
    for p in case.pods:
        r = rates[p.node.name]
        for hour in hours:
            frac = overlap(p.start, p.end or case.now, hour)
            if frac <= 0:
                continue
            cpu_use, ram_use = usage(case, p, hour, True), usage(case, p, hour, False)
            util = [u for q, t, u in case.gpu_samples if q is p and hour <= t < hour + HOUR_NS]
            cpu_hours = max((p.cpu_m or 0) / 1000, cpu_use or 0.0) * frac
            ram_bytes = max((p.mem_mib or 0) * MIB, ram_use or 0.0) * frac
            gpu_hours = (p.gpus or 0) / (p.node.replicas or 1) * frac
            pods[(p.name, hour)] = {
                "node": p.node.name,
                "hours": frac,
                "cpu_usage": cpu_use,
                "ram_usage": ram_use,
                "cpu_core_hours": cpu_hours,
                "ram_byte_hours": ram_bytes,
                "gpu_hours": gpu_hours,
                "gpu_utilization": sum(util) / len(util) if util else None,
                "cpu": cpu_hours * r.cpu_hourly,
                "ram": ram_bytes / GIB * r.ram_hourly,
                "gpu": gpu_hours * r.gpu_hourly,
                "gpu_raw": gpu_hours * r.gpu_hourly,
            }
    # pods asking for (or using) more than the node has share the node's cost pro rata
    for (node, hour), n in nodes.items():
        on_node = [row for (_, h), row in pods.items() if h == hour and row["node"] == node]
        for resource in ("cpu", "ram", "gpu"):
            raw = sum(row[resource] for row in on_node)
            if raw > n[resource]:
                for row in on_node:
                    row[resource] *= n[resource] / raw
    for row in pods.values():  # nothing idle where no GPU was paid for; unknown unmeasured
        u = row["gpu_utilization"]
        row["gpu_idle"] = (
            0.0 if row["gpu_raw"] == 0 else None if u is None else row["gpu"] * (1 - u)
        )
    return nodes, pods


def check_against_model(s: Store, case: Case) -> None:
    want_nodes, want_pods = model(case)
    got_nodes, got_pods = s.node_hours(), s.pod_hours()
    assert sorted(got_nodes) == sorted(want_nodes)
    assert sorted(got_pods) == sorted(want_pods)
    for key, want in want_nodes.items():
        got = got_nodes[key]
        assert close(got["hours"], want["hours"]), (key, got, want)
        for resource in ("cpu", "ram", "gpu"):
            assert close(got[f"{resource}_cost"], want[resource]), (key, resource, got, want)
    for key, want in want_pods.items():
        got = got_pods[key]
        for column in ("hours", "cpu_usage", "ram_usage", "cpu_core_hours", "ram_byte_hours",
                       "gpu_hours", "gpu_utilization"):  # fmt: skip
            assert close(got[column], want[column]), (key, column, got, want)
        for resource in ("cpu", "ram", "gpu"):
            assert close(got[f"{resource}_cost"], want[resource]), (key, resource, got, want)
        assert close(got["gpu_idle_cost"], want["gpu_idle"]), (key, got, want)
        assert close(got["total_cost"], want["cpu"] + want["ram"] + want["gpu"]), key
        assert got["price_version"] == 1 and got["price_source"], got


def check_allocation_totals(s: Store) -> None:
    """/allocation hands out exactly what the nodes cost, step by step: with idle shared
    out (even or weighted), and with idle as its own __idle__ entry."""
    node_rows = s.rows("cost_node_hours")
    pod_rows = s.rows("cost_pod_hours")
    for step in (HOUR_NS, 2 * HOUR_NS, END - START):
        window = CostWindow(START, END, step)
        steps = window.steps
        node_cost = [
            sum(r["node_cost"] for r in node_rows if a <= r["hour_ns"] < b) for a, b in steps
        ]
        idle_cost = [
            sum(r["idle_cost"] for r in node_rows if a <= r["hour_ns"] < b) for a, b in steps
        ]
        pod_cost = [
            sum(r["total_cost"] for r in pod_rows if a <= r["hour_ns"] < b) for a, b in steps
        ]
        pods_in = [any(a <= r["hour_ns"] < b for r in pod_rows) for a, b in steps]
        nodes_in = [any(a <= r["hour_ns"] < b for r in node_rows) for a, b in steps]
        for share in ("even", "weighted"):
            query = AllocationQuery(window=window, aggregate=("workload",), share_idle=share)
            data = allocation_query(s.conn, query)["data"]
            assert len(data) == len(steps)
            for i, allocations in enumerate(data):
                total = sum(a["totalCost"] for a in allocations.values())
                assert close(total, node_cost[i]), (share, steps[i], total, node_cost[i])
                # shared out over the step's workloads; shown alone only where none ran
                assert (IDLE in allocations) == (nodes_in[i] and not pods_in[i]), i
        query = AllocationQuery(window=window, aggregate=("workload",), idle=True)
        for i, allocations in enumerate(allocation_query(s.conn, query)["data"]):
            idle = allocations.pop(IDLE, None)
            assert close(idle["totalCost"] if idle else 0.0, idle_cost[i]), steps[i]
            allocated = sum(a["totalCost"] for a in allocations.values())
            assert close(allocated, pod_cost[i]), steps[i]
            assert close(allocated + (idle["totalCost"] if idle else 0.0), node_cost[i])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_every_node_hour_is_allocated_plus_idle(case: Case) -> None:
    s = Store(":memory:")
    try:
        load(s, case)
        rolled = s.rollup(START, END, case.now)
        want_nodes, want_pods = model(case)
        assert (rolled.pod_hours, rolled.node_hours) == (len(want_pods), len(want_nodes))
        check_node_hours(s)
        check_against_model(s, case)
        check_allocation_totals(s)
        # rolling the same hours up again replaces them: the same rows, nothing twice
        before_pods, before_nodes = s.pod_hours(), s.node_hours()
        again = s.rollup(START, END, case.now)
        assert (again.pod_hours, again.node_hours) == (rolled.pod_hours, rolled.node_hours)
        for before, after in ((before_pods, s.pod_hours()), (before_nodes, s.node_hours())):
            assert sorted(after) == sorted(before)
            for key, row in after.items():
                assert all(
                    close(v, before[key][k]) if isinstance(v, float) else v == before[key][k]
                    for k, v in row.items()
                ), key
    finally:
        s.close()


# -- cases checked by hand -----------------------------------------------------------------
# Prices: 0.04 per core-hour, 0.005 per GiB-hour, 2.0 per GPU-hour, on-demand.

PRICES = {"defaults": {"cpu": 0.04, "ram": 0.005, "gpu": 2.0}}
H1 = T0 + HOUR_NS  # the hour the cases look at: [H1, H1 + 1 h)
NOW = T0 + 2 * HOUR_NS + 30 * MINUTE
MIN = MINUTE


def cpu_node(name: str, cpu: str = "4", memory: str = "16Gi", **labels: str) -> Row:
    return kubesim.node(name, T0 - HOUR_NS, cpu=cpu, memory=memory, labels=labels)


def running(name: str, node: str, namespace: str = "shop", **requests: str) -> Row:
    """A pod that has run since before T0, with requests (cpu=, memory=, gpu=)."""
    if "gpu" in requests:
        requests["nvidia.com/gpu"] = requests.pop("gpu")
    return kubesim.pod(
        name, namespace, T0 - HOUR_NS, node_name=node, requests=requests, started_ns=T0 - HOUR_NS
    )


def roll(s: Store, prices: Mapping[str, Any] = PRICES) -> None:
    s.prices(prices, T0 - 10 * HOUR_NS)
    s.rollup(T0, T0 + 3 * HOUR_NS, NOW)
    check_node_hours(s)


def test_cpu_and_memory_are_charged_on_the_larger_of_request_and_usage(store: Store) -> None:
    store.nodes(cpu_node("n1"))
    store.pods(
        (running("busy-1", "n1", cpu="1", memory="2Gi"), "busy"),
        (running("sidecars-1", "n1", cpu="500m", memory="1Gi"), "sidecars"),
        (running("quiet-1", "n1", cpu="1", memory="4Gi"), "quiet"),
    )
    # busy-1 averages 1.5 cores (above its 1) and 1 GiB (below its 2 GiB) in the hour; its
    # container-level series are ignored because it sends the pod-level ones
    store.usage("shop", "busy-1", "k8s.pod.cpu.usage", [(H1 + 5 * MIN, 1.0), (H1 + 35 * MIN, 2.0)])
    store.usage("shop", "busy-1", "k8s.pod.memory.working_set", [(H1 + 5 * MIN, float(GIB))])
    store.usage("shop", "busy-1", "container.cpu.usage", [(H1 + 5 * MIN, 3.0)], "main")
    # sidecars-1 sends container series only: main 0.5 and sidecar 0.25 cores on average,
    # 3 GiB and 1 GiB: 0.75 cores (above 0.5) and 4 GiB (above 1 GiB)
    for container, cores, gib in (("main", (0.4, 0.6), 3), ("sidecar", (0.25, 0.25), 1)):
        store.usage(
            "shop",
            "sidecars-1",
            "container.cpu.usage",
            [(H1 + 10 * MIN, cores[0]), (H1 + 40 * MIN, cores[1])],
            container,
        )
        store.usage(
            "shop",
            "sidecars-1",
            "container.memory.working_set",
            [(H1 + 10 * MIN, float(gib * GIB))],
            container,
        )
    # quiet-1 uses less than it asked for: it pays for its requests
    store.usage("shop", "quiet-1", "k8s.pod.cpu.usage", [(H1 + 1 * MIN, 0.1)])
    roll(store)
    pods = store.pod_hours()

    busy = pods[("busy-1", H1)]
    assert (busy["cpu_usage"], busy["ram_usage"]) == (1.5, float(GIB))
    assert (busy["cpu_core_hours"], busy["ram_byte_hours"]) == (1.5, 2.0 * GIB)
    assert busy["cpu_cost"] == pytest.approx(1.5 * 0.04, rel=REL)
    assert busy["ram_cost"] == pytest.approx(2 * 0.005, rel=REL)

    sidecars = pods[("sidecars-1", H1)]
    assert sidecars["cpu_usage"] == pytest.approx(0.75, rel=REL)
    assert sidecars["ram_usage"] == 4.0 * GIB
    assert sidecars["cpu_cost"] == pytest.approx(0.75 * 0.04, rel=REL)
    assert sidecars["ram_cost"] == pytest.approx(4 * 0.005, rel=REL)

    quiet = pods[("quiet-1", H1)]
    assert (quiet["cpu_usage"], quiet["ram_usage"]) == (0.1, None)
    assert quiet["total_cost"] == pytest.approx(1 * 0.04 + 4 * 0.005, rel=REL)

    # the hour before: no usage points, so everyone pays for requests
    assert pods[("busy-1", T0)]["cpu_usage"] is None
    assert pods[("busy-1", T0)]["total_cost"] == pytest.approx(0.04 + 2 * 0.005, rel=REL)

    node = store.node_hours()[("n1", H1)]
    assert node["node_cost"] == pytest.approx(4 * 0.04 + 16 * 0.005, rel=REL)  # 0.24
    assert node["idle_cpu_cost"] == pytest.approx(0.16 - (1.5 + 0.75 + 1) * 0.04, abs=1e-12)
    assert node["idle_ram_cost"] == pytest.approx(0.08 - (2 + 4 + 4) * 0.005, abs=1e-12)


def test_gpus_are_charged_on_physical_gpu_hours_and_idle_on_measured_utilisation(
    store: Store,
) -> None:
    # one physical A10G shared four ways: the device plugin advertises 4 nvidia.com/gpu
    store.nodes(
        kubesim.node(
            "g1",
            T0 - HOUR_NS,
            cpu="8",
            memory="32Gi",
            gpus=4,
            labels={"nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.product": "NVIDIA-A10G"},
        )
    )
    store.pods(
        (running("ranker-1", "g1", "ml", cpu="1", memory="4Gi", gpu="1"), "ranker"),
        (running("embed-1", "g1", "ml", cpu="1", memory="4Gi", gpu="1"), "embed"),
        (running("web-1", "g1", "ml", cpu="1", memory="1Gi"), "web"),
    )
    store.gpu_samples("ml", "ranker-1", [(H1 + 1 * MIN, 0.2), (H1 + 31 * MIN, 0.4)])
    roll(store, {**PRICES, "gpus": [{"product": "NVIDIA-A10G", "hourly": 1.6}]})
    pods = store.pod_hours()

    ranker = pods[("ranker-1", H1)]
    assert ranker["gpu_hours"] == 0.25  # a quarter of the physical GPU
    assert ranker["gpu_cost"] == pytest.approx(0.25 * 1.6, rel=REL)
    assert ranker["gpu_utilization"] == pytest.approx(0.3, rel=REL)
    assert ranker["gpu_idle_cost"] == pytest.approx(0.25 * 1.6 * 0.7, rel=REL)
    assert "GPU: onepane.yaml pricing.gpus[0]" in ranker["price_source"]

    embed = pods[("embed-1", H1)]  # no samples: its idle share is unknown, not zero
    assert embed["gpu_cost"] == pytest.approx(0.4, rel=REL)
    assert embed["gpu_utilization"] is None and embed["gpu_idle_cost"] is None
    assert pods[("ranker-1", T0)]["gpu_idle_cost"] is None  # no samples in that hour

    web = pods[("web-1", H1)]  # no GPU asked for: no GPU cost, nothing idle
    assert (web["gpu_hours"], web["gpu_cost"], web["gpu_idle_cost"]) == (0.0, 0.0, 0.0)

    node = store.node_hours()[("g1", H1)]
    assert node["gpus"] == 1.0
    assert node["gpu_cost"] == pytest.approx(1.6, rel=REL)
    assert node["idle_gpu_cost"] == pytest.approx(1.6 - 2 * 0.4, rel=REL)

    window = CostWindow(H1, H1 + HOUR_NS, HOUR_NS)
    [step] = allocation_query(store.conn, AllocationQuery(window=window))["data"]
    assert step["ml/ranker"]["gpuIdleCost"] == pytest.approx(0.28, rel=REL)
    assert step["ml/ranker"]["gpuUtilization"] == pytest.approx(0.3, rel=REL)
    assert step["ml/embed"]["gpuUtilization"] is None
    assert step["ml/embed"]["gpuIdleCost"] is None  # unknown, not "not idle"
    assert step["ml/web"]["gpuIdleCost"] == 0.0


def test_a_pod_running_half_an_hour_pays_half(store: Store) -> None:
    # n2 is priced whole, 0.30/h, split by the default weights: CPU 0.16 : RAM 0.08, so
    # 0.20/h for 4 cores (0.05 a core) and 0.10/h for 16 GiB (0.00625 a GiB)
    store.nodes(cpu_node("n2", **{"node.kubernetes.io/instance-type": "m6i.xlarge"}))
    started, finished = H1 + 15 * MIN, H1 + 45 * MIN
    job = kubesim.pod(
        "report-1",
        "data",
        started,
        node_name="n2",
        requests={"cpu": "2", "memory": "2Gi"},
        phase="Succeeded",
        started_ns=started,
        finished_ns=finished,
    )
    store.pods((job, "report"))
    roll(store, {**PRICES, "nodes": [{"instance_type": "m6i.xlarge", "hourly": 0.30}]})
    pods = store.pod_hours()

    assert [hour for pod, hour in pods] == [H1]  # only the hour it ran in
    row = pods[("report-1", H1)]
    assert row["hours"] == 0.5
    assert row["cpu_core_hours"] == 1.0
    assert row["cpu_cost"] == pytest.approx(2 * 0.05 * 0.5, rel=REL)
    assert row["ram_cost"] == pytest.approx(2 * 0.00625 * 0.5, rel=REL)
    assert row["price_source"] == "onepane.yaml pricing.nodes[0]"
    node = store.node_hours()[("n2", H1)]
    assert node["node_cost"] == pytest.approx(0.30, rel=REL)
    assert node["idle_cost"] == pytest.approx(0.30 - 0.05 - 0.00625, rel=REL)


def test_pods_using_more_than_the_node_has_share_its_cost_and_leave_no_idle(
    store: Store,
) -> None:
    # o1: 2 cores and 4 GiB, 0.08 + 0.02 = 0.10 an hour
    store.nodes(cpu_node("o1", cpu="2", memory="4Gi"))
    store.pods(
        (running("hog-1", "o1", cpu="1", memory="1Gi"), "hog"),
        (running("hog-2", "o1", cpu="1", memory="1Gi"), "hog"),
    )
    # usage adds up to 3 cores and 6 GiB on a node of 2 and 4
    for pod, cores, gib in (("hog-1", 2.0, 3), ("hog-2", 1.0, 3)):
        store.usage("shop", pod, "k8s.pod.cpu.usage", [(H1 + 30 * MIN, cores)])
        store.usage("shop", pod, "k8s.pod.memory.working_set", [(H1 + 30 * MIN, gib * GIB)])
    roll(store)
    pods = store.pod_hours()

    one, two = pods[("hog-1", H1)], pods[("hog-2", H1)]
    assert one["cpu_cost"] == pytest.approx(0.08 * 2 / 3, rel=REL)
    assert two["cpu_cost"] == pytest.approx(0.08 * 1 / 3, rel=REL)
    assert one["ram_cost"] == pytest.approx(0.01, rel=REL)
    assert two["ram_cost"] == pytest.approx(0.01, rel=REL)
    node = store.node_hours()[("o1", H1)]
    assert node["node_cost"] == pytest.approx(0.10, rel=REL)
    assert one["total_cost"] + two["total_cost"] == pytest.approx(0.10, rel=REL)
    assert node["idle_cost"] == pytest.approx(0.0, abs=1e-12)
    # the hour before, without usage, they pay their requests and leave the rest idle
    before = store.node_hours()[("o1", T0)]
    assert before["idle_cost"] == pytest.approx(0.10 - 2 * (0.04 + 0.005), rel=REL)


def test_a_pod_on_a_node_the_inventory_never_listed_is_priced_at_defaults(
    store: Store,
) -> None:
    store.nodes(cpu_node("n1"))
    store.pods((running("stray-1", "ghost-node", cpu="1", memory="1Gi"), "stray"))
    roll(store)
    row = store.pod_hours()[("stray-1", H1)]
    assert row["node"] == "ghost-node"
    assert row["total_cost"] == pytest.approx(0.04 + 0.005, rel=REL)
    assert "node not in the inventory" in row["price_source"]
    assert "onepane.yaml pricing.defaults" in row["price_source"]
    assert {node for node, _ in store.node_hours()} == {"n1"}


def test_every_cost_row_names_the_price_version_and_source_of_its_hour(store: Store) -> None:
    store.nodes(cpu_node("n1"), cpu_node("n3", **{"node.kubernetes.io/instance-type": "c7i"}))
    store.pods(
        (running("api-1", "n1", cpu="1", memory="1Gi"), "api"),
        (running("api-2", "n3", cpu="1", memory="1Gi"), "api"),
    )
    first = store.prices(PRICES, T0 - 10 * HOUR_NS)
    # from H1 on, CPU costs twice as much and c7i nodes have a whole-node price
    later = {
        "defaults": {"cpu": 0.08, "ram": 0.005, "gpu": 2.0},
        "nodes": [{"instance_type": "c7i", "hourly": 0.5}],
        "effective_from": datetime.fromtimestamp(H1 / 1e9, UTC).isoformat(),
    }
    second = store.prices(later, T0)
    assert (first, second) == (1, 2)
    store.rollup(T0, T0 + 3 * HOUR_NS, NOW)
    check_node_hours(store)

    rows = store.rows("cost_pod_hours") + store.rows("cost_node_hours")
    assert rows and all(r["price_version"] and r["price_source"] for r in rows)
    pods, nodes = store.pod_hours(), store.node_hours()
    assert (pods[("api-1", T0)]["price_version"], pods[("api-1", H1)]["price_version"]) == (1, 2)
    assert pods[("api-1", T0)]["cpu_cost"] == pytest.approx(0.04, rel=REL)
    assert pods[("api-1", H1)]["cpu_cost"] == pytest.approx(0.08, rel=REL)
    assert pods[("api-1", H1)]["price_source"] == "onepane.yaml pricing.defaults (on-demand)"
    assert pods[("api-2", T0)]["price_source"] == "onepane.yaml pricing.defaults (on-demand)"
    assert pods[("api-2", H1)]["price_source"] == "onepane.yaml pricing.nodes[0]"
    assert nodes[("n3", T0)]["node_cost"] == pytest.approx(0.24, rel=REL)
    assert nodes[("n3", H1)]["node_cost"] == pytest.approx(0.5, rel=REL)
    assert nodes[("n3", H1)]["price_version"] == 2

    # the allocation lists the versions and sources that priced it
    window = CostWindow(T0, T0 + 2 * HOUR_NS, 2 * HOUR_NS)
    [step] = allocation_query(store.conn, AllocationQuery(window=window))["data"]
    assert step["shop/api"]["priceVersions"] == [1, 2]
    assert step["shop/api"]["priceSources"] == [
        "onepane.yaml pricing.defaults (on-demand)",
        "onepane.yaml pricing.nodes[0]",
    ]


def test_the_store_file_keeps_final_hours_when_prices_change(tmp_path: Path) -> None:
    """Hours already final keep the prices they were computed with, across a reopen."""
    path = tmp_path / "onepane.duckdb"
    s = Store(path)
    s.nodes(cpu_node("n1"))
    s.pods((running("api-1", "n1", cpu="1", memory="1Gi"), "api"))
    s.prices(PRICES, T0 - 10 * HOUR_NS)
    s.rollup(T0, T0 + 3 * HOUR_NS, NOW)  # final through T0 + 1 h
    s.close()

    s = Store(path)
    try:
        # new prices meant to apply from T0: T0 is final already, so they start at H1
        later = {
            "defaults": {"cpu": 1.0, "ram": 0.005, "gpu": 2.0},
            "effective_from": datetime.fromtimestamp(T0 / 1e9, UTC).isoformat(),
        }
        assert s.prices(later, NOW) == 2
        span = rollup.pending(s.conn, NOW, rollup.RollupConfig())
        assert span == (H1, T0 + 3 * HOUR_NS)
        s.rollup(*span, NOW)
        pods = s.pod_hours()
        assert pods[("api-1", T0)]["cpu_cost"] == pytest.approx(0.04, rel=REL)
        assert pods[("api-1", T0)]["price_version"] == 1
        assert pods[("api-1", H1)]["price_version"] == 2
        assert pods[("api-1", H1)]["cpu_cost"] == pytest.approx(1.0, rel=REL)
        check_node_hours(s)
    finally:
        s.close()
