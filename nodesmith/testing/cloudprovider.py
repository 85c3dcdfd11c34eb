"""A fake cloud provider for tests, registered through the real plugin manager.

In the style of Karpenter's ``pkg/cloudprovider/fake``: machines live in a dict keyed by providerID, the
catalogue is a list of `InstanceType` values the test chooses (Karpenter's ``fake.InstanceTypes(5)`` by
default), and every method can be made to fail once (``next_create_error`` ...) or per NodeClass
(``instance_type_errors``), so a reconciler test can reach each numbered case without a cloud. Calls are
recorded so a test can say "create was called once".

It keeps the error contract of `nodesmith.cloudprovider.protocol` (``tests/unit/testing`` runs the
provider conformance suite against it): ``create`` is idempotent per NodeClaim name and returns a hydrated
NodeClaim, the first ``delete`` of a machine removes it and the next raises `NodeClaimNotFoundError`.

Use `plugins` to get a `nodesmith.cloudprovider.manager.Plugins` whose ``cloud_provider("fake", ...)`` is
the given fake, so the code under test builds its provider the way the daemon does.
"""

from __future__ import annotations

import itertools
import typing
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Final

import anyio
import attrs

from nodesmith import errors
from nodesmith.api import labels, nodeclaim, nodepool, quantity
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.hookspecs import hookimpl
from nodesmith.cloudprovider.protocol import CloudProvider, NodeClassKind, ProviderContext
from nodesmith.cloudprovider.types import DriftReason, InstanceType, InterruptionEvent, Offering, RepairPolicy
from nodesmith.testing import factories

__all__ = [
    "GROUP",
    "KIND",
    "PROVIDER_ID_PREFIX",
    "PROVIDER_NAME",
    "FakeCloudProvider",
    "FakeProviderPlugin",
    "plugins",
    "ref",
]

PROVIDER_NAME: Final = "fake"
GROUP: Final = "fake.nodesmith.io"
KIND: Final = "FakeNodeClass"
PROVIDER_ID_PREFIX: Final = "fake://"


