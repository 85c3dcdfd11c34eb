"""The runtime starts and stops a provider through the contract's optional protocols: a provider with
``run`` is `RunsInBackground`, one with ``close`` is `Closable`, and one with neither is left alone."""

from __future__ import annotations

import anyio
from anyio.abc import TaskStatus

from nodesmith.cloudprovider import protocol
from nodesmith.testing.cloudprovider import FakeCloudProvider


class WithBackgroundWork:
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def close(self) -> None:
        return None


def test_a_provider_with_run_and_close_is_started_and_closed() -> None:
    provider = WithBackgroundWork()
    assert isinstance(provider, protocol.RunsInBackground)
    assert isinstance(provider, protocol.Closable)


def test_a_provider_without_them_is_neither() -> None:
    provider = FakeCloudProvider()
    assert isinstance(provider, protocol.CloudProvider)
    assert not isinstance(provider, protocol.RunsInBackground)
    assert not isinstance(provider, protocol.Closable)
