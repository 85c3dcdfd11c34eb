"""A capacity reservation that ended: its NodeClaims and Nodes become on-demand, against the real API server.

The reconciler reads EC2NodeClasses, NodeClaims and Nodes only (no EC2 call), so the NodeClass status is
written as the resolver writes it: the reservations it lists are the active ones.
"""

from __future__ import annotations

import collections.abc
import contextlib
import datetime as dt
import itertools
import time
from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith_aws import nodeclass
from nodesmith_aws.reservationexpiry import ReservationExpiry
from nodesmith_aws.store import KubeNodeClassStore
from tests.unit.aws.conftest import nodeclass_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

NODECLASSES = resources.node_class(nodeclass.GROUP, nodeclass.KIND)
_RUN = f"{int(time.time() * 1000) % 10**8}"
_names = itertools.count()


def _reservation(rid: str) -> dict[str, Any]:
    return {
        "id": rid,
        "instanceType": "m5.large",
        "availabilityZone": "us-west-2a",
        "availableInstanceCount": 1,
        "instanceMatchCriteria": "targeted",
    }


async def _nodeclass(kube: KubeClient, *, active: list[str], resolved: bool = True) -> str:
    manifest = nodeclass_manifest(f"odcr-{_RUN}-{next(_names)}")
    del manifest["metadata"]["uid"]
    await kube.create(NODECLASSES, manifest)
    if resolved:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": "",
            "lastTransitionTime": now,
        }
        status = {"conditions": [ready], "capacityReservations": [_reservation(r) for r in active]}
        await kube.update_status(NODECLASSES, manifest["metadata"]["name"], status)
    return str(manifest["metadata"]["name"])


async def _reserved(kube: KubeClient, nodeclass_name: str, reservation_id: str) -> tuple[str, str]:
    """A NodeClaim launched into ``reservation_id`` and its registered Node; their names."""
    name = f"odcr-{_RUN}-{next(_names)}"
    provider_id = f"aws:///us-west-2a/i-{name}"
    reserved = {
        labels.LABEL_CAPACITY_TYPE: labels.CapacityType.RESERVED,
        labels.LABEL_RESERVATION_ID: reservation_id,
        labels.LABEL_INSTANCE_TYPE: "m5.large",
    }
    await kube.create(
        resources.NODECLAIMS,
        {
            "metadata": {"name": name, "labels": reserved},
            "spec": {
                "nodeClassRef": {"group": nodeclass.GROUP, "kind": nodeclass.KIND, "name": nodeclass_name},
                "requirements": [],
            },
        },
    )
    await kube.update_status(resources.NODECLAIMS, name, {"providerID": provider_id, "nodeName": name})
    await kube.create(
        resources.NODES,
        {"metadata": {"name": name, "labels": reserved}, "spec": {"providerID": provider_id}},
    )
    return name, name


@pytest.fixture(autouse=True)
async def _clean_up(kube: KubeClient) -> collections.abc.AsyncIterator[None]:
    """Remove what the test made: Nodes left behind would count in other tests' cluster (node repair's
    threshold over NodeClaims without a NodePool, for one)."""
    yield
    for resource in (resources.NODES, resources.NODECLAIMS):
        for obj in (await kube.list(resource)).items:
            name = obj["metadata"]["name"]
            if name.startswith(f"odcr-{_RUN}-"):
                with contextlib.suppress(kube_errors.NotFoundError):
                    await kube.merge_patch(resource, name, {"metadata": {"finalizers": None}})
                    await kube.delete(resource, name)


def _capacity(obj: dict[str, Any]) -> tuple[str, str | None]:
    got = obj["metadata"].get("labels") or {}
    return got[labels.LABEL_CAPACITY_TYPE], got.get(labels.LABEL_RESERVATION_ID)


async def test_nodes_of_an_ended_reservation_become_on_demand_and_the_others_stay(kube: KubeClient) -> None:
    live = await _nodeclass(kube, active=["cr-live"])
    unresolved = await _nodeclass(kube, active=[], resolved=False)
    gone_claim, gone_node = await _reserved(kube, live, "cr-gone")
    live_claim, live_node = await _reserved(kube, live, "cr-live")
    waiting_claim, waiting_node = await _reserved(kube, unresolved, "cr-gone")

    expiry = ReservationExpiry(kube, KubeNodeClassStore(kube))
    relabelled = await expiry.reconcile()

    assert gone_claim in relabelled
    assert live_claim not in relabelled
    assert waiting_claim not in relabelled
    on_demand = (labels.CapacityType.ON_DEMAND, None)
    assert _capacity(await kube.get(resources.NODECLAIMS, gone_claim)) == on_demand
    assert _capacity(await kube.get(resources.NODES, gone_node)) == on_demand
    still = (labels.CapacityType.RESERVED, "cr-live")
    assert _capacity(await kube.get(resources.NODECLAIMS, live_claim)) == still
    assert _capacity(await kube.get(resources.NODES, live_node)) == still
    # a NodeClass never resolved is no evidence the reservation ended
    waiting = (labels.CapacityType.RESERVED, "cr-gone")
    assert _capacity(await kube.get(resources.NODECLAIMS, waiting_claim)) == waiting
    assert _capacity(await kube.get(resources.NODES, waiting_node)) == waiting
    # a second pass finds nothing left to do
    assert gone_claim not in await expiry.reconcile()
