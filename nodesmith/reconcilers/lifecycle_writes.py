"""Writing NodeClaims and finalizers back to the API: the diff between the model a reconciler read and
the one it computed becomes at most two patches (metadata, then status), each guarded by the
resourceVersion it was computed from.

Fed by the lifecycle, NodeClaim termination and node termination reconcilers (which compute new
`NodeClaim` models purely and hand both versions here); writes through `nodesmith.kube.client.KubeClient`.
A `kube.errors.ConflictError` means the object changed since it was read: the caller requeues and
recomputes from the fresher copy the informer delivers, it never retries blindly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nodesmith.api import labels
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient

__all__ = ["map_patch", "remove_finalizer", "write_nodeclaim"]


def map_patch(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str | None]:
    """A merge patch turning map ``before`` into ``after`` (``None`` deletes a key)."""
    patch: dict[str, str | None] = {k: v for k, v in after.items() if before.get(k) != v}
    patch.update({k: None for k in before if k not in after})
    return patch


async def write_nodeclaim(
    kube: KubeClient, before: api_nodeclaim.NodeClaim, after: api_nodeclaim.NodeClaim
) -> api_nodeclaim.NodeClaim:
    """Persist ``after`` (computed from ``before``): labels, annotations and finalizers in one metadata
    patch, then the status through the status subresource; both with the resourceVersion of what they
    were computed from. Returns the NodeClaim as the API server answered (``before`` when nothing changed).
    Raises `kube.errors.ConflictError` / `NotFoundError`."""
    current = before
    resource_version = before.metadata.resource_version
    patch_meta: dict[str, Any] = {}
    label_patch = map_patch(before.metadata.labels, after.metadata.labels)
    if label_patch:
        patch_meta["labels"] = label_patch
    annotation_patch = map_patch(before.metadata.annotations, after.metadata.annotations)
    if annotation_patch:
        patch_meta["annotations"] = annotation_patch
    if before.metadata.finalizers != after.metadata.finalizers:
        patch_meta["finalizers"] = list(after.metadata.finalizers)
    if patch_meta:
        answer = await kube.merge_patch(
            resources.NODECLAIMS, before.name, {"metadata": patch_meta}, resource_version=resource_version
        )
        current = api_nodeclaim.NodeClaim.from_dict(answer)
        resource_version = current.metadata.resource_version
    if before.status != after.status:
        answer = await kube.update_status(
            resources.NODECLAIMS, before.name, after.status.to_dict(), resource_version=resource_version
        )
        current = api_nodeclaim.NodeClaim.from_dict(answer)
    return current


async def remove_finalizer(
    kube: KubeClient,
    resource: resources.Resource,
    name: str,
    finalizers: Sequence[str],
    resource_version: str | None,
    finalizer: str = labels.FINALIZER_TERMINATION,
) -> bool:
    """Remove ``finalizer`` from the cluster-scoped object ``name`` whose ``finalizers`` were read at
    ``resource_version`` (the patch replaces the list, so it is guarded by that version). Returns whether
    a patch was sent. Raises `kube.errors.ConflictError` / `NotFoundError`."""
    if finalizer not in finalizers:
        return False
    await kube.merge_patch(
        resource,
        name,
        {"metadata": {"finalizers": [f for f in finalizers if f != finalizer] or None}},
        resource_version=resource_version,
    )
    return True
