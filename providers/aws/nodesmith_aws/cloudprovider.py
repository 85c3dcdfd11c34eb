"""The AWS `CloudProvider`: the object ``nodesmith_cloud_provider("aws", ...)`` returns.

Composition root of the provider: builds the clients, caches and sub-providers once (or takes shared
ones: several providers of one region may share a `Catalog` and `Pricing`) and implements the core's
async contract (`nodesmith.cloudprovider.protocol.CloudProvider`) on top of them. Fed by the core's
reconcilers (NodeClaim lifecycle, termination, GC, drift, provisioning); talks to AWS through the
sub-providers and reads EC2NodeClasses through a `nodesmith_aws.store.NodeClassStore`.

Long-running work (price, instance-type and NodeClass refreshes, launch-template cleanup) lives in
:meth:`AwsCloudProvider.run`, for the runtime's task group. With an ``interruption-queue`` setting,
:meth:`AwsCloudProvider.interruption_events` is the SQS source of `nodesmith_aws.interruption`.
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final

import anyio
import attrs
from anyio.abc import TaskStatus
from botocore.exceptions import BotoCoreError, ClientError

from nodesmith import errors
from nodesmith.api import conditions, quantity
from nodesmith.api import labels as core_labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.api.nodepool import NodePool
from nodesmith.cloudprovider.protocol import NodeClassKind
from nodesmith.cloudprovider.types import (
    DriftReason,
    InstanceType,
    InterruptionEvent,
    InterruptionKind,
    RepairPolicy,
)
from nodesmith_aws import drift, interruption, nodeclass, offered
from nodesmith_aws.cache import UnavailableOfferings
from nodesmith_aws.clients import Clients
from nodesmith_aws.cluster import Cluster, ClusterSource
from nodesmith_aws.instances import Instance, Instances, parse_provider_id
from nodesmith_aws.instancetypes import Catalog, InstanceTypes
from nodesmith_aws.launch import Launched, Launcher
from nodesmith_aws.launchtemplates import LaunchTemplates
from nodesmith_aws.nodeclass import EC2NodeClass
from nodesmith_aws.pricing import Pricing
from nodesmith_aws.reservationexpiry import ReservationExpiry
from nodesmith_aws.reservationusage import ReservationUsage
from nodesmith_aws.resolver import Resolver
from nodesmith_aws.settings import Settings
from nodesmith_aws.store import NodeClassStore

__all__ = ["EC2_NODE_CLASS", "TAG_NODECLAIM", "TAG_NODECLASS", "AwsCloudProvider"]

log = logging.getLogger(__name__)

EC2_NODE_CLASS: Final = NodeClassKind(nodeclass.GROUP, nodeclass.KIND)
TAG_NODECLASS: Final = f"{nodeclass.GROUP}/ec2nodeclass"
TAG_NODECLAIM: Final = f"{core_labels.GROUP}/nodeclaim"
TAG_CLUSTER_NAME: Final = "eks:eks-cluster-name"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AwsCloudProvider:
    """Launches EC2 instances for NodeClaims (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        store: NodeClassStore,
        *,
        clients: Clients | None = None,
        catalog: Catalog | None = None,
        pricing: Pricing | None = None,
        cluster: Cluster | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _now,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        kube: Any = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self.store = store
        self.clients = clients or Clients(settings)
        self.catalog = catalog or Catalog(self.clients, sleep)
        self.pricing = pricing or Pricing(settings, self.clients)
        self.unavailable = UnavailableOfferings(clock)
        self.reservation_usage = ReservationUsage()
        self.instance_types = InstanceTypes(
            settings, self.catalog, self.pricing, self.unavailable, clock, self.reservation_usage
        )
        self.launch_templates = LaunchTemplates(self.clients, self.cluster_tags, clock)
        self.cluster = ClusterSource(settings, self.clients, cluster)
        self.launcher = Launcher(
            settings, self.clients, self.launch_templates, self.unavailable, self.cluster
        )
        self.instances = Instances(self.clients)
        self.resolver = Resolver(settings, self.clients, self.cluster, self.reservation_usage)
        self.zones = interruption.ZoneLocator(self.clients)
        self.interruption_source = (
            interruption.SqsSource(
                self.clients,
                settings.interruption_queue,
                self.zones,
                wait_seconds=settings.interruption_wait_seconds,
            )
            if settings.interruption_queue
            else None
        )
        self._now = now
        self._launched_into: dict[str, str] = {}
        """Instance id → the reservation this process launched it into (interruption warnings name the
        instance only; others cost a DescribeInstances)."""
        self.reservation_expiry = ReservationExpiry(kube, store) if kube is not None else None
        """Relabels nodes of ended reservations on-demand; only with an API server (``kube``)."""

    # -- identity ------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "aws"

    def supported_node_classes(self) -> Sequence[NodeClassKind]:
        return (EC2_NODE_CLASS,)

    @property
    def cluster_tags(self) -> dict[str, str]:
        c = self.settings.cluster_name
        return {f"kubernetes.io/cluster/{c}": "owned", TAG_CLUSTER_NAME: c}

    def tags(self, nodeclaim: NodeClaim, nc: EC2NodeClass) -> dict[str, str]:
        """User tags overlaid with the ones that make every instance traceable and garbage-collectable."""
        return {
            **nc.tags,
            **self.cluster_tags,
            core_labels.LABEL_NODEPOOL: nodeclaim.nodepool_name or "",
            TAG_NODECLASS: nc.name,
            TAG_NODECLAIM: nodeclaim.name,
            "Name": nodeclaim.name,
        }

    # -- node classes ----------------------------------------------------------------------------------

    async def reconcile_node_class(self, name: str) -> EC2NodeClass | None:
        """Resolve one EC2NodeClass's selectors and write its status; ``None`` once it does not exist.

        1. gone → nothing to do;
        2. being deleted and NodeClaims still use it → wait (the core terminates them first);
        3. being deleted, no NodeClaim left → delete its launch templates and managed instance
           profile, then release the finalizer;
        4. no finalizer yet → add it, so a deletion waits for step 3;
        5. resolve the selectors into status.
        """
        nc = await self.store.get(name)
        if nc is None:
            return None
        if nc.metadata.deletion_timestamp is not None:
            if nodeclass.FINALIZER not in nc.metadata.finalizers:
                return nc
            using = await self.store.nodeclaims_using(name)
            if using:
                log.info(
                    "EC2NodeClass %s is being deleted; waiting for NodeClaims %s", name, ", ".join(using)
                )
                return nc
            await self._clean_up(nc)
            return await self.store.set_finalizer(nc, present=False)
        if nodeclass.FINALIZER not in nc.metadata.finalizers:
            updated = await self.store.set_finalizer(nc, present=True)
            if updated is None:
                return None
            nc = updated
        status = await self.resolver.resolve(nc, self._now())
        return await self.store.write_status(nc, status)

    async def _clean_up(self, nc: EC2NodeClass) -> None:
        """Delete what nodesmith created for ``nc``: its launch templates and managed instance profile."""
        deleted = await self.launch_templates.delete_all(
            [
                {"Name": f"tag:{TAG_NODECLASS}", "Values": [nc.name]},
                {"Name": f"tag:{TAG_CLUSTER_NAME}", "Values": [self.settings.cluster_name]},
            ]
        )
        profile = await self.resolver.delete_managed_profile(nc)
        log.info(
            "EC2NodeClass %s deleted: removed %d launch template(s)%s",
            nc.name, deleted, f" and instance profile {profile}" if profile else "",
        )  # fmt: skip

    async def _instance_types_known(self) -> None:
        """Discover instance types if nothing tried yet; while the background discovery is failing (it
        retries with backoff) raise `NodeClassNotReadyError` with its error instead of calling EC2 again."""
        if self.catalog.infos:
            return
        if self.catalog.last_error is not None:
            raise errors.NodeClassNotReadyError(
                f"EC2 instance types not discovered yet: {self.catalog.last_error}"
            )
        try:
            await self.catalog.ensure()
        except (BotoCoreError, ClientError) as err:
            raise errors.NodeClassNotReadyError(f"EC2 instance types not discovered yet: {err}") from err

    def not_ready(self) -> str | None:
        """Why the provider cannot launch anything yet (the daemon's ``/readyz`` shows it), or ``None``."""
        if self.catalog.infos:
            return None
        error = self.catalog.last_error
        return "EC2 instance types not discovered yet" + (f": {error}" if error else "")

    async def _ready_node_class(self, name: str) -> EC2NodeClass:
        nc = await self.store.get(name)
        if nc is None:
            raise errors.NodeClassNotReadyError(f"EC2NodeClass {name!r} not found")
        ready = nc.ready
        if ready is None or ready.status is conditions.ConditionStatus.UNKNOWN:
            raise errors.NodeClassNotReadyError(f"EC2NodeClass {name!r} has not been resolved yet")
        if ready.status is not conditions.ConditionStatus.TRUE:
            why = "; ".join(
                f"{c.type}: {c.message}"
                for c in nc.status.conditions
                if c.type in nodeclass.CONDITION_TYPES.dependents
                and c.status is conditions.ConditionStatus.FALSE
            )
            raise errors.NodeClassNotReadyError(f"EC2NodeClass {name!r} is not ready: {why or ready.message}")
        if ready.observed_generation != nc.metadata.generation:
            raise errors.NodeClassNotReadyError(
                f"EC2NodeClass {name!r} changed and has not been resolved again"
            )
        return nc

    # -- the contract --------------------------------------------------------------------------------

    async def get_instance_types(self, nodepool: NodePool) -> Sequence[InstanceType]:
        """Every instance type the NodePool's EC2NodeClass could launch, unavailable offerings included;
        GPU, accelerator and metal types only when the NodePool's requirements ask (`offered`). Raises `NodeClassNotReadyError` when the NodeClass is missing or not Ready."""
        nc = await self._ready_node_class(nodepool.spec.template.spec.node_class_ref.name)
        await self._instance_types_known()
        return offered.offered(self.instance_types.list(nc), nodepool.requirements)

    async def create(self, nodeclaim: NodeClaim) -> NodeClaim:
        """Launch one instance for ``nodeclaim`` and return it hydrated (labels, providerID, imageID,
        capacity, allocatable, hash annotations).

        Raises `NodeClassNotReadyError` when the EC2NodeClass is missing or not Ready,
        `InsufficientCapacityError` when no offering could be launched (the failed offerings are
        remembered for 3 minutes, so the retry tries others), `CreateError` otherwise (``reason`` says
        why: ``Unauthorized``, ``QuotaExceeded``, ``SpotSLRCreationFailed``, the EC2 error code ...)."""
        nc = await self._ready_node_class(nodeclaim.spec.node_class_ref.name)
        await self._instance_types_known()
        types = self.instance_types.list(nc)
        launched = await self._launched_before(nodeclaim) or await self.launcher.launch(
            nodeclaim, nc, types, self.tags(nodeclaim, nc)
        )
        self.zones.remember(launched.instance_id, launched.zone)
        it = self.instance_types.get(nc, launched.instance_type)
        labels = {**nodeclaim.metadata.labels, **self._labels(it, launched.zone, launched.capacity_type)}
        if launched.reservation_id:
            labels[core_labels.LABEL_RESERVATION_ID] = launched.reservation_id
            self.reservation_usage.mark_launched(launched.reservation_id)
            self._launched_into[launched.instance_id] = launched.reservation_id
        annotations = {
            **nodeclaim.metadata.annotations,
            nodeclass.ANNOTATION_HASH: nc.static_hash(),
            nodeclass.ANNOTATION_HASH_VERSION: nodeclass.HASH_VERSION,
            nodeclass.ANNOTATION_INSTANCE_PROFILE: nc.status.instance_profile or "",
        }
        metadata = attrs.evolve(nodeclaim.metadata, labels=labels, annotations=annotations)
        status = attrs.evolve(
            nodeclaim.status,
            provider_id=f"aws:///{launched.zone}/{launched.instance_id}",
            image_id=launched.image_id,
            capacity=dict(it.capacity) if it else {},
            allocatable=dict(it.allocatable) if it else {},
        )
        log.info(
            "launched %s (%s %s in %s) for %s",
            launched.instance_id,
            launched.capacity_type,
            launched.instance_type,
            launched.zone,
            nodeclaim.name,
        )
        return attrs.evolve(nodeclaim, metadata=metadata, status=status)

    async def _launched_before(self, nodeclaim: NodeClaim) -> Launched | None:
        """The live instance an earlier attempt already launched for ``nodeclaim``, if any.

        A daemon killed after CreateFleet answered but before the NodeClaim's status was written would
        otherwise launch a second instance on restart and leave the first to the garbage collector. The
        instance is found by its NodeClaim tag (set by CreateFleet itself, so present from its first
        second): NodeClaim names are unique in the API, and the core keeps a deleted NodeClaim until its
        instance is gone, so a live instance with this tag can only be this NodeClaim's. moto ignores
        CreateFleet's ``ClientToken``, and a token would only cover retries within EC2's idempotency
        window; this lookup covers any restart."""
        found = await self.instances.list(
            [
                {"Name": f"tag:{TAG_NODECLAIM}", "Values": [nodeclaim.name]},
                {"Name": f"tag:{TAG_CLUSTER_NAME}", "Values": [self.settings.cluster_name]},
            ]
        )
        live = sorted((i for i in found if i.state in ("pending", "running")), key=lambda i: i.launch_time)
        if not live:
            return None
        instance = live[0]
        log.info("adopting %s, launched earlier for %s", instance.id, nodeclaim.name)
        return Launched(
            instance_id=instance.id,
            instance_type=instance.type,
            zone=instance.zone,
            subnet_id=instance.subnet_id,
            image_id=instance.image_id,
            capacity_type=core_labels.CapacityType.RESERVED
            if instance.reservation_id
            else instance.capacity_type,
            reservation_id=instance.reservation_id,
        )

    def _labels(self, it: InstanceType | None, zone: str, capacity_type: str) -> dict[str, str]:
        out = it.requirements.labels() if it is not None else {}
        out.update(
            {
                core_labels.LABEL_ZONE: zone,
                core_labels.LABEL_REGION: self.settings.region,
                core_labels.LABEL_CAPACITY_TYPE: capacity_type,
            }
        )
        return out

    async def delete(self, nodeclaim: NodeClaim) -> None:
        """Terminate the instance behind ``nodeclaim.status.providerID``.

        Raises `NodeClaimNotFoundError` once the instance is gone (terminated instances count as
        gone); until then each call returns after asking EC2 to terminate (no call while the instance is
        already ``shutting-down``). Idempotent."""
        _, instance_id = parse_provider_id(nodeclaim.status.provider_id or "")
        instance = await self.instances.get(instance_id)
        if instance.state != "shutting-down":
            await self.instances.terminate(instance_id)
            self._launched_into.pop(instance_id, None)
            reservation_id = nodeclaim.metadata.labels.get(core_labels.LABEL_RESERVATION_ID)
            if reservation_id and nodeclaim.metadata.labels.get(core_labels.LABEL_CAPACITY_TYPE) == (
                core_labels.CapacityType.RESERVED
            ):
                self.reservation_usage.mark_terminated(reservation_id)

    async def get(self, provider_id: str) -> NodeClaim:
        """The NodeClaim view of one instance. Raises `NodeClaimNotFoundError` if it is gone or the
        providerID is not an AWS one."""
        _, instance_id = parse_provider_id(provider_id)
        return await self._to_nodeclaim(await self.instances.get(instance_id))

    async def list(self) -> Sequence[NodeClaim]:
        """Every live instance tagged for this cluster, a NodePool and an EC2NodeClass."""
        found = await self.list_instances()
        return [await self._to_nodeclaim(i) for i in found]

    async def list_instances(self) -> builtins.list[Instance]:
        return await self.instances.list(
            [
                {"Name": "tag-key", "Values": [core_labels.LABEL_NODEPOOL]},
                {"Name": "tag-key", "Values": [TAG_NODECLASS]},
                {"Name": f"tag:{TAG_CLUSTER_NAME}", "Values": [self.settings.cluster_name]},
            ]
        )

    async def _to_nodeclaim(self, instance: Instance) -> NodeClaim:
        nc_name = instance.tags.get(TAG_NODECLASS, "")
        nc = await self.store.get(nc_name) if nc_name else None
        it = self.instance_types.get(nc, instance.type) if nc is not None and self.catalog.infos else None
        labels = self._labels(it, instance.zone, instance.capacity_type)
        labels[core_labels.LABEL_INSTANCE_TYPE] = instance.type
        if instance.tags.get(core_labels.LABEL_NODEPOOL):
            labels[core_labels.LABEL_NODEPOOL] = instance.tags[core_labels.LABEL_NODEPOOL]
        status: dict[str, Any] = {"providerID": instance.provider_id, "imageID": instance.image_id}
        if it is not None:
            status["capacity"] = quantity.format_resources(it.capacity)
            status["allocatable"] = quantity.format_resources(it.allocatable)
        return NodeClaim.from_dict(
            {
                "metadata": {
                    "name": instance.tags.get(TAG_NODECLAIM) or instance.id,
                    "labels": labels,
                    "creationTimestamp": instance.launch_time.astimezone(dt.UTC).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                },
                "spec": {
                    "requirements": [],
                    "nodeClassRef": {
                        "group": nodeclass.GROUP,
                        "kind": nodeclass.KIND,
                        "name": nc_name or "unknown",
                    },
                },
                "status": status,
            }
        )

    async def is_drifted(self, nodeclaim: NodeClaim) -> DriftReason | None:
        """``NodeClassDrift``, ``AMIDrift``, ``SecurityGroupDrift`` or ``SubnetDrift`` (first hit wins),
        or ``None``. ``None`` too when the NodeClass is gone or not resolved; raises
        `NodeClaimNotFoundError` when the instance is gone."""
        nc = await self.store.get(nodeclaim.spec.node_class_ref.name)
        if nc is None or not nc.status.subnets:
            return None
        _, instance_id = parse_provider_id(nodeclaim.status.provider_id or "")
        instance = await self.instances.get(instance_id)
        it = self.instance_types.get(nc, instance.type) if self.catalog.infos else None
        return drift.reason(nodeclaim, nc, instance, it)

    def repair_policies(self) -> Sequence[RepairPolicy]:
        """Node Ready False or Unknown for 30 minutes (Karpenter AWS's policy for the kubelet)."""
        return (
            RepairPolicy("Ready", "False", dt.timedelta(minutes=30)),
            RepairPolicy("Ready", "Unknown", dt.timedelta(minutes=30)),
        )

    def interruption_events(self) -> AsyncIterator[InterruptionEvent] | None:
        """Events from the ``interruption-queue`` SQS queue (each ack deletes its message), or ``None``
        when no queue is set. Never raises: a failing receive is logged and retried."""
        if self.interruption_source is None:
            return None
        return self._marking_reclaimed_spot(self.interruption_source.events())

    async def _marking_reclaimed_spot(
        self, events: AsyncIterator[InterruptionEvent]
    ) -> AsyncIterator[InterruptionEvent]:
        """Pass ``events`` on; before a spot interruption warning, mark its (spot, type, zone) offering
        unavailable as Karpenter does, so the replacement is not launched into capacity being reclaimed;
        before a capacity-reservation interruption warning, offer none of that reservation until its
        count is read again."""
        async for event in events:
            if event.kind is InterruptionKind.SPOT_INTERRUPTION:
                await self._mark_reclaimed(event.provider_id)
            elif event.kind is InterruptionKind.CAPACITY_RESERVATION_INTERRUPTION:
                await self._mark_reservation_reclaimed(event.provider_id)
            yield event

    async def _mark_reservation_reclaimed(self, provider_id: str) -> None:
        try:
            _, instance_id = parse_provider_id(provider_id)
            reservation_id = self._launched_into.get(instance_id)
            if reservation_id is None:
                reservation_id = (await self.instances.get(instance_id)).reservation_id
        except errors.NodeClaimNotFoundError as err:  # gone already, or not ours
            log.debug("reservation interruption for %s: nothing marked: %s", provider_id, err)
            return
        except Exception as err:  # never let a lookup failure stop the event stream
            log.warning("reservation interruption for %s: nothing marked: %s", provider_id, err)
            return
        if reservation_id:
            self.reservation_usage.mark_unavailable(reservation_id)
            log.info(
                "capacity reservation %s offered no more until read again: instance %s is being reclaimed",
                reservation_id, instance_id,
            )  # fmt: skip

    async def _mark_reclaimed(self, provider_id: str) -> None:
        try:
            _, instance_id = parse_provider_id(provider_id)
            instance = await self.instances.get(instance_id)
        except errors.NodeClaimNotFoundError as err:  # gone already, or not ours: nothing to learn from it
            log.debug("spot interruption for %s: offering not marked: %s", provider_id, err)
            return
        except Exception as err:  # never let a lookup failure stop the event stream
            log.warning("spot interruption for %s: offering not marked: %s", provider_id, err)
            return
        self.unavailable.mark_unavailable("spot", instance.type, instance.zone, "SpotInterruption")
        log.info(
            "spot offering %s in %s marked unavailable: instance %s is being reclaimed",
            instance.type, instance.zone, instance.id,
        )  # fmt: skip

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Discover the cluster and instance types and refresh prices (failures of the latter keep the
        static table). Raises `ConfigError` when a cluster value is missing or contradictory."""
        await self.cluster.get()
        await self.catalog.ensure()
        await self.pricing.refresh()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Background refreshes for the runtime's task group: instance types and prices (12 h), every
        EC2NodeClass's status (1 min), unused launch templates (swept every 10 s), and with an API
        server the relabelling of nodes whose capacity reservation ended (1 min). Raises `ConfigError`
        before starting when the cluster cannot be discovered (so the daemon stops with that line)."""
        await self.cluster.get()
        async with anyio.create_task_group() as tg:
            await tg.start(self.catalog.run)
            await tg.start(self.pricing.run)
            tg.start_soon(self._node_classes_loop)
            tg.start_soon(self._sweep_loop)
            if self.reservation_expiry is not None:
                tg.start_soon(self._reservation_expiry_loop, self.reservation_expiry)
            task_status.started()

    async def _node_classes_loop(self) -> None:
        while True:
            try:
                for nc in await self.store.list():
                    await self.reconcile_node_class(nc.name)
            except Exception as err:  # boundary: one bad round must not stop the loop
                log.warning("EC2NodeClass refresh failed: %s", err)
            await self._sleep(self.settings.nodeclass_refresh_seconds)

    async def _reservation_expiry_loop(self, expiry: ReservationExpiry) -> None:
        while True:
            await self._sleep(self.settings.nodeclass_refresh_seconds)
            try:
                await expiry.reconcile()
            except Exception as err:  # boundary: one bad round must not stop the loop
                log.warning("capacity reservation relabelling failed: %s", err)

    async def _sweep_loop(self) -> None:
        while True:
            await self._sleep(10)
            try:
                await self.launch_templates.sweep()
            except Exception as err:  # boundary
                log.warning("launch template cleanup failed: %s", err)

    async def close(self) -> None:
        await self.clients.close()

    async def __aenter__(self) -> AwsCloudProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
