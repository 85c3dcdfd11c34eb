"""The launch path: from a flexible NodeClaim to one EC2 instance through CreateFleet (type ``instant``).

Fed by the provider's ``create`` with the NodeClaim, its Ready EC2NodeClass, the NodeClass's instance
types and the tags to apply; talks to EC2 through `nodesmith_aws.launchtemplates` and CreateFleet; feeds
the unavailable-offerings (ICE) cache. Karpenter's rules (shared/spec/karpenter-aws.md §4):

1. keep the instance types compatible with the NodeClaim that have an available compatible offering
   (none → `InsufficientCapacityError`);
2. capacity type: spot when allowed and some spot offering is available, else on-demand, which is how
   spot falls back to on-demand once the ICE cache has every spot offering;
3. the cheapest 60 types, one subnet per zone (the one with the most free IPs);
4. one launch template per (AMI, max pods) group, reused across launches;
5. overrides = every available (type, zone) offering, cheapest first, ``Priority`` = price; allocation
   ``price-capacity-optimized`` for spot, ``lowest-price`` for on-demand;
6. the response's ``Errors[]`` (EC2 reports pool failures in a 200 answer) mark each failed
   (capacity type, type, zone) unavailable for 3 minutes, so the next attempt differs and no hot loop
   forms; no instance and only capacity errors → `InsufficientCapacityError`, else `CreateError`;
7. a launch template CreateFleet cannot find is forgotten and the launch retried once;
8. an AWS call of the launch that gets no answer (read timeout, connection dropped, once botocore's
   retries are spent) is a `CreateError` named after it (``ReadTimeoutError``...), so the NodeClaim
   shows why and its launch is retried with the lifecycle's backoff, like any failed launch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
from botocore.exceptions import BotoCoreError, ClientError

from nodesmith import errors
from nodesmith.api import labels as core_labels
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.api.requirements import Requirements
from nodesmith.cloudprovider.types import InstanceType, Offering
from nodesmith_aws import amifamily, instancetypes
from nodesmith_aws.cache import UnavailableOfferings
from nodesmith_aws.clients import Clients, error_code
from nodesmith_aws.cluster import Cluster, ClusterSource
from nodesmith_aws.launchtemplates import LaunchTemplates, Options
from nodesmith_aws.nodeclass import EC2NodeClass
from nodesmith_aws.plugin import WELL_KNOWN_LABELS
from nodesmith_aws.settings import Settings

__all__ = ["ICE_CODES", "MAX_INSTANCE_TYPES", "Launched", "Launcher", "options"]

log = logging.getLogger(__name__)

MAX_INSTANCE_TYPES: Final = 60
ICE_CODES: Final = frozenset(
    {
        "InsufficientInstanceCapacity",
        "MaxSpotInstanceCountExceeded",
        "VcpuLimitExceeded",
        "UnfulfillableCapacity",
        "Unsupported",
        "InsufficientFreeAddressesInSubnet",
        "MaxFleetCountExceeded",
        "ReservationCapacityExceeded",
    }
)
SPOT_SLR_CODE: Final = "AuthFailure.ServiceLinkedRoleCreationNotPermitted"
_UNAUTHORIZED: Final = ("UnauthorizedOperation", "AccessDenied", "AuthFailure")


@attrs.frozen(slots=True)
class Launched:
    instance_id: str
    instance_type: str
    zone: str
    subnet_id: str | None
    image_id: str
    capacity_type: str
    reservation_id: str = ""
    """The capacity reservation the instance was launched into (capacity type ``reserved``)."""


def create_error(err: ClientError) -> errors.ProviderError:
    """Map a CreateFleet call error to the contract (Karpenter's ``ToReasonMessage``)."""
    code = error_code(err)
    message = str(err.response.get("Error", {}).get("Message", err))
    if code in ICE_CODES:
        return errors.InsufficientCapacityError(f"{code}: {message}")
    if code == SPOT_SLR_CODE:
        return errors.CreateError("SpotSLRCreationFailed", message)
    if code.startswith(_UNAUTHORIZED):
        reason = "AMIAuthorizationFailure" if "Not authorized for images" in message else "Unauthorized"
        return errors.CreateError(reason, message)
    if code in ("InstanceLimitExceeded", "VcpuLimitExceeded"):
        return errors.CreateError("QuotaExceeded", f"{code}: {message}")
    return errors.CreateError(code or "LaunchFailed", message)


def unanswered(err: BotoCoreError) -> errors.CreateError:
    """A call that got no answer (``ReadTimeoutError``, ``ConnectionClosedError``...), retries spent."""
    return errors.CreateError(type(err).__name__, str(err))


class Launcher:
    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        launch_templates: LaunchTemplates,
        unavailable: UnavailableOfferings,
        cluster: ClusterSource,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.clients = clients
        self.launch_templates = launch_templates
        self.unavailable = unavailable
        self._reservations: dict[str, str] = {}
        """Launch template name → the reservation it targets."""

    def compatible(self, reqs: Requirements, types: Sequence[InstanceType]) -> list[InstanceType]:
        allow = WELL_KNOWN_LABELS
        return [
            it for it in types if reqs.is_compatible(it.requirements, allow) and it.compatible_offerings(reqs)
        ]

    @staticmethod
    def capacity_type(reqs: Requirements, types: Sequence[InstanceType]) -> str:
        """Reserved if allowed and a reservation is available, else spot, else on-demand (Karpenter's
        order: capacity already paid for first, then spot → on-demand fallback)."""
        allowed = reqs.get(core_labels.LABEL_CAPACITY_TYPE)
        for ct in (core_labels.CapacityType.RESERVED, "spot", "on-demand"):
            if allowed.has(ct) and any(
                o.capacity_type == ct for it in types for o in it.compatible_offerings(reqs)
            ):
                return ct
        raise errors.InsufficientCapacityError("no available offering of an allowed capacity type")

    def _offerings(self, it: InstanceType, reqs: Requirements, ct: str) -> list[Offering]:
        return sorted(
            (o for o in it.compatible_offerings(reqs) if o.capacity_type == ct),
            key=lambda o: (o.price, o.zone),
        )

    async def launch(
        self,
        nodeclaim: NodeClaim,
        nc: EC2NodeClass,
        types: Sequence[InstanceType],
        tags: Mapping[str, str],
    ) -> Launched:
        reqs = nodeclaim.requirements
        candidates = self.compatible(reqs, types)
        if not candidates:
            raise errors.InsufficientCapacityError(
                "all requested instance types were unavailable during launch"
            )
        ct = self.capacity_type(reqs, candidates)
        reqs = reqs.add(*Requirements.from_labels({core_labels.LABEL_CAPACITY_TYPE: ct}).values())
        priced = [(self._offerings(it, reqs, ct), it) for it in candidates]
        priced = sorted(((o, it) for o, it in priced if o), key=lambda p: (p[0][0].price, p[1].name))
        priced = priced[:MAX_INSTANCE_TYPES]
        for attempt in range(2):
            try:
                request, names = await self._request(nodeclaim, nc, priced, ct, tags)
            except BotoCoreError as err:
                raise unanswered(err) from err
            try:
                ec2 = await self.clients.ec2()
                answer = await ec2.create_fleet(**request)
            except BotoCoreError as err:
                raise unanswered(err) from err
            except ClientError as err:
                if error_code(err) == "InvalidLaunchTemplateName.NotFoundException" and attempt == 0:
                    self.launch_templates.invalidate(names)
                    continue
                raise create_error(err) from err
            return self._result(answer, ct, request)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request(
        self,
        nodeclaim: NodeClaim,
        nc: EC2NodeClass,
        priced: Sequence[tuple[list[Offering], InstanceType]],
        ct: str,
        tags: Mapping[str, str],
    ) -> tuple[dict[str, Any], list[str]]:
        subnets: dict[str, str] = {}
        for subnet in nc.status.subnets:  # status is ordered by free IPs: the first per zone wins
            subnets.setdefault(subnet.zone, subnet.id)
        # one launch template per AMI, max pods and, launching reserved, reservation (it targets it)
        groups: dict[tuple[str, int, str], list[tuple[list[Offering], InstanceType]]] = {}
        for offerings, it in priced:
            ami = next(
                (a for a in nc.status.amis if instancetypes.ami_matches(a.requirements, it.requirements)),
                None,
            )
            if ami is None:
                continue
            for o in offerings:
                key = (ami.id, it.capacity.get("pods", 0) // 1000, o.reservation_id)
                groups.setdefault(key, []).append(([o], it))
        configs: list[dict[str, Any]] = []
        names: list[str] = []
        cluster = await self.cluster.get()
        for (image_id, max_pods, reservation_id), members in groups.items():
            launch_options = options(cluster, nodeclaim, nc, image_id, max_pods, ct, tags)
            if reservation_id:
                launch_options = attrs.evolve(launch_options, capacity_reservation_id=reservation_id)
            name = await self.launch_templates.ensure(launch_options)
            if reservation_id:
                self._reservations[name] = reservation_id
            names.append(name)
            overrides = [
                {
                    "InstanceType": it.name,
                    "SubnetId": subnets[o.zone],
                    "ImageId": image_id,
                    "AvailabilityZone": o.zone,
                    "Priority": o.price,
                }
                for offerings, it in members
                for o in offerings
                if o.zone in subnets
            ]
            if overrides:
                overrides.sort(key=lambda x: (x["Priority"], x["InstanceType"], x["AvailabilityZone"]))
                configs.append(
                    {
                        "LaunchTemplateSpecification": {"LaunchTemplateName": name, "Version": "$Latest"},
                        "Overrides": overrides,
                    }
                )
        if not configs:
            raise errors.InsufficientCapacityError(
                "no capacity offerings are currently available given the constraints"
            )
        configs.sort(key=lambda c: c["Overrides"][0]["Priority"])
        tag_list = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        request: dict[str, Any] = {
            "Type": "instant",
            # a reservation is on-demand capacity the template targets
            "TargetCapacitySpecification": {
                "DefaultTargetCapacityType": "on-demand" if ct == core_labels.CapacityType.RESERVED else ct,
                "TotalTargetCapacity": 1,
            },
            "LaunchTemplateConfigs": configs,
            "TagSpecifications": [
                {"ResourceType": r, "Tags": tag_list} for r in ("instance", "volume", "fleet")
            ],
        }
        if ct == "spot":
            request["SpotOptions"] = {"AllocationStrategy": "price-capacity-optimized"}
        else:
            request["OnDemandOptions"] = {"AllocationStrategy": "lowest-price"}
        if nc.spec.get("context"):
            request["Context"] = nc.spec["context"]
        return request, names

    def _result(self, answer: Mapping[str, Any], ct: str, request: Mapping[str, Any]) -> Launched:
        problems = []
        for error in answer.get("Errors") or ():
            code = error.get("ErrorCode", "")
            override = (error.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}
            lifecycle = ct if ct == core_labels.CapacityType.RESERVED else error.get("Lifecycle") or ct
            if code == SPOT_SLR_CODE:
                self.unavailable.mark_capacity_type_unavailable("spot", code)
            elif code in ICE_CODES and override.get("InstanceType") and override.get("AvailabilityZone"):
                self.unavailable.mark_unavailable(
                    lifecycle, override["InstanceType"], override["AvailabilityZone"], code
                )
            problems.append((code, error.get("ErrorMessage", "")))
        for fleet_instance in answer.get("Instances") or ():
            ids = fleet_instance.get("InstanceIds") or ()
            if not ids:
                continue
            override = (fleet_instance.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}
            zone = override.get("AvailabilityZone") or self._zone_of(request, override.get("SubnetId"))
            reserved = ct == core_labels.CapacityType.RESERVED
            return Launched(
                instance_id=ids[0],
                instance_type=fleet_instance.get("InstanceType") or override.get("InstanceType", ""),
                zone=zone,
                subnet_id=override.get("SubnetId"),
                image_id=override.get("ImageId", ""),
                capacity_type=ct if reserved else fleet_instance.get("Lifecycle") or ct,
                reservation_id=self._reservation_of(request, fleet_instance) if reserved else "",
            )
        unique = sorted({f"{code}: {message}" for code, message in problems})
        text = "; ".join(unique) or "CreateFleet returned no instance and no error"
        if problems and all(code in ICE_CODES or code == SPOT_SLR_CODE for code, _ in problems):
            raise errors.InsufficientCapacityError(text)
        codes = {code for code, _ in problems}
        raise errors.CreateError(codes.pop() if len(codes) == 1 else "LaunchFailed", text)

    def _reservation_of(self, request: Mapping[str, Any], fleet_instance: Mapping[str, Any]) -> str:
        """The reservation the template the instance came from targets."""
        spec = (fleet_instance.get("LaunchTemplateAndOverrides") or {}).get(
            "LaunchTemplateSpecification"
        ) or {}
        name = spec.get("LaunchTemplateName")
        if name is None:  # one config per reservation: without the name, the only one
            configs = request["LaunchTemplateConfigs"]
            name = (
                configs[0]["LaunchTemplateSpecification"]["LaunchTemplateName"] if len(configs) == 1 else None
            )
        return self._reservations.get(str(name), "")

    @staticmethod
    def _zone_of(request: Mapping[str, Any], subnet_id: str | None) -> str:
        for config in request["LaunchTemplateConfigs"]:
            for override in config["Overrides"]:
                if override["SubnetId"] == subnet_id:
                    return str(override["AvailabilityZone"])
        return ""


def options(
    cluster: Cluster,
    nodeclaim: NodeClaim,
    nc: EC2NodeClass,
    image_id: str,
    max_pods: int,
    ct: str,
    tags: Mapping[str, str],
) -> Options:
    """The launch template options for one (AMI, max pods) group of a launch; also what the ``render``
    command prints."""
    family = nc.ami_family
    node_labels = {**nodeclaim.metadata.labels, core_labels.LABEL_CAPACITY_TYPE: ct}
    taints = [t.to_dict() for t in (*nodeclaim.spec.taints, *nodeclaim.spec.startup_taints)]
    boot = amifamily.Bootstrap(
        cluster_name=cluster.name,
        cluster_endpoint=cluster.endpoint,
        ca_bundle=cluster.ca_bundle,
        labels=node_labels,
        taints=taints,
        max_pods=max_pods,
        kubelet=nc.kubelet,
        cluster_dns=[cluster.dns],
        cluster_cidr=cluster.service_cidr,
        instance_store_policy=nc.spec.get("instanceStorePolicy"),
    )
    bdms = nc.block_device_mappings or amifamily.default_block_device_mappings(family)
    lt_tags = {k: v for k, v in tags.items() if k not in ("Name", "nodesmith.io/nodeclaim")}
    return Options(
        image_id=image_id,
        user_data=amifamily.user_data(family, boot, nc.spec.get("userData")),
        security_group_ids=tuple(g.id for g in nc.status.security_groups),
        instance_profile=nc.status.instance_profile or "",
        block_device_mappings=tuple(bdms),
        metadata_options=nc.spec.get("metadataOptions") or {},
        tags=lt_tags,
        detailed_monitoring=bool(nc.spec.get("detailedMonitoring")),
        associate_public_ip=nc.spec.get("associatePublicIPAddress"),
    )
