"""The kube layer against a real API server: CRUD, patches with preconditions, status, deletion
preconditions, eviction against a PodDisruptionBudget, watch, deduplicated Events and Leases.

Runs on the session's `control_plane` (tests/conftest.py); nothing is mocked. Each test works in its
own namespace and names cluster-scoped objects uniquely, so tests sharing the session never collide.
"""

from __future__ import annotations

import collections.abc
import contextlib
import datetime as dt
import pathlib
import typing
import uuid

import anyio
import pytest

from nodesmith.clock import SYSTEM
from nodesmith.kube import EventRecorder, KubeClient, LeaseClient, errors, resources
from nodesmith.kube.resources import Resource
from nodesmith.testing import cluster, e2e
from nodesmith.testing.clock import FakeClock

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", namespaced=True)
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
TIMEOUT = 60.0

T = typing.TypeVar("T")


@pytest.fixture
async def kube(kubeconfig: pathlib.Path) -> KubeClient:
    return await KubeClient.connect(kubeconfig)


@pytest.fixture
async def namespace(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    name = f"kl-{uuid.uuid4().hex[:8]}"
    await e2e.create_namespace(kube, name)
    yield name
    with contextlib.suppress(errors.NotFoundError):
        await kube.delete(resources.NAMESPACES, name)


async def eventually(
    probe: collections.abc.Callable[[], collections.abc.Awaitable[T | None]], what: str
) -> T:
    with anyio.fail_after(TIMEOUT):
        while True:
            result = await probe()
            if result:
                return result
            await anyio.sleep(0.25)
    raise AssertionError(what)  # pragma: no cover


def configmap(name: str, **data: str) -> dict[str, typing.Any]:
    return {"metadata": {"name": name}, "data": dict(data)}


async def test_create_get_list_and_typed_errors(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(CONFIGMAPS, configmap("a", k="v"), namespace)
    await kube.create(CONFIGMAPS, configmap("b"), namespace)

    got = await kube.get(CONFIGMAPS, "a", namespace)
    listed = await kube.list(CONFIGMAPS, namespace, page_size=1)

    assert got["data"] == {"k": "v"}
    assert got["kind"] == "ConfigMap"
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    assert sorted(i["metadata"]["name"] for i in listed.items if i["metadata"]["name"] in "ab") == ["a", "b"]
    assert int(listed.resource_version) >= int(created["metadata"]["resourceVersion"])
    with pytest.raises(errors.AlreadyExistsError):
        await kube.create(CONFIGMAPS, configmap("a"), namespace)
    with pytest.raises(errors.NotFoundError):
        await kube.get(CONFIGMAPS, "missing", namespace)
    with pytest.raises(errors.InvalidError):
        await kube.create(CONFIGMAPS, configmap("Not_A_Valid_Name"), namespace)


def namespaced_configmap_lists(control_plane: cluster.ControlPlane) -> int:
    """LIST requests for namespaced ConfigMaps the API server has answered (its own metrics)."""
    if control_plane.cluster is None or control_plane.cluster.server is None:
        pytest.fail("counting requests needs the control plane this session starts")
    with control_plane.cluster.admin_http() as http:
        text = http.get(f"{control_plane.cluster.server}/metrics").text
    total = 0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and all(
            f'{k}="{v}"' in line
            for k, v in (("resource", "configmaps"), ("scope", "namespace"), ("verb", "LIST"))
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def test_list_applies_each_page_by_page_and_keeps_what_it_returns(
    control_plane: cluster.ControlPlane, kube: KubeClient, namespace: str
) -> None:
    for name in "abcd":
        await kube.create(CONFIGMAPS, configmap(name, k=name), namespace)

    class Stop(Exception):
        pass

    seen: list[dict[str, typing.Any]] = []

    def stop_at_first(obj: dict[str, typing.Any]) -> dict[str, typing.Any] | None:
        seen.append(obj)
        raise Stop

    before = namespaced_configmap_lists(control_plane)
    with pytest.raises(Stop):
        await kube.list(CONFIGMAPS, namespace, page_size=1, each=stop_at_first)
    # `each` ran on the first page before the next was asked for: the raw list is never held whole.
    assert namespaced_configmap_lists(control_plane) - before == 1
    assert seen[0]["kind"] == "ConfigMap"

    def compact(obj: dict[str, typing.Any]) -> dict[str, typing.Any] | None:
        name = obj["metadata"]["name"]
        return {"metadata": {"name": name}} if name in ("a", "b", "c", "d") and name != "c" else None

    listed = await kube.list(CONFIGMAPS, namespace, page_size=2, each=compact)
    assert sorted(i["metadata"]["name"] for i in listed.items) == ["a", "b", "d"]
    assert all("data" not in i for i in listed.items)  # what `each` returned, not the raw object


async def test_a_list_from_the_cache_is_one_request_read_as_it_streams(
    control_plane: cluster.ControlPlane, kube: KubeClient, namespace: str
) -> None:
    big = "x" * 200_000  # each object larger than a read chunk's share: items span chunks
    for name in "abcdef":
        await kube.create(CONFIGMAPS, configmap(name, k=name, big=big), namespace)
    consistent = await kube.list(CONFIGMAPS, namespace, page_size=2)

    async def cache_has_them() -> bool:  # the watch cache trails etcd by moments
        listed = await kube.list(CONFIGMAPS, namespace, resource_version="0")
        return len(listed.items) == len(consistent.items)

    await e2e.eventually(cache_has_them, 30, "the API server's cache holding all six")

    def compact(obj: dict[str, typing.Any]) -> dict[str, typing.Any] | None:
        name = obj["metadata"]["name"]
        assert obj["kind"] == "ConfigMap"
        if name not in set("abdef"):  # "c", and the namespace's kube-root-ca.crt
            return None
        assert obj["data"]["big"] == big
        return {"metadata": {"name": name}, "k": obj["data"]["k"]}

    before = namespaced_configmap_lists(control_plane)
    cached = await kube.list(CONFIGMAPS, namespace, page_size=2, each=compact, resource_version="0")
    # One LIST however many objects: the API server's cache answers whole, not page by page.
    assert namespaced_configmap_lists(control_plane) - before == 1
    assert [(i["metadata"]["name"], i["k"]) for i in cached.items] == [(n, n) for n in "abdef"]
    assert {i["metadata"]["name"] for i in consistent.items} >= set("abcdef")
    # The cache may trail etcd, never lead it, and a watch from its version sees what came after.
    assert int(cached.resource_version) > 0
    await kube.create(CONFIGMAPS, configmap("g", k="g"), namespace)
    async with contextlib.aclosing(
        kube.watch(
            CONFIGMAPS, namespace=namespace, resource_version=cached.resource_version, timeout_seconds=5
        )
    ) as events:
        async for event in events:
            if event.type == "ADDED" and event.object["metadata"]["name"] == "g":
                break


async def test_merge_patch_with_resource_version_is_an_optimistic_lock(
    kube: KubeClient, namespace: str
) -> None:
    cm = await kube.create(CONFIGMAPS, configmap("a", k="1"), namespace)
    stale = cm["metadata"]["resourceVersion"]
    await kube.merge_patch(CONFIGMAPS, "a", {"data": {"k": "2"}}, namespace)

    with pytest.raises(errors.ConflictError):
        await kube.merge_patch(CONFIGMAPS, "a", {"data": {"k": "3"}}, namespace, resource_version=stale)

    current = await kube.get(CONFIGMAPS, "a", namespace)
    patched = await kube.merge_patch(
        CONFIGMAPS,
        "a",
        {"data": {"k": "3"}},
        namespace,
        resource_version=current["metadata"]["resourceVersion"],
    )
    assert patched["data"] == {"k": "3"}


async def test_json_patch_preconditions_protect_list_edits(kube: KubeClient, namespace: str) -> None:
    finalizers = ["example.com/a", "example.com/b"]
    cm = await kube.create(CONFIGMAPS, {"metadata": {"name": "f", "finalizers": finalizers}}, namespace)
    meta = cm["metadata"]
    remove_first = [{"op": "remove", "path": "/metadata/finalizers/0"}]
    try:
        await kube.merge_patch(CONFIGMAPS, "f", {"data": {"k": "v"}}, namespace)

        with pytest.raises(errors.ConflictError):
            await kube.json_patch(
                CONFIGMAPS, "f", remove_first, namespace, resource_version=meta["resourceVersion"]
            )
        with pytest.raises(errors.ConflictError):
            await kube.json_patch(CONFIGMAPS, "f", remove_first, namespace, uid="not-the-uid")
        with pytest.raises(errors.InvalidError):  # a bad patch stays a bad patch, precondition or not
            await kube.json_patch(
                CONFIGMAPS,
                "f",
                [{"op": "remove", "path": "/metadata/finalizers/7"}],
                namespace,
                uid=meta["uid"],
            )

        fresh = await kube.get(CONFIGMAPS, "f", namespace)
        patched = await kube.json_patch(
            CONFIGMAPS,
            "f",
            remove_first,
            namespace,
            uid=meta["uid"],
            resource_version=fresh["metadata"]["resourceVersion"],
        )
        assert patched["metadata"]["finalizers"] == ["example.com/b"]
    finally:
        await kube.merge_patch(CONFIGMAPS, "f", {"metadata": {"finalizers": None}}, namespace)


async def test_status_subresource_updates_only_status(kube: KubeClient) -> None:
    name = f"kl-node-{uuid.uuid4().hex[:8]}"
    await kube.create(resources.NODES, {"metadata": {"name": name}})
    try:
        status = {"capacity": {"cpu": "2", "pods": "10"}, "allocatable": {"cpu": "2", "pods": "10"}}
        updated = await kube.update_status(resources.NODES, name, status)
        assert updated["status"]["allocatable"]["cpu"] == "2"
        # Through the main resource, status is ignored.
        ignored = await kube.merge_patch(resources.NODES, name, {"status": {"allocatable": {"cpu": "64"}}})
        assert ignored["status"]["allocatable"]["cpu"] == "2"
    finally:
        await kube.delete(resources.NODES, name)


async def test_mutate_rereads_and_retries_on_conflict(kube: KubeClient, namespace: str) -> None:
    await kube.create(CONFIGMAPS, configmap("m", n="0"), namespace)
    calls = 0

    def bump(cm: dict[str, typing.Any]) -> dict[str, typing.Any]:
        nonlocal calls
        calls += 1
        if calls == 1:  # as if someone else wrote between our read and our write
            cm["metadata"]["resourceVersion"] = "1"
        cm["data"]["n"] = str(int(cm["data"]["n"]) + 1)
        return cm

    result = await kube.mutate(CONFIGMAPS, "m", bump, namespace)

    assert calls == 2
    assert result["data"]["n"] == "1"


async def test_delete_with_preconditions(kube: KubeClient, namespace: str) -> None:
    cm = await kube.create(CONFIGMAPS, configmap("a"), namespace)

    with pytest.raises(errors.ConflictError):
        await kube.delete(CONFIGMAPS, "a", namespace, uid="someone-else")
    await kube.merge_patch(CONFIGMAPS, "a", {"data": {"k": "v"}}, namespace)
    with pytest.raises(errors.ConflictError):
        await kube.delete(CONFIGMAPS, "a", namespace, resource_version=cm["metadata"]["resourceVersion"])

    await kube.delete(CONFIGMAPS, "a", namespace, uid=cm["metadata"]["uid"], propagation="Background")
    with pytest.raises(errors.NotFoundError):
        await kube.delete(CONFIGMAPS, "a", namespace)


async def _running_pod(kube: KubeClient, namespace: str, node: str, name: str) -> dict[str, typing.Any]:
    pod = {
        "metadata": {"name": name, "labels": {"app": "guarded"}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "registry.invalid/c:1"}],
            "tolerations": [{"operator": "Exists"}],
        },
    }
    await kube.create(resources.PODS, pod, namespace)

    async def running() -> dict[str, typing.Any] | None:
        current = await kube.get(resources.PODS, name, namespace)
        return current if (current.get("status") or {}).get("phase") == "Running" else None

    return await eventually(running, f"pod {name} Running")


async def test_eviction_is_blocked_by_a_pdb_then_allowed(kube: KubeClient, namespace: str) -> None:
    node = f"kl-kwok-{uuid.uuid4().hex[:8]}"
    await kube.create(
        resources.NODES,
        {
            "metadata": {
                "name": node,
                "annotations": KWOK_ANNOTATION,
                "labels": {"kubernetes.io/hostname": node},
            },
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "10"}},
        },
    )
    try:
        pod = await _running_pod(kube, namespace, node, "guarded")
        pdb = {
            "metadata": {"name": "zero"},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "guarded"}}},
        }
        await kube.create(resources.PDBS, pdb, namespace)

        async def observed() -> bool:
            current = await kube.get(resources.PDBS, "zero", namespace)
            observed_generation = (current.get("status") or {}).get("observedGeneration")
            return bool(observed_generation == current["metadata"]["generation"])

        await eventually(observed, "PDB observed by the disruption controller")

        with pytest.raises(errors.EvictionBlockedError) as blocked:
            await kube.evict("guarded", namespace)
        assert blocked.value.status == 429
        with pytest.raises(errors.NotFoundError):
            await kube.evict("no-such-pod", namespace)

        await kube.delete(resources.PDBS, "zero", namespace)
        with pytest.raises(errors.ConflictError):  # a new pod took the name: not the one we meant
            await kube.evict("guarded", namespace, uid="not-this-pod")
        await kube.evict("guarded", namespace, uid=pod["metadata"]["uid"], grace_period_seconds=0)

        async def gone() -> bool:
            try:
                await kube.get(resources.PODS, "guarded", namespace)
            except errors.NotFoundError:
                return True
            return False

        await eventually(gone, "evicted pod gone")
    finally:
        await kube.delete(resources.NODES, node)


