"""Volume topology and CSI attach limits (Karpenter ``volumetopology.go``, ``pkg/scheduling/volumeusage.go``).

The scheduler asks, once per pod with PersistentVolumeClaims, :func:`topology_alternatives` (where its
volumes can be reached) and :func:`volume_drivers` (which CSI driver attaches each volume). The
alternatives are node-only requirements: ``nodeclaim`` and ``existingnode`` try them in order and never let
them into the pod requirements that topology counting uses. :class:`VolumeUsage` tracks volumes per driver
on an existing node and refuses a pod that would exceed ``CSINode`` limits.

* A bound claim's PersistentVolume contributes its ``nodeAffinity.required`` terms, each an alternative
  (local and hostPath volumes drop ``kubernetes.io/hostname``, which a new node can never match).
* An unbound claim contributes its StorageClass ``allowedTopologies`` terms.
* Alternatives across volumes form a cross product; combinations that leave some key empty are pruned.

:func:`claim_problem` is Karpenter's ``ValidatePersistentVolumeClaims``: a pod whose claim kube-scheduler
would refuse (missing or deleting claim, ``Lost``, bound to a missing or deleting volume, unbound without a
usable WaitForFirstConsumer StorageClass, naming a volume without the ``pv.kubernetes.io/bind-completed``
annotation) is ignored rather than provisioned for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, final

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, RequirementError, Requirements
from nodesmith.scheduling import inputs

__all__ = ["BIND_COMPLETED", "VolumeUsage", "claim_problem", "topology_alternatives", "volume_drivers"]

BIND_COMPLETED: Final = "pv.kubernetes.io/bind-completed"
"""The annotation the PersistentVolume controller sets on a claim once it is bound."""


def _claim(catalog: inputs.VolumeCatalog, namespace: str, name: str) -> Mapping[str, Any] | None:
    return catalog.claims.get((namespace, name))


def _volume_terms(catalog: inputs.VolumeCatalog, namespace: str, claim_name: str) -> list[Requirements]:
    claim = _claim(catalog, namespace, claim_name)
    if claim is None:
        return []
    spec = claim.get("spec") or {}
    volume_name = spec.get("volumeName")
    if volume_name:
        volume = catalog.volumes.get(str(volume_name)) or {}
        vspec = volume.get("spec") or {}
        local = bool(vspec.get("local") or vspec.get("hostPath"))
        terms = ((vspec.get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms") or ()
        out = []
        for term in terms:
            exprs = [
                e
                for e in term.get("matchExpressions") or ()
                if not (local and e.get("key") == labels.LABEL_HOSTNAME)
            ]
            try:
                out.append(Requirements.from_node_selector(exprs))
            except RequirementError:
                continue
        return out
    storage_class = catalog.storage_classes.get(str(spec.get("storageClassName") or "")) or {}
    out = []
    for term in storage_class.get("allowedTopologies") or ():
        out.append(
            Requirements(
                Requirement.in_(str(e["key"]), *(str(v) for v in e.get("values") or ()))
                for e in term.get("matchLabelExpressions") or ()
            )
        )
    return out


def claim_problem(catalog: inputs.VolumeCatalog, namespace: str, claim_names: tuple[str, ...]) -> str | None:
    """Why the pod's claims make it unschedulable for now, or ``None`` when they are usable."""
    for name in claim_names:
        claim = _claim(catalog, namespace, name)
        if claim is None:
            return f"persistentvolumeclaim {namespace}/{name} not found"
        if (claim.get("metadata") or {}).get("deletionTimestamp"):
            return f"persistentvolumeclaim {namespace}/{name} is being deleted"
        if (claim.get("status") or {}).get("phase") == "Lost":
            return f"persistentvolumeclaim {namespace}/{name} is Lost (its volume no longer exists)"
        spec = claim.get("spec") or {}
        volume_name = spec.get("volumeName")
        storage_class_name = str(spec.get("storageClassName") or "")
        if volume_name:
            volume = catalog.volumes.get(str(volume_name))
            if volume is None:
                return f"persistentvolume {volume_name} of claim {namespace}/{name} not found"
            if (volume.get("metadata") or {}).get("deletionTimestamp"):
                return f"persistentvolume {volume_name} of claim {namespace}/{name} is being deleted"
            if BIND_COMPLETED not in ((claim.get("metadata") or {}).get("annotations") or {}):
                # kube-scheduler treats a claim naming its volume as bound only once binding completed
                return f"persistentvolumeclaim {namespace}/{name} is not bound yet (no {BIND_COMPLETED})"
            continue
        if not storage_class_name:
            return f"unbound persistentvolumeclaim {namespace}/{name} must name a storage class"
        storage_class = catalog.storage_classes.get(storage_class_name)
        if storage_class is None:
            return f"storage class {storage_class_name} of claim {namespace}/{name} not found"
        if storage_class.get("volumeBindingMode") == "Immediate":
            return (
                f"unbound persistentvolumeclaim {namespace}/{name} has an Immediate storage class "
                f"({storage_class_name}) and must be bound first"
            )
    return None


