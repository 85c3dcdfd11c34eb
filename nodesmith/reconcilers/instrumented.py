"""A `CloudProvider` decorator that records every call's duration and errors (Karpenter's
``pkg/cloudprovider/metrics`` decorator): ``nodesmith_cloudprovider_duration_seconds{method, provider}``
and ``nodesmith_cloudprovider_errors_total{method, provider, error}``.

Built once by the composition root (`nodesmith.reconcilers.controllers.build`) around the provider the
plugin returned, and handed to every reconciler instead of the bare provider. Errors pass through
unchanged (``NodeClaimNotFoundError`` from ``delete`` is the expected end of a deletion; it is counted all
the same, with its class name, so dashboards can tell it apart).
"""

from __future__ import annotations

import contextlib
import time
import typing
from collections.abc import AsyncIterator, Iterator, Sequence

from nodesmith import metrics
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.api.nodepool import NodePool
from nodesmith.cloudprovider.protocol import CloudProvider, NodeClassKind
from nodesmith.cloudprovider.types import DriftReason, InstanceType, InterruptionEvent, RepairPolicy

__all__ = ["InstrumentedProvider"]


@typing.final
class InstrumentedProvider:
    """Wraps ``inner``; same contract, plus metrics."""

    def __init__(self, inner: CloudProvider) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @contextlib.contextmanager
    def _measured(self, method: str) -> Iterator[None]:
        attributes = {"method": method, "provider": self.inner.name}
        started = time.perf_counter()
        try:
            yield
        except Exception as err:
            metrics.CLOUDPROVIDER_ERRORS.add(1, {**attributes, "error": type(err).__name__})
            raise
        finally:
            metrics.CLOUDPROVIDER_DURATION.record(time.perf_counter() - started, attributes)

    def supported_node_classes(self) -> Sequence[NodeClassKind]:
        return self.inner.supported_node_classes()

    async def create(self, nodeclaim: NodeClaim) -> NodeClaim:
        with self._measured("Create"):
            return await self.inner.create(nodeclaim)

    async def delete(self, nodeclaim: NodeClaim) -> None:
        with self._measured("Delete"):
            await self.inner.delete(nodeclaim)

    async def get(self, provider_id: str) -> NodeClaim:
        with self._measured("Get"):
            return await self.inner.get(provider_id)

    async def list(self) -> Sequence[NodeClaim]:
        with self._measured("List"):
            return await self.inner.list()

    async def get_instance_types(self, nodepool: NodePool) -> Sequence[InstanceType]:
        with self._measured("GetInstanceTypes"):
            return await self.inner.get_instance_types(nodepool)

    async def is_drifted(self, nodeclaim: NodeClaim) -> DriftReason | None:
        with self._measured("IsDrifted"):
            return await self.inner.is_drifted(nodeclaim)

    def repair_policies(self) -> Sequence[RepairPolicy]:
        return self.inner.repair_policies()

    def interruption_events(self) -> AsyncIterator[InterruptionEvent] | None:
        return self.inner.interruption_events()
