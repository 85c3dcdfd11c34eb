"""Launch templates: one per distinct set of launch options, named by their hash, created once, reused.

Fed by the launch path with `Options` (AMI, user data, security groups, instance profile, block devices,
metadata options, tags ...); consumed by CreateFleet, which names the templates in its
``LaunchTemplateConfigs``. As Karpenter does (shared/spec/karpenter-aws.md §4):

* the name is ``nodesmith/<sha256 of the canonical options>``, so equal options share one template
  across launches, processes and restarts;
* `LaunchTemplates.ensure` looks in a 1-minute cache (a hit refreshes it), then DescribeLaunchTemplates,
  and creates the template only when it does not exist;
* `LaunchTemplates.sweep` deletes the templates whose cache entry expired (unused for a minute), which is
  how templates of old AMIs or settings go away; `invalidate` forgets one after CreateFleet reported it
  missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
from botocore.exceptions import ClientError

from nodesmith.api import quantity
from nodesmith_aws import capacityreservations
from nodesmith_aws.cache import LAUNCH_TEMPLATE_TTL, TTLCache
from nodesmith_aws.clients import Clients, error_code

__all__ = ["NAME_PREFIX", "LaunchTemplates", "Options"]

log = logging.getLogger(__name__)

NAME_PREFIX: Final = "nodesmith/"


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _block_device(bdm: Mapping[str, Any]) -> dict[str, Any]:
    ebs = bdm.get("ebs") or {}
    out: dict[str, Any] = {}
    for key, name in (
        ("deleteOnTermination", "DeleteOnTermination"),
        ("encrypted", "Encrypted"),
        ("iops", "Iops"),
        ("kmsKeyID", "KmsKeyId"),
        ("snapshotID", "SnapshotId"),
        ("throughput", "Throughput"),
        ("volumeType", "VolumeType"),
    ):
        if key in ebs:
            out[name] = ebs[key]
    if "volumeSize" in ebs:
        out["VolumeSize"] = -(
            -quantity.parse_quantity(ebs["volumeSize"]) // (1000 * 2**30)
        )  # GiB, rounded up
    out.setdefault("DeleteOnTermination", True)
    return {"DeviceName": bdm["deviceName"], "Ebs": out}


@attrs.frozen(slots=True)
class Options:
    """Everything that goes into one launch template (and so into its name)."""

    image_id: str
    user_data: str
    security_group_ids: tuple[str, ...]
    instance_profile: str
    block_device_mappings: tuple[Mapping[str, Any], ...]
    metadata_options: Mapping[str, Any]
    tags: Mapping[str, str]
    detailed_monitoring: bool = False
    associate_public_ip: bool | None = None
    capacity_reservation_id: str | None = None
    """Launch into this capacity reservation (a template per reservation, as Karpenter's)."""

    def canonical(self) -> str:
        # without a reservation the field is left out, so templates made before it existed keep their names
        fields = attrs.asdict(
            self, filter=lambda a, v: not (a.name == "capacity_reservation_id" and v is None)
        )
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=list)

    @property
    def name(self) -> str:
        return NAME_PREFIX + hashlib.sha256(self.canonical().encode()).hexdigest()[:32]

    def data(self) -> dict[str, Any]:
        """``LaunchTemplateData`` for CreateLaunchTemplate."""
        md = self.metadata_options
        data: dict[str, Any] = {
            "ImageId": self.image_id,
            "UserData": base64.b64encode(self.user_data.encode()).decode(),
            "IamInstanceProfile": {"Name": self.instance_profile},
            "MetadataOptions": {
                "HttpEndpoint": md.get("httpEndpoint", "enabled"),
                "HttpProtocolIpv6": md.get("httpProtocolIPv6", "disabled"),
                "HttpPutResponseHopLimit": md.get("httpPutResponseHopLimit", 1),
                "HttpTokens": md.get("httpTokens", "required"),
                "InstanceMetadataTags": "disabled",
            },
            "Monitoring": {"Enabled": self.detailed_monitoring},
            "TagSpecifications": [
                {"ResourceType": kind, "Tags": _tag_list(self.tags)}
                for kind in ("instance", "volume", "network-interface")
            ],
        }
        if self.capacity_reservation_id:
            data["CapacityReservationSpecification"] = capacityreservations.target(
                self.capacity_reservation_id
            )
        if self.block_device_mappings:
            data["BlockDeviceMappings"] = [_block_device(b) for b in self.block_device_mappings]
        if self.associate_public_ip is None:
            data["SecurityGroupIds"] = list(self.security_group_ids)
        else:
            data["NetworkInterfaces"] = [
                {
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": self.associate_public_ip,
                    "Groups": list(self.security_group_ids),
                }
            ]
        return data


