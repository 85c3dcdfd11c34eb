"""Informers: one list+watch loop per resource, feeding `ClusterState` event by event.

Fed by a `Source` -- `nodesmith.kube.client.KubeClient` in production, a recorded stream in tests and
benchmarks. Consumed by `nodesmith.state.cluster.ClusterState` through the `Handler` protocol
(synchronous callbacks, so a handler never sees two events interleaved) and by the runtime, which runs
`Informers.run` in its task group and waits on `Informers.wait_synced` before starting reconcilers.

The loop, per resource (client-go's Reflector, minus its threads):

1. **List** (the first from the API server's cache, later ones consistent and paged) and *diff-apply* it against what the informer holds: objects
   absent from the list are delivered as deletes, new or changed ones (by resourceVersion) as upserts,
   unchanged ones not at all. The first successful list marks the resource *synced*. Each object is
   transformed as its page arrives (`Source.list`'s ``each``), so a cold list of 150,000 pods holds
   compacted pods plus one raw page, never every raw pod at once.
2. **Watch** from the list's resourceVersion with bookmarks, advancing the resourceVersion on every
   event and bookmark. When the server ends the watch (its timeout) watch again from there.
3. **410 Gone** (version too old, e.g. after an API server restart) → go to 1 at once. So after any
   outage the informer ends equal to a fresh list, with no duplicates and no lost deletes.
4. **Connection errors, 5xx, 429** → wait (exponential backoff with jitter, reset by a good watch) and
   watch again from the last resourceVersion. **404** (the resource type is not served, e.g. a CRD not
   installed yet) → same backoff, list again.

Objects pass through ``transform`` first (by default: drop ``managedFields`` and the last-applied
annotation, the bulk of most objects; for Pods also container statuses, env, probes and the like, see
`compact_pod`), so memory is proportional to the objects, not to their history; then the parts pods
share with their template are replaced by one shared copy (`nodesmith.state.sharing`).
An object without a name, or one its handler cannot take, is logged with kind and name and skipped.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping

import anyio
import anyio.abc
import attrs

from nodesmith.kube import errors, resources
from nodesmith.kube.liststream import collector_paused
from nodesmith.kube.results import ListResult, WatchEvent
from nodesmith.state.sharing import SharedValues

__all__ = [
    "DEFAULT_RESOURCES",
    "TRANSFORMS",
    "Handler",
    "Informer",
    "Informers",
    "Source",
    "compact_pod",
    "interned",
    "strip_object",
]

log = logging.getLogger(__name__)

Obj: typing.TypeAlias = dict[str, typing.Any]

#: Every kind ClusterState mirrors (provider NodeClasses are added by `Informers.for_state`).
DEFAULT_RESOURCES: tuple[resources.Resource, ...] = (
    resources.NODES,
    resources.NODECLAIMS,
    resources.NODEPOOLS,
    resources.PODS,
    resources.DAEMONSETS,
    resources.PDBS,
    resources.PVCS,
    resources.PVS,
    resources.STORAGECLASSES,
    resources.CSINODES,
    resources.VOLUMEATTACHMENTS,
)

_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class Source(typing.Protocol):
    """Where objects come from; `KubeClient` implements it."""

    async def list(
        self,
        resource: resources.Resource,
        namespace: str | None = None,
        *,
        each: Callable[[Obj], Obj | None] | None = None,
        resource_version: str = "",
    ) -> ListResult:
        """Every object and the list's resourceVersion; ``each`` (if given) is applied to every object
        as it arrives and the result holds what it returns, None dropping the object.
        ``resource_version="0"`` accepts any version the server has cached; "" asks for the latest."""
        ...

    def watch(
        self, resource: resources.Resource, *, resource_version: str, timeout_seconds: int = ...
    ) -> AsyncIterator[WatchEvent]: ...


class Handler(typing.Protocol):
    """Where events go; `ClusterState` implements it. Calls are synchronous and never concurrent."""

    def on_upsert(
        self,
        resource: resources.Resource,
        obj: Mapping[str, typing.Any],
        old: Mapping[str, typing.Any] | None,
    ) -> None: ...

    def on_delete(self, resource: resources.Resource, obj: Mapping[str, typing.Any]) -> None: ...

    def on_synced(self, resource: resources.Resource) -> None: ...


def strip_object(obj: Obj) -> Obj:
    """Drop what no decision reads and that dominates object size (``managedFields`` and
    ``kubectl.kubernetes.io/last-applied-configuration``), then intern keys and short strings.
    Edits ``obj`` (fresh from JSON) in place and returns an interned copy of it."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if annotations and _LAST_APPLIED in annotations:
            annotations = dict(annotations)
            del annotations[_LAST_APPLIED]
            meta["annotations"] = annotations
    return typing.cast(Obj, interned(obj))


