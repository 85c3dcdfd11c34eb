"""Informers and ClusterState against a real API server: the cache mirrors create/update/delete of every
watched kind, and after kube-apiserver is stopped and started again mid-watch (with changes made while
the informers were cut off) the cache equals a fresh list -- nothing lost, nothing duplicated.

Runs on the session's `control_plane` (tests/conftest.py). The restart uses the control plane's
public process API (`nodesmith.dev.processes`) on the kube-apiserver recorded in the cluster's state
file; the replacement process is stopped when the session ends.
"""

from __future__ import annotations

import collections.abc
import contextlib
import pathlib
import typing
import uuid

import anyio
import pytest
import yaml

from nodesmith.api import labels
from nodesmith.clock import SYSTEM
from nodesmith.kube import KubeClient, errors, resources
from nodesmith.kube.resources import Resource
from nodesmith.state import DEFAULT_RESOURCES, ClusterState, Informers
from nodesmith.testing import e2e, faults

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

REPO = pathlib.Path(__file__).resolve().parents[2]
CRDS = sorted((REPO / "deploy" / "crds").glob("nodesmith.io_*.yaml"))
TIMEOUT = 60.0
T = typing.TypeVar("T")
Obj = dict[str, typing.Any]


@pytest.fixture
async def kube(kubeconfig: pathlib.Path) -> KubeClient:
    return await KubeClient.connect(kubeconfig)


@pytest.fixture
async def crds(kube: KubeClient) -> None:
    if len(CRDS) < 2:
        pytest.fail("deploy/crds/ must hold the NodePool and NodeClaim CRDs")
    for path in CRDS:
        crd = yaml.safe_load(path.read_text())
        with contextlib.suppress(errors.AlreadyExistsError):
            await kube.create(resources.CRDS, crd)

        async def established(name: str = crd["metadata"]["name"]) -> bool:
            current = await kube.get(resources.CRDS, name)
            conditions = (current.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        await eventually(established, f"CRD {crd['metadata']['name']} Established")


@pytest.fixture
async def namespace(kube: KubeClient) -> collections.abc.AsyncIterator[str]:
    name = f"inf-{uuid.uuid4().hex[:8]}"
    await e2e.create_namespace(kube, name)
    yield name
    with contextlib.suppress(errors.NotFoundError):
        await kube.delete(resources.NAMESPACES, name)


async def eventually(probe: collections.abc.Callable[[], collections.abc.Awaitable[T]], what: str) -> T:
    last: T | None = None
    with contextlib.suppress(TimeoutError), anyio.fail_after(TIMEOUT):
        while True:
            last = await probe()
            if last:
                return last
            await anyio.sleep(0.2)
    pytest.fail(f"timed out after {TIMEOUT:.0f}s waiting for {what} (last: {last!r:.500})")


@contextlib.asynccontextmanager
async def running(informers: Informers) -> collections.abc.AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        await group.start(informers.run)
        with anyio.fail_after(TIMEOUT):
            await informers.wait_synced()
        yield
        group.cancel_scope.cancel()


# -- one sample object per watched kind --------------------------------------------------------------


def samples(suffix: str, namespace: str) -> dict[Resource, Obj]:
    name = f"inf-{suffix}"
    selector = {"matchLabels": {"app": name}}
    node_class_ref = {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"}
    requirement = {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]}
    container = {"name": "c", "image": "registry.invalid/c:1", "resources": {"requests": {"cpu": "100m"}}}
    return {
        resources.NODES: {"metadata": {"name": name}},
        resources.PODS: {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeSelector": {"nowhere": "true"}, "containers": [container]},
        },
        resources.NODEPOOLS: {
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"nodeClassRef": node_class_ref, "requirements": [requirement]}}},
        },
        resources.NODECLAIMS: {
            "metadata": {"name": name, "labels": {labels.LABEL_NODEPOOL: name}},
            "spec": {"nodeClassRef": node_class_ref, "requirements": [requirement]},
        },
        resources.DAEMONSETS: {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "selector": selector,
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"nodeSelector": {"nowhere": "true"}, "containers": [container]},
                },
            },
        },
        resources.PDBS: {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"maxUnavailable": 1, "selector": selector},
        },
        resources.PVCS: {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "none",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        resources.PVS: {
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "none",
                "hostPath": {"path": "/tmp/nowhere"},
            },
        },
        resources.STORAGECLASSES: {"metadata": {"name": name}, "provisioner": "example.com/none"},
        resources.CSINODES: {"metadata": {"name": name}, "spec": {"drivers": []}},
        resources.VOLUMEATTACHMENTS: {
            "metadata": {"name": name},
            "spec": {
                "attacher": "none.example.com",
                "nodeName": name,
                "source": {"persistentVolumeName": name},
            },
        },
    }


