"""``coordination.k8s.io/v1`` Leases with optimistic concurrency: read, acquire, renew, release.

Fed by `nodesmith.kube.client`; consumed by the runtime's leader election (which owns the loop:
acquire, renew every few seconds, step down when `renew` raises) and by anything else that needs a
lock in the cluster. Every write carries the resourceVersion that was read, so two contenders can never
both believe they won: the loser gets `nodesmith.kube.errors.ConflictError`. Time comes from the
injected ``clock``; nothing here sleeps.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Mapping

import attrs

from nodesmith.clock import SYSTEM, Clock
from nodesmith.kube import errors
from nodesmith.kube.client import KubeClient
from nodesmith.kube.resources import LEASES

__all__ = ["Lease", "LeaseClient"]


def _micro(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@typing.final
@attrs.frozen(slots=True)
class Lease:
    """What a Lease says, plus the resourceVersion it was read at (the lock for the next write)."""

    name: str
    namespace: str
    holder: str | None
    duration_seconds: int
    acquire_time: dt.datetime | None
    renew_time: dt.datetime | None
    transitions: int
    resource_version: str

    @classmethod
    def from_dict(cls, obj: Mapping[str, typing.Any]) -> Lease:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            holder=spec.get("holderIdentity") or None,
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=_parse(spec.get("acquireTime")),
            renew_time=_parse(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(meta.get("resourceVersion", "")),
        )

    def expired(self, now: dt.datetime) -> bool:
        """True when nobody holds it or its holder has not renewed within its duration."""
        if self.holder is None or self.renew_time is None:
            return True
        return now >= self.renew_time + dt.timedelta(seconds=self.duration_seconds)

    def held_by(self, identity: str, now: dt.datetime) -> bool:
        return self.holder == identity and not self.expired(now)


@typing.final
@attrs.define
class LeaseClient:
    """Lease operations for one ``identity`` (this process)."""

    client: KubeClient
    identity: str
    clock: Clock = SYSTEM

    async def get(self, name: str, namespace: str) -> Lease | None:
        """The Lease, or None if it does not exist."""
        try:
            return Lease.from_dict(await self.client.get(LEASES, name, namespace))
        except errors.NotFoundError:
            return None

    async def try_acquire(self, name: str, namespace: str, duration_seconds: int) -> Lease | None:
        """Take the Lease if it is absent, expired, or already ours; return it, or None if another
        holder's lease is still valid (or another contender won the race just now)."""
        now = self.clock.now()
        current = await self.get(name, namespace)
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": duration_seconds,
            "acquireTime": _micro(now),
            "renewTime": _micro(now),
        }
        try:
            if current is None:
                body = {
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {**spec, "leaseTransitions": 0},
                }
                return Lease.from_dict(await self.client.create(LEASES, body, namespace))
            if current.held_by(self.identity, now):
                return await self.renew(current)
            if not current.expired(now):
                return None
            spec["leaseTransitions"] = current.transitions + 1
            obj = await self.client.merge_patch(
                LEASES, name, {"spec": spec}, namespace, resource_version=current.resource_version
            )
            return Lease.from_dict(obj)
        except errors.ConflictError:  # AlreadyExists included: someone else got there first
            return None

    async def renew(self, lease: Lease) -> Lease:
        """Bump ``renewTime`` of a lease we hold; raises `errors.ConflictError` if it changed since
        ``lease`` was read (we may have lost it: re-read before assuming anything)."""
        obj = await self.client.merge_patch(
            LEASES,
            lease.name,
            {"spec": {"holderIdentity": self.identity, "renewTime": _micro(self.clock.now())}},
            lease.namespace,
            resource_version=lease.resource_version,
        )
        return Lease.from_dict(obj)

    async def release(self, lease: Lease) -> bool:
        """Give the lease up (clear the holder) so a successor need not wait for expiry. Guarded by the
        resourceVersion; on a conflict the lease is read again and released if it is still ours (ours but
        newer than ``lease``: a renewal the caller did not see). Returns whether it was released; not
        ours (or gone) is ``False``."""
        for _ in range(2):
            try:
                await self.client.merge_patch(
                    LEASES,
                    lease.name,
                    {
                        "spec": {
                            "holderIdentity": None,
                            "leaseDurationSeconds": 1,
                            "renewTime": _micro(self.clock.now()),
                        }
                    },
                    lease.namespace,
                    resource_version=lease.resource_version,
                )
                return True
            except errors.NotFoundError:
                return False
            except errors.ConflictError:
                current = await self.get(lease.name, lease.namespace)
                if current is None or current.holder != self.identity:
                    return False
                lease = current
        return False
