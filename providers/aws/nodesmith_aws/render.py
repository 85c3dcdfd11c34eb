"""What a node boots with: the launch template (and its user data) for an EC2NodeClass, a NodePool and
an instance type, rendered exactly as a launch would render it.

Fed by the ``nodesmith-aws render`` command (`nodesmith_aws.cli`) with manifests read from YAML files
or from the API server; uses the launch path's own `nodesmith_aws.launch.options`, so what it prints is
byte for byte what CreateLaunchTemplate would be sent. Users debug node-join failures with it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import attrs

from nodesmith.api import labels as core_labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.api.nodepool import NodePool
from nodesmith_aws import launch
from nodesmith_aws.cluster import Cluster
from nodesmith_aws.nodeclass import EC2NodeClass, ResolvedSecurityGroup, Status

__all__ = ["Rendered", "render"]


@attrs.frozen
class Rendered:
    launch_template_name: str
    launch_template_data: Mapping[str, Any]
    """``LaunchTemplateData`` with ``UserData`` still base64, as sent."""
    user_data: str

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.launch_template_data.items() if k != "UserData"}
        return {
            "launchTemplateName": self.launch_template_name,
            "launchTemplateData": data,
            "userData": self.user_data,
        }


def _nodeclaim(pool: NodePool, pool_dict: Mapping[str, Any], instance_type: str) -> NodeClaim:
    template = (pool_dict.get("spec") or {}).get("template") or {}
    spec = template.get("spec") or {}
    return NodeClaim.from_dict(
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {
                "name": f"{pool.metadata.name}-render",
                "labels": {**pool.labels, core_labels.LABEL_INSTANCE_TYPE: instance_type},
            },
            "spec": {
                "nodeClassRef": spec.get("nodeClassRef") or {},
                "requirements": spec.get("requirements") or [],
                "taints": spec.get("taints") or [],
                "startupTaints": spec.get("startupTaints") or [],
            },
        }
    )


def render(
    cluster: Cluster,
    nodeclass_dict: Mapping[str, Any],
    nodepool_dict: Mapping[str, Any],
    instance_type: str,
    *,
    max_pods: int,
    capacity_type: str = "on-demand",
    image_id: str | None = None,
    instance_profile: str | None = None,
) -> Rendered:
    """The launch template for one NodeClaim of ``nodepool_dict`` on ``instance_type``. Without a
    resolved status (offline), the AMI, security groups and profile are placeholders you may override."""
    nc = EC2NodeClass.from_dict(nodeclass_dict)
    if not nc.status.security_groups:
        nc = attrs.evolve(
            nc,
            status=attrs.evolve(
                nc.status or Status(),
                security_groups=tuple(
                    ResolvedSecurityGroup(t["id"]) for t in nc.spec["securityGroupSelectorTerms"] if "id" in t
                ),
            ),
        )
    pool = NodePool.from_dict(nodepool_dict)
    claim = _nodeclaim(pool, nodepool_dict, instance_type)
    ami = image_id or next((a.id for a in nc.status.amis), None) or "<resolved AMI>"
    profile = (
        instance_profile
        or nc.status.instance_profile
        or nc.spec.get("instanceProfile")
        or "<managed profile>"
    )
    nc = attrs.evolve(nc, status=attrs.evolve(nc.status, instance_profile=profile))
    tags = {
        **nc.tags,
        f"kubernetes.io/cluster/{cluster.name}": "owned",
        "eks:eks-cluster-name": cluster.name,
        core_labels.LABEL_NODEPOOL: pool.metadata.name,
        "aws.nodesmith.io/ec2nodeclass": nc.name,
    }
    options = launch.options(cluster, claim, nc, ami, max_pods, capacity_type, tags)
    data = options.data()
    return Rendered(options.name, data, base64.b64decode(data["UserData"]).decode())
