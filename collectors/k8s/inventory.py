"""List + watch Kubernetes nodes and pods with the kubernetes client and keep the store's
inventory up to date.

For each of nodes and pods a thread lists everything (paged), stores the full state, then
watches from the list's resource version. A watch that ends or drops resumes from the
last resource version it saw; a 410 Gone (history compacted) triggers a fresh list, and
whatever vanished meanwhile is ended at the list time. Events are buffered by uid (the
latest state wins) and written about once a second.

Objects are read as the API's JSON, not as the client's models: client 37's models are
strict pydantic classes that reject objects real clusters serve (a container status
without ``imageID`` while an image pulls) and cost ~0.7 ms per pod to build.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
from kubernetes import client, watch
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from collectors.k8s import objects
from onepane.errors import ConfigError
from store import inventory as store

Apply = Callable[[Callable[[duckdb.DuckDBPyConnection], None], int], Future]
KINDS = ("nodes", "pods")
_PAGE = 500
_OWNER_CACHE = 100_000


@dataclass(frozen=True)
class KubeConfig:
    """Where the Kubernetes API is: ``source`` is off, in-cluster, kubeconfig or url."""

    source: str = "off"
    url: str | None = None  # e.g. http://127.0.0.1:8001 behind `kubectl proxy`
    kubeconfig: str | None = None
    context: str | None = None
    watch_timeout_s: int = 300
    flush_every_s: float = 1.0
    max_backoff_s: float = 60.0
    request_timeout_s: float = 30.0


def api_client(config: KubeConfig) -> client.ApiClient:
    """A kubernetes ApiClient for ``config``; ConfigError when it cannot be set up."""
    configuration = client.Configuration()
    try:
        if config.source == "url":
            configuration.host = (config.url or "").rstrip("/")
        elif config.source == "in-cluster":
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            _check_kubeconfig(config.kubeconfig or kube_config.KUBE_CONFIG_DEFAULT_LOCATION)
            kube_config.load_kube_config(
                config_file=config.kubeconfig,
                context=config.context,
                client_configuration=configuration,
            )
    except (kube_config.ConfigException, OSError) as exc:
        raise ConfigError(
            f"cannot set up the Kubernetes client ({config.source}): {str(exc).rstrip('.')}. "
            "Give --kube-api URL, --kubeconfig PATH, or run in a pod with a service account."
        ) from exc
    return client.ApiClient(configuration)


def _check_kubeconfig(paths: str) -> None:
    """A kubeconfig that is not there is named as such: the client would only say that no
    configuration was found."""
    given = [p for p in paths.split(os.pathsep) if p]
    if not any(Path(p).expanduser().is_file() for p in given):
        raise ConfigError(
            f"kubeconfig {paths} does not exist. "
            "Give --kubeconfig PATH, --kube-api URL, or run in a pod with a service account."
        )


class OwnerIndex:
    """Top owners of ReplicaSets and Jobs (Deployment, CronJob): filled by a list at each
    pod relist, then fetched one by one on a miss; guessed from names when the API says no."""

    def __init__(self, api: client.ApiClient, timeout_s: float) -> None:
        self._apps = client.AppsV1Api(api)
        self._batch = client.BatchV1Api(api)
        self._timeout = timeout_s
        self._cache: OrderedDict[tuple[str, str, str], tuple[str, str]] = OrderedDict()
        self.lookups = 0

    def refill(self) -> None:
        for kind, list_fn in (
            ("ReplicaSet", self._apps.list_replica_set_for_all_namespaces),
            ("Job", self._batch.list_job_for_all_namespaces),
        ):
            try:
                for item in list_all(list_fn, self._timeout)[0]:
                    self._remember(kind, item)
            except ApiException as exc:  # e.g. 403: fall back to lookups and guesses
                if exc.status not in (403, 404):
                    raise

    def _remember(self, kind: str, obj: dict[str, Any]) -> tuple[str, str]:
        meta = obj["metadata"]
        top = objects.controller_ref(obj) or (kind, meta["name"])
        key = (meta.get("namespace", ""), kind, meta["name"])
        self._cache[key] = top
        self._cache.move_to_end(key)
        while len(self._cache) > _OWNER_CACHE:
            self._cache.popitem(last=False)
        return top

    def top(self, pod: dict[str, Any]) -> tuple[str, str]:
        """(kind, name) of the controller at the top of ``pod``'s owner chain."""
        meta = pod["metadata"]
        ref = objects.controller_ref(pod)
        if ref is None:
            return "Pod", meta["name"]
        kind, name = ref
        if kind not in ("ReplicaSet", "Job"):
            return kind, name
        namespace = meta.get("namespace", "")
        cached = self._cache.get((namespace, kind, name))
        if cached is not None:
            return cached
        return self._lookup(namespace, kind, name, meta.get("labels") or {})

    def _lookup(
        self, namespace: str, kind: str, name: str, labels: dict[str, str]
    ) -> tuple[str, str]:
        self.lookups += 1
        read = (
            self._apps.read_namespaced_replica_set
            if kind == "ReplicaSet"
            else self._batch.read_namespaced_job
        )
        try:
            response = read(name, namespace, _preload_content=False, _request_timeout=self._timeout)
            return self._remember(kind, orjson.loads(response.data))
        except (ApiException, OSError, ValueError):
            return objects.guess_owner(kind, name, labels)


