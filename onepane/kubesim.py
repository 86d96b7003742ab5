"""A small in-memory Kubernetes API for the demo company, the tests and the benchmarks.

It speaks the real wire format the kubernetes client reads: ``NodeList`` / ``PodList``
JSON with a ``resourceVersion``, watch streams of newline-delimited ``ADDED`` /
``MODIFIED`` / ``DELETED`` / ``BOOKMARK`` events over chunked HTTP, ``ERROR`` events with
a 410 ``Status`` for a resource version that has been compacted away, and single-object
GETs of ReplicaSets and Jobs (for owner lookups). ``compact`` and ``drop_watches`` let a
test expire history and cut every open watch, as a real API server does on restart.

``node`` and ``pod`` build objects shaped like ``kubectl get -o json`` output.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid as uuidlib
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from onepane import httpbase

Obj = dict[str, Any]

# kind -> (list path, list kind, apiVersion)
RESOURCES = {
    "nodes": ("/api/v1/nodes", "NodeList", "v1"),
    "pods": ("/api/v1/pods", "PodList", "v1"),
    "replicasets": ("/apis/apps/v1/replicasets", "ReplicaSetList", "apps/v1"),
    "jobs": ("/apis/batch/v1/jobs", "JobList", "batch/v1"),
}
_LIST_PATHS = {path: kind for kind, (path, _, _) in RESOURCES.items()}
_GET_PATH = re.compile(
    r"^/apis/(?:apps|batch)/v1/namespaces/(?P<ns>[^/]+)/(?P<kind>replicasets|jobs)/(?P<name>[^/]+)$"
)
_GROUPS = {"nodes": "", "pods": "", "replicasets": "apps", "jobs": "batch"}
_OBJECT_KIND = {"nodes": "Node", "pods": "Pod", "replicasets": "ReplicaSet", "jobs": "Job"}


def rfc3339(ns: int) -> str:
    """Kubernetes' timestamp format (seconds, UTC)."""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


class KubeSim:
    """Objects by kind, a global resource version, and the event history watches replay."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._rv = 1000
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {k: {} for k in RESOURCES}
        self._events: list[tuple[int, str, str, Obj]] = []  # (rv, kind, type, object)
        self._oldest_rv = self._rv  # watches from before this get 410 Gone
        self._generation = 0  # bumped by drop_watches
        self.watch_requests = 0
        self.list_requests: dict[str, int] = {k: 0 for k in RESOURCES}
        self.get_requests = 0
        # (API group, resource, verb) of every request, to check RBAC rules against
        self.access: set[tuple[str, str, str]] = set()
        self.server: KubeSimServer | None = None

    # -- changing the cluster ----------------------------------------------------------

    def put(self, kind: str, obj: Obj) -> Obj:
        """Create or replace an object; watchers see ADDED or MODIFIED."""
        with self._lock:
            obj = copy.deepcopy(obj)
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            key = _key(obj)
            event = "MODIFIED" if key in self._objects[kind] else "ADDED"
            self._objects[kind][key] = obj
            self._events.append((self._rv, kind, event, obj))
            self._lock.notify_all()
            return obj

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Remove an object; watchers see DELETED with its last state."""
        with self._lock:
            obj = self._objects[kind].pop((namespace, name))
            obj = copy.deepcopy(obj)
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self._events.append((self._rv, kind, "DELETED", obj))
            self._lock.notify_all()

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects[kind].get((namespace, name))

    def objects(self, kind: str) -> list[Obj]:
        with self._lock:
            return list(self._objects[kind].values())

    def compact(self) -> None:
        """Forget the event history: a watch from an older resource version gets 410."""
        with self._lock:
            self._events.clear()
            self._oldest_rv = self._rv
            self._lock.notify_all()

    def drop_watches(self) -> None:
        """Cut every open watch connection mid-stream, without a clean end."""
        with self._lock:
            self._generation += 1
            self._lock.notify_all()

    @property
    def resource_version(self) -> int:
        return self._rv

    # -- serving -----------------------------------------------------------------------

    def list_document(self, kind: str) -> Obj:
        _, list_kind, api_version = RESOURCES[kind]
        with self._lock:
            self.list_requests[kind] += 1
            return {
                "kind": list_kind,
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self._rv)},
                "items": list(self._objects[kind].values()),
            }

    def events_after(
        self, kind: str, rv: int, generation: int, wait_s: float
    ) -> tuple[list[tuple[int, str, Obj]], str]:
        """Events of ``kind`` newer than ``rv``, waiting up to ``wait_s`` for one.

        The state is ``ok``, ``gone`` (rv compacted away) or ``dropped``."""
        with self._lock:
            if rv < self._oldest_rv:
                return [], "gone"
            deadline = time.monotonic() + wait_s
            while True:
                if generation != self._generation:
                    return [], "dropped"
                found = [(r, t, o) for r, k, t, o in self._events if r > rv and k == kind]
                left = deadline - time.monotonic()
                if found or left <= 0:
                    return found, "ok"
                self._lock.wait(left)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> KubeSimServer:
        self.server = KubeSimServer((host, port), self)
        self.server.serve_in_thread("onepane-kubesim")
        return self.server

    def close(self) -> None:
        if self.server is not None:
            self.drop_watches()
            self.server.shutdown()
            self.server.server_close()


