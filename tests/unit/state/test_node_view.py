"""`statenode.parse_node`: a Node is parsed once, when the informer hands it over, into the typed view the
reconcilers read (conditions, readiness, versions, finalizers, timestamps); the raw object stays for the
patches and events that send it back."""

from __future__ import annotations

import datetime as dt
import typing

import pytest

from nodesmith.api import labels, meta
from nodesmith.state.statenode import NodeCondition, parse_node

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def node(**status: typing.Any) -> dict[str, typing.Any]:
    return {
        "metadata": {
            "name": "n1",
            "uid": "uid-1",
            "resourceVersion": "42",
            "annotations": {labels.ANNOTATION_DO_NOT_DISRUPT: "true"},
            "finalizers": [labels.FINALIZER_TERMINATION],
            "creationTimestamp": "2025-01-01T11:00:00Z",
            "deletionTimestamp": "2025-01-01T12:00:00Z",
        },
        "spec": {
            "providerID": "kwok://n1",
            "unschedulable": True,
            "taints": [{"key": labels.TAINT_DISRUPTED, "effect": "NoSchedule"}],
        },
        "status": status,
    }


def test_a_node_is_parsed_into_the_fields_the_reconcilers_read() -> None:
    raw = node(
        conditions=[
            {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T12:00:00Z"},
            {"type": "DiskPressure", "status": "False"},
        ]
    )
    part = parse_node(raw)
    assert part.object is raw
    assert (part.name, part.uid, part.resource_version) == ("n1", "uid-1", "42")
    assert part.finalizers == (labels.FINALIZER_TERMINATION,)
    assert part.unschedulable
    assert part.taints == (meta.Taint(labels.TAINT_DISRUPTED, meta.TaintEffect.NO_SCHEDULE),)
    assert part.conditions == (
        NodeCondition("Ready", "True", T0),
        NodeCondition("DiskPressure", "False", None),
    )
    assert part.ready
    assert part.deleting
    assert part.deletion_timestamp == T0
    assert part.creation_timestamp == T0 - dt.timedelta(hours=1)
    assert part.annotations == {labels.ANNOTATION_DO_NOT_DISRUPT: "true"}  # what disruption's opt-out reads
    assert part.reference() == {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": "n1", "uid": "uid-1", "resourceVersion": "42"},
    }


@pytest.mark.parametrize(
    "conditions",
    [
        [],
        [{"type": "Ready", "status": "False"}],
        [{"type": "Ready", "status": "Unknown"}],
        [{"type": "NetworkUnavailable", "status": "True"}],
    ],
)
def test_only_a_true_ready_condition_makes_the_node_ready(conditions: list[dict[str, str]]) -> None:
    assert not parse_node(node(conditions=conditions)).ready


def test_unreadable_timestamps_count_as_absent_not_as_a_malformed_node() -> None:
    raw = node(conditions=[{"type": "Ready", "status": "False", "lastTransitionTime": "yesterday"}])
    raw["metadata"]["deletionTimestamp"] = "soon"
    part = parse_node(raw)
    assert part.conditions == (NodeCondition("Ready", "False", None),)
    assert part.deleting
    assert part.deletion_timestamp is None


def test_a_node_without_optional_fields_has_empty_values() -> None:
    part = parse_node({"metadata": {"name": "bare"}})
    assert (part.uid, part.resource_version, part.provider_id) == (None, None, None)
    assert (part.finalizers, part.taints, part.conditions) == ((), (), ())
    assert (part.ready, part.unschedulable, part.deleting) == (False, False, False)
    assert (part.creation_timestamp, part.deletion_timestamp) == (None, None)
