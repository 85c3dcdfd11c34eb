"""The batch window groups concurrent calls and gives each caller its own result or error."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from nodesmith_aws.batcher import Batcher


@pytest.mark.anyio
async def test_concurrent_calls_share_one_execution_and_get_their_own_results() -> None:
    seen: list[list[int]] = []

    async def execute(items: Sequence[int]) -> list[int | BaseException]:
        seen.append(list(items))
        return [KeyError(i) if i == 3 else i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(execute, idle=0.05, max_wait=0.5)
    results: dict[int, object] = {}

    async def call(i: int) -> None:
        try:
            results[i] = await batcher(i)
        except KeyError as err:
            results[i] = err

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(call, i)
    assert len(seen) == 1
    assert sorted(seen[0]) == [0, 1, 2, 3, 4]
    assert results[2] == 20
    assert isinstance(results[3], KeyError)
    assert await batcher(7) == 70
    assert batcher.executions == 2


@pytest.mark.anyio
async def test_a_failing_execution_reaches_every_caller() -> None:
    async def execute(items: Sequence[int]) -> list[int | BaseException]:
        raise RuntimeError("boom")

    batcher: Batcher[int, int] = Batcher(execute, idle=0.01)
    with pytest.raises(RuntimeError):
        await batcher(1)
