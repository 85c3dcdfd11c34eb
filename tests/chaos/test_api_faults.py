"""Faults between a running ``nodesmith run`` and the API server: kube-apiserver restarted mid-run, the
connection dropped for 30 s while etcd is compacted, a watch answered 410 Gone, the leader killed under
load. After each, every pod is Running on exactly one node of its own (each pod requests 1500m on a
1.9-CPU type, so N pods need exactly N NodeClaims: one more is a double launch, one fewer a lost
NodeClaim). The time from the fault's end to a resynced cluster is printed, never asserted.
"""

from __future__ import annotations

import collections.abc
import pathlib
import time
from typing import Any

import anyio
import pytest

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.state import informer as informer_module
from nodesmith.testing import cluster as testing_cluster
from nodesmith.testing import e2e, faults

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Daemons = collections.abc.Callable[..., e2e.DaemonProcess]
ONE_PER_NODE = "1500m"
CONFIGMAPS = resources.Resource("", "v1", "configmaps", "ConfigMap", namespaced=True)
PARTITION_SECONDS = 30.0
"""How long the connection stays dropped (the fault's length, not a wait for something to happen)."""


def one_per_node_pool(name: str, node_class: str) -> dict[str, Any]:
    return e2e.nodepool(
        name,
        node_class,
        requirements=[
            {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]},
            {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["c-2x-amd64-linux"]},
        ],
        disruption={"consolidateAfter": "Never"},
    )


async def claims_of(kube: KubeClient, pool: str) -> list[dict[str, Any]]:
    return [
        c
        for c in (await kube.list(resources.NODECLAIMS)).items
        if (c["metadata"].get("labels") or {}).get(labels.LABEL_NODEPOOL) == pool
    ]


