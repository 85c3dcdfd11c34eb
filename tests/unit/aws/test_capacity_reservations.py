"""EC2 capacity reservations: selector terms, DescribeCapacityReservations answers into status, reserved
offerings with their remaining count, the launch template target.

moto (5.2.5, server mode) implements no capacity-reservation call (neither Create nor
DescribeCapacityReservations), so the EC2 answers here are dicts in the documented response shape, and the
moto-backed test checks what the provider does around the call: a NodeClass whose reservations cannot be
read keeps the ones resolved before, and they become reserved offerings of its instance types.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.meta import NodeClassRef
from nodesmith.testing import conformance
from nodesmith_aws import capacityreservations, nodeclass
from nodesmith_aws.instances import Instance
from nodesmith_aws.nodeclass import EC2NodeClass
from nodesmith_aws.reservationusage import ReservationUsage
from tests.unit.aws.conftest import Env, nodeclass_manifest

REF = NodeClassRef(nodeclass.GROUP, nodeclass.KIND, "default")


def _answer(rid: str, state: str = "active", **extra: Any) -> dict[str, Any]:
    return {
        "CapacityReservationId": rid,
        "InstanceType": "m5.large",
        "AvailabilityZone": "us-west-2a",
        "AvailableInstanceCount": 3,
        "TotalInstanceCount": 5,
        "OwnerId": "123456789012",
        "InstanceMatchCriteria": "targeted",
        "State": state,
        **extra,
    }


def test_selector_terms_become_describe_requests() -> None:
    assert capacityreservations.request({"id": "cr-0123abc"}) == {"CapacityReservationIds": ["cr-0123abc"]}
    assert capacityreservations.request({"tags": {"team": "a", "any": "*"}, "ownerID": "123456789012"}) == {
        "Filters": [
            {"Name": "tag-key", "Values": ["any"]},
            {"Name": "tag:team", "Values": ["a"]},
            {"Name": "owner-id", "Values": ["123456789012"]},
            {"Name": "state", "Values": ["active"]},
        ]
    }


def test_only_active_reservations_are_kept_once_each() -> None:
    end = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    found = capacityreservations.from_api(
        [
            _answer("cr-2", EndDate=end),
            _answer("cr-1"),
            _answer("cr-2", EndDate=end),
            _answer("cr-3", "expired"),
        ]
    )
    assert [r.id for r in found] == ["cr-1", "cr-2"]
    assert found[1].end_time == "2027-01-01T00:00:00Z"
    assert found[0].available_count == 3
    assert capacityreservations.ResolvedCapacityReservation.from_dict(found[1].to_dict()) == found[1]


def test_reserved_offerings_carry_the_available_count_and_a_price_below_on_demand() -> None:
    (reservation,) = capacityreservations.from_api([_answer("cr-1")])
    (offering,) = capacityreservations.offerings("m5.large", ["us-west-2a"], [reservation], 0.096)
    assert offering.reserved
    assert offering.reservation_id == "cr-1"
    assert offering.reservation_capacity == 3
    assert offering.available
    assert offering.price < 0.096
    assert capacityreservations.offerings("m5.large", ["us-west-2b"], [reservation], 0.096) == []
    assert capacityreservations.offerings("c5.large", ["us-west-2a"], [reservation], 0.096) == []
    (used_up,) = capacityreservations.from_api([_answer("cr-1", AvailableInstanceCount=0)])
    (offering,) = capacityreservations.offerings("m5.large", ["us-west-2a"], [used_up], 0.096)
    assert not offering.available


def test_launch_targets_the_reservation_by_id() -> None:
    assert capacityreservations.target("cr-1") == {
        "CapacityReservationTarget": {"CapacityReservationId": "cr-1"}
    }


@pytest.mark.parametrize(
    ("term", "ok"),
    [
        ({"id": "cr-0123abc"}, True),
        ({"tags": {"team": "a"}, "ownerID": "123456789012"}, True),
        ({"id": "cr-0123abc", "tags": {"team": "a"}}, False),
        ({"ownerID": "123456789012"}, False),
        ({"id": "sg-0123"}, False),
    ],
)
def test_selector_term_validation(term: dict[str, Any], ok: bool) -> None:
    manifest = nodeclass_manifest(capacityReservationSelectorTerms=[term])
    if ok:
        assert EC2NodeClass.from_dict(manifest).spec["capacityReservationSelectorTerms"] == [term]
    else:
        with pytest.raises(errors.ValidationError):
            EC2NodeClass.from_dict(manifest)


@pytest.mark.anyio
async def test_reservations_become_reserved_offerings_and_survive_a_failed_describe(env: Env) -> None:
    (reservation,) = capacityreservations.from_api([_answer("cr-0abc")])
    manifest = nodeclass_manifest(capacityReservationSelectorTerms=[{"id": "cr-0abc"}])
    manifest["status"] = {"capacityReservations": [reservation.to_dict()]}
    env.store.put(manifest)
    nc = await env.provider.reconcile_node_class("default")
    assert nc is not None
    assert nc.ready is not None
    assert nc.ready.is_true, nc.status.conditions
    # moto answers DescribeCapacityReservations with an error: the reservation resolved before is kept
    assert nc.status.capacity_reservations == (reservation,)
    types = {
        it.name: it for it in await env.provider.get_instance_types(conformance.nodepool("default", REF))
    }
    m5 = types["m5.large"]
    (reserved,) = [o for o in m5.offerings if o.reserved]
    assert reserved.reservation_id == "cr-0abc"
    assert reserved.zone == "us-west-2a"
    assert reserved.reservation_capacity == 3
    assert reserved.price < min(o.price for o in m5.offerings if o.capacity_type == "on-demand")
    assert m5.requirements.get(labels.LABEL_CAPACITY_TYPE).has("reserved")
    assert not any(o.reserved for name, it in types.items() if name != "m5.large" for o in it.offerings)


@pytest.mark.anyio
async def test_a_nodeclaim_pinned_to_a_reservation_launches_into_it(env: Env) -> None:
    (reservation,) = capacityreservations.from_api([_answer("cr-0abc")])
    manifest = nodeclass_manifest(capacityReservationSelectorTerms=[{"id": "cr-0abc"}])
    manifest["status"] = {"capacityReservations": [reservation.to_dict()]}
    env.store.put(manifest)
    assert await env.provider.reconcile_node_class("default") is not None
    pool = conformance.nodepool("default", REF)
    pinned = [
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["m5.large", "m5.xlarge"]},
        {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["reserved"]},
        {"key": labels.LABEL_RESERVATION_ID, "operator": "In", "values": ["cr-0abc"]},
    ]
    created = await env.provider.create(conformance.nodeclaim(pool, pinned, name="claim-r"))
    assert created.metadata.labels[labels.LABEL_CAPACITY_TYPE] == "reserved"
    assert created.metadata.labels[labels.LABEL_RESERVATION_ID] == "cr-0abc"
    assert created.metadata.labels[labels.LABEL_INSTANCE_TYPE] == "m5.large"
    assert created.metadata.labels[labels.LABEL_ZONE] == "us-west-2a"
    # the instance came from a launch template that targets the reservation
    ec2 = await env.ec2()
    assert created.status.provider_id is not None
    instance_id = created.status.provider_id.rsplit("/", 1)[1]
    raw = (await ec2.describe_instances(InstanceIds=[instance_id]))["Reservations"][0]["Instances"][0]
    assert raw["InstanceType"] == "m5.large"
    templates = (await ec2.describe_launch_templates())["LaunchTemplates"]
    targets = []
    for template in templates:
        versions = await ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
        for version in versions["LaunchTemplateVersions"]:
            spec = version["LaunchTemplateData"].get("CapacityReservationSpecification")
            if spec:
                targets.append(spec)
    assert targets == [{"CapacityReservationTarget": {"CapacityReservationId": "cr-0abc"}}]


def _reserved_count(types: Any, name: str = "m5.large") -> tuple[int, bool]:
    (reserved,) = [o for it in types if it.name == name for o in it.offerings if o.reserved]
    return reserved.reservation_capacity, reserved.available


def test_a_read_settles_only_the_changes_recorded_before_it_started() -> None:
    usage = ReservationUsage()
    (reservation,) = capacityreservations.from_api([_answer("cr-0abc", AvailableInstanceCount=2)])
    usage.mark_launched("cr-0abc")
    usage.mark_launched("cr-0other")
    token = usage.mark()  # a read starts here ...
    usage.mark_launched("cr-0abc")  # ... and this launch happens while it is in flight
    assert usage.available(reservation) == 0
    usage.settle(token, ["cr-0abc"])  # the read saw the first launch, not the second
    assert usage.change("cr-0abc") == -1
    assert usage.change("cr-0other") == -1  # not read: still unsettled
    assert usage.available(reservation) == 1
    usage.mark_terminated("cr-0abc")
    assert usage.available(reservation) == 2
    usage.mark_launched("cr-0abc")
    usage.mark_launched("cr-0abc")
    usage.mark_launched("cr-0abc")
    assert usage.available(reservation) == 0  # never below zero


@pytest.mark.anyio
async def test_a_launch_takes_a_slot_until_the_next_read_and_termination_gives_it_back(env: Env) -> None:
    (reservation,) = capacityreservations.from_api([_answer("cr-0abc", AvailableInstanceCount=1)])
    manifest = nodeclass_manifest(capacityReservationSelectorTerms=[{"id": "cr-0abc"}])
    manifest["status"] = {"capacityReservations": [reservation.to_dict()]}
    env.store.put(manifest)
    assert await env.provider.reconcile_node_class("default") is not None
    pool = conformance.nodepool("default", REF)
    assert _reserved_count(await env.provider.get_instance_types(pool)) == (1, True)
    pinned = [
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["m5.large"]},
        {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["reserved"]},
    ]
    created = await env.provider.create(conformance.nodeclaim(pool, pinned, name="claim-slot"))
    assert created.metadata.labels[labels.LABEL_RESERVATION_ID] == "cr-0abc"
    # the one slot is taken: the next solve sees a filled reservation, not the count last read
    assert _reserved_count(await env.provider.get_instance_types(pool)) == (0, False)
    # a failed DescribeCapacityReservations (moto has none) is no new count: the slot stays taken
    assert await env.provider.reconcile_node_class("default") is not None
    assert _reserved_count(await env.provider.get_instance_types(pool)) == (0, False)
    await env.provider.delete(created)
    assert _reserved_count(await env.provider.get_instance_types(pool)) == (1, True)


def test_an_instance_in_a_reservation_names_it() -> None:
    raw = {
        "InstanceId": "i-0abc",
        "InstanceType": "m5.large",
        "Placement": {"AvailabilityZone": "us-west-2a"},
        "State": {"Name": "running"},
        "CapacityReservationId": "cr-0abc",
    }
    assert Instance.from_api(raw).reservation_id == "cr-0abc"
    assert Instance.from_api({**raw, "CapacityReservationId": None}).reservation_id == ""


def test_an_interruption_warning_empties_the_reservation_until_the_next_read() -> None:
    usage = ReservationUsage()
    (reservation,) = capacityreservations.from_api([_answer("cr-0abc")])
    usage.mark_unavailable("cr-0abc")
    usage.mark_terminated("cr-0abc")
    assert usage.available(reservation) == 0
    token = usage.mark()
    usage.settle(token, ["cr-0other"])
    assert usage.available(reservation) == 0  # another reservation's read says nothing about this one
    usage.settle(token, ["cr-0abc"])
    assert usage.available(reservation) == 3
