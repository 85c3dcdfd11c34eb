"""The lifecycle's pure decisions (`nodesmith.reconcilers.lifecycle_checks`): hydration after launch, the
registration patch, initialization blockers, liveness verdicts and the termination deadline."""

from __future__ import annotations

import datetime as dt
import typing

import pytest

from nodesmith.api import conditions, labels
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.reconcilers import lifecycle_checks as checks
from nodesmith.state.statenode import NodePart, parse_node

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
Obj = dict[str, typing.Any]


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def claim(
    *,
    created: dt.datetime = NOW,
    taints: list[Obj] | None = None,
    startup_taints: list[Obj] | None = None,
    requests: dict[str, str] | None = None,
    status: Obj | None = None,
    annotations: dict[str, str] | None = None,
    deleted: dt.datetime | None = None,
    grace: str | None = None,
) -> api_nodeclaim.NodeClaim:
    metadata: Obj = {
        "name": "nc",
        "uid": "uid-nc",
        "creationTimestamp": stamp(created),
        "labels": {labels.LABEL_NODEPOOL: "default", "team": "blue"},
        "annotations": annotations or {},
    }
    if deleted:
        metadata["deletionTimestamp"] = stamp(deleted)
    spec: Obj = {
        "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"},
        "requirements": [],
        "resources": {"requests": requests or {"cpu": "1"}},
    }
    if taints:
        spec["taints"] = taints
    if startup_taints:
        spec["startupTaints"] = startup_taints
    if grace:
        spec["terminationGracePeriod"] = grace
    return api_nodeclaim.NodeClaim.from_dict(
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": metadata,
            "spec": spec,
            "status": status or {},
        }
    )


def node(
    *,
    taints: list[Obj] | None = None,
    ready: bool = True,
    allocatable: dict[str, str] | None = None,
    **meta: typing.Any,
) -> NodePart:
    """A Node as the cluster state holds it (parsed once, as the informer hands it over)."""
    return parse_node(
        {
            "metadata": {"name": "nc", "resourceVersion": "7", **meta},
            "spec": {"providerID": "kwok://nc", "taints": taints or []},
            "status": {
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "allocatable": allocatable or {"cpu": "900m", "memory": "1Gi"},
            },
        }
    )


UNREGISTERED = {"key": labels.TAINT_UNREGISTERED, "effect": "NoExecute"}
TEAM = {"key": "team", "value": "blue", "effect": "NoSchedule"}
STARTUP = {"key": "agent", "effect": "NoSchedule"}


def test_hydrate_takes_the_providers_facts_and_keeps_the_nodeclaims_labels() -> None:
    launched = api_nodeclaim.NodeClaim.from_dict(
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {"name": "nc", "labels": {labels.LABEL_INSTANCE_TYPE: "m5.large", "team": "red"}},
            "spec": {"nodeClassRef": {"group": "g", "kind": "K", "name": "n"}, "requirements": []},
            "status": {
                "providerID": "aws:///i-1",
                "imageID": "ami-1",
                "capacity": {"cpu": "2"},
                "allocatable": {"cpu": "1900m"},
            },
        }
    )
    hydrated = checks.hydrate(claim(), launched)
    assert hydrated.metadata.labels[labels.LABEL_INSTANCE_TYPE] == "m5.large"
    assert hydrated.metadata.labels["team"] == "blue"  # the NodeClaim's own label wins
    assert (hydrated.status.provider_id, hydrated.status.image_id) == ("aws:///i-1", "ami-1")
    assert hydrated.status.capacity == {"cpu": 2000}
    assert hydrated.status.allocatable == {"cpu": 1900}
    assert hydrated.spec == claim().spec


def test_registration_patch_syncs_metadata_taints_owner_and_finalizer() -> None:
    patch = checks.registration_patch(
        node(
            taints=[UNREGISTERED, {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}],
            finalizers=["other"],
        ),
        claim(taints=[TEAM], startup_taints=[STARTUP], annotations={"note": "x"}),
    )
    meta = patch["metadata"]
    assert meta["labels"][labels.LABEL_REGISTERED] == "true"
    assert meta["labels"]["team"] == "blue"
    assert meta["annotations"] == {"note": "x"}
    assert meta["finalizers"] == ["other", labels.FINALIZER_TERMINATION]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "name": "nc",
            "uid": "uid-nc",
            "blockOwnerDeletion": True,
        }
    ]
    assert [t["key"] for t in patch["spec"]["taints"]] == ["node.kubernetes.io/not-ready", "team", "agent"]


