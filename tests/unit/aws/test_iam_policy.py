"""The controller policy grants exactly the AWS actions the provider's code calls (the e2e test checks
the calls a real run makes against the same policy)."""

from __future__ import annotations

import pathlib

from nodesmith_aws.testing import iam

TEMPLATE = pathlib.Path(__file__).parents[3] / "deploy" / "aws" / "cloudformation.yaml"


def test_the_policy_grants_exactly_what_the_source_calls() -> None:
    granted = iam.granted(TEMPLATE)
    called = iam.called_in_source()
    assert called - granted == set(), "called but not granted"
    assert granted - called == set(), "granted but never called"
    assert "eks:DescribeCluster" in granted


def test_the_source_scan_sees_the_calls_it_must() -> None:
    called = iam.called_in_source()
    assert {"ec2:CreateFleet", "ec2:DescribeSubnets", "ssm:GetParameter", "sqs:ReceiveMessage"} <= called
    assert "ec2:DescribeCapacityReservations" in called  # capacityReservationSelectorTerms
