"""Names nodesmith writes on or reads from Kubernetes objects: groups, labels, annotations, taints, finalizer.

Every other module takes these names from here, so a rename is one edit. Karpenter's own spellings
(``karpenter.sh/...``) appear only where workloads written for Karpenter must keep working (the
do-not-disrupt annotation) and in the opt-in alias labels.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ANNOTATION_DO_NOT_DISRUPT",
    "ANNOTATION_DO_NOT_DISRUPT_KARPENTER",
    "ANNOTATION_MIN_VALUES_RELAXED",
    "ANNOTATION_NODECLAIM_TERMINATION_TIMESTAMP",
    "ANNOTATION_NODEPOOL_HASH",
    "ANNOTATION_NODEPOOL_HASH_VERSION",
    "ANNOTATION_PACKING",
    "CORE_WELL_KNOWN_LABELS",
    "DO_NOT_DISRUPT_ANNOTATIONS",
    "FINALIZER_TERMINATION",
    "GROUP",
    "KARPENTER_LABEL_ALIASES",
    "KNOWN_EPHEMERAL_TAINT_KEYS",
    "LABEL_ARCH",
    "LABEL_CAPACITY_TYPE",
    "LABEL_HOSTNAME",
    "LABEL_INITIALIZED",
    "LABEL_INSTANCE_TYPE",
    "LABEL_NODEPOOL",
    "LABEL_OS",
    "LABEL_REGION",
    "LABEL_REGISTERED",
    "LABEL_RESERVATION_ID",
    "LABEL_WINDOWS_BUILD",
    "LABEL_ZONE",
    "NORMALIZED_LABELS",
    "RESTRICTED_LABELS",
    "RESTRICTED_LABEL_DOMAINS",
    "TAINT_DISRUPTED",
    "TAINT_UNREGISTERED",
    "CapacityType",
    "is_restricted_label",
    "normalize_label",
]

GROUP: Final = "nodesmith.io"
API_VERSION: Final = f"{GROUP}/v1"

# Labels nodesmith owns.
LABEL_NODEPOOL: Final = f"{GROUP}/nodepool"
LABEL_CAPACITY_TYPE: Final = f"{GROUP}/capacity-type"
LABEL_RESERVATION_ID: Final = f"{GROUP}/reservation-id"
"""The capacity reservation a reserved offering (and the node launched into it) belongs to."""
LABEL_REGISTERED: Final = f"{GROUP}/registered"
LABEL_INITIALIZED: Final = f"{GROUP}/initialized"
LABEL_DO_NOT_SYNC_TAINTS: Final = f"{GROUP}/do-not-sync-taints"

# Kubernetes well-known labels.
LABEL_ZONE: Final = "topology.kubernetes.io/zone"
LABEL_REGION: Final = "topology.kubernetes.io/region"
LABEL_INSTANCE_TYPE: Final = "node.kubernetes.io/instance-type"
LABEL_ARCH: Final = "kubernetes.io/arch"
LABEL_OS: Final = "kubernetes.io/os"
LABEL_HOSTNAME: Final = "kubernetes.io/hostname"
LABEL_WINDOWS_BUILD: Final = "node.kubernetes.io/windows-build"


class CapacityType:
    """Values of ``nodesmith.io/capacity-type``."""

    SPOT: Final = "spot"
    ON_DEMAND: Final = "on-demand"
    RESERVED: Final = "reserved"


# Annotations.
ANNOTATION_DO_NOT_DISRUPT: Final = f"{GROUP}/do-not-disrupt"
ANNOTATION_DO_NOT_DISRUPT_KARPENTER: Final = "karpenter.sh/do-not-disrupt"
DO_NOT_DISRUPT_ANNOTATIONS: Final = (ANNOTATION_DO_NOT_DISRUPT, ANNOTATION_DO_NOT_DISRUPT_KARPENTER)
"""Both are honoured on pods and nodes, so workloads written for Karpenter keep their protection."""
ANNOTATION_NODEPOOL_HASH: Final = f"{GROUP}/nodepool-hash"
ANNOTATION_NODEPOOL_HASH_VERSION: Final = f"{GROUP}/nodepool-hash-version"
ANNOTATION_NODECLAIM_TERMINATION_TIMESTAMP: Final = f"{GROUP}/nodeclaim-termination-timestamp"
ANNOTATION_MIN_VALUES_RELAXED: Final = f"{GROUP}/nodeclaim-min-values-relaxed"
ANNOTATION_PACKING: Final = f"{GROUP}/packing"
"""On a NodePool: ``cost-optimised`` (or ``cost-optimized``) opts its new NodeClaims into cost-optimised
packing (`nodesmith.scheduling.packing`); absent or any other value keeps Karpenter's packing."""

