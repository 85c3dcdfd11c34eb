"""The NodeClaim lifecycle's decisions, without I/O: hydrating a launched NodeClaim, what registration
writes onto the Node, whether a Node is initialized, the liveness verdict, and the termination deadline.

No I/O, no async, no clock: models, parsed Nodes (`statenode.NodePart`) and ``now`` in, values out. Consumed by
`nodesmith.reconcilers.lifecycle` (which reads the NodeClaim and its Node from the cluster state and writes
what these functions return) and by the termination reconcilers (the deadline); unit-tested in ``tests/unit/reconcilers/test_lifecycle_checks.py``.
Karpenter's ``pkg/controllers/nodeclaim/lifecycle/{launch,registration,initialization,liveness}.go`` (spec §3).
"""

from __future__ import annotations

import datetime as dt
import typing
from typing import Any, Final

import attrs

from nodesmith.api import conditions, labels, meta
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.state.statenode import NodePart

__all__ = [
    "LAUNCH_TIMEOUT",
    "REGISTRATION_TIMEOUT",
    "Liveness",
    "hydrate",
    "initialization_blocker",
    "liveness",
    "node_ready",
    "registration_patch",
    "termination_deadline",
]

LAUNCH_TIMEOUT: Final = dt.timedelta(minutes=5)
REGISTRATION_TIMEOUT: Final = dt.timedelta(minutes=15)
READINESS_TAINT_PREFIX: Final = "readiness.k8s.io/"
ANNOTATIONS_NOT_SYNCED: Final = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
OWNER_API_VERSION: Final = api_nodeclaim.API_VERSION


# -- launch ---------------------------------------------------------------------------------------------


def hydrate(claim: api_nodeclaim.NodeClaim, launched: api_nodeclaim.NodeClaim) -> api_nodeclaim.NodeClaim:
    """``claim`` with what the provider reported: its labels (instance type, zone, capacity type...) under
    the NodeClaim's own (which win), its annotations likewise, and providerID, imageID, capacity and
    allocatable. Conditions are the caller's business."""
    metadata = attrs.evolve(
        claim.metadata,
        labels={**launched.metadata.labels, **claim.metadata.labels},
        annotations={**launched.metadata.annotations, **claim.metadata.annotations},
    )
    status = attrs.evolve(
        claim.status,
        provider_id=launched.status.provider_id,
        image_id=launched.status.image_id or claim.status.image_id,
        capacity=dict(launched.status.capacity),
        allocatable=dict(launched.status.allocatable),
    )
    return attrs.evolve(claim, metadata=metadata, status=status)


# -- registration ---------------------------------------------------------------------------------------


def _has_taint(taints: typing.Iterable[meta.Taint], taint: meta.Taint) -> bool:
    return any(t.matches(taint) for t in taints)


def has_unregistered_taint(node: NodePart) -> bool:
    return any(
        t.key == labels.TAINT_UNREGISTERED and t.effect == meta.TaintEffect.NO_EXECUTE for t in node.taints
    )


def registration_patch(node: NodePart, claim: api_nodeclaim.NodeClaim) -> dict[str, Any]:
    """The merge patch that registers ``node`` for ``claim`` (to be sent with the Node's resourceVersion,
    since it replaces lists): the NodeClaim's labels plus ``nodesmith.io/registered=true``, its annotations,
    an owner reference to the NodeClaim, the termination finalizer, and the taints -- the unregistered
    taint removed; the NodeClaim's taints and startup taints added (unless the Node carries
    ``nodesmith.io/do-not-sync-taints=true``, or was registered before: startup taints are added once).
    The lists it replaces are copied from ``node.object`` entry by entry, so what nodesmith does not model
    in them survives the patch."""
    already_registered = node.labels.get(labels.LABEL_REGISTERED) == "true"
    sync_taints = node.labels.get(labels.LABEL_DO_NOT_SYNC_TAINTS) != "true" and not already_registered

    raw_meta = node.object.get("metadata") or {}
    raw_taints = (node.object.get("spec") or {}).get("taints") or ()
    taints = [dict(t) for t in raw_taints if t.get("key") != labels.TAINT_UNREGISTERED]
    if sync_taints:
        for taint in (*claim.spec.taints, *claim.spec.startup_taints):
            if not any(t.get("key") == taint.key and t.get("effect") == taint.effect.value for t in taints):
                taints.append(taint.to_dict())

    owners = [dict(o) for o in raw_meta.get("ownerReferences") or ()]
    if not any(o.get("uid") == claim.metadata.uid for o in owners):
        owners.append(
            {
                "apiVersion": OWNER_API_VERSION,
                "kind": api_nodeclaim.KIND,
                "name": claim.name,
                "uid": claim.metadata.uid,
                "blockOwnerDeletion": True,
            }
        )
    finalizers = list(node.finalizers)
    if labels.FINALIZER_TERMINATION not in finalizers:
        finalizers.append(labels.FINALIZER_TERMINATION)
    annotations = {k: v for k, v in claim.metadata.annotations.items() if k not in ANNOTATIONS_NOT_SYNCED}
    patch_meta: dict[str, Any] = {
        "labels": {**claim.metadata.labels, labels.LABEL_REGISTERED: "true"},
        "ownerReferences": owners,
        "finalizers": finalizers,
    }
    if annotations:
        patch_meta["annotations"] = annotations
    return {"metadata": patch_meta, "spec": {"taints": taints}}


