"""NodePool/EC2NodeClass shapes the user-data tests render: one NodeClaim and one EC2NodeClass each.

Shared by the nodeadm (AL2023) and Bottlerocket tests so both families are checked on the same shapes.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from nodesmith.api.nodeclaim import NodeClaim
from nodesmith_aws import launch
from nodesmith_aws.cluster import Cluster
from nodesmith_aws.launchtemplates import Options
from nodesmith_aws.nodeclass import EC2NodeClass

CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
IPV4 = Cluster(
    "shapes", "https://ABCD.gr7.us-west-2.eks.amazonaws.com", CA, "10.100.0.0/16", "1.31", "10.100.0.10"
)
IPV6 = Cluster(
    "shapes6", "https://EFGH.gr7.us-west-2.eks.amazonaws.com", CA, "fd00:10::/108", "1.31", "fd00:10::a"
)

FULL_KUBELET: Mapping[str, Any] = {
    "maxPods": 42,
    "kubeReserved": {"cpu": "200m", "memory": "300Mi", "ephemeral-storage": "1Gi"},
    "systemReserved": {"cpu": "100m", "memory": "100Mi"},
    "evictionHard": {"memory.available": "5%", "nodefs.available": "10%"},
    "evictionSoft": {"memory.available": "10%"},
    "evictionSoftGracePeriod": {"memory.available": "1m30s"},
    "evictionMaxPodGracePeriod": 60,
    "imageGCHighThresholdPercent": 85,
    "imageGCLowThresholdPercent": 80,
    "cpuCFSQuota": True,
    "clusterDNS": ["10.100.0.53"],
}

SHELL = "#!/bin/bash\necho hello from the user\n"
USER_NODECONFIG = """apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  kubelet:
    config:
      registryPullQPS: 12
      shutdownGracePeriod: 30s
"""
USER_MIME = f"""MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/x-shellscript; charset="us-ascii"

{SHELL}
--BOUNDARY
Content-Type: application/node.eks.aws

{USER_NODECONFIG}
--BOUNDARY--
"""


def nodeclass(family: str, **spec: Any) -> EC2NodeClass:
    body: dict[str, Any] = {
        "subnetSelectorTerms": [{"id": "subnet-0a1b"}],
        "securityGroupSelectorTerms": [{"id": "sg-0a1b"}],
        "amiSelectorTerms": [{"id": "ami-0a1b"}],
        "amiFamily": family,
        "role": "NodeRole",
        **spec,
    }
    return EC2NodeClass.from_dict(
        {"apiVersion": "aws.nodesmith.io/v1", "kind": "EC2NodeClass", "metadata": {"name": "n"}, "spec": body}
    )


def nodeclaim(
    *, taints: list[dict[str, str]] | None = None, startup: list[dict[str, str]] | None = None
) -> NodeClaim:
    return NodeClaim.from_dict(
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {"name": "claim", "labels": {"nodesmith.io/nodepool": "pool", "team": "ml"}},
            "spec": {
                "nodeClassRef": {"group": "aws.nodesmith.io", "kind": "EC2NodeClass", "name": "n"},
                "requirements": [],
                "taints": taints or [],
                "startupTaints": startup or [],
            },
        }
    )


SHAPES: dict[str, tuple[Cluster, dict[str, Any], dict[str, Any]]] = {
    # name: (cluster, EC2NodeClass spec changes, NodeClaim changes)
    "defaults": (IPV4, {}, {}),
    "full-kubelet-and-taints": (
        IPV4,
        {"kubelet": dict(FULL_KUBELET)},
        {
            "taints": [
                {"key": "gpu", "value": "true", "effect": "NoSchedule"},
                {"key": "dedicated", "effect": "NoExecute"},
            ],
            "startup": [{"key": "cilium.io/agent-not-ready", "value": "true", "effect": "NoExecute"}],
        },
    ),
    "user-shell-script": (IPV4, {"userData": SHELL}, {}),
    "user-nodeconfig": (IPV4, {"userData": USER_NODECONFIG}, {}),
    "user-mime-archive": (IPV4, {"userData": USER_MIME}, {}),
    "raid0-ipv6": (IPV6, {"instanceStorePolicy": "RAID0"}, {}),
}


def render(shape: str, family: str) -> Options:
    cluster, spec, claim = SHAPES[shape]
    if family == "Bottlerocket" and "userData" in spec:
        spec = {**spec, "userData": "[settings.host-containers.admin]\nenabled = true\n"}
    return launch.options(cluster, nodeclaim(**claim), nodeclass(family, **spec), "ami-0a1b", 29, "spot", {})