def test_registration_patch_does_not_duplicate_and_respects_do_not_sync_taints() -> None:
    owner = {"apiVersion": "nodesmith.io/v1", "kind": "NodeClaim", "name": "nc", "uid": "uid-nc"}
    patch = checks.registration_patch(
        node(taints=[TEAM], ownerReferences=[owner], finalizers=[labels.FINALIZER_TERMINATION]),
        claim(taints=[TEAM]),
    )
    assert len(patch["spec"]["taints"]) == 1
    assert len(patch["metadata"]["ownerReferences"]) == 1
    assert patch["metadata"]["finalizers"] == [labels.FINALIZER_TERMINATION]

    opted_out = node(taints=[UNREGISTERED], labels={labels.LABEL_DO_NOT_SYNC_TAINTS: "true"})
    assert checks.registration_patch(opted_out, claim(taints=[TEAM]))["spec"]["taints"] == []


def test_startup_taints_are_not_added_again_once_registered() -> None:
    registered = node(taints=[], labels={labels.LABEL_REGISTERED: "true"})
    assert checks.registration_patch(registered, claim(startup_taints=[STARTUP]))["spec"]["taints"] == []


@pytest.mark.parametrize(
    ("the_node", "the_claim", "reason"),
    [
        (node(), claim(), None),
        (node(ready=False), claim(), "NodeNotReady"),
        (node(taints=[STARTUP]), claim(startup_taints=[STARTUP]), "StartupTaintsExist"),
        (node(taints=[UNREGISTERED]), claim(), "KnownEphemeralTaintsExist"),
        (
            node(taints=[{"key": "readiness.k8s.io/net", "effect": "NoSchedule"}]),
            claim(),
            "KnownEphemeralTaintsExist",
        ),
        (node(), claim(requests={"cpu": "1", "nvidia.com/gpu": "1"}), "ResourceNotRegistered"),
        (
            node(allocatable={"cpu": "1", "nvidia.com/gpu": "1"}),
            claim(requests={"nvidia.com/gpu": "1"}),
            None,
        ),
        (node(taints=[TEAM]), claim(taints=[TEAM]), None),
    ],
)
def test_initialization_blockers(
    the_node: NodePart, the_claim: api_nodeclaim.NodeClaim, reason: str | None
) -> None:
    blocker = checks.initialization_blocker(the_node, the_claim)
    assert (blocker[0] if blocker else None) == reason


def _with(c: api_nodeclaim.NodeClaim, *types: str) -> api_nodeclaim.NodeClaim:
    for condition_type in types:
        c = c.with_condition(condition_type, True, now=NOW)
    return c


def test_liveness_deletes_after_the_launch_and_registration_timeouts() -> None:
    fresh = claim(created=NOW)
    assert checks.liveness(fresh, NOW + dt.timedelta(minutes=4)) == checks.Liveness(
        check_at=NOW + checks.LAUNCH_TIMEOUT
    )
    assert checks.liveness(fresh, NOW + dt.timedelta(minutes=5)).reason == "launch_timeout"

    launched = _with(fresh, conditions.ConditionType.LAUNCHED)
    assert (
        checks.liveness(launched, NOW + dt.timedelta(minutes=6)).check_at == NOW + checks.REGISTRATION_TIMEOUT
    )
    assert checks.liveness(launched, NOW + dt.timedelta(minutes=15)).reason == "registration_timeout"

    registered = _with(launched, conditions.ConditionType.REGISTERED)
    assert checks.liveness(registered, NOW + dt.timedelta(days=1)) == checks.Liveness()


def test_termination_deadline_prefers_the_recorded_annotation() -> None:
    assert checks.termination_deadline(claim(grace="1h")) is None  # not deleted yet
    deleted = claim(grace="1h", deleted=NOW)
    assert checks.termination_deadline(deleted) == NOW + dt.timedelta(hours=1)
    recorded = claim(
        grace="1h",
        deleted=NOW,
        annotations={labels.ANNOTATION_NODECLAIM_TERMINATION_TIMESTAMP: stamp(NOW + dt.timedelta(minutes=5))},
    )
    assert checks.termination_deadline(recorded) == NOW + dt.timedelta(minutes=5)
    assert checks.termination_deadline(claim(deleted=NOW)) is None
