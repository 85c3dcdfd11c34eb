"""The one clock the daemon reads: wall time, monotonic time, sleeps and deadlines.

Why one object rather than ``datetime.now`` here and ``anyio.sleep`` there: every decision that depends on
time (expiry, TTL caches, batch windows, requeue delays, backoff, lease renewal) must move when a test
moves time, or the test has to wait in real time. The composition root (`nodesmith.runtime.app`) builds a
`SystemClock` once and hands it to the cluster state, every reconciler, queue and cache and to the
provider (through ``ProviderContext.clock``); tests hand them `nodesmith.testing.clock.FakeClock` and
step it. The pure simulation never sees a clock: it gets ``now`` and deadlines as values.

Not for process plumbing: HTTP and shutdown timeouts (``anyio.fail_after`` around an API call, the five
seconds a release gets on the way out) stay on real time, since no decision hangs on them.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import typing
from typing import Protocol

import anyio

__all__ = ["SYSTEM", "Clock", "SystemClock"]


@typing.runtime_checkable
class Clock(Protocol):
    """Time as reconcilers, queues and caches read it."""

    def now(self) -> dt.datetime:
        """Wall time, timezone-aware UTC: what is compared with Kubernetes timestamps."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for intervals, TTLs and deadlines."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once `monotonic` reaches ``deadline``."""
        ...

    async def wait(self, event: anyio.Event, timeout: float) -> bool:
        """Wait for ``event`` at most ``timeout`` seconds (``math.inf``: no limit); ``True`` if it is set."""
        ...


@typing.final
class SystemClock:
    """The real clock: the system's UTC wall time, ``time.monotonic`` and anyio's sleeps."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        # time.monotonic, not anyio.current_time: callable outside an event loop too (a cache read from a
        # synchronous path), and the same clock asyncio's loop uses.
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep(max(0.0, deadline - time.monotonic()))

    async def wait(self, event: anyio.Event, timeout: float) -> bool:
        if timeout > 0 and not math.isnan(timeout):
            with anyio.move_on_after(timeout):
                await event.wait()
        return event.is_set()


SYSTEM: typing.Final = SystemClock()
"""The process's real clock; the default wherever a collaborator is built outside the composition root."""
