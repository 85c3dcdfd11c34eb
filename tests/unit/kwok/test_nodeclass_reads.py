"""The kwok provider's shared NodeClass reads: a burst of launches asks the API server once, a read is
reused for `FRESH_FOR` seconds of the injected clock and no longer, and a failed read is not remembered."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from nodesmith.kube import errors as kube_errors
from nodesmith.testing.clock import FakeClock
from nodesmith_kwok import nodeclass_reads

pytestmark = pytest.mark.anyio


class Api:
    """Answers GETs of NodeClasses; ``gate`` holds every answer until set, ``missing`` names 404s."""

    def __init__(self) -> None:
        self.gets: list[str] = []
        self.gate = anyio.Event()
        self.gate.set()
        self.missing: set[str] = set()
        self.version = 0

    async def get(self, name: str) -> dict[str, Any]:
        self.gets.append(name)
        missing = name in self.missing  # as the API stood when the GET arrived
        await self.gate.wait()
        if missing:
            raise kube_errors.NotFoundError(f"kwoknodeclasses {name} not found")
        self.version += 1
        return {"metadata": {"name": name, "resourceVersion": str(self.version)}}


async def test_concurrent_reads_of_one_nodeclass_share_one_get() -> None:
    api, clock = Api(), FakeClock()
    reads = nodeclass_reads.NodeClassReads(api.get, clock)
    api.gate = anyio.Event()
    answers: list[dict[str, Any]] = []

    async def launch() -> None:
        answers.append(await reads.read("default"))

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(launch)
        await anyio.wait_all_tasks_blocked()
        api.gate.set()
    assert api.gets == ["default"]
    assert [a["metadata"]["resourceVersion"] for a in answers] == ["1"] * 50


async def test_a_read_is_reused_within_the_window_and_read_again_after_it() -> None:
    api, clock = Api(), FakeClock()
    reads = nodeclass_reads.NodeClassReads(api.get, clock)
    first = await reads.read("default")
    clock.step(nodeclass_reads.FRESH_FOR * 0.9)
    assert await reads.read("default") is first
    assert await reads.read("other") is not first  # per name
    clock.step(nodeclass_reads.FRESH_FOR * 0.2)
    again = await reads.read("default")
    assert again["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    assert api.gets == ["default", "other", "default"]


async def test_a_missing_nodeclass_is_asked_for_again_at_once() -> None:
    api, clock = Api(), FakeClock()
    reads = nodeclass_reads.NodeClassReads(api.get, clock)
    api.missing.add("late")
    with pytest.raises(kube_errors.NotFoundError):
        await reads.read("late")
    api.missing.clear()  # created meanwhile: the next launch sees it without waiting out a window
    assert (await reads.read("late"))["metadata"]["name"] == "late"
    assert api.gets == ["late", "late"]


async def test_readers_waiting_on_a_failed_get_ask_again_themselves() -> None:
    api, clock = Api(), FakeClock()
    reads = nodeclass_reads.NodeClassReads(api.get, clock)
    api.gate, api.missing = anyio.Event(), {"default"}
    outcomes: list[str] = []

    async def launch() -> None:
        try:
            await reads.read("default")
        except kube_errors.NotFoundError:
            outcomes.append("missing")
        else:
            outcomes.append("found")

    async with anyio.create_task_group() as group:
        group.start_soon(launch)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(launch)
        await anyio.wait_all_tasks_blocked()
        api.missing.clear()  # the first GET answers 404, then the NodeClass exists
        api.gate.set()
    assert sorted(outcomes) == ["found", "missing"]
    assert api.gets == ["default", "default"]
