"""A `nodesmith.clock.Clock` that tests step by hand instead of waiting.

``step(seconds)`` moves wall and monotonic time forward together and wakes, in deadline order, every task
sleeping on this clock whose deadline has passed; the woken tasks run the next time the test yields (say,
``await anyio.wait_all_tasks_blocked()``). Nothing moves on its own, so a test of a batch window or a
requeue delay is exact and instant. Modelled on trio's ``MockClock`` (including its ``rate``) and
Karpenter's fake clock ``Step``.

``rate`` > 0 lets time also flow with the real clock (``rate`` seconds per real second), for tests against
the real control plane: timestamps the API server writes stay comparable with ``now()``, reconcilers'
polls still happen, and the test still jumps over the long waits (grace periods, expiry) with ``step``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
import typing
from collections.abc import Iterator

import anyio

__all__ = ["T0", "FakeClock"]

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
"""Where a stepped clock starts unless told otherwise."""


@typing.final
class FakeClock:
    """A stepped clock: ``FakeClock()`` stands still at `T0`; ``FakeClock(start, rate=1.0)`` also runs."""

    def __init__(self, start: dt.datetime = T0, *, rate: float = 0.0) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self._start = start
        self._rate = rate
        self._stepped = 0.0
        self._real_start = time.monotonic()
        self._sleepers: dict[int, tuple[float, anyio.CancelScope]] = {}
        self._seq = 0
        self._slept: anyio.Event | None = None

    # -- reading ------------------------------------------------------------------------------------

    def _elapsed(self) -> float:
        flowing = (time.monotonic() - self._real_start) * self._rate if self._rate else 0.0
        return self._stepped + flowing

    def now(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=self._elapsed())

    def monotonic(self) -> float:
        return self._elapsed()

    # -- moving -------------------------------------------------------------------------------------

    def step(self, seconds: float | dt.timedelta) -> None:
        """Move time forward and wake every sleeper whose deadline has now passed."""
        amount = seconds.total_seconds() if isinstance(seconds, dt.timedelta) else float(seconds)
        if amount < 0 or math.isnan(amount):
            raise ValueError(f"a clock only steps forward, not by {amount}")
        self._stepped += amount
        now = self.monotonic()
        for seq, (deadline, scope) in sorted(self._sleepers.items(), key=lambda item: (item[1][0], item[0])):
            if deadline <= now:
                del self._sleepers[seq]
                scope.cancel()

    @property
    def sleepers(self) -> int:
        """How many tasks sleep on this clock right now (a test waits for its subject to go to sleep)."""
        return len(self._sleepers)

    def next_deadline(self) -> float | None:
        """The earliest finite monotonic deadline anyone sleeps until, or ``None``."""
        finite = (deadline for deadline, _ in self._sleepers.values() if not math.isinf(deadline))
        return min(finite, default=None)

    async def sleeping(self) -> float:
        """Wait until some task sleeps on this clock until a finite deadline; return the earliest one.

        Lets a test step exactly as far as its subject waits (`expectations.expect_reconciled_stepping`)
        without polling: every new sleeper wakes this up."""
        while (deadline := self.next_deadline()) is None:
            self._slept = anyio.Event()
            await self._slept.wait()
        return deadline

    # -- sleeping -----------------------------------------------------------------------------------
    # A sleeper is a cancel scope `step` cancels once its deadline has passed; with a ``rate`` the scope
    # also gets the real-time deadline at which the flowing clock reaches it.

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.monotonic() + seconds)

    async def sleep_until(self, deadline: float) -> None:
        await anyio.lowlevel.checkpoint()
        while self.monotonic() < deadline:
            with self._until(deadline):
                await anyio.sleep_forever()

    async def wait(self, event: anyio.Event, timeout: float) -> bool:
        if event.is_set() or timeout <= 0:
            return event.is_set()
        deadline = self.monotonic() + timeout
        while not event.is_set() and self.monotonic() < deadline:
            with self._until(deadline):
                await event.wait()
        return event.is_set()

    @contextlib.contextmanager
    def _until(self, deadline: float) -> Iterator[None]:
        scope = anyio.CancelScope()
        if self._rate and not math.isinf(deadline):
            scope.deadline = anyio.current_time() + (deadline - self.monotonic()) / self._rate
        self._seq += 1
        seq = self._seq
        self._sleepers[seq] = (deadline, scope)
        if self._slept is not None:
            self._slept.set()
        try:
            with scope:
                yield
        finally:
            self._sleepers.pop(seq, None)
