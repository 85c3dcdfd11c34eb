"""Which existing nodes have room for a pod, in the scheduler's node order, without asking every node.

The scheduler offers each pod to the existing nodes in a fixed order and takes the first that accepts it;
a node whose free room (allocatable − requested − DaemonSet pods still to come − pods placed in this run)
is short in any resource refuses it whatever else holds. On a full cluster almost every node refuses
almost every pod that way, and asking each one costs a pass over all nodes per pod. :class:`FitIndex` keeps
the free-room vectors in a tree of per-resource maxima (fan-out :data:`FANOUT`), so
:meth:`FitIndex.fitting` yields, in order, only the positions whose room holds the requests, skipping
every subtree whose maxima already fall short. It is a necessary condition only: the scheduler still runs
the node's full check on each position yielded, so decisions are those of the plain scan.

Built once per prepared cluster (``scheduler.Prepared``) and copied per run (:meth:`FitIndex.copy`, a few
list copies); the run removes the nodes being simulated away and updates a node's room when it commits a pod.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final, final

from nodesmith.scheduling import resources as res

__all__ = ["FANOUT", "FitIndex"]

FANOUT: Final = 16


def _maxima(rows: Sequence[res.Vector]) -> res.Vector:
    return tuple(map(max, *rows)) if len(rows) > 1 else rows[0]


@final
class FitIndex:
    """Free room per node position; level 0 holds the nodes, level ``k+1`` the maxima of ``FANOUT``
    entries of level ``k``, up to one root."""

    __slots__ = ("_gone", "_levels")

    def __init__(self, rooms: Sequence[res.Vector], width: int) -> None:
        self._gone: res.Vector = (-1,) * width
        """The room of a removed node: requests are never negative, so nothing fits it."""
        levels = [list(rooms)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([_maxima(below[i : i + FANOUT]) for i in range(0, len(below), FANOUT)])
        self._levels = levels

    def copy(self) -> FitIndex:
        out = FitIndex.__new__(FitIndex)
        out._gone = self._gone
        out._levels = [list(level) for level in self._levels]
        return out

    def __len__(self) -> int:
        return len(self._levels[0])

    def update(self, position: int, room: res.Vector) -> None:
        """Node ``position`` now has ``room`` free."""
        levels = self._levels
        levels[0][position] = room
        for k in range(1, len(levels)):
            below = levels[k - 1]
            position //= FANOUT
            start = position * FANOUT
            levels[k][position] = _maxima(below[start : start + FANOUT])

    def append(self, room: res.Vector) -> int:
        """A new position at the end with ``room`` free (the index of this run's NodeClaims grows); returns it."""
        levels = self._levels
        levels[0].append(room)
        for k in range(1, len(levels)):
            below = levels[k - 1]
            parent = (len(below) - 1) // FANOUT
            start = parent * FANOUT
            value = _maxima(below[start : start + FANOUT])
            if parent < len(levels[k]):
                levels[k][parent] = value
            else:
                levels[k].append(value)
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([_maxima(below[i : i + FANOUT]) for i in range(0, len(below), FANOUT)])
        return len(levels[0]) - 1

    def remove(self, position: int) -> None:
        """Node ``position`` takes no pod in this run."""
        self.update(position, self._gone)

    def fitting(self, requests: res.Vector) -> Iterator[int]:
        """Positions, ascending, whose room holds ``requests``."""
        levels = self._levels
        if not levels[0]:
            return
        top = len(levels) - 1
        if not res.fits(requests, levels[top][0]):
            return
        # Depth-first, left to right: a stack of (level, next index, end index) ranges still to visit.
        stack = [(top, 0, 1)]
        while stack:
            level, index, end = stack.pop()
            row = levels[level]
            while index < end:
                if res.fits(requests, row[index]):
                    if level == 0:
                        yield index
                    else:
                        stack.append((level, index + 1, end))
                        child = index * FANOUT
                        stack.append((level - 1, child, min(child + FANOUT, len(levels[level - 1]))))
                        break
                index += 1
