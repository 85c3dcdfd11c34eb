"""The informer loop against a scripted source: diff-applied relists, 410 Gone, reconnects with the
last resourceVersion, bookmarks, and objects it cannot use."""

from __future__ import annotations

import collections
import typing
from collections.abc import AsyncIterator, Callable, Mapping

import pytest

from nodesmith.kube import errors, resources
from nodesmith.kube.results import ListResult, WatchEvent
from nodesmith.state import ClusterState, Informer, Informers
from nodesmith.state.informer import compact_pod
from nodesmith.state.views import PodView
from nodesmith.testing.clock import FakeClock

from . import factories as f

pytestmark = pytest.mark.anyio

Obj = dict[str, typing.Any]


def each_applied(listed: ListResult, each: Callable[[Obj], Obj | None] | None) -> ListResult:
    """What a real source returns when asked to apply ``each`` to every listed object."""
    if each is None:
        return listed
    kept = [o for o in map(each, listed.items) if o is not None]
    return ListResult(kept, listed.resource_version)


class Script:
    """A Source whose lists and watches replay what the test queued; an exception is raised in place."""

    def __init__(self) -> None:
        self.lists: collections.deque[ListResult | Exception] = collections.deque()
        self.watches: collections.deque[list[WatchEvent | Exception]] = collections.deque()
        self.watched_from: list[str] = []
        self.listed_at: list[str] = []

    async def list(
        self,
        resource: resources.Resource,
        namespace: str | None = None,
        *,
        each: Callable[[Obj], Obj | None] | None = None,
        resource_version: str = "",
    ) -> ListResult:
        self.listed_at.append(resource_version)
        item = self.lists.popleft()
        if isinstance(item, Exception):
            raise item
        return each_applied(item, each)

    async def watch(
        self, resource: resources.Resource, *, resource_version: str, timeout_seconds: int = 300
    ) -> AsyncIterator[WatchEvent]:
        self.watched_from.append(resource_version)
        if not self.watches:
            raise Stop
        for item in self.watches.popleft():
            if isinstance(item, Exception):
                raise item
            yield item


class Stop(Exception):
    """Ends a scripted run (not a KubeError, so the informer lets it through)."""


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.synced: list[str] = []

    def on_upsert(self, resource: resources.Resource, obj: Mapping[str, typing.Any], old: object) -> None:
        self.calls.append(("upsert", obj["metadata"]["name"]))

    def on_delete(self, resource: resources.Resource, obj: Mapping[str, typing.Any]) -> None:
        self.calls.append(("delete", obj["metadata"]["name"]))

    def on_synced(self, resource: resources.Resource) -> None:
        self.synced.append(resource.name)


def obj(name: str, rv: str, **extra: typing.Any) -> Obj:
    return {"metadata": {"name": name, "resourceVersion": rv, **extra}}


async def no_sleep(_: float) -> None:
    return None


async def run_until_stop(informer: Informer) -> None:
    with pytest.raises(Stop):
        await informer.run()


async def test_list_then_watch_applies_events_and_follows_resource_versions() -> None:
    script, rec = Script(), Recorder()
    script.lists.append(ListResult([obj("a", "1"), obj("b", "2")], "2"))
    script.watches.append(
        [
            WatchEvent("ADDED", obj("c", "3")),
            WatchEvent("MODIFIED", obj("a", "4")),
            WatchEvent("DELETED", obj("b", "5")),
            WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "9"}}),
        ]
    )
    informer = Informer(script, resources.NODES, rec, sleep=no_sleep)

    await run_until_stop(informer)

    assert rec.calls == [
        ("upsert", "a"),
        ("upsert", "b"),
        ("upsert", "c"),
        ("upsert", "a"),
        ("delete", "b"),
    ]
    assert rec.synced == ["nodes"]
    assert informer.has_synced
    assert script.watched_from == ["2", "9"]
    assert set(informer.store) == {"a", "c"}


async def test_gone_relists_and_diff_applies_without_duplicates() -> None:
    script, rec = Script(), Recorder()
    script.lists.append(ListResult([obj("a", "1"), obj("b", "2"), obj("c", "3")], "3"))
    script.watches.append([errors.GoneError("too old", status=410)])
    # After the outage: b deleted, c changed, d new, a unchanged.
    script.lists.append(ListResult([obj("a", "1"), obj("c", "7"), obj("d", "8")], "8"))
    informer = Informer(script, resources.NODES, rec, sleep=no_sleep)

    await run_until_stop(informer)

    assert rec.calls[3:] == [("delete", "b"), ("upsert", "c"), ("upsert", "d")]
    assert rec.synced == ["nodes"]
    assert informer.relists == 2
    assert script.watched_from == ["3", "8"]
    # The first list takes the API server's cache (client-go's start-up list); the relist after the
    # 410 asks for the latest, so the store never goes back to an older version than it held.
    assert script.listed_at == ["0", ""]