class _Handler(httpbase.Handler):
    server: KubeSimServer

    def do_GET(self) -> None:
        sim = self.server.sim
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        kind = _LIST_PATHS.get(parts.path)
        match = _GET_PATH.match(parts.path)
        resource = kind or (match["kind"] if match else None)
        if resource is not None:
            verb = "get" if match else "watch" if query.get("watch") in ("true", "1") else "list"
            sim.access.add((_GROUPS[resource], resource, verb))
        if kind is not None and query.get("watch") in ("true", "1"):
            self._watch(sim, kind, query)
        elif kind is not None:
            self._send(200, sim.list_document(kind))
        elif match:
            sim.get_requests += 1
            obj = sim.get(match["kind"], match["ns"], match["name"])
            if obj is None:
                self._send(
                    404, _status(404, "NotFound", f'{match["kind"]} "{match["name"]}" not found')
                )
            else:
                self._send(200, obj)
        else:
            self._send(404, _status(404, "NotFound", f"the server could not find {parts.path}"))

    def _send(self, code: int, document: Obj) -> None:
        self.send_body(code, orjson.dumps(document), "application/json")

    def _watch(self, sim: KubeSim, kind: str, query: Mapping[str, str]) -> None:
        sim.watch_requests += 1
        rv = int(query.get("resourceVersion") or sim.resource_version)
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        generation = sim._generation
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            events, state = sim.events_after(kind, rv, generation, min(left, 1.0))
            if state == "dropped":
                self.close_connection = True
                self.connection.shutdown(2)  # mid-stream, no final chunk
                return
            if state == "gone":
                self._chunk(
                    {
                        "type": "ERROR",
                        "object": _status(
                            410, "Expired", f"too old resource version: {rv} ({sim._oldest_rv})"
                        ),
                    }
                )
                break
            for event_rv, event_type, obj in events:
                self._chunk({"type": event_type, "object": obj})
                rv = event_rv
        else:
            if bookmarks:
                meta = {"resourceVersion": str(max(rv, sim.resource_version))}
                self._chunk(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": _OBJECT_KIND[kind],
                            "apiVersion": RESOURCES[kind][2],
                            "metadata": meta,
                        },
                    }
                )
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _chunk(self, event: Obj) -> None:
        line = orjson.dumps(event) + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()


