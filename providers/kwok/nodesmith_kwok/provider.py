"""The kwok cloud provider: "instances" are Node objects that the kwok controller brings to life.

Built by the plugin's ``nodesmith_cloud_provider`` hook; called by the NodeClaim lifecycle (create),
termination (delete), garbage collection (list/get) and the provisioner (instance types). It talks only
to the Kubernetes API through ``nodesmith.kube``.

``create`` launches like EC2 CreateFleet with the NodeClaim's whole flexible set of offerings (every
available offering of its instance types compatible with its requirements): it takes the cheapest one that
has capacity (ties broken by instance-type name, then zone, so launches are reproducible), and creates a
Node named after the NodeClaim — which makes a repeated ``create`` for the same NodeClaim find the Node it
already made instead of launching twice. A launch costs one API round trip, the Node's create: it does not
look for that Node first (the API server answers AlreadyExists, and only then is it read), and the
KWOKNodeClass comes from `nodeclass_reads` (one read shared by the launches of the same second), as
Karpenter's kwok provider reads it from its informer cache. The Node carries the kwok annotation (so the kwok controller
manages it), the ``nodesmith.io/unregistered:NoExecute`` taint, the offering's labels, capacity and
allocatable, and providerID ``kwok://<node name>``.

Insufficient capacity is injected through the KWOKNodeClass (``spec.insufficientCapacity``): such offerings
are skipped, as a fleet request skips pools without capacity, and every one of them the launch tried is
reported unavailable for ``ICE_TTL`` — the same path a cloud's capacity errors take. Only when none of the
set has capacity does ``create`` fail, with ``InsufficientCapacityError`` listing every failed offering, so
one failed launch rules out everything it covered instead of one offering at a time. A
spot interruption warning marks the interrupted node's spot offering unavailable the same way.

Reserved capacity comes from the KWOKNodeClass's ``capacityReservations`` (`reservations`): a reserved
offering per reservation with what the live Nodes labelled with its id leave of its count. A NodeClaim the
scheduler pinned to a reservation launches into it (the cheapest offering); launches that could use a
reservation are taken one at a time, so two concurrent launches never both take its last slot -- the second
finds it used up and fails with insufficient capacity, and its pods are planned again.

Unlike Karpenter's kwok provider (whose ``Delete`` deletes the NodeClaim object), ``delete`` deletes the
instance — the Node — and reports ``NodeClaimNotFoundError`` once that delete was issued: a fake instance
terminates at once, and the Node object then lives on only until the termination finalizer lets it go.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs

from nodesmith import errors
from nodesmith.api import labels, nodeclaim, nodepool, quantity
from nodesmith.api.requirements import Requirements
from nodesmith.clock import SYSTEM, Clock
from nodesmith.cloudprovider.protocol import NodeClassKind, ProviderContext
from nodesmith.cloudprovider.types import (
    InstanceType,
    InterruptionEvent,
    InterruptionKind,
    Offering,
    RepairPolicy,
)
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith_kwok import catalogue, nodeclass_reads, reservations
from nodesmith_kwok.nodeclass import GROUP, KIND, PLURAL, KWOKNodeClass

if TYPE_CHECKING:
    from nodesmith.kube.client import KubeClient

__all__ = ["ICE_TTL", "PROVIDER_ID_PREFIX", "KWOKProvider"]

log = logging.getLogger(__name__)

PROVIDER_ID_PREFIX: Final = "kwok://"
ICE_TTL: Final = 180.0
"""Seconds an offering that failed with insufficient capacity stays unavailable (AWS's ICE cache TTL)."""
KWOK_ANNOTATION: Final = "kwok.x-k8s.io/node"
ANNOTATION_NODECLAIM: Final = f"{GROUP}/nodeclaim"
ANNOTATION_NODECLASS: Final = f"{GROUP}/nodeclass"
ANNOTATION_INTERRUPTION: Final = f"{GROUP}/interruption"
LABEL_PRICE: Final = "eks-node-viewer/instance-price"
NODE_CLASSES: Final = resources.node_class(GROUP, KIND, plural=PLURAL)


class KWOKProvider:
    """``CloudProvider`` over fake Nodes. Time comes from ``context.clock`` (the daemon's one clock)."""

    def __init__(
        self,
        context: ProviderContext,
        instance_types: Sequence[InstanceType] | None = None,
        *,
        poll_interval: float = 1.0,
    ) -> None:
        if context.kube is None:
            raise errors.ConfigError("provider", "the kwok provider needs a Kubernetes client")
        self._kube: KubeClient = context.kube
        self._catalogue = tuple(instance_types if instance_types is not None else catalogue.build_catalogue())
        self._by_name = {it.name: it for it in self._catalogue}
        self._clock: Clock = context.clock or SYSTEM
        self._unavailable: dict[tuple[str, str, str], float] = {}
        self._poll_interval = poll_interval
        self._reserving = anyio.Lock()
        self._node_classes = nodeclass_reads.NodeClassReads(
            lambda name: self._kube.get(NODE_CLASSES, name), self._clock
        )

    @property
    def name(self) -> str:
        return "kwok"

    def supported_node_classes(self) -> Sequence[NodeClassKind]:
        return (NodeClassKind(GROUP, KIND),)

    def repair_policies(self) -> Sequence[RepairPolicy]:
        """A Node whose Ready condition is False or Unknown for 10 minutes is replaced (as Karpenter's kwok)."""
        return (
            RepairPolicy("Ready", "False", timedelta(minutes=10)),
            RepairPolicy("Ready", "Unknown", timedelta(minutes=10)),
        )

    def interruption_events(self) -> AsyncIterator[InterruptionEvent] | None:
        """Events injected by annotating a kwok Node with ``kwok.nodesmith.io/interruption: <kind>`` (one of
        ``SpotInterruption``, ``RebalanceRecommendation``, ``ScheduledChange``, or ``StateChange:<state>``).
        Acknowledging an event removes the annotation, as a queue-backed source deletes its message."""
        return self._interruptions()

    async def _interruptions(self) -> AsyncIterator[InterruptionEvent]:
        pending: set[tuple[str, str]] = set()
        # Only the Nodes nodesmith launched (they carry their NodePool's label): listing every Node each
        # second was the idle daemon's largest cost on a cluster of unmanaged nodes (bench_cluster.py).
        managed = labels.LABEL_NODEPOOL
        while True:
            for node in (await self._kube.list(resources.NODES, label_selector=managed)).items:
                meta = node.get("metadata") or {}
                value = (meta.get("annotations") or {}).get(ANNOTATION_INTERRUPTION)
                provider_id = str((node.get("spec") or {}).get("providerID", ""))
                if not value or not provider_id.startswith(PROVIDER_ID_PREFIX):
                    continue
                seen = (str(meta.get("uid")), value)
                if seen in pending:
                    continue
                kind, _, state = value.partition(":")
                try:
                    parsed = InterruptionKind(kind)
                except ValueError:
                    log.warning("node %s: unknown interruption kind %r", meta.get("name"), value)
                    continue
                pending.add(seen)
                if parsed is InterruptionKind.SPOT_INTERRUPTION:
                    self._mark_reclaimed(meta.get("labels") or {})
                yield InterruptionEvent(
                    provider_id=provider_id,
                    kind=parsed,
                    time=self._clock.now().timestamp(),
                    state=state or None,
                    message_id=f"{meta.get('name')}/{value}",
                    ack=functools.partial(self._ack, str(meta.get("name")), seen, pending),
                )
            await self._clock.sleep(self._poll_interval)

    def _mark_reclaimed(self, node_labels: Mapping[str, str]) -> None:
        """A spot warning marks the node's spot offering unavailable, as AWS's provider does, so its
        replacement goes elsewhere."""
        offering = (
            node_labels.get(labels.LABEL_INSTANCE_TYPE),
            node_labels.get(labels.LABEL_ZONE),
            node_labels.get(labels.LABEL_CAPACITY_TYPE),
        )
        if offering[2] == "spot" and offering[0] and offering[1]:
            self._unavailable[(str(offering[0]), str(offering[1]), "spot")] = (
                self._clock.monotonic() + ICE_TTL
            )

    async def _ack(self, node_name: str, seen: tuple[str, str], pending: set[tuple[str, str]]) -> None:
        with contextlib.suppress(kube_errors.NotFoundError):
            await self._kube.merge_patch(
                resources.NODES, node_name, {"metadata": {"annotations": {ANNOTATION_INTERRUPTION: None}}}
            )
        pending.discard(seen)

    # -- instance types ----------------------------------------------------------------------------

    async def get_instance_types(self, pool: nodepool.NodePool) -> Sequence[InstanceType]:
        """The catalogue, with offerings in the insufficient-capacity cache marked unavailable.
        Raises ``NodeClassNotReadyError`` if the NodePool's KWOKNodeClass is missing or not Ready."""
        node_class = await self._node_class(pool.spec.template.spec.node_class_ref.name)
        return await self._offered(node_class)

    async def _offered(self, node_class: KWOKNodeClass) -> list[InstanceType]:
        """The catalogue with availability and the NodeClass's reservations (what is left of each)."""
        types = self._with_availability()
        if not node_class.reservations:
            return types
        return reservations.with_reservations(types, node_class.reservations, await self._reserved_in_use())

    async def _reserved_in_use(self) -> dict[str, int]:
        """Live kwok Nodes per reservation id (a deleting Node's instance is already gone)."""
        nodes = await self._kube.list(resources.NODES, label_selector=labels.LABEL_RESERVATION_ID)
        used: dict[str, int] = {}
        for node in nodes.items:
            meta = node.get("metadata") or {}
            if meta.get("deletionTimestamp") or not str(
                (node.get("spec") or {}).get("providerID", "")
            ).startswith(PROVIDER_ID_PREFIX):
                continue
            reservation_id = str((meta.get("labels") or {}).get(labels.LABEL_RESERVATION_ID, ""))
            used[reservation_id] = used.get(reservation_id, 0) + 1
        return used

    def _with_availability(self) -> list[InstanceType]:
        now = self._clock.monotonic()
        self._unavailable = {key: until for key, until in self._unavailable.items() if until > now}
        if not self._unavailable:
            return list(self._catalogue)
        out = []
        for it in self._catalogue:
            if not any(key[0] == it.name for key in self._unavailable):
                out.append(it)
                continue
            offerings = tuple(
                attrs.evolve(o, available=False)
                if (it.name, o.zone, o.capacity_type) in self._unavailable
                else o
                for o in it.offerings
            )
            out.append(InstanceType(it.name, it.requirements, offerings, it.capacity, it.overhead))
        return out

    async def _node_class(self, name: str) -> KWOKNodeClass:
        try:
            obj = await self._node_classes.read(name)
        except kube_errors.NotFoundError as err:
            raise errors.NodeClassNotReadyError(f"KWOKNodeClass {name!r} not found") from err
        try:
            node_class = KWOKNodeClass.from_dict(obj)
        except errors.ValidationError as err:
            raise errors.NodeClassNotReadyError(f"KWOKNodeClass {name!r} is invalid: {err}") from err
        if not node_class.ready:
            raise errors.NodeClassNotReadyError(
                f"KWOKNodeClass {name!r} is not ready: {node_class.not_ready_message}"
            )
        return node_class

    # -- launch ------------------------------------------------------------------------------------

    async def create(self, claim: nodeclaim.NodeClaim) -> nodeclaim.NodeClaim:
        """Launch (create the Node) for ``claim``; see the module docstring for the choice of offering.

        Raises ``NodeClassNotReadyError`` (KWOKNodeClass missing or not Ready), ``InsufficientCapacityError``
        (no compatible available offering, or the chosen one is configured to fail)."""
        node_class = await self._node_class(claim.spec.node_class_ref.name)
        reqs = claim.requirements
        if node_class.reservations and reqs.get(labels.LABEL_CAPACITY_TYPE).has(labels.CapacityType.RESERVED):
            async with self._reserving:  # count, choose and create as one step per reservation slot
                return await self._launch(claim, node_class, reqs)
        return await self._launch(claim, node_class, reqs)

    async def _launch(
        self, claim: nodeclaim.NodeClaim, node_class: KWOKNodeClass, reqs: Requirements
    ) -> nodeclaim.NodeClaim:
        candidates = self._candidates(reqs, await self._offered(node_class))
        if not candidates and (existing := await self._existing_node(claim.name)) is not None:
            return self._to_nodeclaim(existing)  # launched before (its answer was lost)
        if not candidates:
            raise errors.InsufficientCapacityError(
                f"no available kwok offering satisfies the requirements of NodeClaim {claim.name}"
            )
        failed = [
            (it.name, o.zone, o.capacity_type)
            for it, o in itertools.takewhile(
                lambda pair: node_class.launch_fails(pair[0].name, pair[1].zone, pair[1].capacity_type),
                candidates,
            )
        ]
        until = self._clock.monotonic() + ICE_TTL
        self._unavailable.update(dict.fromkeys(failed, until))
        if len(failed) == len(candidates):
            if (existing := await self._existing_node(claim.name)) is not None:
                return self._to_nodeclaim(existing)
            raise errors.InsufficientCapacityError(_ice_message(claim.name, failed), offerings=failed)
        it, offering = candidates[len(failed)]
        if failed:
            log.info(
                "NodeClaim %s: %d cheaper offerings had no capacity; launching %s in %s (%s)",
                claim.name,
                len(failed),
                it.name,
                offering.zone,
                offering.capacity_type,
            )
        if node_class.registration_delay:
            await self._clock.sleep(node_class.registration_delay.total_seconds())
        node = self._node(claim, it, offering, reqs)
        try:
            created = await self._kube.create(resources.NODES, node)
        except kube_errors.AlreadyExistsError:
            # launched before (a repeated create whose first answer was lost): that Node is the instance
            existing = await self._existing_node(claim.name)
            if existing is None:
                raise errors.CreateError(
                    "NodeNameTaken", f"a Node named {claim.name} exists and is not this NodeClaim's instance"
                ) from None
            created = existing
        if not (created.get("status") or {}).get("capacity"):
            created = await self._kube.merge_patch(
                resources.NODES, claim.name, {"status": node["status"]}, subresource="status"
            )
        return self._to_nodeclaim(created)

    @staticmethod
    def _candidates(
        reqs: Requirements, offered: Sequence[InstanceType]
    ) -> list[tuple[InstanceType, Offering]]:
        """The fleet request: every available offering compatible with ``reqs``, cheapest first."""
        wanted = reqs.get(labels.LABEL_INSTANCE_TYPE)
        found = [
            (it, offering)
            for it in offered
            if wanted.has(it.name) and it.requirements.intersects(reqs)
            for offering in it.offerings
            if offering.available and offering.is_compatible(reqs)
        ]
        found.sort(key=lambda pair: (pair[1].price, pair[0].name, pair[1].zone, pair[1].capacity_type))
        return found

    def _node(
        self, claim: nodeclaim.NodeClaim, it: InstanceType, offering: Offering, reqs: Requirements
    ) -> dict[str, Any]:
        node_labels = {
            **claim.metadata.labels,
            **reqs.labels(),
            **it.requirements.labels(),
            **offering.requirements.labels(),
            labels.LABEL_HOSTNAME: claim.name,
            LABEL_PRICE: f"{offering.price:.5f}",
        }
        node_labels.pop(labels.LABEL_REGISTERED, None)
        node_labels.pop(labels.LABEL_INITIALIZED, None)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": claim.name,
                "labels": node_labels,
                "annotations": {
                    KWOK_ANNOTATION: "fake",
                    ANNOTATION_NODECLAIM: claim.name,
                    ANNOTATION_NODECLASS: claim.spec.node_class_ref.name,
                },
            },
            "spec": {
                "providerID": PROVIDER_ID_PREFIX + claim.name,
                "taints": [{"key": labels.TAINT_UNREGISTERED, "effect": "NoExecute"}],
            },
            "status": {
                "capacity": quantity.format_resources(it.capacity),
                "allocatable": quantity.format_resources(it.allocatable),
                "nodeInfo": {
                    "architecture": node_labels.get(labels.LABEL_ARCH, "amd64"),
                    "operatingSystem": node_labels.get(labels.LABEL_OS, "linux"),
                },
            },
        }

    async def _existing_node(self, name: str) -> dict[str, Any] | None:
        try:
            node = await self._kube.get(resources.NODES, name)
        except kube_errors.NotFoundError:
            return None
        return node if (node.get("spec") or {}).get("providerID") == PROVIDER_ID_PREFIX + name else None

    def _to_nodeclaim(self, node: dict[str, Any]) -> nodeclaim.NodeClaim:
        meta = node.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        status = node.get("status") or {}
        instance_type = (meta.get("labels") or {}).get(labels.LABEL_INSTANCE_TYPE, "")
        return nodeclaim.NodeClaim.from_dict(
            {
                "apiVersion": nodeclaim.API_VERSION,
                "kind": nodeclaim.KIND,
                "metadata": {
                    "name": annotations.get(ANNOTATION_NODECLAIM, meta.get("name", "")),
                    "labels": meta.get("labels") or {},
                },
                "spec": {
                    "nodeClassRef": {
                        "group": GROUP,
                        "kind": KIND,
                        "name": annotations.get(ANNOTATION_NODECLASS, "default"),
                    },
                    "requirements": [],
                },
                "status": {
                    "providerID": (node.get("spec") or {}).get("providerID"),
                    "imageID": f"kwok-image-{instance_type}" if instance_type else "kwok-image",
                    "capacity": status.get("capacity") or {},
                    "allocatable": status.get("allocatable") or {},
                },
            }
        )

    # -- find and delete ---------------------------------------------------------------------------

    async def get(self, provider_id: str) -> nodeclaim.NodeClaim:
        """The NodeClaim view of the instance. Raises ``NodeClaimNotFoundError`` once it is gone or going."""
        name = _node_name(provider_id)
        node = await self._existing_node(name)
        if node is None or (node.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.NodeClaimNotFoundError(f"kwok instance {provider_id} not found")
        return self._to_nodeclaim(node)

    async def list(self) -> Sequence[nodeclaim.NodeClaim]:
        """Every live kwok instance this provider launched (Nodes with a ``kwok://`` providerID, not deleting).

        The garbage collector calls this every two minutes. Each page's Nodes are converted as they
        arrive and the rest of the page dropped, so a cluster of 10,000 Nodes is never held decoded at
        once: whole, their JSON decodes to over 100 MiB, and CPython keeps the freed arenas as RSS."""
        result = await self._kube.list(resources.NODES, each=_launched)
        return [self._to_nodeclaim(node) for node in result.items]

    async def delete(self, claim: nodeclaim.NodeClaim) -> None:
        """Terminate the instance: delete its Node. Raises ``NodeClaimNotFoundError`` once the delete was issued
        or the Node is already gone (a fake instance terminates at once); idempotent."""
        provider_id = claim.status.provider_id
        if not provider_id:
            raise errors.NodeClaimNotFoundError(f"NodeClaim {claim.name} has no providerID")
        name = _node_name(provider_id)
        node = await self._existing_node(name)
        if node is not None and not (node.get("metadata") or {}).get("deletionTimestamp"):
            with contextlib.suppress(kube_errors.NotFoundError):
                await self._kube.delete(resources.NODES, name, uid=(node.get("metadata") or {}).get("uid"))
        raise errors.NodeClaimNotFoundError(f"kwok instance {provider_id} terminated")

    async def is_drifted(self, claim: nodeclaim.NodeClaim) -> str | None:
        """kwok instances never drift on their own."""
        return None


def _launched(node: dict[str, Any]) -> dict[str, Any] | None:
    """What `KwokProvider._to_nodeclaim` reads of ``node`` if this provider launched it and it is not
    deleting; None otherwise."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    annotations = meta.get("annotations") or {}
    if (
        not str(spec.get("providerID", "")).startswith(PROVIDER_ID_PREFIX)
        or ANNOTATION_NODECLAIM not in annotations
        or meta.get("deletionTimestamp")
    ):
        return None
    status = node.get("status") or {}
    kept = {
        key: annotations[key] for key in (ANNOTATION_NODECLAIM, ANNOTATION_NODECLASS) if key in annotations
    }
    return {
        "metadata": {"name": meta.get("name", ""), "labels": meta.get("labels") or {}, "annotations": kept},
        "spec": {"providerID": spec["providerID"]},
        "status": {"capacity": status.get("capacity") or {}, "allocatable": status.get("allocatable") or {}},
    }


def _ice_message(claim: str, failed: Sequence[tuple[str, str, str]], shown: int = 5) -> str:
    listed = ", ".join(f"{name} in {zone} ({capacity_type})" for name, zone, capacity_type in failed[:shown])
    more = f" and {len(failed) - shown} more" if len(failed) > shown else ""
    return f"insufficient capacity for all {len(failed)} offerings of NodeClaim {claim}: {listed}{more}"


def _node_name(provider_id: str) -> str:
    if not provider_id.startswith(PROVIDER_ID_PREFIX):
        raise errors.NodeClaimNotFoundError(f"{provider_id!r} is not a kwok providerID")
    return provider_id[len(PROVIDER_ID_PREFIX) :]
