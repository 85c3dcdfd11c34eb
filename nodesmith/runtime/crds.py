"""Installing nodesmith's CRDs (NodePool, NodeClaim) and every plugin's (its NodeClasses) into a cluster.

The CRDs are rendered from the model (`nodesmith.api.crds`) and the plugins' ``nodesmith_crds`` hook, the
same source as the checked-in ``deploy/crds``. Used by ``nodesmith dev up``, the demo and the tests; in
production the Helm chart installs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from nodesmith.api import crds
from nodesmith.cloudprovider import manager
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient

__all__ = ["all_crds", "install"]


def all_crds(plugins: manager.Plugins | None = None) -> list[dict[str, Any]]:
    """nodesmith's own CRDs followed by those of every installed plugin."""
    own = [crds.custom_resource_definition(resource) for resource in crds.CORE_RESOURCES]
    extra = [dict(crd) for crd in (plugins or manager.Plugins.load()).crds()]
    return own + extra


async def install(
    kube: KubeClient, definitions: Sequence[Mapping[str, Any]], *, timeout: float = 60.0
) -> None:
    """Create or update each CRD, then wait until the API server reports every one Established."""
    for crd in definitions:
        name = crd["metadata"]["name"]
        try:
            await kube.create(resources.CRDS, crd)
        except kube_errors.AlreadyExistsError:
            current = await kube.get(resources.CRDS, name)
            body = {
                **crd,
                "metadata": {**crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            await kube.replace(resources.CRDS, body)
    with anyio.fail_after(timeout):
        for crd in definitions:
            while not _established(await kube.get(resources.CRDS, crd["metadata"]["name"])):
                await anyio.sleep(0.1)


def _established(crd: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Established" and c.get("status") == "True"
        for c in (crd.get("status") or {}).get("conditions") or ()
    )