# Taints and finalizer.
TAINT_DISRUPTED: Final = f"{GROUP}/disrupted"
"""``nodesmith.io/disrupted:NoSchedule``: set on a node being disrupted or terminated."""
TAINT_UNREGISTERED: Final = f"{GROUP}/unregistered"
"""``nodesmith.io/unregistered:NoExecute``: applied at boot, removed at registration."""
FINALIZER_TERMINATION: Final = f"{GROUP}/termination"

KNOWN_EPHEMERAL_TAINT_KEYS: Final = frozenset(
    {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.cloudprovider.kubernetes.io/uninitialized",
        TAINT_UNREGISTERED,
    }
)
"""Taints that a node sheds on its own while starting; simulated pods need not tolerate them
(plus any key under the ``readiness.k8s.io/`` prefix)."""

CORE_WELL_KNOWN_LABELS: Final = frozenset(
    {
        LABEL_NODEPOOL,
        LABEL_ZONE,
        LABEL_REGION,
        LABEL_INSTANCE_TYPE,
        LABEL_ARCH,
        LABEL_OS,
        LABEL_CAPACITY_TYPE,
        LABEL_RESERVATION_ID,
        LABEL_WINDOWS_BUILD,
    }
)
"""The core's well-known labels: keys that may be undefined on one side of a compatibility check.
Providers add theirs through the ``nodesmith_well_known_labels`` hook; the union is a *value* that travels
in every decision's inputs (``SchedulingInput.well_known_labels``, snapshot files), never module state,
so an offline replay decides what the daemon decides."""

RESTRICTED_LABELS: Final = frozenset({LABEL_HOSTNAME})
RESTRICTED_LABEL_DOMAINS: Final = frozenset({GROUP, "kubernetes.io", "k8s.io"})
_ALLOWED_IN_RESTRICTED_DOMAINS: Final = frozenset(
    {"kops.k8s.io", "node.kubernetes.io", "node-restriction.kubernetes.io"}
)

NORMALIZED_LABELS: Final = {
    "failure-domain.beta.kubernetes.io/zone": LABEL_ZONE,
    "failure-domain.beta.kubernetes.io/region": LABEL_REGION,
    "beta.kubernetes.io/arch": LABEL_ARCH,
    "beta.kubernetes.io/os": LABEL_OS,
    "beta.kubernetes.io/instance-type": LABEL_INSTANCE_TYPE,
}
"""Deprecated beta keys and the key each stands for; requirements are normalised once at construction."""

KARPENTER_LABEL_ALIASES: Final = {
    LABEL_NODEPOOL: "karpenter.sh/nodepool",
    LABEL_CAPACITY_TYPE: "karpenter.sh/capacity-type",
    LABEL_REGISTERED: "karpenter.sh/registered",
    LABEL_INITIALIZED: "karpenter.sh/initialized",
}
"""nodesmith label → Karpenter label, stamped on nodes too when the alias setting is on."""


def normalize_label(key: str) -> str:
    """Map a deprecated beta label key to its current name; other keys are returned unchanged."""
    return NORMALIZED_LABELS.get(key, key)


def is_restricted_label(key: str, well_known: frozenset[str]) -> bool:
    """True for label keys a NodePool template may not set (hostname, and nodesmith/Kubernetes domains
    other than the ``well_known`` labels and the kubelet-settable ``node.kubernetes.io`` family)."""
    if key in well_known:
        return False
    if key in RESTRICTED_LABELS:
        return True
    domain = key.split("/", 1)[0] if "/" in key else ""
    if not domain:
        return False
    if any(domain == allowed or domain.endswith("." + allowed) for allowed in _ALLOWED_IN_RESTRICTED_DOMAINS):
        return False
    return any(
        domain == restricted or domain.endswith("." + restricted) for restricted in RESTRICTED_LABEL_DOMAINS
    )
