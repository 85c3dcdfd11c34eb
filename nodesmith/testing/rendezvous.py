"""`Rendezvous`: hold every caller until a given number of them are waiting at once.

For tests that prove work runs concurrently rather than a few at a time: wrap the call each worker makes
(a launch, a create) so that it waits in `Rendezvous.wait`. With at least ``expected`` workers running
together all of them pass; with fewer, none ever does, and the test's ``fail_after`` guard ends it.
"""

from __future__ import annotations

import anyio
import attrs

__all__ = ["Rendezvous"]


@attrs.define
class Rendezvous:
    """Releases everyone once ``expected`` callers are in `wait` at the same time; `most` is the largest
    number that were ever waiting together."""

    expected: int
    waiting: int = 0
    most: int = 0
    all_in: anyio.Event = attrs.field(factory=anyio.Event)

    async def wait(self) -> None:
        self.waiting += 1
        self.most = max(self.most, self.waiting)
        if self.waiting >= self.expected:
            self.all_in.set()
        await self.all_in.wait()
        self.waiting -= 1
