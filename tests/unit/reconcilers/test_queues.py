"""The batch window, the keyed work queue and the periodic loop, on anyio's real event loop with short times."""

from __future__ import annotations

import anyio
import pytest

from nodesmith.reconcilers import queues
from nodesmith.reconcilers.queues import Batcher, WorkQueue

pytestmark = pytest.mark.anyio


async def test_batcher_returns_false_when_nothing_is_triggered() -> None:
    assert await Batcher(idle=0.05, maximum=1).wait() is False


async def test_batcher_closes_after_idle_without_new_triggers() -> None:
    batcher = Batcher(idle=0.1, maximum=5)
    batcher.trigger()
    started = anyio.current_time()
    assert await batcher.wait() is True
    assert anyio.current_time() - started < 1


async def test_batcher_closes_at_max_even_while_triggers_keep_coming() -> None:
    batcher = Batcher(idle=0.1, maximum=0.4)

    async def keep_triggering() -> None:
        while True:
            batcher.trigger()
            await anyio.sleep(0.02)

    async with anyio.create_task_group() as group:
        group.start_soon(keep_triggering)
        started = anyio.current_time()
        assert await batcher.wait() is True
        elapsed = anyio.current_time() - started
        group.cancel_scope.cancel()
    assert 0.35 <= elapsed < 2


async def test_work_queue_deduplicates_and_never_runs_a_key_twice_at_once() -> None:
    running: set[str] = set()
    calls: list[str] = []
    overlap = False

    async def handle(key: str) -> float | None:
        nonlocal overlap
        overlap = overlap or key in running
        running.add(key)
        calls.append(key)
        await anyio.sleep(0.05)
        running.discard(key)
        return None

    queue: WorkQueue[str] = WorkQueue("test", handle, workers=3)
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        await anyio.sleep(0.02)
        queue.add("a")  # while "a" runs: it is processed once more afterwards, not concurrently
        await anyio.sleep(0.3)
        group.cancel_scope.cancel()
    assert not overlap
    assert sorted(calls) == ["a", "a", "b"]


async def test_work_queue_requeues_after_the_returned_delay_and_backs_off_on_errors() -> None:
    calls: dict[str, int] = {"later": 0, "broken": 0}

    async def handle(key: str) -> float | None:
        calls[key] += 1
        if key == "broken":
            raise RuntimeError("boom")
        return 0.05 if calls[key] < 3 else None

    queue: WorkQueue[str] = WorkQueue("test", handle, base_backoff=0.05, max_backoff=0.1)
    queue.add("later")
    queue.add("broken")
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        await anyio.sleep(0.5)
        group.cancel_scope.cancel()
    assert calls["later"] == 3
    assert 3 <= calls["broken"] <= 8  # retried with backoff (0.05, 0.1, 0.1, ...), not in a hot loop


async def test_each_reconcile_is_a_span_named_after_the_queue() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from nodesmith.reconcilers import queues

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    original = queues.tracer
    queues.tracer = provider.get_tracer("test")
    try:

        async def handle(key: str) -> None:
            assert trace.get_current_span().is_recording()

        queue: WorkQueue[str] = WorkQueue("nodeclaim.lifecycle", handle)
        queue.add("claim-a")
        async with anyio.create_task_group() as group:
            group.start_soon(queue.run)
            await anyio.sleep(0.1)
            group.cancel_scope.cancel()
    finally:
        queues.tracer = original
    (span,) = exporter.get_finished_spans()
    assert span.name == "nodeclaim.lifecycle.reconcile"
    assert span.attributes == {"key": "claim-a"}


async def test_every_keeps_going_after_a_failed_pass_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    passes: list[int] = []

    async def one_pass() -> None:
        passes.append(len(passes))
        if len(passes) == 2:
            raise RuntimeError("a bug in pass 2")

    with anyio.move_on_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(queues.every, 0, "test.every", one_pass)
            while len(passes) < 4:
                await anyio.sleep(0.01)
            group.cancel_scope.cancel()
    assert passes[:4] == [0, 1, 2, 3]
    assert "test.every: pass failed" in caplog.text
    assert "a bug in pass 2" in caplog.text
