"""The AWS provider passes the provider-agnostic conformance suite, against moto in server mode."""

from __future__ import annotations

import pytest

from nodesmith.api.meta import NodeClassRef
from nodesmith.testing import conformance
from nodesmith_aws import nodeclass
from tests.unit.aws.conftest import Env, ready_nodeclass


class TestAwsConformance(conformance.ProviderConformance):
    @pytest.fixture
    async def conformance_harness(self, env: Env) -> conformance.Harness:
        await ready_nodeclass(env)
        ref = NodeClassRef(nodeclass.GROUP, nodeclass.KIND, "default")
        return conformance.Harness(
            provider=env.provider,
            nodepool=conformance.nodepool("default", ref),
            requirements=[
                {"key": "aws.nodesmith.io/instance-family", "operator": "In", "values": ["m5", "c5"]}
            ],
        )
