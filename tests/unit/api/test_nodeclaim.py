"""NodeClaim: round trips, defaults, requirements and the lifecycle conditions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from nodesmith.api import conditions, labels, meta, nodeclaim, schema

from .conftest import load_manifest

T0 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
Type = conditions.ConditionType


def test_launched_nodeclaim_manifest_round_trips_exactly() -> None:
    manifest = load_manifest("nodeclaim-launched.yaml")
    claim = nodeclaim.NodeClaim.from_dict(manifest)
    assert claim.to_dict() == manifest
    assert nodeclaim.NodeClaim.from_dict(claim.to_dict()) == claim


def test_launched_nodeclaim_fields_are_parsed() -> None:
    claim = nodeclaim.NodeClaim.from_dict(load_manifest("nodeclaim-launched.yaml"))
    assert claim.name == "default-x7k2p"
    assert claim.nodepool_name == "default"
    assert claim.metadata.creation_timestamp == T0
    assert claim.metadata.owner_references[0].block_owner_deletion is True
    assert claim.spec.resources == {"cpu": 3500, "memory": 6 * 2**30 * 1000, "pods": 12_000}
    assert claim.spec.termination_grace_period == meta.Duration.of(dt.timedelta(hours=1))
    assert claim.status.provider_id == "kwok://kwok-default-x7k2p"
    assert claim.status.allocatable["cpu"] == 3900
    assert claim.status.last_pod_event_time == dt.datetime(2025, 1, 2, 3, 6, tzinfo=dt.UTC)
    assert claim.is_true(Type.READY)
    assert not claim.deleting


def test_requirements_are_set_algebra() -> None:
    claim = nodeclaim.NodeClaim.from_dict(load_manifest("nodeclaim-launched.yaml"))
    assert claim.requirements[labels.LABEL_CAPACITY_TYPE].values == frozenset({"spot", "on-demand"})
    assert claim.requirements[labels.LABEL_NODEPOOL].has("default")


def test_minimal_nodeclaim_gets_karpenters_defaults(nodeclaim_dict: dict[str, Any]) -> None:
    claim = nodeclaim.NodeClaim.from_dict(nodeclaim_dict)
    assert claim.spec.expire_after.value == dt.timedelta(hours=720)
    assert claim.spec.resources == {}
    assert claim.status == nodeclaim.NodeClaimStatus()
    assert claim.to_dict() == schema.apply_defaults(nodeclaim.OBJECT_SCHEMA, nodeclaim_dict)
    assert "status" not in claim.to_dict()


def test_lifecycle_conditions_drive_ready(nodeclaim_dict: dict[str, Any]) -> None:
    nodeclaim_dict["metadata"]["generation"] = 1
    claim = nodeclaim.NodeClaim.from_dict(nodeclaim_dict)
    claim = claim.with_condition(Type.LAUNCHED, True, now=T0)
    claim = claim.with_condition(Type.REGISTERED, True, now=T0)
    ready = claim.condition(Type.READY)
    assert ready is not None
    assert ready.status is conditions.ConditionStatus.UNKNOWN
    assert ready.message == "Initialized=Unknown"
    later = T0 + dt.timedelta(minutes=1)
    claim = claim.with_condition(Type.INITIALIZED, True, now=later)
    ready = claim.condition(Type.READY)
    assert ready is not None
    assert ready.is_true
    assert ready.last_transition_time == later
    assert [c.type for c in claim.status.conditions] == sorted(c.type for c in claim.status.conditions)


def test_informational_conditions_can_be_set_and_cleared_without_touching_ready(
    nodeclaim_dict: dict[str, Any],
) -> None:
    claim = nodeclaim.NodeClaim.from_dict(nodeclaim_dict)
    for condition_type in (Type.LAUNCHED, Type.REGISTERED, Type.INITIALIZED):
        claim = claim.with_condition(condition_type, True, now=T0)
    drifted = claim.with_condition(
        Type.DRIFTED, True, reason="NodePoolDrifted", now=T0 + dt.timedelta(hours=1)
    )
    assert drifted.is_true(Type.DRIFTED)
    assert drifted.condition(Type.READY) == claim.condition(Type.READY)
    assert drifted.without_condition(Type.DRIFTED).condition(Type.DRIFTED) is None


def test_a_launch_failure_keeps_launched_unknown_with_the_providers_reason(
    nodeclaim_dict: dict[str, Any],
) -> None:
    claim = nodeclaim.NodeClaim.from_dict(nodeclaim_dict)
    claim = claim.with_condition(
        Type.LAUNCHED, conditions.ConditionStatus.UNKNOWN, reason="LaunchFailed", message="boom", now=T0
    )
    launched = claim.condition(Type.LAUNCHED)
    assert launched is not None
    assert (launched.status, launched.reason, launched.message) == (
        conditions.ConditionStatus.UNKNOWN,
        "LaunchFailed",
        "boom",
    )
    assert nodeclaim.NodeClaim.from_dict(claim.to_dict()) == claim