_INTERN_MAX = 64
_intern = sys.intern


def interned(value: typing.Any) -> typing.Any:
    """A copy of a JSON value whose keys and short strings are interned. ``json.loads`` shares keys
    only within one document, so 50,000 pods otherwise hold 50,000 copies of ``"metadata"``,
    ``"nodeName"``, ``"Running"``...; interning halves a pod's footprint (tests/bench/bench_state.py)."""
    if isinstance(value, dict):
        return {_intern(k): interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interned(v) for v in value]
    if isinstance(value, str) and len(value) <= _INTERN_MAX:
        return _intern(value)
    return value


#: Container fields no decision reads (scheduling reads resources, ports, restartPolicy, name).
_CONTAINER_NOISE = (
    "env",
    "envFrom",
    "command",
    "args",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "volumeMounts",
    "volumeDevices",
    "securityContext",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "workingDir",
)
_VOLUME_SOURCES_KEPT = ("name", "persistentVolumeClaim", "ephemeral")
#: Pod-level spec fields no decision reads (a pod's DNS, service account and security context do not
#: change where it fits).
_SPEC_NOISE = (
    "dnsPolicy",
    "dnsConfig",
    "enableServiceLinks",
    "serviceAccount",
    "serviceAccountName",
    "securityContext",
    "hostname",
    "subdomain",
)
#: Status fields no decision reads: per-container states and the pod's addresses.
_STATUS_NOISE = (
    "containerStatuses",
    "initContainerStatuses",
    "ephemeralContainerStatuses",
    "podIP",
    "podIPs",
    "hostIP",
    "hostIPs",
    "qosClass",
)
#: The pod conditions decisions read: kube-scheduler's verdict and readiness (the rest -- Initialized,
#: ContainersReady, PodReadyToStartContainers -- are two or three dicts per pod nobody reads).
_POD_CONDITIONS_KEPT = frozenset({"PodScheduled", "Ready", "DisruptionTarget"})


