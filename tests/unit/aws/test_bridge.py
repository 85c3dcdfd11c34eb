"""The moto → kwok bridge builds the Node a kubelet would register for each launched instance."""

from __future__ import annotations

import pytest

from nodesmith.api import labels
from nodesmith.api.meta import NodeClassRef
from nodesmith.testing import conformance
from nodesmith_aws import nodeclass
from nodesmith_aws.testing import bridge
from tests.unit.aws.conftest import Env, ready_nodeclass


@pytest.mark.anyio
async def test_each_launched_instance_gets_a_kwok_node_and_gone_ones_lose_it(env: Env) -> None:
    nc = await ready_nodeclass(env)
    pool = conformance.nodepool("default", NodeClassRef(nodeclass.GROUP, nodeclass.KIND, "default"))
    claim = conformance.nodeclaim(
        pool, [{"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["m5.large"]}]
    )
    created = await env.provider.create(claim)
    instances = await env.provider.list_instances()
    assert [i.provider_id for i in instances] == [created.status.provider_id]

    to_create, to_delete = bridge.plan(
        instances, [{"metadata": {"name": "old"}, "spec": {"providerID": "aws:///us-west-2a/i-0gone"}}]
    )
    assert to_delete == ["old"]
    assert to_create == instances
    node = bridge.node_for(instances[0], env.provider.instance_types.get(nc, "m5.large"), "us-west-2")
    assert node["spec"]["providerID"] == created.status.provider_id
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert node["spec"]["taints"] == [{"key": "nodesmith.io/unregistered", "effect": "NoExecute"}]
    node_labels = node["metadata"]["labels"]
    for key in (
        labels.LABEL_INSTANCE_TYPE,
        labels.LABEL_ZONE,
        labels.LABEL_CAPACITY_TYPE,
        labels.LABEL_NODEPOOL,
        labels.LABEL_ARCH,
    ):
        assert node_labels[key] == created.metadata.labels[key]
    assert node["status"]["allocatable"]["pods"] == "29"
    assert bridge.plan(instances, [node]) == ([], [])