@typing.final
@attrs.define(eq=False)
class FakeCloudProvider:
    """An in-memory `CloudProvider`; tests set the public fields and read the recorded calls."""

    instance_types: list[InstanceType] = attrs.field(factory=lambda: factories.fake_instance_types(5))
    drifted: DriftReason | None = None
    """What ``is_drifted`` answers for every machine (Karpenter's ``Drifted``)."""
    instance_type_errors: dict[str, Exception] = attrs.field(factory=dict)
    """NodeClass name → the error ``get_instance_types`` raises for NodePools using it."""
    next_create_error: Exception | None = None
    next_delete_error: Exception | None = None
    next_get_error: Exception | None = None
    repair: Sequence[RepairPolicy] = (
        RepairPolicy("Ready", "False", timedelta(minutes=30)),
        RepairPolicy("Ready", "Unknown", timedelta(minutes=30)),
    )
    machines: dict[str, nodeclaim.NodeClaim] = attrs.field(factory=dict)
    """providerID → the NodeClaim view of a live machine."""
    create_calls: list[nodeclaim.NodeClaim] = attrs.field(factory=list)
    delete_calls: list[nodeclaim.NodeClaim] = attrs.field(factory=list)
    get_calls: list[str] = attrs.field(factory=list)
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    _events: tuple[typing.Any, typing.Any] | None = None

    # -- identity ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return PROVIDER_NAME

    def supported_node_classes(self) -> Sequence[NodeClassKind]:
        return (NodeClassKind(GROUP, KIND),)

    def repair_policies(self) -> Sequence[RepairPolicy]:
        return tuple(self.repair)

    def reset(self) -> None:
        """Forget machines, recorded calls and armed errors (between tests sharing one fake)."""
        self.machines.clear()
        self.create_calls.clear()
        self.delete_calls.clear()
        self.get_calls.clear()
        self.next_create_error = self.next_delete_error = self.next_get_error = None
        self.instance_type_errors.clear()
        self.drifted = None

    # -- interruption --------------------------------------------------------------------------------

    def interruption_events(self) -> AsyncIterator[InterruptionEvent] | None:
        """The events `interrupt` sends, in order; ``None`` until the first `interrupt` (no event source)."""
        if self._events is None:
            return None
        return typing.cast(AsyncIterator[InterruptionEvent], self._events[1])

    def interrupt(self, event: InterruptionEvent) -> None:
        """Queue one interruption event for the stream `interruption_events` returns."""
        if self._events is None:
            self._events = anyio.create_memory_object_stream[InterruptionEvent](1000)
        self._events[0].send_nowait(event)

    # -- instance types ------------------------------------------------------------------------------

    async def get_instance_types(self, pool: nodepool.NodePool) -> Sequence[InstanceType]:
        error = self.instance_type_errors.get(pool.spec.template.spec.node_class_ref.name)
        if error is not None:
            raise error
        return list(self.instance_types)

    # -- machines --------------------------------------------------------------------------------------

    async def create(self, claim: nodeclaim.NodeClaim) -> nodeclaim.NodeClaim:
        """The cheapest available offering compatible with the claim; `InsufficientCapacityError` if none."""
        self.create_calls.append(claim)
        if self.next_create_error is not None:
            error, self.next_create_error = self.next_create_error, None
            raise error
        for machine in self.machines.values():
            if machine.name == claim.name:
                return machine
        choice = self._cheapest(claim)
        if choice is None:
            raise errors.InsufficientCapacityError(f"no available fake offering fits NodeClaim {claim.name}")
        it, offering = choice
        provider_id = f"{PROVIDER_ID_PREFIX}{next(self._ids)}"
        machine = nodeclaim.NodeClaim.from_dict(
            {
                "apiVersion": nodeclaim.API_VERSION,
                "kind": nodeclaim.KIND,
                "metadata": {
                    "name": claim.name,
                    "labels": {
                        **claim.metadata.labels,
                        **it.requirements.labels(),
                        labels.LABEL_ZONE: offering.zone,
                        labels.LABEL_CAPACITY_TYPE: offering.capacity_type,
                    },
                },
                "spec": {"nodeClassRef": claim.spec.node_class_ref.to_dict(), "requirements": []},
                "status": {
                    "providerID": provider_id,
                    "imageID": "fake-image",
                    "capacity": quantity.format_resources(it.capacity),
                    "allocatable": quantity.format_resources(it.allocatable),
                },
            }
        )
        self.machines[provider_id] = machine
        return machine

    def _cheapest(self, claim: nodeclaim.NodeClaim) -> tuple[InstanceType, Offering] | None:
        reqs = claim.requirements
        best: tuple[float, str, str, str] | None = None
        choice: tuple[InstanceType, Offering] | None = None
        for it in self.instance_types:
            if not it.requirements.intersects(reqs):
                continue
            for offering in it.offerings:
                if not offering.available or not offering.is_compatible(reqs):
                    continue
                rank = (offering.price, it.name, offering.zone, offering.capacity_type)
                if best is None or rank < best:
                    best, choice = rank, (it, offering)
        return choice

    async def delete(self, claim: nodeclaim.NodeClaim) -> None:
        """Remove the machine; `NodeClaimNotFoundError` once it is gone (or never existed)."""
        self.delete_calls.append(claim)
        if self.next_delete_error is not None:
            error, self.next_delete_error = self.next_delete_error, None
            raise error
        if self.machines.pop(claim.status.provider_id or "", None) is None:
            raise errors.NodeClaimNotFoundError(f"{claim.status.provider_id!r} is gone")

    async def get(self, provider_id: str) -> nodeclaim.NodeClaim:
        self.get_calls.append(provider_id)
        if self.next_get_error is not None:
            error, self.next_get_error = self.next_get_error, None
            raise error
        try:
            return self.machines[provider_id]
        except KeyError:
            raise errors.NodeClaimNotFoundError(f"{provider_id!r} not found") from None

    async def list(self) -> Sequence[nodeclaim.NodeClaim]:
        return list(self.machines.values())

    async def is_drifted(self, claim: nodeclaim.NodeClaim) -> DriftReason | None:
        return self.drifted


@typing.final
@attrs.frozen
class FakeProviderPlugin:
    """The pluggy plugin that offers one `FakeCloudProvider` as provider ``fake``."""

    provider: FakeCloudProvider

    @hookimpl
    def nodesmith_provider_names(self) -> Sequence[str]:
        return [PROVIDER_NAME]

    @hookimpl
    def nodesmith_cloud_provider(self, name: str, context: ProviderContext) -> CloudProvider | None:
        return self.provider if name == PROVIDER_NAME else None


def plugins(provider: FakeCloudProvider, *others: object) -> manager.Plugins:
    """A plugin manager (no entry points loaded) offering ``provider`` as ``fake``, plus ``others``."""
    return manager.Plugins(load_entry_points=False, plugins=[FakeProviderPlugin(provider), *others])


def ref(name: str = "default") -> Mapping[str, str]:
    """A ``nodeClassRef`` to a fake NodeClass called ``name``."""
    return {"group": GROUP, "kind": KIND, "name": name}
