"""The moto → kwok bridge: every instance the AWS provider launched in moto becomes a kwok-managed Node.

Why: moto's instances never boot, so no kubelet ever registers. The e2e tier runs nodesmith with the AWS
provider against moto *and* a real control plane with kwok; this bridge plays the part of EC2 booting the
instance and the kubelet registering it: a Node named after the instance, with ``spec.providerID``
``aws:///<zone>/<id>``, the labels a kubelet started by the launch template's user data would set
(instance type, zone, region, arch, os, capacity type, the NodePool, the ``aws.nodesmith.io/instance-*``
labels), the ``nodesmith.io/unregistered:NoExecute`` taint that user data registers with, and
capacity/allocatable from the provider's instance type. moto's CreateFleet does not give its instances
the launch template's security groups (EC2 does), which would make every instance look drifted
(``SecurityGroupDrift``); the bridge gives an instance without any the EC2NodeClass's resolved groups
before its Node appears, as EC2 would have at launch. kwok (``--manage-nodes-with-annotation-selector
kwok.x-k8s.io/node=fake``) then makes it Ready and runs its pods. Terminated instances lose their Node.

Fed by the provider's ``list_instances`` (tagged, live instances) and the Nodes in the API; writes Nodes
through a `nodesmith.kube.KubeClient`. `node_for` and `plan` are pure, so they are unit-tested without
a cluster; `MotoKwokBridge.sync` does the I/O.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import anyio

from nodesmith.api import labels, quantity
from nodesmith.cloudprovider.types import InstanceType
from nodesmith_aws.instances import Instance

__all__ = ["KWOK_ANNOTATION", "MotoKwokBridge", "node_for", "plan"]

log = logging.getLogger(__name__)

KWOK_ANNOTATION: Final = ("kwok.x-k8s.io/node", "fake")
BRIDGE_LABEL: Final = "aws.nodesmith.io/moto-bridge"


def node_for(instance: Instance, instance_type: InstanceType | None, region: str) -> dict[str, Any]:
    """The Node a kubelet on ``instance`` would register (before nodesmith's registration step)."""
    node_labels = dict(instance_type.requirements.labels()) if instance_type is not None else {}
    node_labels.update(
        {
            labels.LABEL_INSTANCE_TYPE: instance.type,
            labels.LABEL_ZONE: instance.zone,
            labels.LABEL_REGION: region,
            labels.LABEL_CAPACITY_TYPE: instance.capacity_type,
            labels.LABEL_HOSTNAME: instance.id,
            BRIDGE_LABEL: "true",
        }
    )
    if instance.tags.get(labels.LABEL_NODEPOOL):
        node_labels[labels.LABEL_NODEPOOL] = instance.tags[labels.LABEL_NODEPOOL]
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": instance.id,
            "labels": node_labels,
            "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]},
        },
        "spec": {
            "providerID": instance.provider_id,
            "taints": [{"key": labels.TAINT_UNREGISTERED, "effect": "NoExecute"}],
        },
    }
    if instance_type is not None:
        node["status"] = {
            "capacity": quantity.format_resources(instance_type.capacity),
            "allocatable": quantity.format_resources(instance_type.allocatable),
        }
    return node


def plan(
    instances: Sequence[Instance], nodes: Sequence[Mapping[str, Any]]
) -> tuple[list[Instance], list[str]]:
    """(instances that need a Node, names of bridged Nodes whose instance is gone)."""
    live = {i.provider_id: i for i in instances if i.state in ("pending", "running")}
    have = {(n.get("spec") or {}).get("providerID"): n["metadata"]["name"] for n in nodes}
    create = [i for pid, i in sorted(live.items()) if pid not in have]
    delete = sorted(name for pid, name in have.items() if pid not in live)
    return create, delete


class MotoKwokBridge:
    """Keeps one kwok Node per live instance the provider launched. ``provider`` is an
    `nodesmith_aws.cloudprovider.AwsCloudProvider`; ``kube`` a `nodesmith.kube.KubeClient`."""

    def __init__(self, provider: Any, kube: Any) -> None:
        self.provider = provider
        self.kube = kube

    async def sync(self) -> tuple[list[str], list[str]]:
        """One pass; returns (created, deleted) Node names."""
        from nodesmith.kube import errors as kube_errors
        from nodesmith.kube import resources

        instances = await self.provider.list_instances()
        nodes = (await self.kube.list(resources.NODES, label_selector=f"{BRIDGE_LABEL}=true")).items
        create, delete = plan(instances, nodes)
        created = []
        for instance in create:
            nc_name = instance.tags.get("aws.nodesmith.io/ec2nodeclass", "")
            nc = await self.provider.store.get(nc_name)
            it = self.provider.instance_types.get(nc, instance.type) if nc is not None else None
            if nc is not None and not instance.security_group_ids and nc.status.security_groups:
                ec2 = await self.provider.clients.ec2()
                groups = [g.id for g in nc.status.security_groups]
                await ec2.modify_instance_attribute(InstanceId=instance.id, Groups=groups)
            node = node_for(instance, it, self.provider.settings.region)
            status = node.pop("status", None)
            try:
                await self.kube.create(resources.NODES, node)
            except kube_errors.AlreadyExistsError:
                continue
            if status is not None:
                await self.kube.update_status(resources.NODES, node["metadata"]["name"], status)
            created.append(node["metadata"]["name"])
        for name in delete:
            with contextlib.suppress(kube_errors.NotFoundError):
                await self.kube.delete(resources.NODES, name)
        return created, delete

    async def run(self, interval: float = 1.0) -> None:
        """Sync every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.sync()
            except Exception as err:  # boundary: the bridge keeps going, like a kubelet would
                log.warning("moto-kwok bridge sync failed: %s", err)
            await anyio.sleep(interval)
