"""EC2 instances: the providerID format, and get / list / terminate batched over short windows.

Fed by the provider (``get``, ``list``, ``delete``, drift, garbage collection); talks to EC2 through
DescribeInstances and TerminateInstances, each behind a `nodesmith_aws.batcher.Batcher` (100 ms idle,
1 s max, 500 IDs), so many concurrent lookups cost one call. A batch that fails as a whole (an unknown ID
fails DescribeInstances for all) is retried ID by ID, so one gone instance never fails the others.
Instances in a terminal state are treated as gone: ``get`` raises `NodeClaimNotFoundError`, and that is
how deletion converges.
"""

from __future__ import annotations

import builtins
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import anyio
import attrs
from botocore.exceptions import ClientError

from nodesmith import errors
from nodesmith_aws.batcher import Batcher
from nodesmith_aws.clients import Clients, error_code

__all__ = ["LIVE_STATES", "Instance", "Instances", "format_provider_id", "parse_provider_id"]

LIVE_STATES: Final = ("pending", "running", "stopping", "stopped", "shutting-down")
_PROVIDER_ID: Final = re.compile(r"^aws:///(?P<zone>[^/]+)/(?P<id>i-[0-9a-zA-Z]+)$")
_NOT_FOUND: Final = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})


def format_provider_id(zone: str, instance_id: str) -> str:
    """``aws:///us-west-2a/i-0123456789abcdef0``."""
    return f"aws:///{zone}/{instance_id}"


def parse_provider_id(provider_id: str) -> tuple[str, str]:
    """(zone, instance ID) of an AWS providerID; raises `NodeClaimNotFoundError` for anything else, as
    no AWS instance can be behind it."""
    match = _PROVIDER_ID.match(provider_id or "")
    if match is None:
        raise errors.NodeClaimNotFoundError(f"{provider_id!r} is not an AWS providerID (aws:///<zone>/<id>)")
    return match["zone"], match["id"]


@attrs.frozen(slots=True)
class Instance:
    """The parts of an EC2 instance nodesmith reads."""

    id: str
    type: str
    zone: str
    state: str
    image_id: str
    subnet_id: str | None
    capacity_type: str
    launch_time: dt.datetime
    tags: Mapping[str, str]
    security_group_ids: tuple[str, ...] = ()
    reservation_id: str = ""
    """The capacity reservation the instance runs in (``CapacityReservationId``), if any."""

    @property
    def provider_id(self) -> str:
        return format_provider_id(self.zone, self.id)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Instance:
        spot = d.get("InstanceLifecycle") == "spot" or bool(d.get("SpotInstanceRequestId"))
        return cls(
            id=d["InstanceId"],
            type=d["InstanceType"],
            zone=d["Placement"]["AvailabilityZone"],
            state=d["State"]["Name"],
            image_id=d.get("ImageId", ""),
            subnet_id=d.get("SubnetId"),
            capacity_type="spot" if spot else "on-demand",
            launch_time=d.get("LaunchTime") or dt.datetime.now(dt.UTC),
            tags={t["Key"]: t["Value"] for t in d.get("Tags") or ()},
            security_group_ids=tuple(sorted(g["GroupId"] for g in d.get("SecurityGroups") or ())),
            reservation_id=str(d.get("CapacityReservationId") or ""),
        )


class Instances:
    """Batched reads and terminations of instances."""

    def __init__(self, clients: Clients, *, idle: float = 0.1, max_wait: float = 1.0) -> None:
        self.clients = clients
        self.describe_batcher: Batcher[str, Instance] = Batcher(self._describe, idle=idle, max_wait=max_wait)
        self.terminate_batcher: Batcher[str, str] = Batcher(self._terminate, idle=idle, max_wait=max_wait)

    async def get(self, instance_id: str) -> Instance:
        """The live instance. Raises `NodeClaimNotFoundError` when it does not exist or is terminated."""
        return await self.describe_batcher(instance_id)

    async def terminate(self, instance_id: str) -> str:
        """Ask EC2 to terminate; returns the instance's new state. Raises `NodeClaimNotFoundError` when
        the instance does not exist."""
        return await self.terminate_batcher(instance_id)

    async def list(self, tag_filters: Sequence[Mapping[str, Any]]) -> list[Instance]:
        """Live instances matching ``tag_filters`` (paginated DescribeInstances)."""
        ec2 = await self.clients.ec2()
        out = []
        filters = [*tag_filters, {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
        async for page in ec2.get_paginator("describe_instances").paginate(Filters=filters, MaxResults=1000):
            for reservation in page.get("Reservations") or ():
                out += [Instance.from_api(i) for i in reservation.get("Instances") or ()]
        return out

    async def _describe_some(self, ids: Sequence[str]) -> dict[str, Instance]:
        ec2 = await self.clients.ec2()
        found: dict[str, Instance] = {}
        filters = [{"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
        async for page in ec2.get_paginator("describe_instances").paginate(
            InstanceIds=list(ids), Filters=filters
        ):
            for reservation in page.get("Reservations") or ():
                for raw in reservation.get("Instances") or ():
                    found[raw["InstanceId"]] = Instance.from_api(raw)
        return found

    async def _describe(self, ids: Sequence[str]) -> builtins.list[Instance | BaseException]:
        unique = sorted(set(ids))
        try:
            found = await self._describe_some(unique)
        except ClientError as err:
            if error_code(err) not in _NOT_FOUND or len(unique) == 1:
                if error_code(err) in _NOT_FOUND:
                    found = {}
                else:
                    raise
            else:
                found = await self._one_by_one(unique)
        return [found.get(i) or errors.NodeClaimNotFoundError(f"instance {i} not found") for i in ids]

    async def _one_by_one(self, ids: Sequence[str]) -> dict[str, Instance]:
        found: dict[str, Instance] = {}

        async def one(instance_id: str) -> None:
            try:
                found.update(await self._describe_some([instance_id]))
            except ClientError as err:
                if error_code(err) not in _NOT_FOUND:
                    raise

        async with anyio.create_task_group() as tg:
            for instance_id in ids:
                tg.start_soon(one, instance_id)
        return found

    async def _terminate(self, ids: Sequence[str]) -> builtins.list[str | BaseException]:
        ec2 = await self.clients.ec2()
        unique = sorted(set(ids))
        states: dict[str, str | BaseException] = {}
        try:
            answer = await ec2.terminate_instances(InstanceIds=unique)
            states = {
                i["InstanceId"]: i["CurrentState"]["Name"] for i in answer.get("TerminatingInstances") or ()
            }
        except ClientError as err:
            if error_code(err) not in _NOT_FOUND:
                raise
        for instance_id in unique:
            if instance_id in states:
                continue
            try:  # retried alone, so one unknown ID does not fail the rest
                answer = await ec2.terminate_instances(InstanceIds=[instance_id])
                states[instance_id] = answer["TerminatingInstances"][0]["CurrentState"]["Name"]
            except ClientError as err:
                if error_code(err) not in _NOT_FOUND:
                    states[instance_id] = err
                else:
                    states[instance_id] = errors.NodeClaimNotFoundError(f"instance {instance_id} not found")
        return [states[i] for i in ids]