def topology_alternatives(
    catalog: inputs.VolumeCatalog, namespace: str, claim_names: tuple[str, ...]
) -> tuple[Requirements, ...]:
    """OR'd node requirements under which all the pod's volumes are reachable. ``(Requirements(),)`` when
    the volumes do not constrain topology; ``()`` when no combination is possible."""
    combos = [Requirements()]
    for name in claim_names:
        terms = _volume_terms(catalog, namespace, name)
        if not terms:
            continue
        merged = (combo.intersect(term) for combo in combos for term in terms)
        combos = [m for m in merged if not any(r.is_empty() for r in m.values())]
    return tuple(combos)


def volume_drivers(
    catalog: inputs.VolumeCatalog, namespace: str, claim_names: tuple[str, ...]
) -> dict[str, frozenset[str]]:
    """CSI driver → the volume ids (PV name, or ``namespace/claim`` while unbound) the pod would attach."""
    out: dict[str, set[str]] = {}
    for name in claim_names:
        claim = _claim(catalog, namespace, name)
        if claim is None:
            continue
        spec = claim.get("spec") or {}
        volume_name = spec.get("volumeName")
        driver = None
        if volume_name:
            csi = ((catalog.volumes.get(str(volume_name)) or {}).get("spec") or {}).get("csi") or {}
            driver = csi.get("driver")
            volume_id = str(volume_name)
        else:
            storage_class = catalog.storage_classes.get(str(spec.get("storageClassName") or "")) or {}
            driver = storage_class.get("provisioner")
            volume_id = f"{namespace}/{name}"
        if driver:
            out.setdefault(str(driver), set()).add(volume_id)
    return {k: frozenset(v) for k, v in out.items()}


@final
class VolumeUsage:
    """Volumes attached per CSI driver on one existing node (mutable, owned by that node)."""

    __slots__ = ("_by_driver", "_limits")

    def __init__(self, limits: Mapping[str, int]) -> None:
        self._limits = dict(limits)
        self._by_driver: dict[str, set[str]] = {}

    def exceeds(self, drivers: Mapping[str, frozenset[str]]) -> str | None:
        """The first driver whose limit the new volumes would exceed."""
        for driver in sorted(drivers):
            limit = self._limits.get(driver)
            if limit is None:
                continue
            if len(self._by_driver.get(driver, set()) | drivers[driver]) > limit:
                return driver
        return None

    def add(self, drivers: Mapping[str, frozenset[str]]) -> None:
        for driver, ids in drivers.items():
            self._by_driver.setdefault(driver, set()).update(ids)

    def copy(self) -> VolumeUsage:
        out = VolumeUsage(self._limits)
        out._by_driver = {driver: set(ids) for driver, ids in self._by_driver.items()}
        return out
