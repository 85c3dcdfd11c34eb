"""A batch window: calls that arrive close together are executed as one request.

Why not a plain lock or a queue: DescribeInstances and TerminateInstances take up to 1000 IDs per call,
and the lifecycle reconciler asks about instances one by one, so N concurrent ``get`` calls would cost N
API calls and throttle the account. Karpenter batches them (`pkg/batcher`); this is the same window:
it closes after ``idle`` seconds without a new arrival, after ``max_wait`` seconds in all, or at
``max_items``. No background task: the first caller of a window leads it (waits, executes, hands out
the results); the others wait for their result. The leader's wait and call are shielded from
cancellation, so a cancelled leader cannot strand its followers (its cancellation is delayed by at most
``max_wait`` plus one call).

Consumed by `nodesmith_aws.instances`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import anyio

__all__ = ["Batcher"]

In = TypeVar("In")
Out = TypeVar("Out")


class _Slot(Generic[Out]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: Out | None = None
        self.error: BaseException | None = None


class _Window(Generic[In, Out]):
    def __init__(self) -> None:
        self.items: list[In] = []
        self.slots: list[_Slot[Out]] = []
        self.arrived = anyio.Event()


class Batcher(Generic[In, Out]):
    """``await batcher(item)`` → that item's result from one ``execute(items)`` call per window.

    ``execute`` returns one result per item, in order; a result that is an exception is raised to that
    item's caller only. An exception raised by ``execute`` itself goes to every caller of the window.
    """

    def __init__(
        self,
        execute: Callable[[Sequence[In]], Awaitable[Sequence[Out | BaseException]]],
        *,
        idle: float = 0.1,
        max_wait: float = 1.0,
        max_items: int = 500,
    ) -> None:
        self._execute = execute
        self._idle = idle
        self._max_wait = max_wait
        self._max_items = max_items
        self._open: _Window[In, Out] | None = None
        self.executions = 0
        """How many ``execute`` calls were made (tests and metrics read it)."""

    async def __call__(self, item: In) -> Out:
        window = self._open
        leader = window is None
        if window is None:
            window = self._open = _Window()
        slot: _Slot[Out] = _Slot()
        window.items.append(item)
        window.slots.append(slot)
        window.arrived.set()
        if len(window.items) >= self._max_items and self._open is window:
            self._open = None
        if leader:
            with anyio.CancelScope(shield=True):
                await self._lead(window)
        else:
            await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    async def _lead(self, window: _Window[In, Out]) -> None:
        deadline = anyio.current_time() + self._max_wait
        while self._open is window:
            window.arrived = anyio.Event()
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                break
            with anyio.move_on_after(min(self._idle, remaining)) as scope:
                await window.arrived.wait()
            if scope.cancelled_caught:
                break
        if self._open is window:
            self._open = None
        self.executions += 1
        try:
            results = await self._execute(list(window.items))
        except Exception as err:  # handed to every caller of the window
            for slot in window.slots:
                slot.error = err
                slot.done.set()
            return
        for slot, result in zip(window.slots, results, strict=True):
            if isinstance(result, BaseException):
                slot.error = result
            else:
                slot.result = result
            slot.done.set()
