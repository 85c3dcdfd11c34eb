"""The leader elector's timing rules on a stepped clock: a standby retries every retry period, a leader
renews every retry period, and one that cannot renew for the renew deadline stops leading (its work is
cancelled and ``LeadershipLost`` is raised); a clean stop releases the lease."""

from __future__ import annotations

import datetime as dt

import anyio
import pytest

from nodesmith.kube import errors as kube_errors
from nodesmith.kube.leases import Lease
from nodesmith.runtime import leader
from nodesmith.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

settle = anyio.wait_all_tasks_blocked


class Leases:
    """A lease client whose API answers the test scripts: ``free`` lets acquisition succeed, ``renewing``
    lets renewals succeed; every call is recorded with the clock's time."""

    identity = "me"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.free = False
        self.renewing = True
        self.calls: list[tuple[str, float]] = []

    def _lease(self) -> Lease:
        return Lease("l", "ns", self.identity, 15, None, self.clock.now(), 0, "1")

    async def try_acquire(self, name: str, namespace: str, duration_seconds: int) -> Lease | None:
        self.calls.append(("acquire", self.clock.monotonic()))
        return self._lease() if self.free else None

    async def renew(self, lease: Lease) -> Lease:
        self.calls.append(("renew", self.clock.monotonic()))
        if not self.renewing:
            raise kube_errors.APIUnavailableError("down")
        return self._lease()

    async def get(self, name: str, namespace: str) -> Lease | None:
        return self._lease()

    async def release(self, lease: Lease) -> None:
        self.calls.append(("release", self.clock.monotonic()))


def elector(clock: FakeClock, leases: Leases) -> leader.LeaderElector:
    return leader.LeaderElector(
        leases,  # type: ignore[arg-type]  # a scripted stand-in for the lease client
        "l",
        "ns",
        lease_duration=dt.timedelta(seconds=15),
        renew_deadline=dt.timedelta(seconds=10),
        retry_period=dt.timedelta(seconds=2),
        clock=clock,
    )


async def test_a_standby_retries_every_retry_period_and_leads_once_the_lease_is_free() -> None:
    clock = FakeClock()
    leases = Leases(clock)
    subject = elector(clock, leases)
    led = anyio.Event()

    async def lead() -> None:
        led.set()

    async with anyio.create_task_group() as group:
        group.start_soon(subject.run, lead)
        await settle()
        for _ in range(2):
            clock.step(2)
            await settle()
        assert [c for c in leases.calls if c[0] == "acquire"] == [
            ("acquire", 0),
            ("acquire", 2),
            ("acquire", 4),
        ]
        assert not led.is_set()
        leases.free = True
        clock.step(2)
        await settle()
        group.cancel_scope.cancel()  # fail, not hang, if the elector is still waiting
    assert led.is_set()
    assert leases.calls[-1] == ("release", 6)  # lead() returned: a clean stop releases at once


async def test_a_leader_that_cannot_renew_for_the_renew_deadline_stops_leading() -> None:
    clock = FakeClock()
    leases = Leases(clock)
    leases.free = True
    subject = elector(clock, leases)
    cancelled = False

    async def lead() -> None:
        nonlocal cancelled
        try:
            await anyio.sleep_forever()
        finally:
            cancelled = True

    lost: list[leader.LeadershipLost] = []

    async def run() -> None:
        try:
            await subject.run(lead)
        except leader.LeadershipLost as err:
            lost.append(err)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await settle()
        clock.step(2)
        await settle()
        assert subject.leading
        leases.renewing = False  # renewed at 2; from now on every renewal fails
        for _ in range(4):  # 4, 6, 8, 10: still within the 10 s deadline after the renewal at 2
            clock.step(2)
            await settle()
        assert subject.leading
        assert not cancelled
        clock.step(2)  # 12: 10 s without a renewal
        await settle()
        group.cancel_scope.cancel()  # whatever is still running: the elector should have given up by now
    assert len(lost) == 1
    assert cancelled
    assert not subject.leading
    assert ("release", 12) not in leases.calls  # a lost lease is not released
    assert [t for kind, t in leases.calls if kind == "renew"] == [2, 4, 6, 8, 10, 12]