def _status(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class KubeSimServer(httpbase.Server):
    def __init__(self, address: tuple[str, int], sim: KubeSim) -> None:
        super().__init__(address, _Handler)
        self.sim = sim

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


# -- objects shaped like the API's -------------------------------------------------------


def _meta(name: str, created_ns: int, namespace: str | None = None, **extra: Any) -> Obj:
    meta: Obj = {
        "name": name,
        "uid": str(uuidlib.uuid4()),
        "creationTimestamp": rfc3339(created_ns),
        **{k: v for k, v in extra.items() if v is not None},
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def node(
    name: str,
    created_ns: int,
    *,
    cpu: str = "8",
    memory: str = "32Gi",
    gpus: int = 0,
    labels: Mapping[str, str] | None = None,
) -> Obj:
    """A Ready node; GPU nodes advertise ``nvidia.com/gpu`` as the device plugin does."""
    capacity = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    allocatable = dict(capacity, cpu=f"{int(float(cpu) * 1000) - 100}m")
    return {
        "metadata": _meta(
            name, created_ns, labels={"kubernetes.io/hostname": name, **(labels or {})}
        ),
        "spec": {"providerID": f"aws:///eu-west-1a/{instance_id(name)}"},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.31.2", "architecture": "amd64"},
        },
    }


def instance_id(node_name: str) -> str:
    """The EC2-style instance id the simulated cloud gives ``node_name``, stable across runs."""
    return f"i-{zlib.crc32(node_name.encode()):08x}{len(node_name):04x}"


def owner_ref(kind: str, name: str, uid: str | None = None) -> Obj:
    api = {
        "ReplicaSet": "apps/v1",
        "StatefulSet": "apps/v1",
        "DaemonSet": "apps/v1",
        "Deployment": "apps/v1",
        "Job": "batch/v1",
        "CronJob": "batch/v1",
    }.get(kind, "v1")
    return {
        "apiVersion": api,
        "kind": kind,
        "name": name,
        "uid": uid or str(uuidlib.uuid4()),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(
    kind: str,
    name: str,
    namespace: str,
    owner: Obj | None,
    created_ns: int,
    labels: Mapping[str, str] | None = None,
) -> Obj:
    """A ReplicaSet or Job object pointing at its owner (Deployment or CronJob)."""
    extra: Obj = {"labels": dict(labels or {})}
    if owner is not None:
        extra["ownerReferences"] = [owner]
    return {"metadata": _meta(name, created_ns, namespace, **extra), "spec": {}, "status": {}}


def pod(
    name: str,
    namespace: str,
    created_ns: int,
    *,
    node_name: str | None,
    owner: Obj | None = None,
    labels: Mapping[str, str] | None = None,
    requests: Mapping[str, str] | None = None,
    limits: Mapping[str, str] | None = None,
    phase: str = "Running",
    started_ns: int | None = None,
    finished_ns: int | None = None,
    init_requests: Mapping[str, str] | None = None,
) -> Obj:
    """A pod with one app container (and optionally one init container)."""
    resources: Obj = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    spec: Obj = {
        "containers": [
            {
                "name": "main",
                "image": f"registry.example.com/{name.rsplit('-', 2)[0]}:1",
                "resources": resources,
            }
        ],
        "restartPolicy": "Always" if phase == "Running" and not finished_ns else "Never",
        "schedulerName": "default-scheduler",
    }
    if init_requests:
        spec["initContainers"] = [
            {"name": "init", "image": "busybox", "resources": {"requests": dict(init_requests)}}
        ]
    if node_name:
        spec["nodeName"] = node_name
    status: Obj = {"phase": phase, "qosClass": _qos(requests, limits)}
    if started_ns is not None:
        status["startTime"] = rfc3339(started_ns)
        state: Obj = {"running": {"startedAt": rfc3339(started_ns)}}
        if finished_ns is not None:
            state = {
                "terminated": {
                    "exitCode": 0 if phase == "Succeeded" else 1,
                    "reason": "Completed" if phase == "Succeeded" else "Error",
                    "startedAt": rfc3339(started_ns),
                    "finishedAt": rfc3339(finished_ns),
                }
            }
        image = spec["containers"][0]["image"]
        digest = uuidlib.uuid5(uuidlib.NAMESPACE_URL, image).hex * 2
        status["containerStatuses"] = [
            {
                "name": "main",
                "image": image,
                "imageID": f"{image.split(':')[0]}@sha256:{digest}",
                "containerID": f"containerd://{uuidlib.uuid4().hex * 2}",
                "ready": finished_ns is None,
                "started": finished_ns is None,
                "restartCount": 0,
                "state": state,
            }
        ]
    extra: Obj = {"labels": dict(labels or {})}
    if owner is not None:
        extra["ownerReferences"] = [owner]
    return {"metadata": _meta(name, created_ns, namespace, **extra), "spec": spec, "status": status}


def _qos(requests: Mapping[str, str] | None, limits: Mapping[str, str] | None) -> str:
    if not requests and not limits:
        return "BestEffort"
    if (
        limits
        and requests
        and all(limits.get(k) == v for k, v in requests.items() if k in ("cpu", "memory"))
        and {"cpu", "memory"} <= set(limits)
    ):
        return "Guaranteed"
    return "Burstable"
