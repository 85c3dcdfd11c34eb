"""An in-memory stand-in for a cloud SDK: instances in a dict, the cloud's own errors, async calls.

Replace this module with your cloud's client. It is deliberately shaped like one: calls are ``async``,
failures are the *cloud's* exceptions (``CloudError`` and subclasses, with a code), and terminating an
instance leaves a ``terminated`` record behind for a while, as real clouds do. The provider
(:mod:`nodesmith_provider_template.provider`) translates these into ``nodesmith.errors``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import attrs

__all__ = ["CloudError", "InMemoryCloud", "Instance", "InstanceNotFound", "InsufficientCapacity"]


class CloudError(Exception):
    """Any error the cloud API returns; ``code`` is its machine-readable code."""

    code = "InternalError"


class InsufficientCapacity(CloudError):
    """The cloud has no capacity for this instance type, zone and capacity type right now."""

    code = "InsufficientInstanceCapacity"


class InstanceNotFound(CloudError):
    """No instance with this id exists (or it was purged after termination)."""

    code = "InstanceNotFound"


@attrs.define
class Instance:
    """One machine as the cloud describes it."""

    id: str
    instance_type: str
    zone: str
    capacity_type: str
    tags: dict[str, str]
    state: str = "running"


class InMemoryCloud:
    """A cloud whose instances live in a dict. ``exhausted`` holds ``(instance type, zone, capacity type)``
    offerings that fail with :class:`InsufficientCapacity`, to exercise that path."""

    def __init__(self, *, exhausted: set[tuple[str, str, str]] | None = None) -> None:
        self.instances: dict[str, Instance] = {}
        self.exhausted = exhausted if exhausted is not None else set()
        self._ids = itertools.count(1)

    async def run_instance(
        self, instance_type: str, zone: str, capacity_type: str, tags: Mapping[str, str]
    ) -> Instance:
        if (instance_type, zone, capacity_type) in self.exhausted:
            raise InsufficientCapacity(f"no {capacity_type} capacity for {instance_type} in {zone}")
        instance = Instance(f"i-{next(self._ids):08x}", instance_type, zone, capacity_type, dict(tags))
        self.instances[instance.id] = instance
        return instance

    async def describe_instance(self, instance_id: str) -> Instance:
        try:
            return self.instances[instance_id]
        except KeyError:
            raise InstanceNotFound(f"instance {instance_id} does not exist") from None

    async def describe_instances(self, tags: Mapping[str, str]) -> list[Instance]:
        return [i for i in self.instances.values() if all(i.tags.get(k) == v for k, v in tags.items())]

    async def terminate_instance(self, instance_id: str) -> None:
        instance = await self.describe_instance(instance_id)
        instance.state = "terminated"
