"""`Bootstrap`: everything a node's user data is rendered from, and the taints every node registers with.

Built by the launch path (and the ``render`` command) from the cluster (`nodesmith_aws.cluster`), the
EC2NodeClass and the NodeClaim; consumed by the family renderers in this package. It is part of the
launch template's identity: two launches with equal options share one template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from nodesmith.api import labels as core_labels

__all__ = ["KUBELET_FIELDS", "KUBELET_KEYS", "Bootstrap", "UserDataError", "taints"]

KUBELET_KEYS: Final = (
    "podsPerCore",
    "kubeReserved",
    "systemReserved",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionMaxPodGracePeriod",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "cpuCFSQuota",
)
"""EC2NodeClass ``spec.kubelet`` keys passed to the kubelet as they are (KubeletConfiguration names);
``maxPods`` and ``clusterDNS`` are decided by the caller and carried separately."""
KUBELET_FIELDS: Final = frozenset({*KUBELET_KEYS, "maxPods", "clusterDNS"})
"""Every ``spec.kubelet`` setting nodesmith-aws implements (Karpenter v1 has a few more); ``nodesmith
convert`` keeps these and reports the rest."""


class UserDataError(ValueError):
    """Raised when the user's ``spec.userData`` cannot be read in its family's format (bad MIME, bad
    TOML). The resolver turns it into the EC2NodeClass's ``ValidationSucceeded=False`` condition."""


@attrs.frozen(slots=True)
class Bootstrap:
    cluster_name: str
    cluster_endpoint: str
    ca_bundle: str
    """Base64 PEM bundle, as EKS reports it."""
    labels: Mapping[str, str]
    taints: Sequence[Mapping[str, str]]
    """``{key, value?, effect}``; the unregistered taint is added by :func:`taints`."""
    max_pods: int
    kubelet: Mapping[str, Any]
    """The EC2NodeClass ``spec.kubelet``; only `KUBELET_KEYS` are read from it."""
    cluster_dns: Sequence[str] = ()
    """Cluster DNS IPs when the NodeClass does not set ``kubelet.clusterDNS``."""
    cluster_cidr: str = ""
    """The service CIDR (nodeadm derives the DNS address from it and refuses a config without it)."""
    instance_store_policy: str | None = None
    """``RAID0``: put the instance-store NVMe disks into one array for the kubelet and containerd."""

    @property
    def dns(self) -> list[str]:
        return [str(ip) for ip in (self.kubelet.get("clusterDNS") or self.cluster_dns)]

    def kubelet_settings(self) -> dict[str, Any]:
        """The `KUBELET_KEYS` the NodeClass set, copied."""
        out: dict[str, Any] = {}
        for key in KUBELET_KEYS:
            value = self.kubelet.get(key)
            if value is not None:
                out[key] = dict(value) if isinstance(value, Mapping) else value
        return out


def taints(boot: Bootstrap) -> list[dict[str, str]]:
    """The NodeClaim's taints plus ``nodesmith.io/unregistered:NoExecute``, which the core removes once
    the node has registered (so nothing schedules before nodesmith has seen the node)."""
    unregistered = {"key": core_labels.TAINT_UNREGISTERED, "effect": "NoExecute"}
    out = [{k: str(v) for k, v in t.items() if v} for t in boot.taints if t.get("key") != unregistered["key"]]
    return [*out, unregistered]
