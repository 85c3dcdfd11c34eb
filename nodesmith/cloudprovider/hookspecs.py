"""Every hook a nodesmith plugin can implement, declared in one place.

Plugins are Python distributions that register a module under the ``nodesmith`` entry-point group::

    [project.entry-points.nodesmith]
    mycloud = "nodesmith_mycloud.plugin"

and implement some of the hooks below with ``@nodesmith.cloudprovider.hookimpl``. The plugin manager
(:mod:`nodesmith.cloudprovider.manager`) loads them at start-up and checks each implementation against
these specs, naming the plugin and hook in the error when one does not fit.

Hooks are synchronous factories or observers: pluggy has no async support, so anything that does I/O
lives on the object a hook returns (a provider implements the async
:class:`nodesmith.cloudprovider.protocol.CloudProvider`).

Who implements what:

* a **cloud provider** (``nodesmith-aws``, ``nodesmith-kwok``, a third party's): ``nodesmith_provider_names``,
  ``nodesmith_cloud_provider``, usually ``nodesmith_crds`` and ``nodesmith_well_known_labels``, and
  ``nodesmith_karpenter_converter`` when Karpenter has a node class it converts;
* an **extension plugin** (price overlays, notifications, audit): ``nodesmith_adjust_instance_types``,
  ``nodesmith_observe_decision``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from nodesmith.cloudprovider.protocol import CloudProvider, ProviderContext
    from nodesmith.cloudprovider.types import InstanceType
    from nodesmith.convert import KarpenterConverter

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "nodesmith"
"""The pluggy project name and the entry-point group plugins register under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------------------------------
# Discovery: called once at start-up, before any reconciler runs.
# ---------------------------------------------------------------------------------------------------


@hookspec
def nodesmith_provider_names() -> Sequence[str]:
    """Return the names of the cloud providers this plugin can build (e.g. ``["aws"]``).

    Called for every plugin; the results are concatenated. ``nodesmith run --provider NAME`` and
    ``nodesmith plugins`` use them. Implement it if you implement :func:`nodesmith_cloud_provider`.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def nodesmith_cloud_provider(name: str, context: ProviderContext) -> CloudProvider | None:
    """Build the cloud provider called ``name``, or return ``None`` if it is not yours.

    ``firstresult``: the first non-``None`` answer wins. ``context`` carries the cluster name, the
    provider's settings and a Kubernetes client. Do no I/O here; do it in the returned object's
    async methods (background work belongs in its optional ``run``, see ``protocol.RunsInBackground``).
    """
    raise NotImplementedError


@hookspec
def nodesmith_crds() -> Sequence[Mapping[str, Any]]:
    """Return the CustomResourceDefinitions this plugin's objects need (e.g. its NodeClass).

    Called for every plugin; the results are concatenated. ``nodesmith dev`` and the Helm chart install
    them beside nodesmith's own NodePool and NodeClaim CRDs.
    """
    raise NotImplementedError


@hookspec
def nodesmith_well_known_labels() -> Sequence[str]:
    """Return label keys this plugin's instance types always define (e.g. ``aws.nodesmith.io/instance-family``).

    Called for every plugin at start-up; ``Plugins.well_known_labels`` joins the keys to the core's
    ``nodesmith.api.labels.CORE_WELL_KNOWN_LABELS``, and that value travels in the cluster state's
    snapshots and the scheduling inputs (and in snapshot files), so a pod may require them even though a
    NodePool does not mention them.
    """
    raise NotImplementedError


@hookspec
def nodesmith_karpenter_converter() -> KarpenterConverter:
    """Return the converter of this provider's Karpenter objects for ``nodesmith convert``.

    Called for every plugin; the core converts Karpenter's own NodePools and Provisioners and hands each
    object of the converter's ``karpenter_group`` (its node classes), a Provisioner's inline provider and
    the kubelet settings bound for its node class to it (see `nodesmith.convert.KarpenterConverter`).
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------------
# Simulation: called every time instance types are read for a NodePool.
# ---------------------------------------------------------------------------------------------------


@hookspec
def nodesmith_adjust_instance_types(
    nodepool_name: str, instance_types: Sequence[InstanceType]
) -> Sequence[InstanceType] | None:
    """Return a replacement list of instance types for ``nodepool_name``, or ``None`` to leave it alone.

    Called in turn on every plugin that implements it (later-registered first, as pluggy orders them),
    each seeing the previous one's result: use it for price overlays, discounts, or hiding types. Must be
    pure and fast: it runs on the provisioning path.
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------------
# Observation: called after a decision is made; must not block.
# ---------------------------------------------------------------------------------------------------


@hookspec
def nodesmith_observe_decision(decision: Mapping[str, Any]) -> None:
    """Observe a provisioning or disruption decision (the same record ``nodesmith explain`` serves).

    Called for every plugin; return values are ignored and exceptions are logged, never raised into
    the reconciler. Must return quickly: hand slow work (webhooks, chat messages) to your own thread.
    """
    raise NotImplementedError
