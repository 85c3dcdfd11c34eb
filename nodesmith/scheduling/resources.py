"""Resource vectors: the run's resource names in a fixed order, amounts as tuples of int milli-units.

The scheduler fixes the order once per run (cpu, memory, pods, then every other resource a pending or
DaemonSet pod requests, sorted) and converts pod requests, DaemonSet overheads and instance-type
allocatables into tuples, so the hot-path "does it fit" is a zip over a few ints instead of dict lookups.
Resources nobody requests are left out: they cannot make a pod not fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import add, sub
from typing import TypeAlias, final

__all__ = ["ResourceIndex", "Vector", "fits", "vadd", "vsub"]

Vector: TypeAlias = tuple[int, ...]

_FIRST = ("cpu", "memory", "pods")


@final
class ResourceIndex:
    __slots__ = ("names", "zero")

    def __init__(self, requested: Iterable[Mapping[str, int]]) -> None:
        seen: set[str] = set()
        for requests in requested:
            seen.update(requests)
        self.names: tuple[str, ...] = tuple(n for n in _FIRST) + tuple(sorted(seen - set(_FIRST)))
        self.zero: Vector = (0,) * len(self.names)

    def vector(self, amounts: Mapping[str, int]) -> Vector:
        return tuple(amounts.get(name, 0) for name in self.names)

    def to_dict(self, vector: Vector) -> dict[str, int]:
        return {name: amount for name, amount in zip(self.names, vector, strict=True) if amount}


def fits(requests: Vector, available: Vector) -> bool:
    return all(r <= a for r, a in zip(requests, available, strict=False))


def vadd(a: Vector, b: Vector) -> Vector:
    return tuple(map(add, a, b))


def vsub(a: Vector, b: Vector) -> Vector:
    return tuple(map(sub, a, b))