async def test_watch_streams_events_from_a_resource_version(kube: KubeClient, namespace: str) -> None:
    start = await kube.list(CONFIGMAPS, namespace)
    await kube.create(CONFIGMAPS, configmap("w1"), namespace)
    await kube.merge_patch(CONFIGMAPS, "w1", {"data": {"k": "v"}}, namespace)
    await kube.delete(CONFIGMAPS, "w1", namespace)

    seen: list[tuple[str, str]] = []
    with anyio.fail_after(TIMEOUT):
        async with contextlib.aclosing(
            kube.watch(
                CONFIGMAPS, namespace=namespace, resource_version=start.resource_version, timeout_seconds=5
            )
        ) as events:
            async for event in events:
                if event.type != "BOOKMARK" and event.object["metadata"]["name"] == "w1":
                    seen.append((event.type, event.object["kind"]))
                if len(seen) == 3:
                    break
    assert seen == [("ADDED", "ConfigMap"), ("MODIFIED", "ConfigMap"), ("DELETED", "ConfigMap")]


async def test_event_recorder_deduplicates_within_the_window(kube: KubeClient, namespace: str) -> None:
    clock = FakeClock(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    recorder = EventRecorder(kube, component="nodesmith-test", clock=clock)
    involved = await kube.create(CONFIGMAPS, configmap("subject"), namespace)

    for _ in range(3):
        await recorder.publish(involved, "Warning", "Stuck", "it is stuck")
    await recorder.publish(involved, "Normal", "Other", "another message")

    async def events_by_reason() -> dict[str, dict[str, typing.Any]]:
        listed = await kube.list(resources.CORE_EVENTS, namespace)
        return {e["reason"]: e for e in listed.items if e["involvedObject"].get("name") == "subject"}

    events = await events_by_reason()
    assert set(events) == {"Stuck", "Other"}
    assert events["Stuck"]["count"] == 1

    clock.step(dt.timedelta(minutes=3))
    await recorder.publish(involved, "Warning", "Stuck", "it is stuck")

    events = await events_by_reason()
    assert len([e for e in events.values() if e["reason"] == "Stuck"]) == 1
    assert events["Stuck"]["count"] == 4
    assert events["Stuck"]["involvedObject"]["uid"] == involved["metadata"]["uid"]


async def test_lease_acquire_renew_conflict_and_release(kube: KubeClient, namespace: str) -> None:
    clock = FakeClock(SYSTEM.now())
    alice = LeaseClient(kube, "alice", clock=clock)
    bob = LeaseClient(kube, "bob", clock=clock)

    lease = await alice.try_acquire("leader", namespace, duration_seconds=15)
    assert lease is not None
    assert lease.holder == "alice"
    assert lease.transitions == 0
    assert await bob.try_acquire("leader", namespace, duration_seconds=15) is None

    clock.step(5)
    renewed = await alice.renew(lease)
    assert renewed.renew_time is not None
    assert lease.renew_time is not None
    assert renewed.renew_time > lease.renew_time
    with pytest.raises(errors.ConflictError):
        await alice.renew(lease)  # stale resourceVersion: someone (here: ourselves) wrote since

    clock.step(30)  # alice stopped renewing: expired
    taken = await bob.try_acquire("leader", namespace, duration_seconds=15)
    assert taken is not None
    assert taken.holder == "bob"
    assert taken.transitions == 1

    await bob.release(taken)
    released = await alice.get("leader", namespace)
    assert released is not None
    assert released.holder is None
    again = await alice.try_acquire("leader", namespace, duration_seconds=15)
    assert again is not None
    assert again.holder == "alice"
    assert again.transitions == 2


async def test_a_forbidden_answer_leaves_open_watches_alone(kube: KubeClient) -> None:
    """Writing into a namespace that is being deleted is refused with 403. kr8s, left to itself, takes any 403
    for expired credentials and recreates its HTTP session, which cut every open watch (seen in CI: every
    informer relisted at once and a provisioning run launched a node twice). The watch must survive."""
    name = f"kl-held-{uuid.uuid4().hex[:8]}"
    await kube.create(resources.NAMESPACES, {"metadata": {"name": name}})
    held = {"metadata": {"name": "held", "finalizers": ["nodesmith.io/test-hold"]}}
    await kube.create(CONFIGMAPS, held, name)  # keeps the namespace Terminating until released
    start = await kube.list(resources.NAMESPACES)
    seen: list[tuple[str, bool]] = []

    async def watch_namespaces() -> None:
        stream = kube.watch(resources.NAMESPACES, resource_version=start.resource_version, timeout_seconds=60)
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if event.type != "BOOKMARK" and event.object["metadata"]["name"] == name:
                    seen.append((event.type, bool(event.object["metadata"].get("deletionTimestamp"))))
                    if event.type == "DELETED":
                        return

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            group.start_soon(watch_namespaces)
            await kube.delete(resources.NAMESPACES, name)
            await eventually(lambda: _terminating(seen), "the watch to see the namespace terminating")
            with pytest.raises(errors.ForbiddenError, match="being terminated"):
                await kube.create(CONFIGMAPS, configmap("refused"), name)
            await kube.merge_patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, name)
    assert seen[-1][0] == "DELETED"  # the same stream delivered the deletion after the 403


async def _terminating(seen: list[tuple[str, bool]]) -> bool:
    return any(terminating for _, terminating in seen)