async def test_connection_errors_back_off_and_rewatch_from_the_last_version() -> None:
    script, rec = Script(), Recorder()
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    script.lists.append(ListResult([obj("a", "1")], "1"))
    script.watches.append([WatchEvent("ADDED", obj("b", "2")), errors.APIUnavailableError("reset")])
    script.watches.append([errors.APIUnavailableError("refused", request_sent=False)])
    script.watches.append([errors.ServerError("boom", status=503)])
    script.watches.append([WatchEvent("ADDED", obj("c", "3"))])
    informer = Informer(script, resources.NODES, rec, sleep=sleep, backoff_initial=1.0, backoff_max=8.0)

    await run_until_stop(informer)

    assert script.watched_from == ["1", "2", "2", "2", "3"]
    assert informer.relists == 1
    assert len(delays) == 3
    assert 0.5 <= delays[0] <= 1.0
    assert 1.0 <= delays[1] <= 2.0
    assert 2.0 <= delays[2] <= 4.0
    assert rec.calls == [("upsert", "a"), ("upsert", "b"), ("upsert", "c")]


async def test_replayed_events_with_known_resource_versions_are_not_redelivered() -> None:
    script, rec = Script(), Recorder()
    script.lists.append(ListResult([obj("a", "1")], "1"))
    script.watches.append([WatchEvent("MODIFIED", obj("a", "1")), WatchEvent("MODIFIED", obj("a", "2"))])
    informer = Informer(script, resources.NODES, rec, sleep=no_sleep)

    await run_until_stop(informer)

    assert rec.calls == [("upsert", "a"), ("upsert", "a")]


async def test_missing_resource_type_retries_the_list_until_it_exists() -> None:
    script, rec = Script(), Recorder()
    script.lists.append(errors.NotFoundError("no such resource", status=404))
    script.lists.append(ListResult([obj("np", "5")], "5"))
    informer = Informer(script, resources.NODEPOOLS, rec, sleep=no_sleep)

    await run_until_stop(informer)

    assert rec.synced == ["nodepools.nodesmith.io"]
    assert rec.calls == [("upsert", "np")]


async def test_objects_without_names_and_handler_failures_are_skipped() -> None:
    script = Script()
    state = ClusterState(clock=FakeClock().now)
    bad_pod = f.pod("bad", node_name="x", cpu="???")
    script.lists.append(ListResult([{"metadata": {}}, bad_pod, f.pod("good")], "10"))
    script.watches.append([WatchEvent("ADDED", {"metadata": None}), WatchEvent("ADDED", f.pod("later"))])
    informer = Informer(script, resources.PODS, state, sleep=no_sleep)

    await run_until_stop(informer)

    assert set(state.snapshot().pods) == {"default/good", "default/later"}
    assert state.malformed(resources.PODS) == {"default/bad"}


async def test_transform_strips_managed_fields_and_last_applied() -> None:
    script, rec = Script(), Recorder()
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "me"}
    script.lists.append(ListResult([obj("a", "1", managedFields=[{"big": 1}], annotations=annotations)], "1"))
    informer = Informer(script, resources.NODES, rec, sleep=no_sleep)

    await run_until_stop(informer)

    assert informer.store["a"]["metadata"] == {
        "name": "a",
        "resourceVersion": "1",
        "annotations": {"keep": "me"},
    }


async def test_informers_report_synced_per_resource() -> None:
    script = Script()
    state = ClusterState(clock=FakeClock().now)
    informers = Informers.for_state(
        script, state, kinds=(resources.NODES, resources.NODECLAIMS), sleep=no_sleep
    )
    script.lists.append(ListResult([f.node("a", provider_id="kwok://a")], "1"))

    await run_until_stop(informers[resources.NODES])

    assert informers.has_synced(resources.NODES)
    assert not informers.has_synced()
    assert informers.synced_status() == {"nodes": True, "nodeclaims.nodesmith.io": False}
    assert not state.synced()


def kubelet_pod() -> Obj:
    """A pod as the API server lists it once a kubelet runs it (trimmed of nothing)."""
    condition = {"status": "True", "lastProbeTime": None, "lastTransitionTime": "2026-01-01T00:00:00Z"}
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "u-1",
            "resourceVersion": "12",
            "labels": {"app": "web"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d", "controller": True}],
            "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {
            "nodeName": "node-a",
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {"runAsNonRoot": True},
            "priority": 10,
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "web:1",
                    "env": [{"name": "A", "value": "b"}],
                    "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                    "livenessProbe": {"httpGet": {"path": "/"}},
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "podIPs": [{"ip": "10.0.0.1"}],
            "hostIP": "192.168.0.1",
            "hostIPs": [{"ip": "192.168.0.1"}],
            "qosClass": "Burstable",
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [
                {"type": t, **condition}
                for t in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "containerStatuses": [{"name": "main", "ready": True, "state": {"running": {}}}],
        },
    }


def test_compact_pod_keeps_what_decisions_read_and_drops_the_rest() -> None:
    full = kubelet_pod()
    compact = compact_pod(kubelet_pod())

    assert PodView.parse(compact) == PodView.parse(full)
    assert compact["spec"]["containers"][0] == {
        "name": "main",
        "image": "web:1",
        "ports": [{"containerPort": 80, "hostPort": 8080}],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
    }
    assert [c["type"] for c in compact["status"]["conditions"]] == ["Ready", "PodScheduled"]
    assert compact["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
        {"name": "token"},
    ]
    assert set(compact["status"]) == {"phase", "startTime", "conditions"}
    assert set(compact["spec"]) == {
        "nodeName",
        "priority",
        "tolerations",
        "affinity",
        "volumes",
        "containers",
    }
    assert "managedFields" not in compact["metadata"]
