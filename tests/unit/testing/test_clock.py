"""The stepped clock tests drive time with: nothing moves unless stepped, and a step wakes exactly the
sleepers whose deadline it passed, in deadline order."""

from __future__ import annotations

import datetime as dt

import anyio
import pytest

from nodesmith.clock import SYSTEM, Clock
from nodesmith.testing import expectations
from nodesmith.testing.clock import T0, FakeClock

pytestmark = pytest.mark.anyio


def test_both_clocks_implement_the_protocol() -> None:
    assert isinstance(SYSTEM, Clock)
    assert isinstance(FakeClock(), Clock)


def test_time_stands_still_until_stepped_and_wall_and_monotonic_move_together() -> None:
    clock = FakeClock()
    assert clock.now() == T0
    assert clock.monotonic() == 0.0
    clock.step(90)
    clock.step(dt.timedelta(minutes=1))
    assert clock.now() == T0 + dt.timedelta(seconds=150)
    assert clock.monotonic() == 150.0
    assert clock.now().tzinfo is dt.UTC


def test_a_clock_never_steps_back() -> None:
    with pytest.raises(ValueError, match="forward"):
        FakeClock().step(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(dt.datetime(2025, 1, 1))  # naive: rejected


async def test_a_step_wakes_exactly_the_sleepers_it_passed_in_deadline_order() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, "late", 10)
        group.start_soon(sleeper, "early", 5)
        group.start_soon(sleeper, "middle", 7)
        await anyio.wait_all_tasks_blocked()
        assert clock.sleepers == 3
        assert clock.next_deadline() == 5
        clock.step(4.9)
        await anyio.wait_all_tasks_blocked()
        assert woke == []
        clock.step(2.1)  # now 7: "early" and "middle", not "late"
        await anyio.wait_all_tasks_blocked()
        assert woke == ["early", "middle"]
        assert clock.sleepers == 1
        clock.step(100)
    assert woke == ["early", "middle", "late"]
    assert clock.sleepers == 0


async def test_sleeping_until_a_deadline_already_passed_returns_at_once() -> None:
    clock = FakeClock()
    clock.step(10)
    with anyio.fail_after(1):
        await clock.sleep_until(5)
        await clock.sleep(0)
    assert clock.sleepers == 0


async def test_wait_returns_true_when_the_event_is_set_before_the_timeout() -> None:
    clock = FakeClock()
    event = anyio.Event()
    results: list[bool] = []

    async def waiter() -> None:
        results.append(await clock.wait(event, 30))

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        clock.step(29)
        await anyio.wait_all_tasks_blocked()
        assert results == []
        event.set()
    assert results == [True]
    assert clock.sleepers == 0  # the timer was cancelled with the wait


async def test_wait_returns_false_once_the_timeout_is_stepped_over() -> None:
    clock = FakeClock()
    event = anyio.Event()
    results: list[bool] = []

    async def waiter() -> None:
        results.append(await clock.wait(event, 30))

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        clock.step(30)
    assert results == [False]


async def test_a_cancelled_sleeper_is_forgotten() -> None:
    clock = FakeClock()
    async with anyio.create_task_group() as group:
        group.start_soon(clock.sleep, 60)
        await anyio.wait_all_tasks_blocked()
        assert clock.sleepers == 1
        group.cancel_scope.cancel()
    assert clock.sleepers == 0


def test_a_running_clock_also_flows_with_real_time() -> None:
    start = SYSTEM.now()
    clock = FakeClock(start, rate=1.0)
    clock.step(3600)
    assert clock.now() - start >= dt.timedelta(hours=1)
    assert clock.monotonic() >= 3600


async def test_the_system_clock_sleeps_and_waits_on_real_time() -> None:
    event = anyio.Event()
    assert await SYSTEM.wait(event, 0) is False
    event.set()
    assert await SYSTEM.wait(event, 60) is True
    before = SYSTEM.monotonic()
    await SYSTEM.sleep_until(before)
    assert SYSTEM.monotonic() >= before
    assert SYSTEM.now().tzinfo is dt.UTC


async def test_a_reconcile_that_sleeps_is_stepped_exactly_to_each_deadline() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def reconcile() -> str:
        for seconds in (15.0, 0.5, 30.0):
            await clock.sleep(seconds)
            woke.append(clock.monotonic())
        return "done"

    assert await expectations.expect_reconciled_stepping(reconcile, clock) == "done"
    assert woke == [15.0, 15.5, 45.5]
    assert clock.sleepers == 0


async def test_stepping_a_reconcile_that_never_sleeps_leaves_the_clock_alone() -> None:
    clock = FakeClock()

    async def reconcile() -> int:
        await anyio.lowlevel.checkpoint()
        return 7

    assert await expectations.expect_reconciled_stepping(reconcile, clock) == 7
    assert clock.monotonic() == 0.0