# -- initialization -------------------------------------------------------------------------------------


def node_ready(node: NodePart) -> bool:
    """The Node's ``Ready`` condition is True."""
    return node.ready


def initialization_blocker(node: NodePart, claim: api_nodeclaim.NodeClaim) -> tuple[str, str] | None:
    """Why the registered ``node`` is not initialized yet, as ``(reason, message)``; ``None`` when it is:
    Ready, none of the NodeClaim's startup taints left, no known ephemeral taint left, and every resource
    the NodeClaim requests present in the Node's allocatable (device plugins register extended resources
    after the kubelet starts)."""
    if not node.ready:
        return "NodeNotReady", "Node status is NotReady"
    for taint in claim.spec.startup_taints:
        if _has_taint(node.taints, taint):
            return "StartupTaintsExist", f"StartupTaint {taint} still exists"
    for present in node.taints:
        if present.key in labels.KNOWN_EPHEMERAL_TAINT_KEYS or present.key.startswith(READINESS_TAINT_PREFIX):
            return (
                "KnownEphemeralTaintsExist",
                f"KnownEphemeralTaint {present.key}:{present.effect.value} still exists",
            )
    for name, value in sorted(claim.spec.resources.items()):
        if value and not node.allocatable.get(name):
            return "ResourceNotRegistered", f"Resource {name!r} was requested but not registered"
    return None


# -- liveness -------------------------------------------------------------------------------------------


@typing.final
@attrs.frozen(slots=True)
class Liveness:
    """``reason`` (``launch_timeout``/``registration_timeout``) when the NodeClaim must be deleted now;
    otherwise ``check_at``, when the verdict could change next (``None``: never, it registered)."""

    reason: str | None = None
    check_at: dt.datetime | None = None


def _started(claim: api_nodeclaim.NodeClaim, condition_type: str) -> dt.datetime | None:
    if claim.metadata.creation_timestamp is not None:
        return claim.metadata.creation_timestamp
    condition = claim.condition(condition_type)
    return condition.last_transition_time if condition is not None else None


def liveness(claim: api_nodeclaim.NodeClaim, now: dt.datetime) -> Liveness:
    """Not launched within `LAUNCH_TIMEOUT` or not registered within `REGISTRATION_TIMEOUT` of creation
    → delete (the provisioner then tries again, elsewhere)."""
    if claim.is_true(conditions.ConditionType.REGISTERED):
        return Liveness()
    if not claim.is_true(conditions.ConditionType.LAUNCHED):
        started = _started(claim, conditions.ConditionType.LAUNCHED)
        if started is None:
            return Liveness()
        deadline = started + LAUNCH_TIMEOUT
        return Liveness("launch_timeout") if now >= deadline else Liveness(check_at=deadline)
    started = _started(claim, conditions.ConditionType.REGISTERED)
    if started is None:
        return Liveness()
    deadline = started + REGISTRATION_TIMEOUT
    return Liveness("registration_timeout") if now >= deadline else Liveness(check_at=deadline)


# -- termination ----------------------------------------------------------------------------------------


def termination_deadline(claim: api_nodeclaim.NodeClaim) -> dt.datetime | None:
    """When the NodeClaim's node must be gone: the annotation if recorded, else deletionTimestamp +
    ``spec.terminationGracePeriod`` (``None`` when there is no grace period or no deletion yet)."""
    recorded = claim.metadata.annotations.get(labels.ANNOTATION_NODECLAIM_TERMINATION_TIMESTAMP)
    if recorded:
        try:
            return meta.parse_time(recorded, labels.ANNOTATION_NODECLAIM_TERMINATION_TIMESTAMP)
        except ValueError:
            pass  # unreadable: fall back to the spec (the reconciler rewrites nothing it cannot read)
    grace = claim.spec.termination_grace_period
    deleted = claim.metadata.deletion_timestamp
    if grace is None or grace.value is None or deleted is None:
        return None
    return deleted + grace.value