async def nodes_of(kube: KubeClient, pool: str) -> list[dict[str, Any]]:
    return (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={pool}")).items


async def all_running(kube: KubeClient, namespace: str, app: str, replicas: int) -> bool:
    pods = (await kube.list(resources.PODS, namespace, label_selector=f"app={app}")).items
    return len(pods) == replicas and all((p.get("status") or {}).get("phase") == "Running" for p in pods)


async def assert_one_claim_per_pod(kube: KubeClient, pool: str, replicas: int) -> None:
    claims = await claims_of(kube, pool)
    nodes = await nodes_of(kube, pool)
    provider_ids = [(c.get("status") or {}).get("providerID") for c in claims]
    assert len(set(provider_ids)) == len(provider_ids), f"two NodeClaims share an instance: {provider_ids}"
    assert len(claims) == replicas, f"{len(claims)} NodeClaims for {replicas} pods that need one each"
    assert len(nodes) == replicas, f"{len(nodes)} Nodes for {replicas} NodeClaims"


async def test_kube_apiserver_restarted_mid_provisioning(
    kube: KubeClient,
    kubeconfig: pathlib.Path,
    daemons: Daemons,
    namespace: str,
    node_class: str,
    name: str,
    apiserver: faults.ApiServerRestarter,
) -> None:
    daemon = daemons()
    await kube.create(resources.NODEPOOLS, one_per_node_pool(name, node_class))
    await daemon.wait_ready()
    await kube.create(
        e2e.DEPLOYMENTS, e2e.deployment("restart", namespace, 4, pool=name, cpu=ONE_PER_NODE), namespace
    )
    try:
        await e2e.eventually(lambda: claims_of(kube, name), 60, "a NodeClaim", interval=0.05)
        await anyio.to_thread.run_sync(apiserver.stop)
        apiserver.start()
        await anyio.to_thread.run_sync(apiserver.wait_ready)
        back = time.monotonic()
        fresh = await KubeClient.connect(kubeconfig)
        await e2e.eventually(lambda: all_running(fresh, namespace, "restart", 4), 180, "4 pods Running")
        print(f"api fault: kube-apiserver restart, resynced in {time.monotonic() - back:.1f}s")
        daemon.check_alive()
        await assert_one_claim_per_pod(fresh, name, 4)
    finally:
        await e2e.cleanup(await KubeClient.connect(kubeconfig), namespace=None, nodepools=[name])


async def test_a_30s_partition_with_etcd_compacted_meanwhile(
    kube: KubeClient,
    kubeconfig: pathlib.Path,
    control_plane: testing_cluster.ControlPlane,
    namespace: str,
    node_class: str,
    name: str,
    tmp_path: pathlib.Path,
) -> None:
    assert control_plane.cluster is not None, "needs the control plane this session starts"
    server = control_plane.cluster.server
    assert server is not None
    proxy = faults.TcpProxy("127.0.0.1", int(server.rsplit(":", 1)[1]))
    await kube.create(resources.NODEPOOLS, one_per_node_pool(name, node_class))
    async with anyio.create_task_group() as group:
        await group.start(proxy.serve)
        config = faults.proxied_kubeconfig(kubeconfig, proxy, tmp_path / "proxied.kubeconfig")
        daemon = e2e.DaemonProcess(config, tmp_path / "nodesmith.log").start()
        try:
            await daemon.wait_ready()
            await kube.create(
                e2e.DEPLOYMENTS, e2e.deployment("cut", namespace, 2, pool=name, cpu=ONE_PER_NODE), namespace
            )
            await e2e.eventually(lambda: all_running(kube, namespace, "cut", 2), 120, "2 pods Running")

            proxy.partition()
            await kube.merge_patch(e2e.DEPLOYMENTS, "cut", {"spec": {"replicas": 5}}, namespace)
            for i in range(40):  # move etcd's revision well past what the daemon last saw
                await kube.create(CONFIGMAPS, {"metadata": {"name": f"churn-{i}"}}, namespace)
            revision = await anyio.to_thread.run_sync(faults.compact_etcd, control_plane.cluster)
            await anyio.sleep(PARTITION_SECONDS)
            daemon.check_alive()
            proxy.heal()
            healed = time.monotonic()

            await e2e.eventually(lambda: all_running(kube, namespace, "cut", 5), 180, "5 pods Running")
            relists = daemon.log.read_text().count("expired, relisting")
            print(
                f"api fault: {PARTITION_SECONDS:.0f}s partition, etcd compacted at revision {revision}: "
                f"resynced {time.monotonic() - healed:.1f}s after the heal, {relists} watches answered 410"
            )
            daemon.check_alive()
            await assert_one_claim_per_pod(kube, name, 5)
        finally:
            daemon.stop()
            await e2e.cleanup(kube, namespace=None, nodepools=[name])
            group.cancel_scope.cancel()


async def test_a_watch_answered_410_gone_relists_to_the_truth(kube: KubeClient, namespace: str) -> None:
    """A watch resumed from a resourceVersion the API server no longer has gets 410 Gone from the real
    API server; the informer relists, and its store equals a fresh list."""
    for i in range(3):
        await kube.create(CONFIGMAPS, {"metadata": {"name": f"before-{i}"}}, namespace)

    class Handler:
        def on_upsert(self, resource: resources.Resource, obj: Any, old: Any) -> None:
            pass

        def on_delete(self, resource: resources.Resource, obj: Any) -> None:
            pass

        def on_synced(self, resource: resources.Resource) -> None:
            pass

    watched = informer_module.Informer(kube, CONFIGMAPS, Handler())
    await watched.relist()
    assert watched.relists == 1
    for i in range(3):
        await kube.create(CONFIGMAPS, {"metadata": {"name": f"after-{i}"}}, namespace)
    watched.resource_version = "1"  # long compacted away
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(watched.run)

            async def relisted() -> bool:
                return watched.relists >= 2 and all(
                    f"{namespace}/after-{i}" in watched.store for i in range(3)
                )

            await e2e.eventually(relisted, 60, "a relist after 410 Gone", interval=0.05)
            group.cancel_scope.cancel()
    listed = (await kube.list(CONFIGMAPS)).items
    assert set(watched.store) == {f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in listed}


async def test_the_leader_killed_under_load_hands_over_without_a_double_launch(
    kube: KubeClient, daemons: Daemons, namespace: str, node_class: str, name: str
) -> None:
    election = [
        "--leader-elect",
        "--leader-election-name", f"chaos-{name}",
        "--lease-duration", "6s", "--renew-deadline", "4s", "--retry-period", "1s",
    ]  # fmt: skip
    first = daemons(*election, "--identity", "first")
    await first.wait_ready()
    second = daemons(*election, "--identity", "second")
    await kube.create(resources.NODEPOOLS, one_per_node_pool(name, node_class))

    async def holder() -> str | None:
        lease = await kube.get(resources.LEASES, f"chaos-{name}", "kube-system")
        return (lease.get("spec") or {}).get("holderIdentity")

    leader_name = await e2e.eventually(holder, 60, "a leader")
    leader, standby = (first, second) if leader_name == "first" else (second, first)
    await kube.create(
        e2e.DEPLOYMENTS, e2e.deployment("load", namespace, 12, pool=name, cpu=ONE_PER_NODE), namespace
    )
    try:
        await e2e.eventually(lambda: claims_of(kube, name), 60, "the first NodeClaims", interval=0.05)
        leader.kill()
        killed = time.monotonic()

        async def standby_leads() -> bool:
            return await holder() == ("second" if leader is first else "first")

        await e2e.eventually(standby_leads, 60, "the standby to take the lease")
        took_over = time.monotonic() - killed
        await e2e.eventually(lambda: all_running(kube, namespace, "load", 12), 180, "12 pods Running")
        print(
            f"api fault: leader killed under load; lease taken over after {took_over:.1f}s, "
            f"all pods Running {time.monotonic() - killed:.1f}s after the kill"
        )
        standby.check_alive()
        await assert_one_claim_per_pod(kube, name, 12)
    finally:
        await e2e.cleanup(kube, namespace=None, nodepools=[name])