def _reason(exc: BaseException) -> str:
    """A short reason: urllib3 wraps "[Errno 111] Connection refused" three levels deep."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    return errno.group(0) if errno else f"{type(exc).__name__}: {text}"[:300]


def list_all(
    list_fn: Callable[..., Any], timeout_s: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every item of a list call, page by page, and the last page's list metadata."""
    items: list[dict[str, Any]] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {"limit": _PAGE, "_preload_content": False}
        if token:
            kwargs["_continue"] = token
        document = orjson.loads(list_fn(**kwargs, _request_timeout=timeout_s).data)
        items.extend(document.get("items") or [])
        metadata = document.get("metadata") or {}
        token = metadata.get("continue")
        if not token:
            return items, metadata


@dataclass
class WatchStatus:
    """What a user checks about one resource's sync: listed? watching? how often relisted?"""

    kind: str
    synced: bool = False
    objects: int = 0
    resource_version: str | None = None
    lists: int = 0
    relists_after_410: int = 0
    watch_restarts: int = 0
    events: int = 0
    last_error: str | None = None
    listed_ns: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Inventory:
    """Keeps k8s_nodes and k8s_pods current; ``apply`` is the writer's."""

    config: KubeConfig
    apply: Apply
    log: Callable[[str], None] = field(
        default=lambda line: print(f"onepane: {line}", file=sys.stderr, flush=True)
    )

    def __post_init__(self) -> None:
        self._api = api_client(self.config)
        self._core = client.CoreV1Api(self._api)
        self.owners = OwnerIndex(self._api, self.config.request_timeout_s)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self._threads: list[threading.Thread] = []
        self._watches: dict[str, watch.Watch] = {}
        self.state = {kind: WatchStatus(kind) for kind in KINDS}
        self._list_fns = {
            "nodes": self._core.list_node,
            "pods": self._core.list_pod_for_all_namespaces,
        }

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for target, name in (
            *((lambda k=kind: self._run(k), f"onepane-k8s-{kind}") for kind in KINDS),
            (self._flush_loop, "onepane-k8s-flush"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for w in list(self._watches.values()):
            w.stop()
        for thread in self._threads:
            thread.join(timeout)
        self.flush()
        self._api.close()

    def status(self) -> dict[str, Any]:
        return {kind: state.as_dict() for kind, state in self.state.items()}

    def synced(self) -> bool:
        return all(state.synced for state in self.state.values())

    # -- list and watch ----------------------------------------------------------------

    def _run(self, kind: str) -> None:
        state = self.state[kind]
        failures = 0
        while not self._stop.is_set():
            seen = (state.lists, state.events)
            try:
                if state.resource_version is None:
                    self._list(kind)
                self._watch(kind)  # returns when the server ends the watch (its timeout)
                failures = 0
                continue
            except ApiException as exc:
                if exc.status == 410:
                    state.relists_after_410 += 1
                    state.resource_version = None
                    self.log(f"Kubernetes {kind} watch expired (410 Gone); listing again")
                    continue
                failures += 1
                state.last_error = f"HTTP {exc.status} {exc.reason}".strip()
            except Exception as exc:
                if self._stop.is_set():  # stop() cut the stream on purpose
                    return
                # urllib3 raises ProtocolError / ReadTimeoutError on a dropped stream
                failures += 1
                state.last_error = _reason(exc)
            if (state.lists, state.events) != seen:  # it worked for a while: back off afresh
                failures = 1
            if failures == 1:
                self.log(
                    f"warning: Kubernetes {kind} sync failed ({state.last_error}); "
                    "retrying with backoff"
                )
            state.watch_restarts += 1
            self._stop.wait(min(2.0 ** (failures - 1), self.config.max_backoff_s))

    def _list(self, kind: str) -> None:
        state = self.state[kind]
        listed = time.time_ns()
        items, metadata = list_all(self._list_fns[kind], self.config.request_timeout_s)
        rv = metadata.get("resourceVersion")
        if kind == "pods":
            self.owners.refill()
        rows = [self._row(kind, item, listed) for item in items]
        self.flush()  # events from before this list must not land after it
        table = store.rows_table(kind, rows)
        self._write(lambda conn: store.upsert(conn, kind, table, listed_ns=listed), len(rows))
        state.objects, state.lists, state.listed_ns = len(rows), state.lists + 1, listed
        state.resource_version, state.synced, state.last_error = rv, True, None

    def _watch(self, kind: str) -> None:
        state = self.state[kind]
        w = watch.Watch(return_type="object")  # the API's JSON as dicts, see module doc
        self._watches[kind] = w
        stream = w.stream(
            self._list_fns[kind],
            resource_version=state.resource_version,
            timeout_seconds=self.config.watch_timeout_s,
            allow_watch_bookmarks=True,
            _request_timeout=(self.config.request_timeout_s, self.config.watch_timeout_s + 30),
        )
        for event in stream:
            obj = event["raw_object"]
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if event["type"] != "BOOKMARK":
                row = self._row(kind, obj, time.time_ns(), deleted=event["type"] == "DELETED")
                with self._lock:
                    self._pending[kind][row["uid"]] = row
                state.events += 1
            if rv:
                state.resource_version = rv
                state.last_error = None
            if self._stop.is_set():
                w.stop()

    def _row(
        self, kind: str, obj: dict[str, Any], observed_ns: int, deleted: bool = False
    ) -> dict[str, Any]:
        if kind == "nodes":
            return objects.node_row(obj, observed_ns, deleted)
        return objects.pod_row(obj, self.owners.top(obj), observed_ns, deleted)

    # -- writing -----------------------------------------------------------------------

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.config.flush_every_s):
            try:
                self.flush()
            except Exception as exc:
                self.log(f"warning: could not store Kubernetes events ({exc}); retrying")

    def flush(self) -> None:
        """Write buffered watch events now; on failure they stay buffered (newer win)."""
        with self._lock:
            pending, self._pending = self._pending, {kind: {} for kind in KINDS}
        for kind, rows in pending.items():
            if not rows:
                continue
            table = store.rows_table(kind, rows.values())
            try:
                self._write(lambda conn, k=kind, t=table: store.upsert(conn, k, t), len(rows))
            except Exception:
                with self._lock:
                    self._pending[kind] = {**rows, **self._pending[kind]}
                raise

    def _write(self, write: Callable[[duckdb.DuckDBPyConnection], None], rows: int) -> None:
        self.apply(write, max(rows, 1)).result(60)
