"""Resolves an EC2NodeClass's selectors into its status: subnets, security groups, AMIs, instance profile.

Fed by the EC2NodeClass spec and AWS (DescribeSubnets, DescribeSecurityGroups, DescribeImages,
ssm:GetParameter, IAM instance profiles); consumed by the provider, which writes the returned status
through the node-class store, and by everything that reads ``status`` (instance types, launch, drift).

Selector semantics are Karpenter's: terms are ORed, the fields of one term ANDed; a tag value ``*``
matches any value. Each part that resolves to nothing gets its condition False with a message naming
the selector that failed (``subnetSelectorTerms matched no subnet: [0] tags={"env": "nope"}``), and
``Ready`` turns False; the parts that did resolve are still reported. An AWS error in one part (say
``UnauthorizedOperation`` on DescribeSubnets) turns that part's condition False with the call and the
error code (reason = the code), instead of only a log line; what the selectors alone cannot catch
(user data that does not parse, an alias of another family) is ``ValidationSucceeded=False``
(`nodesmith_aws.validation`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from nodesmith.api import labels as core_labels
from nodesmith_aws import amifamily, capacityreservations, nodeclass, validation
from nodesmith_aws.clients import Clients, error_code
from nodesmith_aws.cluster import ClusterSource
from nodesmith_aws.nodeclass import EC2NodeClass, ResolvedAMI, ResolvedSecurityGroup, ResolvedSubnet, Status
from nodesmith_aws.reservationusage import ReservationUsage
from nodesmith_aws.settings import Settings

__all__ = ["Resolver", "describe_term"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def describe_term(index: int, term: Mapping[str, Any]) -> str:
    """``[0] tags={"env": "prod"}`` — how a failed selector term is named in condition messages."""
    fields = " ".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(term.items()))
    return f"[{index}] {fields}"


def _tag_filters(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {"Name": "tag-key", "Values": [k]} if v == "*" else {"Name": f"tag:{k}", "Values": [v]}
        for k, v in sorted(tags.items())
    ]


class Resolver:
    """Resolves selectors against AWS. Stateless apart from the clients; callers cache the status."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        cluster: ClusterSource,
        usage: ReservationUsage | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.cluster = cluster
        self.usage = usage or ReservationUsage()
        """Slot changes made since the reservation counts were read; a successful read settles them."""

    async def subnets(self, terms: Sequence[Mapping[str, Any]]) -> tuple[list[ResolvedSubnet], list[str]]:
        """Matching subnets (most free IPs first) and the terms that matched nothing."""
        ec2 = await self.clients.ec2()
        found: dict[str, Mapping[str, Any]] = {}
        empty = []
        for index, term in enumerate(terms):
            filters = (
                [{"Name": "subnet-id", "Values": [term["id"]]}]
                if "id" in term
                else _tag_filters(term.get("tags") or {})
            )
            matched: list[Mapping[str, Any]] = []
            async for page in ec2.get_paginator("describe_subnets").paginate(Filters=filters):
                matched += page.get("Subnets") or []
            if not matched:
                empty.append(describe_term(index, term))
            found.update({s["SubnetId"]: s for s in matched})
        ordered = sorted(
            found.values(), key=lambda s: (-int(s.get("AvailableIpAddressCount", 0)), s["SubnetId"])
        )
        return [
            ResolvedSubnet(s["SubnetId"], s["AvailabilityZone"], s.get("AvailabilityZoneId")) for s in ordered
        ], empty

    async def capacity_reservations(
        self, terms: Sequence[Mapping[str, Any]]
    ) -> list[capacityreservations.ResolvedCapacityReservation]:
        """The active reservations the terms select (DescribeCapacityReservations per term)."""
        if not terms:
            return []  # no call: most NodeClasses select none
        ec2 = await self.clients.ec2()
        token = self.usage.mark()
        answers: list[Mapping[str, Any]] = []
        for term in terms:
            paginator = ec2.get_paginator("describe_capacity_reservations")
            async for page in paginator.paginate(**capacityreservations.request(term)):
                answers += page.get("CapacityReservations") or []
        self.usage.settle(token, (str(a["CapacityReservationId"]) for a in answers))
        return capacityreservations.from_api(answers)

    async def security_groups(
        self, terms: Sequence[Mapping[str, Any]]
    ) -> tuple[list[ResolvedSecurityGroup], list[str]]:
        ec2 = await self.clients.ec2()
        found: dict[str, Mapping[str, Any]] = {}
        empty = []
        for index, term in enumerate(terms):
            if "id" in term:
                filters = [{"Name": "group-id", "Values": [term["id"]]}]
            elif "name" in term:
                filters = [{"Name": "group-name", "Values": [term["name"]]}]
            else:
                filters = _tag_filters(term.get("tags") or {})
            matched: list[Mapping[str, Any]] = []
            async for page in ec2.get_paginator("describe_security_groups").paginate(Filters=filters):
                matched += page.get("SecurityGroups") or []
            if not matched:
                empty.append(describe_term(index, term))
            found.update({g["GroupId"]: g for g in matched})
        return [
            ResolvedSecurityGroup(g["GroupId"], g.get("GroupName")) for _, g in sorted(found.items())
        ], empty

    async def _parameter(self, name: str) -> str | None:
        ssm = await self.clients.ssm()
        try:
            answer = await ssm.get_parameter(Name=name)
        except ClientError as err:
            if error_code(err) in ("ParameterNotFound", "ParameterVersionNotFound", "AccessDeniedException"):
                return None
            raise
        return str(answer["Parameter"]["Value"])

    async def _images(self, **kwargs: Any) -> list[Mapping[str, Any]]:
        ec2 = await self.clients.ec2()
        try:
            answer = await ec2.describe_images(**kwargs)
        except ClientError as err:
            if error_code(err) in ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed"):
                return []
            raise
        return list(answer.get("Images") or ())

    async def amis(self, nc: EC2NodeClass) -> tuple[list[ResolvedAMI], list[str]]:
        """Matching AMIs, newest first, one per distinct requirement set (Karpenter keeps the newest).
        An alias's AMIs carry their variant's requirements too, so a GPU type gets the NVIDIA AMI and
        a type without accelerators the standard one."""
        images: list[Mapping[str, Any]] = []
        variants: dict[str, tuple[str, ...]] = {}
        empty = []
        for index, term in enumerate(nc.spec["amiSelectorTerms"]):
            matched: list[Mapping[str, Any]] = []
            if "alias" in term:
                version = (await self.cluster.get()).kubernetes_version
                for parameter, (_, kinds) in amifamily.alias_parameters(term["alias"], version).items():
                    image_id = await self._parameter(parameter)
                    if image_id:
                        variants[image_id] = kinds
                        matched += await self._images(ImageIds=[image_id])
            elif "ssmParameter" in term:
                image_id = await self._parameter(term["ssmParameter"])
                if image_id:
                    matched += await self._images(ImageIds=[image_id])
            elif "id" in term:
                matched += await self._images(ImageIds=[term["id"]])
            else:
                filters = _tag_filters(term.get("tags") or {})
                if "name" in term:
                    filters.append({"Name": "name", "Values": [term["name"]]})
                owners = (
                    [term["owner"]] if "owner" in term else (["self", "amazon"] if "name" in term else [])
                )
                matched += await self._images(Filters=filters, **({"Owners": owners} if owners else {}))
            if not matched:
                empty.append(describe_term(index, term))
            images += matched
        images.sort(key=lambda i: (str(i.get("CreationDate", "")), i["ImageId"]), reverse=True)
        out: dict[str, ResolvedAMI] = {}
        for image in images:
            arch = amifamily.ARCHES.get(str(image.get("Architecture")))
            if arch is None:
                continue
            arch_requirement = {"key": core_labels.LABEL_ARCH, "operator": "In", "values": [arch]}
            for kind in variants.get(image["ImageId"], (None,)):
                requirements = (arch_requirement, *(amifamily.VARIANTS[kind] if kind else ()))
                key = json.dumps(requirements, sort_keys=True)
                if key not in out:
                    out[key] = ResolvedAMI(
                        image["ImageId"], requirements, image.get("Name"), bool(image.get("DeprecationTime"))
                    )
        return list(out.values()), empty

    def managed_profile_name(self, nc: EC2NodeClass) -> str:
        digest = hashlib.sha256(f"{self.settings.region}/{nc.name}".encode()).hexdigest()[:16]
        return f"{self.settings.cluster_name}_{digest}"

    async def delete_managed_profile(self, nc: EC2NodeClass) -> str | None:
        """Delete the instance profile nodesmith created for ``nc`` (none when the NodeClass names its
        own ``instanceProfile``); its name, or ``None`` when there was nothing to delete."""
        if "instanceProfile" in nc.spec:
            return None
        name = self.managed_profile_name(nc)
        iam = await self.clients.iam()
        try:
            profile = (await iam.get_instance_profile(InstanceProfileName=name))["InstanceProfile"]
            for role in profile.get("Roles") or ():
                await iam.remove_role_from_instance_profile(
                    InstanceProfileName=name, RoleName=role["RoleName"]
                )
            await iam.delete_instance_profile(InstanceProfileName=name)
        except ClientError as err:
            if error_code(err) != "NoSuchEntity":
                raise
            return None
        return name

    async def instance_profile(self, nc: EC2NodeClass) -> tuple[str | None, str]:
        """The profile to launch with, or ``None`` and why. A ``role`` gets a managed profile (created,
        and its role replaced when it changed); an ``instanceProfile`` is used as given."""
        if "instanceProfile" in nc.spec:
            return str(nc.spec["instanceProfile"]), ""
        role = str(nc.spec["role"]).rsplit("/", 1)[-1]
        name = self.managed_profile_name(nc)
        iam = await self.clients.iam()
        try:
            profile = (await iam.get_instance_profile(InstanceProfileName=name))["InstanceProfile"]
        except ClientError as err:
            if error_code(err) != "NoSuchEntity":
                raise
            c = self.settings.cluster_name
            tags = {
                **nc.tags,
                f"kubernetes.io/cluster/{c}": "owned",
                "eks:eks-cluster-name": c,
                f"{nodeclass.GROUP}/ec2nodeclass": nc.name,
                core_labels.LABEL_REGION: self.settings.region,
            }
            profile = (
                await iam.create_instance_profile(
                    InstanceProfileName=name,
                    Path=f"/nodesmith/{self.settings.region}/{c}/{nc.metadata.uid or nc.name}/",
                    Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
                )
            )["InstanceProfile"]
        roles = [r["RoleName"] for r in profile.get("Roles") or ()]
        if roles == [role]:
            return name, ""
        try:
            for old in roles:
                await iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=old)
            await iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
        except ClientError as err:
            if error_code(err) == "NoSuchEntity":
                return None, f"role {role!r} does not exist"
            raise
        return name, ""

    async def resolve(self, nc: EC2NodeClass, now: dt.datetime) -> Status:
        """The status the NodeClass should have now, conditions included."""
        generation = nc.metadata.generation
        conds = nodeclass.CONDITION_TYPES.initialize(nc.status.conditions, now=now, generation=generation)

        def set_condition(kind: str, ok: bool, reason: str, message: str) -> None:
            nonlocal conds
            conds = nodeclass.CONDITION_TYPES.set(
                conds,
                kind,
                ok,
                reason=kind if ok else reason,
                message="" if ok else message,
                now=now,
                generation=generation,
            )

        async def attempt(kind: str, step: Awaitable[_T], default: _T) -> tuple[_T, bool]:
            """Run one resolution step; an AWS error turns ``kind`` False naming the call and code."""
            try:
                return await step, True
            except ClientError as err:
                call = err.operation_name or "AWS call"
                code = error_code(err) or "Error"
                message = str(err.response.get("Error", {}).get("Message", ""))
                log.warning("EC2NodeClass %s: %s failed: %s: %s", nc.name, call, code, message)
                set_condition(kind, False, code, f"{call} failed: {code}: {message}".rstrip(": "))
                return default, False

        (subnets, empty), ok = await attempt(
            nodeclass.Condition.SUBNETS_READY, self.subnets(nc.spec["subnetSelectorTerms"]), ([], [])
        )
        if ok:
            set_condition(
                nodeclass.Condition.SUBNETS_READY,
                bool(subnets),
                "SubnetsNotFound",
                "subnetSelectorTerms matched no subnet: " + "; ".join(empty),
            )
        (groups, empty), ok = await attempt(
            nodeclass.Condition.SECURITY_GROUPS_READY,
            self.security_groups(nc.spec["securityGroupSelectorTerms"]),
            ([], []),
        )
        if ok:
            set_condition(
                nodeclass.Condition.SECURITY_GROUPS_READY,
                bool(groups),
                "SecurityGroupsNotFound",
                "securityGroupSelectorTerms matched no security group: " + "; ".join(empty),
            )
        (amis, empty), ok = await attempt(nodeclass.Condition.AMIS_READY, self.amis(nc), ([], []))
        if ok:
            set_condition(
                nodeclass.Condition.AMIS_READY,
                bool(amis),
                "AMINotFound",
                "amiSelectorTerms matched no AMI: " + "; ".join(empty),
            )
        (profile, why), ok = await attempt(
            nodeclass.Condition.INSTANCE_PROFILE_READY, self.instance_profile(nc), (None, "")
        )
        if ok:
            set_condition(
                nodeclass.Condition.INSTANCE_PROFILE_READY,
                profile is not None,
                "InstanceProfileNotFound",
                f"instance profile for role could not be set up: {why}",
            )
        reservations: Sequence[capacityreservations.ResolvedCapacityReservation]
        try:
            reservations = await self.capacity_reservations(
                nc.spec.get("capacityReservationSelectorTerms") or ()
            )
        except (ClientError, BotoCoreError, ResponseParserError) as err:
            # keep what was resolved before: a failed read is no evidence a reservation went away
            code = error_code(err) if isinstance(err, ClientError) else type(err).__name__
            log.warning("EC2NodeClass %s: DescribeCapacityReservations failed: %s", nc.name, code)
            reservations = nc.status.capacity_reservations
        problem = validation.problem(nc)
        set_condition(
            nodeclass.Condition.VALIDATION_SUCCEEDED, problem is None, "InvalidNodeClass", problem or ""
        )
        return Status(tuple(subnets), tuple(groups), tuple(amis), profile, conds, tuple(reservations))