class LaunchTemplates:
    """Ensures launch templates exist; remembers the ones in use for a minute."""

    def __init__(
        self, clients: Clients, tags: Mapping[str, str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clients = clients
        self.tags = dict(tags)
        """Tags every template carries (cluster ownership), besides its options' tags."""
        self._cache: TTLCache[str, str] = TTLCache(LAUNCH_TEMPLATE_TTL, clock)
        self.created = 0
        """How many templates this object created (the reuse test reads it)."""

    async def ensure(self, options: Options) -> str:
        """The template's name, after making sure it exists."""
        name = options.name
        if self._cache.get(name, touch=True) is not None:
            return name
        ec2 = await self.clients.ec2()
        try:
            found = await ec2.describe_launch_templates(LaunchTemplateNames=[name])
            template_id = found["LaunchTemplates"][0]["LaunchTemplateId"]
        except ClientError as err:
            if error_code(err) not in (
                "InvalidLaunchTemplateName.NotFoundException",
                "InvalidLaunchTemplateId.NotFound",
            ):
                raise
            template_id = await self._create(name, options)
        self._cache.set(name, template_id)
        return name

    async def _create(self, name: str, options: Options) -> str:
        ec2 = await self.clients.ec2()
        tags = {**options.tags, **self.tags}
        try:
            created = await ec2.create_launch_template(
                LaunchTemplateName=name,
                LaunchTemplateData=options.data(),
                TagSpecifications=[{"ResourceType": "launch-template", "Tags": _tag_list(tags)}],
            )
        except ClientError as err:
            if error_code(err) != "InvalidLaunchTemplateName.AlreadyExistsException":
                raise
            found = await ec2.describe_launch_templates(LaunchTemplateNames=[name])
            return str(found["LaunchTemplates"][0]["LaunchTemplateId"])
        self.created += 1
        log.info("created launch template %s", name)
        return str(created["LaunchTemplate"]["LaunchTemplateId"])

    def invalidate(self, names: Sequence[str]) -> None:
        for name in names:
            self._cache.delete(name)

    async def sweep(self) -> list[str]:
        """Delete the templates unused for a minute; returns their names."""
        gone = self._cache.expired()
        if not gone:
            return []
        ec2 = await self.clients.ec2()
        for name, template_id in gone:
            try:
                await ec2.delete_launch_template(LaunchTemplateId=template_id)
            except ClientError as err:
                if error_code(err) not in (
                    "InvalidLaunchTemplateId.NotFound",
                    "InvalidLaunchTemplateName.NotFoundException",
                ):
                    log.warning("deleting launch template %s failed: %s", name, err)
        return [name for name, _ in gone]

    async def delete_all(self, filters: Sequence[Mapping[str, Any]]) -> int:
        """Delete every template matching ``filters`` (e.g. a deleted NodeClass's tag)."""
        ec2 = await self.clients.ec2()
        count = 0
        async for page in ec2.get_paginator("describe_launch_templates").paginate(Filters=list(filters)):
            for template in page.get("LaunchTemplates") or ():
                await ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
                self._cache.delete(template["LaunchTemplateName"])
                count += 1
        return count
