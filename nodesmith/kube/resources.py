"""Descriptors of the Kubernetes resources nodesmith reads and writes: group, version, plural, kind and
whether they are namespaced, plus how to build their URLs.

Fed by nobody (constants) and by providers, which describe their NodeClass with `node_class`. Consumed
by `nodesmith.kube.client` (URLs), the informers in `nodesmith.state` (what to list and watch) and any
reconciler that needs to name a resource. A descriptor is a value: no discovery round trip, no kr8s
object classes, so the same descriptor works in tests, benchmarks and the simulation's records.
"""

from __future__ import annotations

import typing

import attrs

from nodesmith.api import labels

__all__ = [
    "CORE_EVENTS",
    "CRDS",
    "CSINODES",
    "DAEMONSETS",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NODECLAIMS",
    "NODEPOOLS",
    "NODES",
    "PDBS",
    "PODS",
    "PVCS",
    "PVS",
    "REPLICASETS",
    "REPLICATIONCONTROLLERS",
    "SERVICES",
    "STATEFULSETS",
    "STORAGECLASSES",
    "VOLUMEATTACHMENTS",
    "Resource",
    "node_class",
]


@typing.final
@attrs.frozen(slots=True)
class Resource:
    """One API resource: ``Resource("apps", "v1", "daemonsets", "DaemonSet", namespaced=True)``."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``<group>/<version>`` otherwise (the ``apiVersion`` field)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def name(self) -> str:
        """``plural.group`` (``nodepools.nodesmith.io``), or just the plural in the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path: ``/api/v1/namespaces/ns/pods/p/eviction``, ``/apis/nodesmith.io/v1/nodepools``.

        ``namespace=None`` on a namespaced resource addresses all namespaces (list/watch only).
        """
        if name is None and subresource is not None:
            raise ValueError("a subresource needs an object name")
        if self.namespaced and name is not None and not namespace:
            raise ValueError(f"{self.kind} {name!r} is namespaced; give its namespace")
        parts = ["/api/v1" if not self.group else f"/apis/{self.group}/{self.version}"]
        if self.namespaced and namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)


def node_class(group: str, kind: str, *, version: str = "v1", plural: str | None = None) -> Resource:
    """A provider's cluster-scoped NodeClass (``node_class("kwok.nodesmith.io", "KWOKNodeClass")``)."""
    if plural is None:
        lower = kind.lower()
        plural = f"{lower}es" if lower.endswith(("s", "x", "ch", "sh")) else f"{lower}s"
    return Resource(group, version, plural, kind, namespaced=False)


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
PODS = Resource("", "v1", "pods", "Pod", namespaced=True)
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", namespaced=True)
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
CORE_EVENTS = Resource("", "v1", "events", "Event", namespaced=True)
EVENTS = Resource("events.k8s.io", "v1", "events", "Event", namespaced=True)
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet", namespaced=True)
SERVICES = Resource("", "v1", "services", "Service", namespaced=True)
REPLICATIONCONTROLLERS = Resource(
    "", "v1", "replicationcontrollers", "ReplicationController", namespaced=True
)
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet", namespaced=True)
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet", namespaced=True)
PDBS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", namespaced=True)
STORAGECLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
CSINODES = Resource("storage.k8s.io", "v1", "csinodes", "CSINode", namespaced=False)
VOLUMEATTACHMENTS = Resource(
    "storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", namespaced=False
)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)
NODEPOOLS = Resource(labels.GROUP, "v1", "nodepools", "NodePool", namespaced=False)
NODECLAIMS = Resource(labels.GROUP, "v1", "nodeclaims", "NodeClaim", namespaced=False)
