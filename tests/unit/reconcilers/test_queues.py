"""The batch window, the keyed work queue and the periodic loop, driven by a stepped clock: every window,
delay and backoff is checked to the second, and no test waits in real time."""

from __future__ import annotations

import itertools

import anyio
import pytest

from nodesmith.reconcilers import queues
from nodesmith.reconcilers.queues import Batcher, WorkQueue
from nodesmith.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

settle = anyio.wait_all_tasks_blocked
"""Let every task run until it waits (on the clock, an event or a lock)."""


class Window:
    """One `Batcher.wait` running in the background; ``result`` is set when it returns."""

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher
        self.result: bool | None = None

    async def run(self) -> None:
        self.result = await self.batcher.wait()


async def test_batcher_returns_false_after_idle_when_nothing_is_triggered() -> None:
    clock = FakeClock()
    window = Window(Batcher(idle=1, maximum=10, clock=clock))
    async with anyio.create_task_group() as group:
        group.start_soon(window.run)
        await settle()
        clock.step(0.99)
        await settle()
        assert window.result is None
        clock.step(0.01)
    assert window.result is False


async def test_batcher_closes_after_idle_without_new_triggers() -> None:
    clock = FakeClock()
    batcher = Batcher(idle=1, maximum=10, clock=clock)
    window = Window(batcher)
    async with anyio.create_task_group() as group:
        group.start_soon(window.run)
        await settle()
        clock.step(0.5)
        batcher.trigger()  # opens the window at t=0.5; it closes at 1.5 unless triggered again
        await settle()
        clock.step(0.9)
        await settle()
        assert window.result is None
        clock.step(0.1)
    assert window.result is True
    assert clock.monotonic() == 1.5


async def test_each_trigger_extends_the_idle_window() -> None:
    clock = FakeClock()
    batcher = Batcher(idle=1, maximum=10, clock=clock)
    window = Window(batcher)
    batcher.trigger()
    async with anyio.create_task_group() as group:
        group.start_soon(window.run)
        for _ in range(3):
            await settle()
            clock.step(0.8)
            batcher.trigger()
        await settle()
        assert window.result is None  # t=2.4, last trigger at 2.4: open until 3.4
        clock.step(0.99)
        await settle()
        assert window.result is None
        clock.step(0.01)
    assert window.result is True


async def test_batcher_closes_at_max_even_while_triggers_keep_coming() -> None:
    clock = FakeClock()
    batcher = Batcher(idle=1, maximum=4, clock=clock)
    window = Window(batcher)
    batcher.trigger()
    async with anyio.create_task_group() as group:
        group.start_soon(window.run)
        await settle()
        while window.result is None:
            assert clock.monotonic() < 4
            clock.step(0.5)
            batcher.trigger()
            await settle()
    assert window.result is True
    assert clock.monotonic() == 4


async def test_a_key_already_in_the_window_does_not_extend_it() -> None:
    """Karpenter's batcher counts a pod once per window: kube-scheduler rewriting the status of a pod
    that is already pending must not hold the window open past ``idle`` after the last new pod."""
    clock = FakeClock()
    batcher = Batcher(idle=1, maximum=10, clock=clock)
    window = Window(batcher)
    batcher.trigger("pod-a")
    async with anyio.create_task_group() as group:
        group.start_soon(window.run)
        await settle()
        clock.step(0.5)
        batcher.trigger("pod-b")  # new in this window: open until 1.5
        await settle()
        clock.step(0.5)
        batcher.trigger("pod-a")  # seen in this window: ignored
        batcher.trigger("pod-b")
        await settle()
        clock.step(0.5)
        await settle()
        closed_at_idle = window.result
        group.cancel_scope.cancel()
    assert closed_at_idle is True


async def test_keys_count_again_in_the_next_window() -> None:
    clock = FakeClock()
    batcher = Batcher(idle=1, maximum=10, clock=clock)
    first, second = Window(batcher), Window(batcher)
    batcher.trigger("pod-a")
    async with anyio.create_task_group() as group:
        group.start_soon(first.run)
        await settle()
        clock.step(1)
    assert first.result is True
    async with anyio.create_task_group() as group:
        group.start_soon(second.run)
        await settle()
        batcher.trigger("pod-a")  # a pod still pending in the next window opens it again
        await settle()
        clock.step(1)
    assert second.result is True
    assert clock.monotonic() == 2


async def test_work_queue_runs_as_many_keys_at_once_as_it_has_workers() -> None:
    """Each worker must hear of new keys: the NodeClaim lifecycle launches and registers with 16 workers,
    and a queue that woke only one of them registered nodes one at a time."""
    clock = FakeClock()
    running: set[str] = set()
    release = anyio.Event()

    async def handle(key: str) -> float | None:
        running.add(key)
        await release.wait()
        running.discard(key)
        return None

    queue: WorkQueue[str] = WorkQueue("test", handle, workers=4, clock=clock)
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        await settle()
        for key in ("a", "b", "c", "d", "e"):
            queue.add(key)
            await settle()
        at_once = set(running)
        release.set()
        await settle()
        left = set(running)
        group.cancel_scope.cancel()
    assert len(at_once) == 4  # the fifth waits for a free worker
    assert left == set()


