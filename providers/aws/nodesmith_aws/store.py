"""Where the provider reads EC2NodeClasses and writes their status: the API server, or memory.

The provider depends on the small `NodeClassStore` protocol only. `KubeNodeClassStore` implements it
over ``ProviderContext.kube`` (a `nodesmith.kube.KubeClient`); `MemoryNodeClassStore` over a dict,
for offline use (``nodesmith simulate``) and unit tests, which feed it manifests directly. Consumed by
`nodesmith_aws.cloudprovider`.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from nodesmith_aws import nodeclass
from nodesmith_aws.nodeclass import EC2NodeClass, Status

__all__ = ["KubeNodeClassStore", "MemoryNodeClassStore", "NodeClassStore"]


class NodeClassStore(Protocol):
    async def get(self, name: str) -> EC2NodeClass | None:
        """The EC2NodeClass called ``name``, or ``None`` if there is none."""
        ...

    async def list(self) -> list[EC2NodeClass]: ...

    async def write_status(self, nc: EC2NodeClass, status: Status) -> EC2NodeClass:
        """Store ``status`` on the NodeClass and return the updated object."""
        ...

    async def set_finalizer(self, nc: EC2NodeClass, present: bool) -> EC2NodeClass | None:
        """Add (or remove) `nodeclass.FINALIZER`; the updated object, ``None`` once it is gone."""
        ...

    async def nodeclaims_using(self, name: str) -> builtins.list[str]:
        """Names of the NodeClaims whose ``nodeClassRef`` is this EC2NodeClass."""
        ...


class MemoryNodeClassStore:
    """EC2NodeClasses held in a dict, keyed by name."""

    def __init__(self, *manifests: Mapping[str, Any]) -> None:
        self._objects: dict[str, EC2NodeClass] = {}
        for manifest in manifests:
            self.put(manifest)
        self.nodeclaims: dict[str, str] = {}
        """NodeClaim name → EC2NodeClass name, for `nodeclaims_using` (tests set it)."""

    def put(self, manifest: Mapping[str, Any]) -> EC2NodeClass:
        """Add or replace one (validated) NodeClass; generation increments like the API server's."""
        obj = EC2NodeClass.from_dict(manifest)
        previous = self._objects.get(obj.name)
        generation = obj.metadata.generation or ((previous.metadata.generation or 0) + 1 if previous else 1)
        meta = obj.metadata.to_dict() | {"generation": generation}
        status = (
            previous.status.to_dict()
            if previous is not None and not obj.status.conditions
            else obj.status.to_dict()
        )
        obj = EC2NodeClass.from_dict({**obj.to_dict(), "metadata": meta, "status": status})
        self._objects[obj.name] = obj
        return obj

    def delete(self, name: str) -> None:
        """Delete like the API server: at once without finalizers, else mark it deleting."""
        obj = self._objects.get(name)
        if obj is None:
            return
        if not obj.metadata.finalizers:
            del self._objects[name]
            return
        meta = attrs.evolve(obj.metadata, deletion_timestamp=dt.datetime.now(dt.UTC))
        self._objects[name] = EC2NodeClass(meta, obj.spec, obj.status)

    async def set_finalizer(self, nc: EC2NodeClass, present: bool) -> EC2NodeClass | None:
        obj = self._objects.get(nc.name)
        if obj is None:
            return None
        others = tuple(f for f in obj.metadata.finalizers if f != nodeclass.FINALIZER)
        finalizers = (*others, nodeclass.FINALIZER) if present else others
        obj = EC2NodeClass(attrs.evolve(obj.metadata, finalizers=finalizers), obj.spec, obj.status)
        if not finalizers and obj.metadata.deletion_timestamp is not None:
            del self._objects[nc.name]
            return None
        self._objects[nc.name] = obj
        return obj

    async def nodeclaims_using(self, name: str) -> builtins.list[str]:
        return sorted(claim for claim, ref in self.nodeclaims.items() if ref == name)

    async def get(self, name: str) -> EC2NodeClass | None:
        return self._objects.get(name)

    async def list(self) -> list[EC2NodeClass]:
        return list(self._objects.values())

    async def write_status(self, nc: EC2NodeClass, status: Status) -> EC2NodeClass:
        updated = EC2NodeClass(nc.metadata, nc.spec, status)
        self._objects[nc.name] = updated
        return updated


class KubeNodeClassStore:
    """EC2NodeClasses in the API server, through `nodesmith.kube.KubeClient`."""

    def __init__(self, kube: Any) -> None:
        from nodesmith.kube import errors as kube_errors
        from nodesmith.kube import resources

        self._kube = kube
        self._not_found = kube_errors.NotFoundError
        self._resource = resources.node_class(nodeclass.GROUP, nodeclass.KIND)

    async def get(self, name: str) -> EC2NodeClass | None:
        try:
            return EC2NodeClass.from_dict(await self._kube.get(self._resource, name))
        except self._not_found:
            return None

    async def list(self) -> list[EC2NodeClass]:
        result = await self._kube.list(self._resource)
        return [EC2NodeClass.from_dict(item) for item in result.items]

    async def write_status(self, nc: EC2NodeClass, status: Status) -> EC2NodeClass:
        # Explicit nulls: a merge patch would otherwise keep a part that no longer resolves.
        body = dict.fromkeys(("subnets", "securityGroups", "amis", "instanceProfile")) | status.to_dict()
        updated = await self._kube.update_status(self._resource, nc.name, body)
        return EC2NodeClass.from_dict(updated)

    async def set_finalizer(self, nc: EC2NodeClass, present: bool) -> EC2NodeClass | None:
        try:
            current = await self._kube.get(self._resource, nc.name)
            finalizers = [f for f in current["metadata"].get("finalizers") or () if f != nodeclass.FINALIZER]
            if present:
                finalizers.append(nodeclass.FINALIZER)
            updated = await self._kube.merge_patch(
                self._resource,
                nc.name,
                {"metadata": {"finalizers": finalizers}},
                resource_version=current["metadata"]["resourceVersion"],
            )
        except self._not_found:
            return None
        return EC2NodeClass.from_dict(updated)

    async def nodeclaims_using(self, name: str) -> builtins.list[str]:
        from nodesmith.kube import resources

        claims = (await self._kube.list(resources.NODECLAIMS)).items
        return sorted(
            c["metadata"]["name"]
            for c in claims
            if (c.get("spec", {}).get("nodeClassRef") or {}).get("name") == name
            and (c.get("spec", {}).get("nodeClassRef") or {}).get("group") == nodeclass.GROUP
        )
