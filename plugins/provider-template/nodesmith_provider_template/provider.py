"""The template's ``CloudProvider``: NodeClaims in, machines of the in-memory cloud out.

Built by the plugin's ``nodesmith_cloud_provider`` hook; nodesmith's NodeClaim lifecycle calls ``create``,
termination ``delete``, garbage collection ``list``/``get``, the provisioner and the disruption simulation
``get_instance_types``, drift ``is_drifted``. Each method keeps the error contract written in
``nodesmith.cloudprovider.protocol``; that contract is what ``nodesmith.testing.conformance`` checks.

Provider IDs are ``template://<region>/<instance id>``. Machines are tagged with the cluster and the
NodeClaim's name, so ``create`` finds a machine it already launched for the same NodeClaim (no double
launch after a crash) and ``list`` sees only this cluster's machines.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Final

from nodesmith import errors
from nodesmith.api import labels, meta, nodeclaim, nodepool, quantity
from nodesmith.api.requirements import Requirements
from nodesmith.cloudprovider.protocol import NodeClassKind, ProviderContext
from nodesmith.cloudprovider.types import InstanceType, InterruptionEvent, Offering, RepairPolicy
from nodesmith_provider_template import catalogue, cloud

__all__ = ["GROUP", "KIND", "PROVIDER_NAME", "TemplateProvider"]

PROVIDER_NAME: Final = "template"
GROUP: Final = "template.nodesmith.example"
KIND: Final = "TemplateNodeClass"
PROVIDER_ID_PREFIX: Final = f"{PROVIDER_NAME}://"
ICE_TTL: Final = 180.0
"""Seconds an offering that failed with insufficient capacity is reported unavailable."""
TAG_CLUSTER: Final = "nodesmith.io/cluster"
TAG_NODECLAIM: Final = "nodesmith.io/nodeclaim"
TAG_NODECLASS: Final = "nodesmith.io/nodeclass"
_REGION: Final = re.compile(r"^[a-z0-9-]+$")


class TemplateProvider:
    """``CloudProvider`` over :class:`cloud.InMemoryCloud`. ``clock`` (monotonic seconds) is injectable."""

    def __init__(
        self,
        context: ProviderContext,
        api: cloud.InMemoryCloud | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        region = context.settings.get("region", catalogue.REGION)
        if not _REGION.match(region):
            raise errors.ConfigError("region", f"must be lower-case letters, digits and '-', got {region!r}")
        self._cluster = context.cluster_name
        self._region = region
        self._cloud = api if api is not None else cloud.InMemoryCloud()
        self._catalogue = catalogue.build_catalogue(region)
        self._clock = clock
        self._unavailable: dict[tuple[str, str, str], float] = {}

    # -- identity ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return PROVIDER_NAME

    def supported_node_classes(self) -> Sequence[NodeClassKind]:
        return (NodeClassKind(GROUP, KIND),)

    def repair_policies(self) -> Sequence[RepairPolicy]:
        """Replace a node whose Ready condition stays False or Unknown for 10 minutes."""
        return (
            RepairPolicy("Ready", "False", timedelta(minutes=10)),
            RepairPolicy("Ready", "Unknown", timedelta(minutes=10)),
        )

    def interruption_events(self) -> AsyncIterator[InterruptionEvent] | None:
        """No event source: the in-memory cloud never reclaims spot machines."""
        return None

    async def close(self) -> None:
        """Release clients; the runtime calls it once on the way out (optional member)."""

    # -- instance types ----------------------------------------------------------------------------

    async def get_instance_types(self, pool: nodepool.NodePool) -> Sequence[InstanceType]:
        """The catalogue, offerings that recently failed with insufficient capacity marked unavailable.
        Raises ``NodeClassNotReadyError`` if the NodePool references another provider's NodeClass."""
        self._check_node_class(pool.spec.template.spec.node_class_ref)
        now = self._clock()
        self._unavailable = {key: until for key, until in self._unavailable.items() if until > now}
        if not self._unavailable:
            return list(self._catalogue)
        return [
            InstanceType(
                it.name,
                it.requirements,
                tuple(
                    Offering(
                        o.requirements,
                        o.price,
                        available=(it.name, o.zone, o.capacity_type) not in self._unavailable,
                    )
                    for o in it.offerings
                ),
                it.capacity,
                it.overhead,
            )
            for it in self._catalogue
        ]

    def _check_node_class(self, ref: meta.NodeClassRef) -> None:
        if (ref.group, ref.kind) != (GROUP, KIND):
            # A real provider reads the NodeClass through context.kube here and also refuses one that is
            # missing or whose status is not Ready.
            raise errors.NodeClassNotReadyError(f"NodeClass {ref.group}/{ref.kind} is not a {GROUP}/{KIND}")

    # -- launch ------------------------------------------------------------------------------------

    async def create(self, claim: nodeclaim.NodeClaim) -> nodeclaim.NodeClaim:
        """Launch the cheapest available offering compatible with the NodeClaim's requirements.

        Raises ``NodeClassNotReadyError`` (foreign NodeClass), ``InsufficientCapacityError`` (no offering
        fits, or the cloud is out of capacity: that offering is then unavailable for ``ICE_TTL``), and
        ``CreateError`` for any other cloud error."""
        self._check_node_class(claim.spec.node_class_ref)
        existing = await self._cloud.describe_instances(
            {TAG_CLUSTER: self._cluster, TAG_NODECLAIM: claim.name}
        )
        for instance in existing:
            if instance.state != "terminated":
                return self._to_nodeclaim(instance, claim.metadata.labels)
        choice = self._cheapest(claim.requirements)
        if choice is None:
            raise errors.InsufficientCapacityError(f"no available offering satisfies NodeClaim {claim.name}")
        it, offering = choice
        tags = {
            TAG_CLUSTER: self._cluster,
            TAG_NODECLAIM: claim.name,
            TAG_NODECLASS: claim.spec.node_class_ref.name,
        }
        try:
            instance = await self._cloud.run_instance(it.name, offering.zone, offering.capacity_type, tags)
        except cloud.InsufficientCapacity as err:
            self._unavailable[(it.name, offering.zone, offering.capacity_type)] = self._clock() + ICE_TTL
            raise errors.InsufficientCapacityError(str(err)) from err
        except cloud.CloudError as err:
            raise errors.CreateError(err.code, str(err)) from err
        return self._to_nodeclaim(instance, claim.metadata.labels)

    def _cheapest(self, reqs: Requirements) -> tuple[InstanceType, Offering] | None:
        """Cheapest (then by name and zone, so launches are reproducible) available compatible offering."""
        wanted = reqs.get(labels.LABEL_INSTANCE_TYPE)
        best: tuple[float, str, str] | None = None
        choice: tuple[InstanceType, Offering] | None = None
        now = self._clock()
        for it in self._catalogue:
            if not wanted.has(it.name) or not it.requirements.intersects(reqs):
                continue
            for offering in it.offerings:
                key = (it.name, offering.zone, offering.capacity_type)
                if self._unavailable.get(key, 0.0) > now or not offering.is_compatible(reqs):
                    continue
                rank = (offering.price, it.name, offering.zone)
                if best is None or rank < best:
                    best, choice = rank, (it, offering)
        return choice

    # -- find and delete ---------------------------------------------------------------------------

    async def get(self, provider_id: str) -> nodeclaim.NodeClaim:
        """The NodeClaim view of one machine. Raises ``NodeClaimNotFoundError`` if it is gone."""
        instance = await self._live_instance(provider_id)
        return self._to_nodeclaim(instance, {})

    async def list(self) -> Sequence[nodeclaim.NodeClaim]:
        """Every live machine launched for this cluster."""
        instances = await self._cloud.describe_instances({TAG_CLUSTER: self._cluster})
        return [self._to_nodeclaim(i, {}) for i in instances if i.state != "terminated"]

    async def delete(self, claim: nodeclaim.NodeClaim) -> None:
        """Terminate the machine. Returns while termination was just requested; raises
        ``NodeClaimNotFoundError`` once the machine is terminated or unknown (the core calls again until then)."""
        provider_id = claim.status.provider_id
        if not provider_id:
            raise errors.NodeClaimNotFoundError(f"NodeClaim {claim.name} has no providerID")
        instance = await self._live_instance(provider_id)
        try:
            await self._cloud.terminate_instance(instance.id)
        except cloud.InstanceNotFound as err:
            raise errors.NodeClaimNotFoundError(f"{provider_id} is gone") from err

    async def is_drifted(self, claim: nodeclaim.NodeClaim) -> str | None:
        """Nothing of a template machine can drift (a real provider compares image, subnets, ...)."""
        return None

    async def _live_instance(self, provider_id: str) -> cloud.Instance:
        prefix = f"{PROVIDER_ID_PREFIX}{self._region}/"
        if not provider_id.startswith(prefix):
            raise errors.NodeClaimNotFoundError(f"{provider_id!r} is not a {PROVIDER_NAME} providerID here")
        try:
            instance = await self._cloud.describe_instance(provider_id[len(prefix) :])
        except cloud.InstanceNotFound as err:
            raise errors.NodeClaimNotFoundError(f"{provider_id} not found") from err
        if instance.state == "terminated":
            raise errors.NodeClaimNotFoundError(f"{provider_id} is terminated")
        return instance

    def _to_nodeclaim(self, instance: cloud.Instance, claim_labels: Mapping[str, str]) -> nodeclaim.NodeClaim:
        """The NodeClaim view of a machine: the launching NodeClaim's labels plus what was chosen."""
        it = next(t for t in self._catalogue if t.name == instance.instance_type)
        node_labels = {
            **claim_labels,
            **it.requirements.labels(),
            labels.LABEL_ZONE: instance.zone,
            labels.LABEL_CAPACITY_TYPE: instance.capacity_type,
        }
        return nodeclaim.NodeClaim.from_dict(
            {
                "apiVersion": nodeclaim.API_VERSION,
                "kind": nodeclaim.KIND,
                "metadata": {"name": instance.tags.get(TAG_NODECLAIM, instance.id), "labels": node_labels},
                "spec": {
                    "nodeClassRef": {
                        "group": GROUP,
                        "kind": KIND,
                        "name": instance.tags.get(TAG_NODECLASS, "default"),
                    },
                    "requirements": [],
                },
                "status": {
                    "providerID": f"{PROVIDER_ID_PREFIX}{self._region}/{instance.id}",
                    "imageID": "template-image-1",
                    "capacity": quantity.format_resources(it.capacity),
                    "allocatable": quantity.format_resources(it.allocatable),
                },
            }
        )