def cached(state: ClusterState, resource: Resource, key: str) -> Obj | None:
    """What ClusterState holds for ``key`` (its own typed indexes for the kinds it models)."""
    snap = state.snapshot()
    if resource == resources.NODES:
        found = [n.node.object for n in snap.nodes if n.node is not None and n.name == key]
        return dict(found[0]) if found else None
    if resource == resources.NODECLAIMS:
        claims: list[collections.abc.Mapping[str, typing.Any] | None] = [
            n.nodeclaim_object for n in snap.nodes if n.nodeclaim is not None and n.nodeclaim.name == key
        ]
        claims += [
            snap_claim.to_dict() for snap_claim in snap.unlaunched_nodeclaims if snap_claim.name == key
        ]
        return dict(claims[0]) if claims and claims[0] is not None else None
    if resource == resources.PODS:
        pod = snap.pods.get(key)
        return dict(pod.body) if pod is not None else None
    if resource == resources.NODEPOOLS:
        pool = snap.nodepools.get(key)
        return pool.to_dict() if pool is not None else None
    obj = snap.of(resource).get(key)
    return dict(obj) if obj is not None else None


def key_of(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


async def test_cache_mirrors_create_update_delete_of_every_watched_kind(
    kube: KubeClient, crds: None, namespace: str
) -> None:
    state = ClusterState(clock=SYSTEM.now)
    informers = Informers.for_state(kube, state)
    objects = samples(uuid.uuid4().hex[:6], namespace)
    assert set(objects) == set(DEFAULT_RESOURCES)

    async with running(informers):
        assert state.synced()
        for resource, body in objects.items():
            key = key_of(body)
            await kube.create(resource, body)

            async def added(r: Resource = resource, k: str = key) -> Obj | None:
                return cached(state, r, k)

            await eventually(added, f"{resource.kind} {key} added")

            namespace_arg = body["metadata"].get("namespace")
            await kube.merge_patch(
                resource,
                body["metadata"]["name"],
                {"metadata": {"labels": {"step": "updated"}}},
                namespace_arg,
            )

            async def updated(r: Resource = resource, k: str = key) -> bool:
                obj = cached(state, r, k)
                return obj is not None and (obj["metadata"].get("labels") or {}).get("step") == "updated"

            await eventually(updated, f"{resource.kind} {key} updated")

        for resource, body in objects.items():
            key = key_of(body)
            await kube.delete(resource, body["metadata"]["name"], body["metadata"].get("namespace"))
            await _drop_finalizers(kube, resource, body)

            async def deleted(r: Resource = resource, k: str = key) -> bool:
                return cached(state, r, k) is None

            await eventually(deleted, f"{resource.kind} {key} deleted")
            assert key not in informers[resource].store


async def _drop_finalizers(kube: KubeClient, resource: Resource, body: Obj) -> None:
    """PVs/PVCs keep protection finalizers while kube-controller-manager thinks they are in use."""
    meta = body["metadata"]
    with contextlib.suppress(errors.NotFoundError):
        current = await kube.get(resource, meta["name"], meta.get("namespace"))
        if current["metadata"].get("finalizers"):
            await kube.merge_patch(
                resource, meta["name"], {"metadata": {"finalizers": None}}, meta.get("namespace")
            )


# -- kube-apiserver restart ------------------------------------------------------------------------


async def _fresh_equals_cache(
    kube: KubeClient, informers: Informers, state: ClusterState, namespace: str
) -> bool:
    for resource, informer in informers.informers.items():
        listed = await kube.list(resource)
        fresh = {key_of(o): o["metadata"]["resourceVersion"] for o in listed.items}
        cached_versions = {k: o["metadata"]["resourceVersion"] for k, o in informer.store.items()}
        if fresh != cached_versions:
            return False
    snap = state.snapshot()
    pods = (await kube.list(resources.PODS)).items
    if set(snap.pods) != {key_of(p) for p in pods}:
        return False
    nodes = (await kube.list(resources.NODES)).items
    return {n.name for n in snap.nodes if n.node is not None} == {n["metadata"]["name"] for n in nodes}


async def test_restarting_kube_apiserver_mid_watch_leaves_the_cache_equal_to_a_fresh_list(
    kube: KubeClient, crds: None, namespace: str, apiserver: faults.ApiServerRestarter
) -> None:
    state = ClusterState(clock=SYSTEM.now)
    informers = Informers.for_state(kube, state, backoff_initial=2.0, backoff_max=4.0)
    node = f"inf-r-{uuid.uuid4().hex[:6]}"
    await kube.create(resources.NODES, {"metadata": {"name": node}, "spec": {"providerID": f"kwok://{node}"}})
    before = [f"before-{i}" for i in range(4)]
    for name in before:
        await kube.create(resources.PODS, _bound_pod(name, node), namespace)

    async with running(informers):
        await eventually(lambda: _fresh_equals_cache(kube, informers, state, namespace), "initial cache")

        await anyio.to_thread.run_sync(apiserver.stop)
        await anyio.sleep(1.0)
        apiserver.start()
        await anyio.to_thread.run_sync(apiserver.wait_ready)

        # Changes the informers may not see as watch events (they are backing off right now).
        other = await KubeClient.connect(kube_config_of(apiserver))
        for name in before[:2]:
            await other.delete(resources.PODS, name, namespace, grace_period_seconds=0)
        for i in range(3):
            await other.create(resources.PODS, _bound_pod(f"after-{i}", node), namespace)
        await other.merge_patch(
            resources.PODS, before[2], {"metadata": {"labels": {"seen": "after"}}}, namespace
        )
        await other.create(
            resources.STORAGECLASSES, {"metadata": {"name": node}, "provisioner": "example.com/x"}
        )

        await eventually(
            lambda: _fresh_equals_cache(kube, informers, state, namespace), "cache equal to a fresh list"
        )

        # Nothing counted twice: the node's requests are exactly its listed pods' requests.
        state_node = state.state_node(f"kwok://{node}")
        assert state_node is not None
        listed = [
            p for p in (await kube.list(resources.PODS, namespace)).items if p["spec"].get("nodeName") == node
        ]
        assert len(state_node.pods) == len(listed) == 5
        assert state_node.pod_requests["cpu"] == 100 * len(listed)
        assert state.snapshot().pods[f"{namespace}/{before[2]}"].labels["seen"] == "after"
        assert state.synced()

    await kube.delete(resources.STORAGECLASSES, node)
    await kube.delete(resources.NODES, node)


def kube_config_of(restarter: faults.ApiServerRestarter) -> pathlib.Path:
    return restarter.cluster.kubeconfig


def _bound_pod(name: str, node: str) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"app": "restart"}},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "c", "image": "registry.invalid/c:1", "resources": {"requests": {"cpu": "100m"}}}
            ],
        },
    }
