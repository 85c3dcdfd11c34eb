"""AL2023 user data, checked by nodeadm itself: every shape renders a config ``nodeadm config check``
accepts, and ``nodeadm config dump`` (nodeadm's own merge of the MIME parts) shows what the node gets.

nodeadm is the real binary (see `nodesmith_aws.testing.nodeadm` for where it is looked for); without it
these tests fail with one line saying how to get it.
"""

from __future__ import annotations

import email
import json
from email.message import Message
from typing import Any, cast

import pytest

from nodesmith_aws.testing import nodeadm
from tests.unit.aws import userdata_shapes as shapes


@pytest.fixture(autouse=True)
def _nodeadm_binary() -> None:
    try:
        nodeadm.find()
    except nodeadm.NodeadmMissing as err:
        pytest.fail(str(err), pytrace=False)


@pytest.mark.parametrize("shape", sorted(shapes.SHAPES))
def test_nodeadm_accepts_the_al2023_user_data_of_every_shape(shape: str) -> None:
    text = shapes.render(shape, "AL2023").user_data
    result = nodeadm.check(text)
    assert result.ok, result.output
    assert "Configuration is valid" in result.output


def merged(shape: str) -> dict[str, Any]:
    result = nodeadm.dump(shapes.render(shape, "AL2023").user_data)
    assert result.ok, result.output
    dumped: dict[str, Any] = json.loads(result.stdout)
    return dumped


def test_nodeadm_sees_the_cluster_and_every_kubelet_setting() -> None:
    spec = merged("full-kubelet-and-taints")["spec"]
    assert isinstance(spec, dict)
    cluster = spec["cluster"]
    assert cluster["name"] == "shapes"
    assert cluster["apiServerEndpoint"] == shapes.IPV4.endpoint
    assert cluster["certificateAuthority"] == shapes.CA
    assert cluster["cidr"] == "10.100.0.0/16"
    config = spec["kubelet"]["config"]
    assert config["maxPods"] == 29
    for key in ("kubeReserved", "systemReserved", "evictionHard", "evictionSoft", "evictionSoftGracePeriod"):
        assert config[key] == shapes.FULL_KUBELET[key], key
    assert config["evictionMaxPodGracePeriod"] == 60
    assert config["imageGCHighThresholdPercent"] == 85
    assert config["cpuCFSQuota"] is True
    assert config["clusterDNS"] == ["10.100.0.53"]
    assert config["registerWithTaints"] == [
        {"key": "gpu", "value": "true", "effect": "NoSchedule"},
        {"key": "dedicated", "effect": "NoExecute"},
        {"key": "cilium.io/agent-not-ready", "value": "true", "effect": "NoExecute"},
        {"key": "nodesmith.io/unregistered", "effect": "NoExecute"},
    ]
    assert spec["kubelet"]["flags"] == [
        "--node-labels=nodesmith.io/capacity-type=spot,nodesmith.io/nodepool=pool,team=ml"
    ]


def test_without_cluster_dns_the_kubelet_gets_the_service_cidr_address() -> None:
    spec = merged("defaults")["spec"]
    assert isinstance(spec, dict)
    assert spec["kubelet"]["config"]["clusterDNS"] == ["10.100.0.10"]


def test_the_users_nodeconfig_is_merged_after_nodesmiths_as_nodeadm_reads_it() -> None:
    for shape in ("user-nodeconfig", "user-mime-archive"):
        config = merged(shape)["spec"]["kubelet"]["config"]
        assert config["registryPullQPS"] == 12, shape
        assert config["shutdownGracePeriod"] == "30s", shape
        assert config["maxPods"] == 29, shape


def test_the_users_parts_follow_nodesmiths_nodeconfig_in_order() -> None:
    message = email.message_from_string(shapes.render("user-mime-archive", "AL2023").user_data)
    parts = cast(list[Message], message.get_payload())  # multipart: its parts
    assert [p.get_content_type() for p in parts] == [
        "application/node.eks.aws",
        "text/x-shellscript",
        "application/node.eks.aws",
    ]
    assert "echo hello from the user" in parts[1].get_payload()
    script_message = email.message_from_string(shapes.render("user-shell-script", "AL2023").user_data)
    script = cast(list[Message], script_message.get_payload())  # multipart: its parts
    assert [p.get_content_type() for p in script] == ["application/node.eks.aws", "text/x-shellscript"]


def test_raid0_and_an_ipv6_service_cidr_reach_nodeadm() -> None:
    spec = merged("raid0-ipv6")["spec"]
    assert isinstance(spec, dict)
    assert spec["cluster"]["cidr"] == "fd00:10::/108"
    assert spec["instance"]["localStorage"]["strategy"] == "RAID0"
    assert spec["kubelet"]["config"]["clusterDNS"] == ["fd00:10::a"]


def test_nodeadm_rejects_a_config_without_the_cidr() -> None:
    """The oracle can fail: the same user data minus the CIDR is refused, with nodeadm's message."""
    text = shapes.render("defaults", "AL2023").user_data.replace("  cidr: 10.100.0.0/16\n", "")
    result = nodeadm.check(text)
    assert not result.ok
    assert "CIDR is missing" in result.output
