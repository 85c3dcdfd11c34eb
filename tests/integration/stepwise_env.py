"""A NodePool of initialized machines on the real API server, for the stepwise disruption-loop and
orchestration tests: the cluster state is fed by the test kit's `expectations` helpers (no informers), the
cloud is the kit's fake provider, time is a stepped clock near real time (the API server stamps deletions).
`DisruptionEnv.restart` stands for a new process: a fresh state, orchestrator and loop that know only what
`DisruptionEnv.relist` reads back from the API.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from nodesmith.api import labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.clock import SYSTEM
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import disruption, orchestration
from nodesmith.state import ClusterState
from nodesmith.testing import cloudprovider as fake
from nodesmith.testing import expectations as expect
from nodesmith.testing.clock import FakeClock

NAMESPACE = "default"
Obj = dict[str, Any]


@attrs.define
class DisruptionEnv:
    kube: KubeClient
    pool: str
    provider: fake.FakeCloudProvider = attrs.field(factory=fake.FakeCloudProvider)
    clock: FakeClock = attrs.field(factory=lambda: FakeClock(SYSTEM.now()))
    claims: list[str] = attrs.field(factory=list)
    pods: list[str] = attrs.field(factory=list)
    state: ClusterState = attrs.field(init=False)
    orchestrator: orchestration.Orchestrator = attrs.field(init=False)
    loop: disruption.Disruption = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.state = expect.synced_state(ClusterState(clock=self.clock.now))
        events = EventRecorder(self.kube, clock=self.clock)
        self.orchestrator = orchestration.Orchestrator(self.kube, self.state, events, self.clock)
        self.loop = disruption.Disruption(
            self.kube,
            self.state,
            self.provider,
            fake.plugins(self.provider),
            events,
            self.clock,
            self.orchestrator,
        )

    # -- building the cluster -----------------------------------------------------------------------

    async def machine(self, *conditions: str) -> str:
        """A NodeClaim of the pool with its Node, launched, registered and initialized, plus ``conditions``."""
        name = f"{self.pool}-{uuid.uuid4().hex[:4]}"
        await self.kube.create(
            resources.NODECLAIMS,
            {
                "apiVersion": "nodesmith.io/v1",
                "kind": "NodeClaim",
                "metadata": {"name": name, "labels": {labels.LABEL_NODEPOOL: self.pool}},
                "spec": {"nodeClassRef": dict(fake.ref()), "requirements": []},
            },
        )
        self.claims.append(name)
        await expect.expect_initialized_machine(
            self.kube, self.state, self.provider, name, conditions=conditions, now=self.clock.now()
        )
        return name

    async def pod(self, node: str, annotations: Mapping[str, str] | None = None) -> str:
        """A running pod bound to ``node``."""
        name = f"app-{uuid.uuid4().hex[:6]}"
        metadata: Obj = {"name": name, "namespace": NAMESPACE, "labels": {"app": "stepwise"}}
        if annotations:
            metadata["annotations"] = dict(annotations)
        container = {"name": "c", "image": "pause", "resources": {"requests": {"cpu": "100m"}}}
        await self.kube.create(
            resources.PODS, {"metadata": metadata, "spec": {"nodeName": node, "containers": [container]}}
        )
        self.pods.append(name)
        running = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        stored = await self.kube.update_status(resources.PODS, name, running, NAMESPACE)
        self.state.on_upsert(resources.PODS, stored)
        return name

    async def relist(self) -> None:
        """What the informers' first list gives a new process."""
        await expect.expect_refreshed(self.kube, self.state, resources.NODEPOOLS, self.pool)
        for claim in await self.nodeclaim_names():
            await expect.expect_refreshed(self.kube, self.state, resources.NODECLAIMS, claim)
            await expect.expect_refreshed(self.kube, self.state, resources.NODES, claim)
        for pod in self.pods:
            await expect.expect_refreshed(self.kube, self.state, resources.PODS, pod, NAMESPACE)

    # -- reading the API ----------------------------------------------------------------------------

    async def nodeclaim_names(self) -> list[str]:
        listed = await self.kube.list(resources.NODECLAIMS)
        return sorted(
            str(o["metadata"]["name"])
            for o in listed.items
            if (o["metadata"].get("labels") or {}).get(labels.LABEL_NODEPOOL) == self.pool
        )

    async def nodeclaim(self, name: str) -> NodeClaim | None:
        with contextlib.suppress(kube_errors.NotFoundError):
            return NodeClaim.from_dict(await self.kube.get(resources.NODECLAIMS, name))
        return None

    async def node(self, name: str) -> Obj | None:
        with contextlib.suppress(kube_errors.NotFoundError):
            return await self.kube.get(resources.NODES, name)
        return None

    async def tainted(self, name: str) -> bool:
        taints = ((await self.node(name) or {}).get("spec") or {}).get("taints") or []
        return any(t.get("key") == labels.TAINT_DISRUPTED for t in taints)

    async def disruption_reason(self, name: str) -> str | None:
        claim = await self.nodeclaim(name)
        condition = claim.condition("DisruptionReason") if claim is not None else None
        return condition.reason if condition is not None else None

    # -- teardown -----------------------------------------------------------------------------------

    async def cleanup(self) -> None:
        for pod in self.pods:
            with contextlib.suppress(kube_errors.NotFoundError):
                await self.kube.delete(resources.PODS, pod, NAMESPACE, grace_period_seconds=0)
        for claim in await self.nodeclaim_names():
            for resource in (resources.NODECLAIMS, resources.NODES):
                with contextlib.suppress(kube_errors.NotFoundError):
                    await self.kube.merge_patch(resource, claim, {"metadata": {"finalizers": None}})
                    await self.kube.delete(resource, claim)
        with contextlib.suppress(kube_errors.NotFoundError):
            await self.kube.delete(resources.NODEPOOLS, self.pool)


async def start(kube: KubeClient, *, budget: str = "100%") -> DisruptionEnv:
    """A NodePool (consolidation when empty or underutilized, at once; budget ``budget``) in API and state."""
    pool = f"dis-{uuid.uuid4().hex[:6]}"
    await kube.create(
        resources.NODEPOOLS,
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodePool",
            "metadata": {"name": pool},
            "spec": {
                "template": {"spec": {"nodeClassRef": dict(fake.ref()), "requirements": []}},
                "disruption": {
                    "consolidationPolicy": "WhenEmptyOrUnderutilized",
                    "consolidateAfter": "0s",
                    "budgets": [{"nodes": budget}],
                },
            },
        },
    )
    env = DisruptionEnv(kube, pool)
    await env.relist()
    return env
