"""The NodeClaim lifecycle on the real control plane with the kwok provider: a NodeClaim created by hand
is launched, its Node registered (labels, taints, startup taints, owner reference, finalizer synced; the
unregistered taint removed) and initialized once kwok makes it Ready and its startup taint is gone;
insufficient capacity deletes the NodeClaim, and a pass on a state that has not seen the deletion yet does not
launch it again; a NodeClaim that cannot launch is deleted by liveness."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import pytest

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith_kwok import provider as kwok_provider
from tests.integration import lifecycle_harness as h

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TEAM_TAINT = {"key": "example.com/team", "value": "blue", "effect": "NoSchedule"}
STARTUP_TAINT = {"key": "example.com/agent-not-ready", "effect": "NoSchedule"}


async def test_nodeclaim_is_launched_registered_and_initialized(kube: KubeClient) -> None:
    node_class = await h.make_node_class(kube, h.unique("kwok"))
    name = h.unique("nc")
    manifest = h.nodeclaim_manifest(
        name,
        node_class,
        taints=[TEAM_TAINT],
        startup_taints=[STARTUP_TAINT],
        extra_labels={"example.com/owner": "lifecycle-test"},
    )
    manifest["metadata"]["annotations"] = {"example.com/note": "synced"}
    try:
        async with h.running(kube) as harness:
            harness.start("lifecycle", "nodeclaim_termination", "termination")
            await kube.create(resources.NODECLAIMS, manifest)

            claim = await h.eventually(
                lambda: _when(harness.nodeclaim(name), lambda c: h.is_true(c, "Registered")),
                "Registered=True",
            )
            assert labels.FINALIZER_TERMINATION in claim["metadata"]["finalizers"]
            assert claim["status"]["providerID"] == f"kwok://{name}"
            assert claim["status"]["nodeName"] == name
            assert claim["status"]["capacity"]["cpu"] == "1"
            assert claim["metadata"]["labels"][labels.LABEL_INSTANCE_TYPE] == "c-1x-amd64-linux"
            assert h.is_true(claim, "Launched")

            node = await harness.node(name)
            assert node is not None
            meta = node["metadata"]
            assert meta["labels"][labels.LABEL_REGISTERED] == "true"
            assert meta["labels"]["example.com/owner"] == "lifecycle-test"
            assert meta["annotations"]["example.com/note"] == "synced"
            assert labels.FINALIZER_TERMINATION in meta["finalizers"]
            assert [(o["kind"], o["name"]) for o in meta["ownerReferences"]] == [("NodeClaim", name)]
            taint_keys = {t["key"] for t in node["spec"]["taints"]}
            assert {TEAM_TAINT["key"], STARTUP_TAINT["key"]} <= taint_keys
            assert labels.TAINT_UNREGISTERED not in taint_keys

            # the startup taint keeps it uninitialized, even once kwok reports it Ready
            await h.eventually(
                lambda: _when(
                    harness.nodeclaim(name),
                    lambda c: (h.condition(c, "Initialized") or {}).get("reason") == "StartupTaintsExist",
                ),
                "Initialized=Unknown(StartupTaintsExist)",
            )
            # a daemon removes its startup taint → initialized
            await h.patch_latest(
                kube,
                resources.NODES,
                name,
                lambda node: {
                    "spec": {
                        "taints": [t for t in node["spec"]["taints"] if t["key"] != STARTUP_TAINT["key"]]
                    }
                },
            )
            claim = await h.eventually(
                lambda: _when(harness.nodeclaim(name), lambda c: h.is_true(c, "Initialized")),
                "Initialized=True",
            )
            assert h.is_true(claim, "Ready")
            node = await harness.node(name)
            assert node is not None
            assert node["metadata"]["labels"][labels.LABEL_INITIALIZED] == "true"

            # deleting the NodeClaim takes the Node with it, then the NodeClaim goes
            await kube.delete(resources.NODECLAIMS, name)
            await h.eventually(lambda: _gone(harness.node(name)), "the Node to be gone")
            await h.eventually(lambda: _gone(harness.nodeclaim(name)), "the NodeClaim to be gone")
    finally:
        await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, node_class)


async def test_insufficient_capacity_deletes_the_nodeclaim(kube: KubeClient) -> None:
    node_class = await h.make_node_class(kube, h.unique("kwok"), {"insufficientCapacity": [{}]})
    name = h.unique("nc")
    try:
        async with h.running(kube) as harness:
            harness.start("lifecycle", "nodeclaim_termination")
            await kube.create(resources.NODECLAIMS, h.nodeclaim_manifest(name, node_class))
            await h.eventually(lambda: _gone(harness.nodeclaim(name)), "the NodeClaim to be deleted")
            assert await harness.node(name) is None
    finally:
        await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, node_class)


async def test_a_pass_on_a_stale_state_does_not_launch_a_nodeclaim_deleted_for_insufficient_capacity(
    kube: KubeClient,
) -> None:
    # every offering of the NodeClaim fails, then capacity comes back: a second launch of the same NodeClaim
    # would succeed and leave a Node that no NodeClaim owns once the deleted NodeClaim is finalized
    every = {"instanceType": "c-1x-amd64-linux", "capacityType": "on-demand"}
    node_class = await h.make_node_class(kube, h.unique("kwok"), {"insufficientCapacity": [every]})
    name = h.unique("nc")
    try:
        async with h.running(kube) as harness:
            await kube.create(resources.NODECLAIMS, h.nodeclaim_manifest(name, node_class))
            await h.eventually(lambda: _in_state(harness, name), "the NodeClaim in the state")
            assert await harness.lifecycle.reconcile(name) is None
            deleted = await harness.nodeclaim(name)
            assert deleted is not None
            assert deleted["metadata"].get("deletionTimestamp")

            await kube.merge_patch(
                kwok_provider.NODE_CLASSES, node_class, {"spec": {"insufficientCapacity": []}}
            )
            harness.clock.step(
                dt.timedelta(seconds=kwok_provider.ICE_TTL + 1)
            )  # the failed offerings are available again
            # a lagging informer: the state still shows the NodeClaim as it was before the deletion
            stale = {**deleted, "metadata": {**deleted["metadata"]}}
            del stale["metadata"]["deletionTimestamp"]
            harness.state.update_nodeclaim(stale)
            await harness.lifecycle.reconcile(name)
            assert await harness.node(name) is None

            latest = await harness.nodeclaim(name)
            assert latest is not None
            harness.state.update_nodeclaim(latest)  # the informer catches up
            harness.start("nodeclaim_termination")
            await h.eventually(lambda: _gone(harness.nodeclaim(name)), "the NodeClaim to be finalized")
    finally:
        await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, node_class)


async def test_a_nodeclaim_that_cannot_launch_is_deleted_after_the_launch_timeout(kube: KubeClient) -> None:
    name = h.unique("nc")
    async with h.running(kube) as harness:
        harness.start("nodeclaim_termination")
        await kube.create(resources.NODECLAIMS, h.nodeclaim_manifest(name, "no-such-nodeclass"))
        await h.eventually(lambda: _in_state(harness, name), "the NodeClaim in the state")

        assert await harness.lifecycle.reconcile(name) is not None  # retried with backoff
        claim = await harness.nodeclaim(name)
        assert claim is not None
        launched = h.condition(claim, "Launched")
        assert launched is not None
        assert (launched["status"], launched["reason"]) == ("False", "NodeClassNotReady")
        assert labels.FINALIZER_TERMINATION in claim["metadata"]["finalizers"]

        harness.clock.step(dt.timedelta(minutes=6))
        written = str(claim["metadata"]["resourceVersion"])
        await h.eventually(lambda: _in_state(harness, name, rv=written), "state catch-up")
        assert await harness.lifecycle.reconcile(name) is None
        await h.eventually(lambda: _gone(harness.nodeclaim(name)), "the NodeClaim to be deleted")


# -- helpers ---------------------------------------------------------------------------------------------


async def _when(fetch: Awaitable[h.Obj | None], predicate: Callable[[h.Obj], bool]) -> h.Obj | None:
    obj = await fetch
    return obj if obj is not None and predicate(obj) else None


async def _gone(fetch: Awaitable[h.Obj | None]) -> bool:
    return await fetch is None


async def _in_state(harness: h.Harness, name: str, rv: str | None = None) -> bool:
    key = harness.state.key_for_nodeclaim(name)
    node = harness.state.state_node(key) if key else None
    if node is None or node.nodeclaim is None:
        return False
    return rv is None or node.nodeclaim.metadata.resource_version == rv
