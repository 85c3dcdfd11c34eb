"""Nodes of a capacity reservation that ended become on-demand nodes.

A reservation that expires or is cancelled leaves its EC2NodeClass's ``status.capacityReservations`` on
the next resolution (only active ones are kept). Its instances keep running, now billed as on-demand,
but their NodeClaims and Nodes still say ``capacity-type: reserved`` with the reservation's id: the
scheduler and consolidation would price them as paid-for capacity and count them against a reservation
that is gone. Karpenter's ``capacityreservation.capacitytype`` controller relabels them; this does the
same from the NodeClass status the provider already resolves, once per NodeClass refresh.

Consumed by `nodesmith_aws.cloudprovider.AwsCloudProvider.run` when the provider has an API server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from nodesmith.api import labels as core_labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith_aws.store import NodeClassStore

__all__ = ["RELABEL", "ReservationExpiry"]

log = logging.getLogger(__name__)

RELABEL: Final = {
    "metadata": {
        "labels": {
            core_labels.LABEL_CAPACITY_TYPE: core_labels.CapacityType.ON_DEMAND,
            core_labels.LABEL_RESERVATION_ID: None,
        }
    }
}
"""The merge patch that turns a reserved NodeClaim or Node into an on-demand one."""

_RESERVED_SELECTOR: Final = f"{core_labels.LABEL_CAPACITY_TYPE}={core_labels.CapacityType.RESERVED}"


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


class ReservationExpiry:
    """Relabels the reserved NodeClaims (and their Nodes) whose reservation their NodeClass no longer lists."""

    def __init__(self, kube: Any, store: NodeClassStore) -> None:
        self.kube = kube
        self.store = store

    async def reconcile(self) -> list[str]:
        """One pass over the reserved NodeClaims; the names of those relabelled.

        Per NodeClaim:
        1. being deleted → skip (it is draining; a patch could race its finalizer);
        2. no reservation id, or no EC2NodeClass reference → skip (nothing to compare);
        3. its EC2NodeClass is missing or has never been resolved → skip (no evidence the reservation went);
        4. the reservation is among the NodeClass's resolved (active) reservations → keep;
        5. otherwise → the NodeClaim and its registered Node become on-demand, the reservation label goes.
        """
        claims = (await self.kube.list(resources.NODECLAIMS, label_selector=_RESERVED_SELECTOR)).items
        if not claims:
            return []
        nodes = (await self.kube.list(resources.NODES, label_selector=_RESERVED_SELECTOR)).items
        by_provider_id = {n.get("spec", {}).get("providerID"): n for n in nodes}
        active: dict[str, frozenset[str] | None] = {}
        relabelled = []
        for claim in claims:
            if _deleting(claim):
                continue
            reservation_id = _labels(claim).get(core_labels.LABEL_RESERVATION_ID)
            ref = (claim.get("spec") or {}).get("nodeClassRef") or {}
            if not reservation_id or not ref.get("name"):
                continue
            if ref["name"] not in active:
                active[ref["name"]] = await self._active(ref["name"])
            ids = active[ref["name"]]
            if ids is None or reservation_id in ids:
                continue
            name = claim["metadata"]["name"]
            if not await self._patch(resources.NODECLAIMS, name):
                continue
            relabelled.append(name)
            node = by_provider_id.get((claim.get("status") or {}).get("providerID"))
            if node is not None and not _deleting(node):
                await self._patch(resources.NODES, node["metadata"]["name"])
            log.info(
                "capacity reservation %s is no longer active: NodeClaim %s%s relabelled on-demand",
                reservation_id, name, f" and Node {node['metadata']['name']}" if node else "",
            )  # fmt: skip
        return relabelled

    async def _active(self, nodeclass_name: str) -> frozenset[str] | None:
        """The ids of the NodeClass's resolved reservations; ``None`` if it is missing or unresolved."""
        nc = await self.store.get(nodeclass_name)
        if nc is None or nc.ready is None:
            return None
        return frozenset(r.id for r in nc.status.capacity_reservations)

    async def _patch(self, resource: Any, name: str) -> bool:
        try:
            await self.kube.merge_patch(resource, name, RELABEL)
        except kube_errors.NotFoundError:
            return False
        return True
