"""AWS-specific drift: does a running instance still match its EC2NodeClass? (Karpenter ``drift.go``.)

Pure: the NodeClaim, the NodeClass (with resolved status), the instance and its instance type in, a
reason or ``None`` out. Fed by the provider's ``is_drifted``; consumed by the core's drift marking.
Checked in order, first hit wins:

1. ``NodeClassDrift``: the static hash annotation differs from the NodeClass's, and both hash versions
   exist and are equal (a version change is not drift);
2. ``AMIDrift``: the instance's image is not among the resolved AMIs for its instance type;
3. ``SecurityGroupDrift``: its security groups are not exactly the resolved ones;
4. ``SubnetDrift``: its subnet is not among the resolved ones.
"""

from __future__ import annotations

from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.cloudprovider.types import InstanceType
from nodesmith_aws import instancetypes, nodeclass
from nodesmith_aws.instances import Instance
from nodesmith_aws.nodeclass import EC2NodeClass

__all__ = ["reason"]


def reason(nodeclaim: NodeClaim, nc: EC2NodeClass, instance: Instance, it: InstanceType | None) -> str | None:
    annotations = nodeclaim.metadata.annotations
    claimed = annotations.get(nodeclass.ANNOTATION_HASH)
    version = annotations.get(nodeclass.ANNOTATION_HASH_VERSION)
    if claimed and version == nodeclass.HASH_VERSION and claimed != nc.static_hash():
        return "NodeClassDrift"
    amis = [
        a.id
        for a in nc.status.amis
        if it is None or instancetypes.ami_matches(a.requirements, it.requirements)
    ]
    if nc.status.amis and instance.image_id not in amis:
        return "AMIDrift"
    groups = {g.id for g in nc.status.security_groups}
    if groups and set(instance.security_group_ids) != groups:
        return "SecurityGroupDrift"
    subnets = {s.id for s in nc.status.subnets}
    if subnets and instance.subnet_id not in subnets:
        return "SubnetDrift"
    return None
