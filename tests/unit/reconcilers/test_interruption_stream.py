"""The interruption reconciler outlives its event source: a stream that fails (the API server restarting
under the kwok source, SQS away under AWS's) is subscribed to again, and events after it are handled."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from nodesmith.cloudprovider.types import InterruptionEvent, InterruptionKind
from nodesmith.kube import errors as kube_errors
from nodesmith.reconcilers import interruption
from nodesmith.state import ClusterState
from nodesmith.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class FlakySource:
    """Fails on the first subscription, then delivers one event and waits."""

    def __init__(self) -> None:
        self.subscriptions = 0
        self.acked = anyio.Event()

    def interruption_events(self) -> AsyncIterator[InterruptionEvent]:
        self.subscriptions += 1
        return self._stream(self.subscriptions)

    async def _stream(self, subscription: int) -> AsyncIterator[InterruptionEvent]:
        if subscription == 1:
            raise kube_errors.APIUnavailableError("GET /api/v1/nodes: cannot connect", request_sent=False)
        yield InterruptionEvent("kwok://gone", InterruptionKind.SPOT_INTERRUPTION, 0.0, ack=self._ack)
        await anyio.sleep_forever()

    async def _ack(self) -> None:
        self.acked.set()


async def test_a_failed_event_stream_is_subscribed_again_and_its_events_handled() -> None:
    clock = FakeClock(T0)
    source = FlakySource()
    provider: Any = source
    reconciler = interruption.Interruption(
        kube=None,  # type: ignore[arg-type]  # an unknown instance's event never reaches the API
        state=ClusterState(clock=clock.now),
        provider=provider,
        events=None,  # type: ignore[arg-type]  # nor does it record an event
        clock=clock,
    )
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(reconciler.run)
            while clock.next_deadline() is None:  # the failed stream: the reconciler backs off
                await anyio.lowlevel.checkpoint()
            assert source.subscriptions == 1
            clock.step(interruption.STREAM_BACKOFF_INITIAL)
            await source.acked.wait()
            group.cancel_scope.cancel()
    assert source.subscriptions == 2
