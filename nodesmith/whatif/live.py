"""Take a `snapshotfile.SnapshotFile` from a live cluster: read-only LISTs of every kind the daemon's
informers watch (and the provider's NodeClasses), trimmed as the informers trim them, plus each usable
NodePool's instance types from the provider plugin, passed through the plugins' adjusters exactly as the
provisioner does -- Cluster Autoscaler's "debugging snapshotter", for nodesmith.

Fed by a kubeconfig and the provider's name and settings (the CLI's flags); consumed by
``nodesmith simulate`` (``--dump``, or a live simulation) and ``nodesmith explain`` without
``--snapshot``. Nothing here writes to the cluster or launches anything.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs

from nodesmith import errors
from nodesmith.api import nodepool as api_nodepool
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import Closable, CloudProvider, ProviderContext, RunsInBackground
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.state import informer, simulation
from nodesmith.whatif.snapshotfile import SnapshotFile

__all__ = ["Source", "take_snapshot"]

Obj: typing.TypeAlias = Mapping[str, Any]


@typing.final
@attrs.frozen(slots=True)
class Source:
    """Where a live snapshot comes from."""

    provider: str
    provider_settings: Mapping[str, str] = attrs.field(factory=dict)
    cluster_name: str = "nodesmith"
    kubeconfig: str | None = None


async def _list_objects(kube: KubeClient, provider: CloudProvider) -> list[Obj]:
    kinds = [
        *informer.DEFAULT_RESOURCES,
        *(
            resources.node_class(k.group, k.kind, version=k.version)
            for k in provider.supported_node_classes()
        ),
    ]
    objects: list[Obj] = []
    for resource in kinds:
        try:
            listed = await kube.list(resource)
        except kube_errors.NotFoundError:  # a kind the API server does not serve (CRD not installed)
            continue
        transform = informer.TRANSFORMS.get(resource, informer.strip_object)
        objects.extend(transform(obj) for obj in listed.items)
    return objects


async def take_snapshot(
    source: Source,
    *,
    extra_nodepools: Sequence[Obj] = (),
    now: dt.datetime | None = None,
    plugins: manager.Plugins | None = None,
) -> tuple[SnapshotFile, dict[str, tuple[InstanceType, ...]]]:
    """The cluster now, with instance types for every usable NodePool; and, kept apart so the snapshot
    stays the cluster as it is, the instance types the provider offers ``extra_nodepools`` (the changed
    NodePools a simulation will apply: their NodeClass may differ)."""
    plugins = plugins or manager.Plugins.load()
    kube = await KubeClient.connect(source.kubeconfig)
    provider = plugins.cloud_provider(
        source.provider, ProviderContext(source.cluster_name, source.provider_settings, kube)
    )
    try:
        async with anyio.create_task_group() as group:
            if isinstance(provider, RunsInBackground):  # catalogue and price refreshes (AWS) first
                await group.start(provider.run)
            objects = await _list_objects(kube, provider)
            taken_at = now or dt.datetime.now(dt.UTC)
            bare = SnapshotFile(taken_at, tuple(objects), well_known_labels=plugins.well_known_labels())
            state, _ = bare.state()
            pools = list(simulation.usable_nodepools(state.snapshot()))
            changed = []
            for obj in extra_nodepools:
                try:
                    changed.append(api_nodepool.NodePool.from_dict(obj))
                except errors.ValidationError:
                    continue  # the simulation reports it
            types, skipped = await plugins.instance_types(provider, pools)
            changed_types, _ = await plugins.instance_types(provider, changed)
            group.cancel_scope.cancel()
    finally:
        if isinstance(provider, Closable):
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await provider.close()
    return attrs.evolve(bare, instance_types=types, skipped_nodepools=skipped), changed_types
