"""The async contract a cloud provider implements, mirroring Karpenter's ``CloudProvider`` interface.

A provider plugin's ``nodesmith_cloud_provider`` hook returns an object of this shape; the NodeClaim
lifecycle, termination, garbage collection, drift and interruption reconcilers call it. Each method
states its error contract: callers rely on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from nodesmith.api.nodeclaim import NodeClaim
    from nodesmith.api.nodepool import NodePool
    from nodesmith.clock import Clock
    from nodesmith.cloudprovider.types import DriftReason, InstanceType, InterruptionEvent, RepairPolicy

__all__ = [
    "OPTIONAL_MEMBERS",
    "REQUIRED_MEMBERS",
    "Closable",
    "CloudProvider",
    "NodeClassKind",
    "ProviderContext",
    "ReportsReadiness",
    "RunsInBackground",
]


@attrs.frozen(slots=True)
class NodeClassKind:
    """A NodeClass kind a provider supports, as NodePools reference it in ``nodeClassRef``."""

    group: str
    kind: str
    version: str = "v1"

    @property
    def plural(self) -> str:
        return self.kind.lower() + "es" if self.kind.lower().endswith("s") else self.kind.lower() + "s"


@attrs.frozen(slots=True)
class ProviderContext:
    """What a provider factory receives: the cluster's name, its own settings, and a Kubernetes client.

    ``settings`` holds the provider's options (from ``NODESMITH_<PROVIDER>_*`` environment variables or
    ``--provider-setting key=value`` flags), as strings; the provider validates them and raises
    ``nodesmith.errors.ConfigError`` naming the bad one. ``kube`` is a ``nodesmith.kube.client.KubeClient``
    (typed loosely here because the contract sits below the Kubernetes layer); ``None`` for offline use
    such as ``nodesmith simulate``. ``clock`` is the daemon's one `nodesmith.clock.Clock`, for the provider's
    caches, refresh loops and timestamps; ``None`` means the system clock (`nodesmith.clock.SYSTEM`).
    """

    cluster_name: str
    settings: Mapping[str, str] = attrs.field(factory=dict)
    kube: Any = None
    clock: Clock | None = None


@runtime_checkable
class CloudProvider(Protocol):
    """Launches, finds and deletes machines for NodeClaims, and describes what it can launch."""

    @property
    def name(self) -> str:
        """The provider's name, as given to ``--provider`` (``"aws"``, ``"kwok"``)."""
        ...

    def supported_node_classes(self) -> Sequence[NodeClassKind]:
        """NodeClass kinds this provider reads; the first is the default for new NodePools."""
        ...

    async def create(self, nodeclaim: NodeClaim) -> NodeClaim:
        """Launch one machine satisfying the flexible ``nodeclaim`` and return it hydrated: labels with
        the chosen instance type, zone and capacity type, ``status.providerID``, ``imageID``, ``capacity``
        and ``allocatable``.

        Raises ``InsufficientCapacityError`` when no offering could be launched (the core deletes the
        NodeClaim and provisions its pods again; remember the failed offerings so the next try differs),
        ``NodeClassNotReadyError`` when the NodeClass is missing or not Ready, ``CreateError`` otherwise.
        """
        ...

    async def delete(self, nodeclaim: NodeClaim) -> None:
        """Start or continue deleting the machine behind ``nodeclaim.status.providerID``.

        Raises ``NodeClaimNotFoundError`` once the machine is gone; the core calls again until it does,
        so deletion must be idempotent.
        """
        ...

    async def get(self, provider_id: str) -> NodeClaim:
        """The NodeClaim view of one machine. Raises ``NodeClaimNotFoundError`` if it is gone."""
        ...

    async def list(self) -> Sequence[NodeClaim]:
        """Every machine this provider launched for this cluster (garbage collection compares it with
        the NodeClaims in the API)."""
        ...

    async def get_instance_types(self, nodepool: NodePool) -> Sequence[InstanceType]:
        """All instance types the NodePool's NodeClass could launch, unavailable offerings included
        (drift and consolidation need to see them). Raises ``NodeClassNotReadyError`` when the NodeClass
        is missing or not Ready; the NodePool is then skipped."""
        ...

    async def is_drifted(self, nodeclaim: NodeClaim) -> DriftReason | None:
        """A provider-specific reason the machine no longer matches its NodeClass (``None`` if it does)."""
        ...

    def repair_policies(self) -> Sequence[RepairPolicy]:
        """Node conditions that make a node unhealthy enough to replace, and for how long."""
        ...

    def interruption_events(self) -> AsyncIterator[InterruptionEvent] | None:
        """An async stream of interruption events, or ``None`` if this provider has no event source."""
        ...


@runtime_checkable
class RunsInBackground(Protocol):
    """A provider with background work; the runtime checks ``isinstance(provider, RunsInBackground)``."""

    async def run(self, *, task_status: TaskStatus[None] = ...) -> None:
        """Background work (catalogue and price refreshes, NodeClass status) that the runtime starts in its
        task group for the life of the process, in leaders and standbys alike; call
        ``task_status.started()`` once the provider can answer ``get_instance_types``."""
        ...


@runtime_checkable
class Closable(Protocol):
    """A provider holding clients or sessions; the runtime checks ``isinstance(provider, Closable)``."""

    async def close(self) -> None:
        """Release clients and sessions; the runtime calls it once on the way out."""
        ...


@runtime_checkable
class ReportsReadiness(Protocol):
    """A provider that can be up but unable to launch (e.g. its catalogue not discovered yet); the runtime
    checks ``isinstance(provider, ReportsReadiness)`` and answers ``/readyz`` with 503 and the reason."""

    def not_ready(self) -> str | None:
        """Why the provider cannot work yet, in one line; ``None`` when it can."""
        ...


OPTIONAL_MEMBERS = ("run", "close", "not_ready")
"""Members a provider may add: ``run`` (`RunsInBackground`), ``close`` (`Closable`) and ``not_ready``
(`ReportsReadiness`)."""

REQUIRED_MEMBERS = (
    "name",
    "supported_node_classes",
    "create",
    "delete",
    "get",
    "list",
    "get_instance_types",
    "is_drifted",
    "repair_policies",
    "interruption_events",
)
"""Members the plugin manager checks for, so a broken provider fails loudly at start-up with a name."""
