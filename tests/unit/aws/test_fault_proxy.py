"""The fault proxy's partial fleet must be an answer botocore parses the way EC2's is parsed: the error
entry names the pool (type and zone) the launcher marks unavailable. Serialized and parsed with
botocore's own EC2 model, so a wrong element name fails here rather than silently in the chaos tier."""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore import parsers, serialize

from nodesmith_aws.testing import proxy

MODEL = botocore.session.get_session().get_service_model("ec2")
OPERATION = MODEL.operation_model("CreateFleet")


def request_body(overrides: list[dict[str, Any]]) -> bytes:
    params = {
        "Type": "instant",
        "TargetCapacitySpecification": {"DefaultTargetCapacityType": "on-demand", "TotalTargetCapacity": 1},
        "LaunchTemplateConfigs": [
            {
                "LaunchTemplateSpecification": {"LaunchTemplateName": "nodesmith/abc", "Version": "$Latest"},
                "Overrides": overrides,
            }
        ],
    }
    serialized = serialize.create_serializer("ec2").serialize_to_request(params, OPERATION)
    body = serialized["body"]
    if isinstance(body, dict):
        from urllib.parse import urlencode

        return urlencode(body).encode()
    return bytes(body)


ANSWER = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<CreateFleetResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
    b"<requestId>r-1</requestId><fleetId>fleet-1</fleetId><fleetInstanceSet><item>"
    b"<instanceIds><item>i-1</item></instanceIds><instanceType>m5.large</instanceType>"
    b"<lifecycle>on-demand</lifecycle></item></fleetInstanceSet></CreateFleetResponse>"
)


def parse(body: bytes) -> dict[str, Any]:
    parsed = parsers.create_parser("ec2").parse(
        {"body": body, "headers": {}, "status_code": 200}, OPERATION.output_shape
    )
    return dict(parsed)


def test_partial_fleet_keeps_the_instance_and_reports_the_second_pool_as_out_of_capacity() -> None:
    body = request_body(
        [
            {"InstanceType": "m5.large", "AvailabilityZone": "us-west-2a", "SubnetId": "subnet-a"},
            {"InstanceType": "m5.xlarge", "AvailabilityZone": "us-west-2b", "SubnetId": "subnet-b"},
        ]
    )
    changed = proxy._fleet_error(body, ANSWER, "InsufficientInstanceCapacity")
    assert changed is not None
    answer, pool = changed
    assert pool == ("m5.xlarge", "us-west-2b")
    parsed = parse(answer)
    assert parsed["Instances"][0]["InstanceIds"] == ["i-1"]
    (error,) = parsed["Errors"]
    assert error["ErrorCode"] == "InsufficientInstanceCapacity"
    assert error["Lifecycle"] == "on-demand"
    overrides = error["LaunchTemplateAndOverrides"]["Overrides"]
    assert (overrides["InstanceType"], overrides["AvailabilityZone"]) == pool
    assert proxy._overrides(body) == {
        "LaunchTemplateConfigs.1.Overrides.1.": ("m5.large", "us-west-2a"),
        "LaunchTemplateConfigs.1.Overrides.2.": ("m5.xlarge", "us-west-2b"),
    }


def test_a_single_pool_request_is_left_alone() -> None:
    body = request_body([{"InstanceType": "m5.large", "AvailabilityZone": "us-west-2a"}])
    assert proxy._fleet_error(body, ANSWER, "InsufficientInstanceCapacity") is None
    assert proxy._operation({}, body) == "CreateFleet"
