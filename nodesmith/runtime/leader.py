"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's timing rules.

The runtime runs one elector per process; only while it leads does it run the reconcilers. A standby
tries to take the lease every ``retry_period`` and gets it once the holder has not renewed for
``lease_duration``. The leader renews every ``retry_period``; if it cannot renew for ``renew_deadline`` it
stops leading (its reconcilers are cancelled and ``LeadershipLost`` is raised, so the process exits and
restarts as a standby — two leaders must never act at once). On a clean stop it releases the lease so a
standby takes over at once instead of after ``lease_duration``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio
import attrs

from nodesmith import errors
from nodesmith.clock import SYSTEM, Clock
from nodesmith.kube import errors as kube_errors
from nodesmith.kube.leases import Lease, LeaseClient

__all__ = ["LeaderElector", "LeadershipLost"]

log = logging.getLogger(__name__)


class LeadershipLost(errors.NodesmithError):
    """Raised when the leader could not renew its lease within the renew deadline."""


@attrs.define
class LeaderElector:
    """Acquires, renews and releases one Lease for this process (``leases.identity``)."""

    leases: LeaseClient
    name: str
    namespace: str
    lease_duration: timedelta
    renew_deadline: timedelta
    retry_period: timedelta
    clock: Clock = SYSTEM
    on_change: Callable[[bool], None] = lambda leading: None
    leading: bool = attrs.field(init=False, default=False)
    _held: Lease | None = attrs.field(init=False, default=None)
    """The lease as last written by a renewal: releasing needs its current resourceVersion."""

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Wait for the lease, then run ``lead()`` while holding it; release it when ``lead`` ends or is
        cancelled. Raises ``LeadershipLost`` if renewal fails for longer than the renew deadline."""
        lease = self._held = await self._acquire()
        self._set_leading(True)
        log.info(
            "became leader",
            extra={"lease": f"{self.namespace}/{self.name}", "identity": self.leases.identity},
        )
        lost = False
        try:
            async with anyio.create_task_group() as group:

                async def lead_then_stop() -> None:
                    await lead()
                    group.cancel_scope.cancel()

                async def renew_or_stop() -> None:
                    nonlocal lost
                    await self._renew_forever(lease)
                    lost = True
                    group.cancel_scope.cancel()

                group.start_soon(renew_or_stop)
                group.start_soon(lead_then_stop)
        finally:
            self._set_leading(False)
            if not lost:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await self._release(self._held or lease)
        if lost:
            raise LeadershipLost(
                f"could not renew lease {self.namespace}/{self.name} within {self.renew_deadline}"
            )

    async def _acquire(self) -> Lease:
        seconds = max(1, int(self.lease_duration.total_seconds()))
        while True:
            try:
                lease = await self.leases.try_acquire(self.name, self.namespace, seconds)
            except kube_errors.KubeError as err:
                log.warning("leader election: cannot read lease: %s", err)
                lease = None
            if lease is not None:
                return lease
            await self.clock.sleep(self.retry_period.total_seconds())

    async def _renew_forever(self, lease: Lease) -> Lease:
        """Renew every retry period; return (having lost) once renewal has failed for the renew deadline."""
        last_renewed = self.clock.monotonic()
        while True:
            await self.clock.sleep(self.retry_period.total_seconds())
            try:
                lease = self._held = await self.leases.renew(lease)
                last_renewed = self.clock.monotonic()
                continue
            except kube_errors.ConflictError:
                current = await self._reread()
                if current is not None and current.holder == self.leases.identity:
                    lease = self._held = current
                    continue
                log.error("leader election: lease taken by %s", current.holder if current else "nobody")
                return lease
            except kube_errors.KubeError as err:
                log.warning("leader election: renew failed: %s", err)
            if self.clock.monotonic() - last_renewed >= self.renew_deadline.total_seconds():
                return lease

    async def _reread(self) -> Lease | None:
        try:
            return await self.leases.get(self.name, self.namespace)
        except kube_errors.KubeError:
            return None

    async def _release(self, lease: Lease) -> None:
        try:
            released = await self.leases.release(lease)
        except kube_errors.KubeError as err:
            log.warning("leader election: release failed: %s", err)
            return
        if released:
            log.info("released leadership", extra={"lease": f"{self.namespace}/{self.name}"})
        else:
            log.info("leadership not released: the lease is no longer ours")

    def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        self.on_change(leading)
