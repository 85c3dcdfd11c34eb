"""The reconcilers: independent loops that turn decisions into writes (NodeClaims, taints, evictions,
launches, deletions). One module per reconciler; ``controllers.build`` is the composition root that wires
them to the shared collaborators (state, kube client, provider, clock) and returns them as a flat list.

Every reconciler has a dotted ``name`` and an ``async def run()`` that loops until cancelled, catching
per-object errors at its loop boundary (log, event, metric, back off) so one bad object never stops it.
The runtime starts them in its task group while this process is the leader.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Reconciler"]


class Reconciler(Protocol):
    """What the runtime runs: a named loop."""

    @property
    def name(self) -> str: ...

    async def run(self) -> None:
        """Reconcile until cancelled."""
        ...
