"""The core's interruption reconciler acting on an SQS spot warning for an AWS instance: the NodeClaim is
deleted, the event is published, and messages for instances nodesmith does not know are dropped and acked.

Needs both the local control plane and moto's server; the moto fixtures and the queue helpers are the AWS
unit tests' own (imported from there, so the two never drift apart).
"""

from __future__ import annotations

import pathlib
import time

import pytest

from nodesmith.clock import SYSTEM
from nodesmith.disruption.interruption import Action
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers.interruption import Interruption
from nodesmith.runtime import crds
from nodesmith.state.cluster import ClusterState
from nodesmith.testing import conformance
from tests.unit.aws.conftest import Env, discovered, env, moto, prepared, ready_nodeclass
from tests.unit.aws.test_interruption_sqs import REF, Queue, queue, run_instance, spot

__all__ = ["discovered", "env", "moto", "prepared", "queue"]
"""The AWS unit tier's fixtures, imported here so pytest finds them for this module."""

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_the_core_deletes_the_nodeclaim_of_a_spot_interrupted_instance(
    env: Env, queue: Queue, kubeconfig: pathlib.Path
) -> None:
    kube = await KubeClient.connect(kubeconfig)
    await crds.install(kube, crds.all_crds())
    await ready_nodeclass(env)
    pool = conformance.nodepool("default", REF)
    claim = conformance.nodeclaim(pool, name=f"sqs-{int(time.time() * 1000) % 10**8}")
    created = await env.provider.create(claim)
    provider_id = created.status.provider_id or ""
    manifest = created.to_dict()
    status = manifest.pop("status")
    await kube.create(resources.NODECLAIMS, manifest)
    obj = await kube.update_status(resources.NODECLAIMS, claim.name, {"providerID": status["providerID"]})
    other = await run_instance(env)  # an instance with no NodeClaim: dropped by the core, still acked

    state = ClusterState(clock=SYSTEM.now)
    state.update_nodeclaim(obj)
    reconciler = Interruption(kube, state, env.provider, EventRecorder(kube), clock=SYSTEM)
    sent = time.monotonic()
    await queue.send(spot(provider_id.rsplit("/", 1)[1]))
    await queue.send(spot(other))
    actions = {}
    for event in await queue.receive_all():
        actions[event.provider_id] = await reconciler.handle(event)
    with pytest.raises(kube_errors.NotFoundError):
        await kube.get(resources.NODECLAIMS, claim.name)
    elapsed = time.monotonic() - sent
    print(f"\nSendMessage → NodeClaim deleted: {elapsed * 1000:.0f} ms")
    assert actions == {
        provider_id: Action.DELETE,
        next(pid for pid in actions if pid.endswith(other)): Action.DROP_UNKNOWN,
    }
    assert await queue.left() == 0
    events = (await kube.list(resources.CORE_EVENTS)).items
    assert any(
        e.get("reason") == "SpotInterrupted" and e["involvedObject"]["name"] == claim.name for e in events
    )