def compact_pod(obj: Obj) -> Obj:
    """Drop the pod fields no nodesmith decision reads, then `strip_object`: container statuses,
    container env/command/probes/mounts, the sources of non-PVC volumes, the pod's addresses, DNS and
    service account, conditions other than PodScheduled/Ready/DisruptionTarget -- well over half of a
    typical pod's memory. Kept: metadata, scheduling fields (resources, ports, affinity, tolerations,
    topology spread, node selector, PVC and ephemeral volumes, priority, overhead), phase, those
    conditions, times. Dropped before interning, so the interned copy holds only what is kept."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        for noise in _SPEC_NOISE:
            spec.pop(noise, None)
        for field in ("containers", "initContainers", "ephemeralContainers"):
            for container in spec.get(field) or ():
                if isinstance(container, dict):
                    for noise in _CONTAINER_NOISE:
                        container.pop(noise, None)
        volumes = spec.get("volumes")
        if isinstance(volumes, list):
            spec["volumes"] = [
                {k: v for k, v in volume.items() if k in _VOLUME_SOURCES_KEPT}
                if isinstance(volume, dict)
                else volume
                for volume in volumes
            ]
    status = obj.get("status")
    if isinstance(status, dict):
        for noise in _STATUS_NOISE:
            status.pop(noise, None)
        conditions = status.get("conditions")
        if isinstance(conditions, list):
            status["conditions"] = [
                c for c in conditions if not isinstance(c, dict) or c.get("type") in _POD_CONDITIONS_KEPT
            ]
    return strip_object(obj)


#: The default transform per resource (anything else gets `strip_object`).
TRANSFORMS: Mapping[resources.Resource, Callable[[Obj], Obj]] = {resources.PODS: compact_pod}


def _key(obj: Mapping[str, typing.Any]) -> str:
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def _rv(obj: Mapping[str, typing.Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


@typing.final
@attrs.define(eq=False)
class Informer:
    """List+watch of one resource into ``handler``; ``store`` holds the objects by key."""

    source: Source
    resource: resources.Resource
    handler: Handler
    transform: Callable[[Obj], Obj] = attrs.field(
        default=attrs.Factory(lambda self: TRANSFORMS.get(self.resource, strip_object), takes_self=True)
    )
    watch_timeout: int = 300
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    store: dict[str, Obj] = attrs.field(init=False, factory=dict)
    sharer: SharedValues | None = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: SharedValues.for_resource(self.resource), takes_self=True),
    )
    resource_version: str = attrs.field(init=False, default="")
    has_synced: bool = attrs.field(init=False, default=False)
    relists: int = attrs.field(init=False, default=0)
    _synced_event: anyio.Event | None = attrs.field(init=False, default=None)

    async def wait_synced(self) -> None:
        """Return once the first list has been applied."""
        if self.has_synced:
            return
        if self._synced_event is None:
            self._synced_event = anyio.Event()
        await self._synced_event.wait()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; never raises for API trouble (see the module docstring)."""
        task_status.started()
        failures = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self.relist(any_version=not self.has_synced)
                    need_list = False
                await self.watch_once()
                failures = 0
            except errors.GoneError:
                log.info(
                    "%s: resourceVersion %s expired, relisting", self.resource.name, self.resource_version
                )
                need_list = True
            except errors.KubeError as err:
                failures += 1
                need_list = need_list or isinstance(err, errors.NotFoundError)
                delay = min(self.backoff_max, self.backoff_initial * 2 ** min(failures - 1, 16))
                delay = random.uniform(delay / 2, delay)
                level = logging.INFO if failures == 1 else logging.WARNING
                log.log(level, "%s: %s; retrying in %.1fs", self.resource.name, err, delay)
                await self.sleep(delay)

    async def relist(self, *, any_version: bool = False) -> None:
        """List and diff-apply against the store (deletes for vanished objects, upserts for new or
        changed ones); then mark synced.

        ``any_version`` (the first list) takes whatever the API server has cached, as client-go's
        reflector does at start-up: the watch that follows brings it up to date. A relist after a 410
        asks for the latest instead, so the store never goes back to a version older than it held."""
        # Compacted object by object (`Source.list`'s ``each``): the raw list is never held whole.
        result = await self.source.list(
            self.resource, each=self._accept, resource_version="0" if any_version else ""
        )
        self.relists += 1
        with collector_paused():  # synchronous, and every object applied here stays
            self._apply_list(result.items)
        self.resource_version = result.resource_version
        if not self.has_synced:
            self.has_synced = True
            self._guarded("synced", lambda: self.handler.on_synced(self.resource))
            if self._synced_event is not None:
                self._synced_event.set()
        log.debug("%s: listed %d objects at %s", self.resource.name, len(result.items), self.resource_version)

    def _apply_list(self, items: list[Obj]) -> None:
        seen: set[str] = set()
        fresh: list[tuple[str, Obj]] = []
        for obj in items:
            key = _key(obj)
            seen.add(key)
            fresh.append((key, obj))
        for key in [k for k in self.store if k not in seen]:
            self._deliver_delete(self.store.pop(key))
        for key, obj in fresh:
            old = self.store.get(key)
            if old is None or _rv(old) != _rv(obj):
                self.store[key] = obj
                self._deliver_upsert(obj, old)

    async def watch_once(self) -> None:
        """One watch request from `resource_version` until the server closes it."""
        if not self.resource_version:
            raise errors.GoneError("no resourceVersion to watch from", status=410)
        stream = self.source.watch(
            self.resource, resource_version=self.resource_version, timeout_seconds=self.watch_timeout
        )
        async with contextlib.aclosing(stream) as events:  # type: ignore[type-var]
            async for event in events:
                self.apply(event)

    def apply(self, event: WatchEvent) -> None:
        """Apply one watch event to the store and the handler."""
        if event.type == "BOOKMARK":
            self.resource_version = event.resource_version or self.resource_version
            return
        obj = self._accept(event.object)
        if obj is None:
            self.resource_version = event.resource_version or self.resource_version
            return
        key = _key(obj)
        if event.type == "DELETED":
            self.store.pop(key, None)
            self._deliver_delete(obj)
        else:
            old = self.store.get(key)
            if old is None or _rv(old) != _rv(obj):
                self.store[key] = obj
                self._deliver_upsert(obj, old)
        self.resource_version = _rv(obj) or self.resource_version

    def _accept(self, raw: Obj) -> Obj | None:
        try:
            obj = self.transform(raw)
            _key(obj)
            if self.sharer is not None:
                obj = self.sharer.share(obj)
        except (KeyError, TypeError, AttributeError) as err:
            log.warning(
                "%s: skipping object without a usable name (%s): %.200r", self.resource.kind, err, raw
            )
            return None
        return obj

    def _deliver_upsert(self, obj: Obj, old: Obj | None) -> None:
        self._guarded(_key(obj), lambda: self.handler.on_upsert(self.resource, obj, old))

    def _deliver_delete(self, obj: Obj) -> None:
        self._guarded(_key(obj), lambda: self.handler.on_delete(self.resource, obj))

    def _guarded(self, name: str, call: Callable[[], None]) -> None:
        # One bad object (or a handler bug it triggers) must not stop the cache for everything else.
        try:
            call()
        except Exception:
            log.exception("%s %s: handler failed; object skipped", self.resource.kind, name)


