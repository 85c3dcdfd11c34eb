"""Reading KWOKNodeClasses for the provider: one GET answers every launch (and instance-type lookup) that
asks for the same NodeClass within `FRESH_FOR` seconds, and launches that ask while a GET is in flight wait
for that one instead of sending their own.

Why: every launch needs the NodeClass (is it Ready, which offerings fail), and a burst of launches asked
the API server for the same object hundreds of times -- one round trip each on the launch path, on a
control plane already busy with the Nodes being created. Karpenter's kwok provider reads it from the
informer cache, which is also a little behind the API; `FRESH_FOR` bounds how far behind this is. Time is
read from the daemon's injected clock, so tests step past the window instead of sleeping.

Used by `nodesmith_kwok.provider.KWOKProvider` (``create`` and ``get_instance_types``).
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import attrs

from nodesmith.clock import Clock

__all__ = ["FRESH_FOR", "NodeClassReads"]

FRESH_FOR: Final = 1.0
"""Seconds a NodeClass read is reused (about an informer's lag under load; a NodeClass changes rarely)."""

Obj = dict[str, Any]


@attrs.define(slots=True)
class _Read:
    done: anyio.Event = attrs.field(factory=anyio.Event)
    at: float = 0.0
    value: Obj | None = None


@typing.final
@attrs.define(eq=False)
class NodeClassReads:
    """``read(name)`` returns the NodeClass as ``fetch(name)`` answered it at most `FRESH_FOR` seconds ago.
    A failed fetch (``NotFoundError`` for a missing NodeClass, say) is raised to its caller and not
    remembered: those waiting on it fetch again themselves."""

    fetch: Callable[[str], Awaitable[Obj]]
    clock: Clock
    fresh_for: float = FRESH_FOR
    _reads: dict[str, _Read] = attrs.field(init=False, factory=dict)

    async def read(self, name: str) -> Obj:
        while True:
            current = self._reads.get(name)
            if current is not None and not current.done.is_set():
                await current.done.wait()
                continue  # answered (or failed, and forgotten): look again
            if current is not None and self.clock.monotonic() - current.at < self.fresh_for:
                assert current.value is not None
                return current.value
            return await self._fetch(name)

    async def _fetch(self, name: str) -> Obj:
        read = self._reads[name] = _Read()
        try:
            read.value = await self.fetch(name)
        except BaseException:
            if self._reads.get(name) is read:
                del self._reads[name]
            raise
        finally:
            # stamped when the answer arrived: a slow GET is not stale the moment it lands
            read.at = self.clock.monotonic()
            read.done.set()
        return read.value
