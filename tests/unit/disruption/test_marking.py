"""Drifted, Consolidatable and expiration verdicts for one NodeClaim."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.api.nodepool import HASH_VERSION, NodePool
from nodesmith.disruption import marking
from nodesmith.testing import factories

from .factories import CATALOGUE, T0, nodepool_dict

POOL = NodePool.from_dict(nodepool_dict(requirements=[{"key": "team", "operator": "In", "values": ["a"]}]))
WELL_KNOWN = labels.CORE_WELL_KNOWN_LABELS


def claim(
    *,
    hash_: str | None = None,
    extra_labels: dict[str, str] | None = None,
    instance_type: str | None = "medium",
    capacity_type: str = "on-demand",
    initialized_at: dt.datetime | None = T0,
    last_pod_event: dt.datetime | None = None,
    expire_after: str = "720h",
) -> NodeClaim:
    status: dict[str, Any] = {"conditions": []}
    if initialized_at is not None:
        status["conditions"].append(
            {
                "type": "Initialized",
                "status": "True",
                "reason": "Initialized",
                "message": "",
                "lastTransitionTime": initialized_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    if last_pod_event is not None:
        status["lastPodEventTime"] = last_pod_event.strftime("%Y-%m-%dT%H:%M:%SZ")
    return NodeClaim.from_dict(
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {
                "name": "c",
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "labels": {
                    labels.LABEL_NODEPOOL: "default",
                    **({} if instance_type is None else {labels.LABEL_INSTANCE_TYPE: instance_type}),
                    labels.LABEL_CAPACITY_TYPE: capacity_type,
                    labels.LABEL_ZONE: "z1",
                    "team": "a",
                    **(extra_labels or {}),
                },
                "annotations": {
                    labels.ANNOTATION_NODEPOOL_HASH: hash_ or POOL.hash(),
                    labels.ANNOTATION_NODEPOOL_HASH_VERSION: HASH_VERSION,
                },
            },
            "spec": {
                "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"},
                "requirements": [],
                "expireAfter": expire_after,
            },
            "status": status,
        }
    )


@pytest.mark.parametrize(
    ("kwargs", "types", "expected"),
    [
        ({}, CATALOGUE, None),
        ({"hash_": "12345"}, CATALOGUE, marking.DriftReason.NODEPOOL_DRIFTED),
        ({"extra_labels": {"team": "b"}}, CATALOGUE, marking.DriftReason.REQUIREMENTS_DRIFTED),
        ({"instance_type": "gone"}, CATALOGUE, marking.DriftReason.INSTANCE_TYPE_NOT_FOUND),
        ({"capacity_type": "reserved"}, CATALOGUE, None),  # a reservation may run on as on-demand
        ({"instance_type": "gone"}, (), None),  # no instance types known: not drift
        ({"instance_type": "gone"}, None, None),
    ],
)
def test_drift_reasons(kwargs: dict[str, Any], types: Any, expected: marking.DriftReason | None) -> None:
    assert marking.static_drift_reason(claim(**kwargs), POOL, types, well_known=WELL_KNOWN) == expected


def test_provider_reason_comes_after_core_reasons() -> None:
    assert marking.drift_reason(claim(), POOL, CATALOGUE, "ImageDrift", well_known=WELL_KNOWN) == "ImageDrift"
    assert (
        marking.drift_reason(claim(hash_="1"), POOL, CATALOGUE, "ImageDrift", well_known=WELL_KNOWN)
        == "NodePoolDrifted"
    )
    assert marking.drift_reason(claim(), POOL, CATALOGUE, None, well_known=WELL_KNOWN) is None


def pool_after(consolidate_after: str) -> NodePool:
    return NodePool.from_dict(nodepool_dict(consolidate_after=consolidate_after))


@pytest.mark.parametrize(
    ("consolidate_after", "kwargs", "now_offset", "value", "recheck"),
    [
        ("30s", {}, 31, True, None),
        ("30s", {}, 10, False, 20),
        ("30s", {"last_pod_event": T0 + dt.timedelta(seconds=20)}, 31, False, 19),
        ("30s", {"last_pod_event": T0 + dt.timedelta(seconds=20)}, 50, True, None),
        ("Never", {}, 3600, False, None),
        ("0s", {"initialized_at": None}, 3600, False, None),
    ],
)
def test_consolidatable(
    consolidate_after: str, kwargs: dict[str, Any], now_offset: int, value: bool, recheck: int | None
) -> None:
    verdict = marking.consolidatable(
        claim(**kwargs), pool_after(consolidate_after), T0 + dt.timedelta(seconds=now_offset)
    )
    assert verdict.value is value
    assert verdict.recheck_after == (None if recheck is None else dt.timedelta(seconds=recheck))


def test_expiration() -> None:
    c = claim(expire_after="1h")
    assert marking.expires_at(c) == T0 + dt.timedelta(hours=1)
    assert not marking.expired(c, T0 + dt.timedelta(minutes=59))
    assert marking.expired(c, T0 + dt.timedelta(hours=1))
    assert marking.expires_at(claim(expire_after="Never")) is None


LATER = T0 + dt.timedelta(hours=2)


@pytest.mark.parametrize(
    ("title", "kwargs", "types", "now", "expected"),
    [
        # nodeclaim/disruption/drift_test.go
        (
            "should detect stale instance type drift if the instance type label doesn't exist",
            {"instance_type": None},
            CATALOGUE,
            LATER,
            marking.DriftReason.INSTANCE_TYPE_NOT_FOUND,
        ),
        (
            "should detect stale instance type drift if the instance type doesn't exist",
            {"instance_type": "gone"},
            CATALOGUE,
            LATER,
            marking.DriftReason.INSTANCE_TYPE_NOT_FOUND,
        ),
        (
            "the instance type is not checked in the first hour after creation",
            {"instance_type": "gone"},
            CATALOGUE,
            T0 + dt.timedelta(minutes=59),
            None,
        ),
        ("nor is a missing label", {"instance_type": None}, CATALOGUE, T0 + dt.timedelta(minutes=59), None),
        (
            "requirements drift is not delayed",
            {"extra_labels": {"team": "b"}},
            CATALOGUE,
            T0,
            marking.DriftReason.REQUIREMENTS_DRIFTED,
        ),
        # nodesmith's deliberate difference: an empty catalogue is no evidence (README)
        ("no instance types offered at all", {"instance_type": None}, (), LATER, None),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_instance_type_drift_as_karpenter(
    title: str, kwargs: dict[str, Any], types: Any, now: dt.datetime, expected: marking.DriftReason | None
) -> None:
    assert (
        marking.static_drift_reason(claim(**kwargs), POOL, types, now=now, well_known=WELL_KNOWN) == expected
    )


# nodeclaim/disruption/drift_test.go, "Reserved Capacity" / "InstanceTypeNotFound": a NodeClaim launched
# into reservation cr-1, its instance type offering only the listed capacity types.
@pytest.mark.parametrize(
    ("capacity_types", "reservation", "expected"),
    [
        pytest.param(("reserved", "on-demand"), "cr-1", None, id="reserved-and-on-demand-offerings"),
        pytest.param(("reserved",), "cr-1", None, id="reserved-offering"),
        pytest.param(("on-demand",), "cr-1", None, id="on-demand-offering-after-the-reservation-ends"),
        pytest.param(("spot",), "cr-1", marking.DriftReason.INSTANCE_TYPE_NOT_FOUND, id="only-spot"),
        pytest.param((), "cr-1", marking.DriftReason.INSTANCE_TYPE_NOT_FOUND, id="no-offerings"),
        # nodesmith: a reserved offering of another reservation is not this NodeClaim's
        pytest.param(
            ("reserved",), "cr-2", marking.DriftReason.INSTANCE_TYPE_NOT_FOUND, id="other-reservation"
        ),
    ],
)
def test_reserved_instance_type_drift(
    capacity_types: tuple[str, ...], reservation: str, expected: marking.DriftReason | None
) -> None:
    plain = tuple(ct for ct in capacity_types if ct != "reserved")
    medium = factories.instance_type(
        "medium",
        cpu=4,
        memory="8Gi",
        zones=("z1",),
        capacity_types=plain,
        reservations=[(reservation, "z1", 1)] if "reserved" in capacity_types else (),
    )
    small = factories.instance_type("small", cpu=2, memory="4Gi", zones=("z1",))  # the catalogue is not empty
    reserved_claim = claim(capacity_type="reserved", extra_labels={labels.LABEL_RESERVATION_ID: "cr-1"})
    verdict = marking.static_drift_reason(
        reserved_claim, POOL, [medium, small], now=LATER, well_known=WELL_KNOWN
    )
    assert verdict == expected
