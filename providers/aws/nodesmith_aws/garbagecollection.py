"""Leaked-instance garbage collection: terminate instances tagged for this cluster that no NodeClaim owns.

An instance leaks when nodesmith launched it but the NodeClaim that asked for it is gone (a crash between
CreateFleet and the NodeClaim's status write, a NodeClaim deleted by hand). Fed by the provider's
``list`` (instances tagged with this cluster, a NodePool and an EC2NodeClass) and by a callable returning
the providerIDs of the NodeClaims in the API; consumed by the runtime, which runs
`LeakedInstanceCollector.run` (Karpenter's cadence: every 10 s for the first 20 rounds, then every
2 minutes). An instance younger than 30 seconds is left alone: its NodeClaim may not be written yet.
Only `CloudProvider` methods are used, so this works for any provider.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Set
from typing import Final

import anyio

from nodesmith import errors
from nodesmith.cloudprovider.protocol import CloudProvider

__all__ = ["MIN_AGE", "LeakedInstanceCollector"]

log = logging.getLogger(__name__)

MIN_AGE: Final = dt.timedelta(seconds=30)


class LeakedInstanceCollector:
    def __init__(
        self,
        provider: CloudProvider,
        claimed_provider_ids: Callable[[], Awaitable[Set[str]]],
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.provider = provider
        self.claimed_provider_ids = claimed_provider_ids
        self.now = now

    async def reconcile(self) -> list[str]:
        """Delete every leaked instance older than :data:`MIN_AGE`; returns their providerIDs."""
        instances = await self.provider.list()
        claimed = await self.claimed_provider_ids()
        now = self.now()
        leaked = [
            nc
            for nc in instances
            if nc.status.provider_id not in claimed
            and nc.metadata.creation_timestamp is not None
            and now - nc.metadata.creation_timestamp > MIN_AGE
        ]
        deleted = []
        for nc in leaked:
            with contextlib.suppress(errors.NodeClaimNotFoundError):
                await self.provider.delete(nc)
            log.info("deleted leaked instance %s", nc.status.provider_id)
            deleted.append(nc.status.provider_id or "")
        return deleted

    async def run(self) -> None:
        """Reconcile every 10 s for 20 rounds, then every 2 minutes, until cancelled."""
        rounds = 0
        while True:
            try:
                await self.reconcile()
                rounds += 1
            except Exception as err:  # boundary: a failed round is retried at the next tick
                log.warning("leaked-instance garbage collection failed: %s", err)
            await anyio.sleep(10 if rounds < 20 else 120)