async def test_work_queue_deduplicates_and_never_runs_a_key_twice_at_once() -> None:
    clock = FakeClock()
    running: set[str] = set()
    calls: list[str] = []
    overlap = False
    release = anyio.Event()

    async def handle(key: str) -> float | None:
        nonlocal overlap
        overlap = overlap or key in running
        running.add(key)
        calls.append(key)
        await release.wait()
        running.discard(key)
        return None

    queue: WorkQueue[str] = WorkQueue("test", handle, workers=3, clock=clock)
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        await settle()
        assert sorted(calls) == ["a", "b"]
        queue.add("a")  # while "a" runs: it is processed once more afterwards, not concurrently
        await settle()
        assert sorted(calls) == ["a", "b"]
        release.set()
        await settle()
        group.cancel_scope.cancel()
    assert not overlap
    assert sorted(calls) == ["a", "a", "b"]


async def test_work_queue_requeues_after_the_returned_delay() -> None:
    clock = FakeClock()
    calls: list[float] = []

    async def handle(key: str) -> float | None:
        calls.append(clock.monotonic())
        return 5.0 if len(calls) < 3 else None

    queue: WorkQueue[str] = WorkQueue("test", handle, clock=clock)
    queue.add("later")
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        await settle()
        assert calls == [0.0]
        clock.step(4.9)
        await settle()
        assert calls == [0.0]
        for _ in range(3):
            clock.step(0.1)
            await settle()
            clock.step(4.9)
            await settle()
        group.cancel_scope.cancel()
    assert calls == [0.0, 5.0, 10.0]  # and never again once the handler returned None


async def test_add_after_keeps_the_earliest_request_and_add_runs_at_once() -> None:
    clock = FakeClock()
    calls: list[tuple[str, float]] = []

    async def handle(key: str) -> float | None:
        calls.append((key, clock.monotonic()))
        return None

    queue: WorkQueue[str] = WorkQueue("test", handle, clock=clock)
    queue.add_after("k", 10)
    queue.add_after("k", 30)  # later than what is due: ignored
    queue.add_after("k", 3)  # sooner: wins
    queue.add_after("now", 60)
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        await settle()
        assert calls == []
        assert len(queue) == 2
        queue.add("now")  # an immediate add supersedes the delayed one
        await settle()
        assert calls == [("now", 0.0)]
        clock.step(3)
        await settle()
        assert calls == [("now", 0.0), ("k", 3.0)]
        clock.step(100)
        await settle()
        group.cancel_scope.cancel()
    assert calls == [("now", 0.0), ("k", 3.0)]
    assert len(queue) == 0


async def test_a_failing_key_is_retried_with_exponential_backoff_up_to_the_cap() -> None:
    clock = FakeClock()
    attempts: list[float] = []

    async def handle(key: str) -> float | None:
        attempts.append(clock.monotonic())
        if len(attempts) < 6:
            raise RuntimeError("boom")
        return None

    queue: WorkQueue[str] = WorkQueue("test", handle, base_backoff=1, max_backoff=4, clock=clock)
    queue.add("broken")
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        await settle()
        while len(attempts) < 6:
            deadline = clock.next_deadline()
            assert deadline is not None
            clock.step(deadline - clock.monotonic())
            await settle()
        clock.step(3600)
        await settle()
        group.cancel_scope.cancel()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps == [1, 2, 4, 4, 4]  # doubling from base_backoff, capped at max_backoff; then done


async def test_each_reconcile_is_a_span_named_after_the_queue() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    original = queues.tracer
    queues.tracer = provider.get_tracer("test")
    try:

        async def handle(key: str) -> None:
            assert trace.get_current_span().is_recording()

        queue: WorkQueue[str] = WorkQueue("nodeclaim.lifecycle", handle, clock=FakeClock())
        queue.add("claim-a")
        async with anyio.create_task_group() as group:
            group.start_soon(queue.run)
            await settle()
            group.cancel_scope.cancel()
    finally:
        queues.tracer = original
    (span,) = exporter.get_finished_spans()
    assert span.name == "nodeclaim.lifecycle.reconcile"
    assert span.attributes == {"key": "claim-a"}


async def test_every_runs_a_pass_per_interval_and_keeps_going_after_a_failed_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    passes: list[float] = []

    async def one_pass() -> None:
        passes.append(clock.monotonic())
        if len(passes) == 2:
            raise RuntimeError("a bug in pass 2")

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: queues.every(30, "test.every", one_pass, clock=clock))
        await settle()
        for _ in range(3):
            clock.step(29)
            await settle()
            clock.step(1)
            await settle()
        group.cancel_scope.cancel()
    assert passes == [0, 30, 60, 90]
    assert "test.every: pass failed" in caplog.text
    assert "a bug in pass 2" in caplog.text
