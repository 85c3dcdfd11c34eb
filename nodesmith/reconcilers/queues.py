"""The async primitives reconcilers share: a batching window, a keyed work queue, and `every` (a
singleton reconciler's periodic loop).

Why not the standard ones: an ``anyio`` memory stream delivers every item, but a reconciler wants *keys*
deduplicated (ten updates of one NodeClaim are one reconcile), retried with per-key backoff or after a
requested delay, and never processed by two workers at once; and the provisioner wants Karpenter's batch
window (close after ``idle`` without a new trigger, or after ``max`` regardless), which no stream offers.
All three read time only through the `nodesmith.clock.Clock` they are given (the daemon's one clock), so
tests drive them by stepping a ``nodesmith.testing.clock.FakeClock``.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio
from opentelemetry import trace

from nodesmith import metrics
from nodesmith.clock import Clock

__all__ = ["Batcher", "WorkQueue", "every"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("nodesmith")

K = TypeVar("K", bound=Hashable)


class Batcher:
    """Karpenter's provisioning batch window.

    ``trigger(key)`` is cheap and idempotent within a window. ``wait()`` returns ``False`` if nothing was
    triggered within ``idle``; otherwise it keeps the window open until ``idle`` passes with no new trigger
    or ``max`` passes in all, then returns ``True``.

    A key (a pod's UID) triggers once per window, as in Karpenter's batcher: a pod already counted in the
    open window does not extend it again. Without that, kube-scheduler rewriting the ``PodScheduled``
    condition of pods already pending (its message names the node count, which changes with every new
    node) kept the window open to ``max`` after the last new pod had arrived. ``trigger()`` without a
    key always extends the window.
    """

    def __init__(self, idle: float, maximum: float, *, clock: Clock) -> None:
        self.idle = idle
        self.maximum = maximum
        self._clock = clock
        self._event = anyio.Event()
        self._last_trigger = -math.inf
        self._seen: set[Hashable] = set()

    def trigger(self, key: Hashable | None = None) -> None:
        if key is not None:
            if key in self._seen:
                return
            self._seen.add(key)
        self._last_trigger = self._clock.monotonic()
        self._event.set()

    async def wait(self) -> bool:
        try:
            return await self._window()
        finally:
            self._seen.clear()  # the next window counts every key afresh

    async def _window(self) -> bool:
        if not await self._clock.wait(self._event, self.idle):
            return False
        started = self._clock.monotonic()
        while True:
            self._event = anyio.Event()
            now = self._clock.monotonic()
            remaining_max = started + self.maximum - now
            remaining_idle = self._last_trigger + self.idle - now
            if remaining_max <= 0 or remaining_idle <= 0:
                break
            await self._clock.wait(self._event, min(remaining_max, remaining_idle))
        self._event = anyio.Event()
        return True


class WorkQueue(Generic[K]):
    """Deduplicating keyed queue with delayed requeue and at most one worker per key.

    ``add(key)`` schedules a key now, ``add_after(key, seconds)`` later (the earliest request wins). ``run``
    starts ``workers`` tasks that call ``handler(key)``; the handler returns a delay in seconds to requeue
    after, or ``None`` when done. A handler exception is logged and counted, and the key is retried with
    exponential backoff (``base_backoff`` doubling to ``max_backoff``); the queue itself never dies of it.
    """

    def __init__(
        self,
        name: str,
        handler: Callable[[K], Awaitable[float | None]],
        *,
        workers: int = 4,
        base_backoff: float = 0.5,
        max_backoff: float = 60.0,
        clock: Clock,
    ) -> None:
        self.name = name
        self._handler = handler
        self._workers = workers
        self._base = base_backoff
        self._max = max_backoff
        self._clock = clock
        self._ready: list[K] = []
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._failures: dict[K, int] = {}
        self._seq = 0
        self._wakeup = anyio.Event()

    def __len__(self) -> int:
        return len(self._queued) + len(self._due)

    def add(self, key: K) -> None:
        """Process ``key`` as soon as a worker is free (once, however often it is added meanwhile)."""
        self._due.pop(key, None)
        if key in self._active:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._wakeup.set()

    def add_after(self, key: K, seconds: float) -> None:
        """Process ``key`` after ``seconds`` unless it is due sooner already."""
        if seconds <= 0:
            self.add(key)
            return
        when = self._clock.monotonic() + seconds
        if key in self._queued or self._due.get(key, math.inf) <= when:
            return
        self._due[key] = when
        self._seq += 1
        heapq.heappush(self._delayed, (when, self._seq, key))
        self._wakeup.set()

    def _promote_due(self) -> float | None:
        now = self._clock.monotonic()
        while self._delayed:
            when, _, key = self._delayed[0]
            if self._due.get(key) != when:
                heapq.heappop(self._delayed)  # superseded
                continue
            if when > now:
                return when - now
            heapq.heappop(self._delayed)
            del self._due[key]
            self.add(key)
        return None

    async def _next(self) -> K:
        while True:
            wait = self._promote_due()
            if self._ready:
                key = self._ready.pop(0)
                self._queued.discard(key)
                self._active.add(key)
                return key
            # Idle workers share one event: a worker that replaced it unconditionally stranded the
            # others on events nobody would set again, and the queue ran one key at a time.
            if self._wakeup.is_set():
                self._wakeup = anyio.Event()
            await self._clock.wait(self._wakeup, wait if wait is not None else math.inf)

    async def _work(self) -> None:
        while True:
            key = await self._next()
            try:
                with tracer.start_as_current_span(f"{self.name}.reconcile", attributes={"key": str(key)}):
                    delay = await self._handler(key)
            except Exception:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(self._max, self._base * 2 ** (failures - 1))
                log.exception(
                    "%s: reconciling %s failed (attempt %d); retrying in %.1fs",
                    self.name,
                    key,
                    failures,
                    delay,
                )
                metrics.RECONCILE_ERRORS.add(1, {"reconciler": self.name})
            else:
                self._failures.pop(key, None)
            finally:
                self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif delay is not None:
                self.add_after(key, delay)

    async def run(self) -> None:
        """Run the workers until cancelled."""
        async with anyio.create_task_group() as group:
            for index in range(self._workers):
                group.start_soon(self._work, name=f"{self.name}-worker-{index}")


async def every(
    interval: float, name: str, one_pass: Callable[[], Awaitable[object]], *, clock: Clock
) -> None:
    """Run ``one_pass`` every ``interval`` seconds until cancelled. A pass that raises is logged and
    counted (``reconciler=name``), and the next one runs on time: a bug in one pass must not stop the
    leader's other reconcilers."""
    while True:
        try:
            await one_pass()
        except Exception:
            log.exception("%s: pass failed; next in %.0fs", name, interval)
            metrics.RECONCILE_ERRORS.add(1, {"reconciler": name})
        await clock.sleep(interval)