@typing.final
@attrs.define(eq=False)
class Informers:
    """A set of informers run together in one task group."""

    informers: dict[resources.Resource, Informer]

    @classmethod
    def for_state(
        cls,
        source: Source,
        handler: Handler,
        *,
        node_classes: Iterable[resources.Resource] = (),
        kinds: Iterable[resources.Resource] = DEFAULT_RESOURCES,
        **options: typing.Any,
    ) -> Informers:
        """One informer per watched kind (plus each provider NodeClass), all feeding ``handler``."""
        wanted = [*kinds, *node_classes]
        return cls({r: Informer(source, r, handler, **options) for r in wanted})

    def __getitem__(self, resource: resources.Resource) -> Informer:
        return self.informers[resource]

    def has_synced(self, resource: resources.Resource | None = None) -> bool:
        """Whether ``resource`` (or every resource) finished its first list."""
        if resource is not None:
            return self.informers[resource].has_synced
        return all(i.has_synced for i in self.informers.values())

    def synced_status(self) -> dict[str, bool]:
        return {r.name: i.has_synced for r, i in self.informers.items()}

    async def wait_synced(self) -> None:
        for informer in self.informers.values():
            await informer.wait_synced()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every informer until cancelled; ``started`` is signalled once all are running (use
        `wait_synced` to wait for their first lists)."""
        async with anyio.create_task_group() as group:
            for informer in self.informers.values():
                await group.start(informer.run)
            task_status.started()
