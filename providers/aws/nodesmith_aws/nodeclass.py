"""EC2NodeClass (``aws.nodesmith.io/v1``, cluster-scoped): how EC2 instances for a NodePool are launched.

Karpenter v1's EC2NodeClass, field for field where nodesmith supports the field (see the README for the
ones it does not). Fed by Kubernetes dicts (the node-class store reads them from the API, or tests feed
them directly); consumed by the resolver (`nodesmith_aws.resolver`, which fills ``status``), the
instance-type provider (kubelet settings, block devices), launch templates, and drift.

One declaration, `nodesmith_aws.nodeclass_schema`, gives both the CRD
(`nodesmith_aws.crds`) and :meth:`EC2NodeClass.from_dict` validation, including the Python mirror of
every CEL rule. The static-drift hash (:meth:`EC2NodeClass.static_hash`) is sha256 over canonical JSON of
the spec without its selector terms (which drift through resolved status instead), stable across
processes, as Karpenter's ``hashstructure`` hash is stable across its restarts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith import errors
from nodesmith.api import conditions, meta, quantity, schema
from nodesmith_aws.capacityreservations import ResolvedCapacityReservation
from nodesmith_aws.nodeclass_schema import (
    AMI_FAMILIES,
    API_VERSION,
    GROUP,
    KIND,
    OBJECT_SCHEMA,
    RESTRICTED_TAGS,
    SPEC_SCHEMA,
    STATUS_SCHEMA,
)

__all__ = [
    "AMI_FAMILIES",
    "ANNOTATION_HASH",
    "ANNOTATION_HASH_VERSION",
    "API_VERSION",
    "CONDITION_TYPES",
    "FINALIZER",
    "GROUP",
    "HASH_VERSION",
    "KIND",
    "OBJECT_SCHEMA",
    "RESTRICTED_TAGS",
    "SPEC_SCHEMA",
    "STATUS_SCHEMA",
    "EC2NodeClass",
    "ResolvedAMI",
    "ResolvedSecurityGroup",
    "ResolvedSubnet",
    "Status",
]

ANNOTATION_HASH: Final = f"{GROUP}/ec2nodeclass-hash"
ANNOTATION_HASH_VERSION: Final = f"{GROUP}/ec2nodeclass-hash-version"
ANNOTATION_INSTANCE_PROFILE: Final = f"{GROUP}/instance-profile-name"
HASH_VERSION: Final = "v1"
FINALIZER: Final = f"{GROUP}/termination"
"""Held until the EC2NodeClass's NodeClaims are gone and its instance profile and launch templates
deleted (Karpenter's ``karpenter.k8s.aws/termination``)."""


class Condition:
    """Condition types on ``status.conditions``; ``Ready`` summarises the rest."""

    AMIS_READY: Final = "AMIsReady"
    SUBNETS_READY: Final = "SubnetsReady"
    SECURITY_GROUPS_READY: Final = "SecurityGroupsReady"
    INSTANCE_PROFILE_READY: Final = "InstanceProfileReady"
    VALIDATION_SUCCEEDED: Final = "ValidationSucceeded"


CONDITION_TYPES: Final = conditions.ConditionTypes(
    dependents=(
        Condition.AMIS_READY,
        Condition.SUBNETS_READY,
        Condition.SECURITY_GROUPS_READY,
        Condition.INSTANCE_PROFILE_READY,
        Condition.VALIDATION_SUCCEEDED,
    )
)


# -- model -----------------------------------------------------------------------------------------------


@final
@attrs.frozen(slots=True)
class ResolvedSubnet:
    id: str
    zone: str
    zone_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "zone": self.zone}
        if self.zone_id:
            out["zoneID"] = self.zone_id
        return out


@final
@attrs.frozen(slots=True)
class ResolvedSecurityGroup:
    id: str
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id} if self.name is None else {"id": self.id, "name": self.name}


@final
@attrs.frozen(slots=True)
class ResolvedAMI:
    """An AMI and the node selector requirements (arch, ...) an instance type must meet to use it."""

    id: str
    requirements: tuple[Mapping[str, Any], ...]
    name: str | None = None
    deprecated: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "requirements": [dict(r) for r in self.requirements]}
        if self.name is not None:
            out["name"] = self.name
        if self.deprecated:
            out["deprecated"] = True
        return out


@final
@attrs.frozen(slots=True)
class Status:
    subnets: tuple[ResolvedSubnet, ...] = ()
    security_groups: tuple[ResolvedSecurityGroup, ...] = ()
    amis: tuple[ResolvedAMI, ...] = ()
    instance_profile: str | None = None
    conditions: tuple[conditions.Condition, ...] = ()
    capacity_reservations: tuple[ResolvedCapacityReservation, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Status:
        return cls(
            subnets=tuple(
                ResolvedSubnet(s["id"], s["zone"], s.get("zoneID")) for s in d.get("subnets") or ()
            ),
            security_groups=tuple(
                ResolvedSecurityGroup(g["id"], g.get("name")) for g in d.get("securityGroups") or ()
            ),
            amis=tuple(
                ResolvedAMI(
                    a["id"], tuple(a.get("requirements") or ()), a.get("name"), bool(a.get("deprecated"))
                )
                for a in d.get("amis") or ()
            ),
            instance_profile=d.get("instanceProfile"),
            conditions=conditions.conditions_from(d.get("conditions"), "status.conditions"),
            capacity_reservations=tuple(
                ResolvedCapacityReservation.from_dict(r) for r in d.get("capacityReservations") or ()
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.subnets:
            out["subnets"] = [s.to_dict() for s in self.subnets]
        if self.security_groups:
            out["securityGroups"] = [g.to_dict() for g in self.security_groups]
        if self.amis:
            out["amis"] = [a.to_dict() for a in self.amis]
        if self.instance_profile is not None:
            out["instanceProfile"] = self.instance_profile
        if self.capacity_reservations:
            out["capacityReservations"] = [r.to_dict() for r in self.capacity_reservations]
        if self.conditions:
            out["conditions"] = [c.to_dict() for c in self.conditions]
        return out


@final
@attrs.frozen(slots=True)
class EC2NodeClass:
    """A validated, defaulted EC2NodeClass. ``spec`` stays the defaulted dict (camelCase, as written), so
    launch-template options and the drift hash read exactly what the user wrote; typed accessors below."""

    metadata: meta.ObjectMeta
    spec: Mapping[str, Any]
    status: Status = Status()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EC2NodeClass:
        """Default, validate and build; raises `errors.ValidationError` naming the bad field."""
        if not isinstance(d, Mapping):
            raise errors.ValidationError(
                "<root>", f"an EC2NodeClass must be an object, got {type(d).__name__}"
            )
        defaulted = schema.apply_defaults(OBJECT_SCHEMA, d)
        schema.validate(OBJECT_SCHEMA, defaulted)
        spec = defaulted["spec"]
        for index, bdm in enumerate(spec.get("blockDeviceMappings") or ()):
            size = (bdm.get("ebs") or {}).get("volumeSize")
            if size is not None:
                try:
                    quantity.parse_quantity(size)
                except quantity.QuantityError as err:
                    raise errors.ValidationError(
                        f"spec.blockDeviceMappings[{index}].ebs.volumeSize", str(err)
                    ) from None
        return cls(
            metadata=meta.ObjectMeta.from_dict(defaulted.get("metadata")),
            spec=spec,
            status=Status.from_dict(defaulted.get("status") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": self.metadata.to_dict(),
            "spec": json.loads(json.dumps(self.spec)),
        }
        status = self.status.to_dict()
        if status:
            out["status"] = status
        return out

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def ami_family(self) -> str:
        """``spec.amiFamily``, else the alias's family, else ``Custom`` (Karpenter's ``AMIFamily()``)."""
        family = self.spec.get("amiFamily")
        if family:
            return str(family)
        for term in self.spec["amiSelectorTerms"]:
            if "alias" in term:
                return {"al2": "AL2", "al2023": "AL2023", "bottlerocket": "Bottlerocket"}[
                    term["alias"].split("@")[0]
                ]
        return "Custom"

    @property
    def kubelet(self) -> Mapping[str, Any]:
        return self.spec.get("kubelet") or {}

    @property
    def block_device_mappings(self) -> Sequence[Mapping[str, Any]]:
        return self.spec.get("blockDeviceMappings") or ()

    @property
    def tags(self) -> Mapping[str, str]:
        return self.spec.get("tags") or {}

    def condition(self, condition_type: str) -> conditions.Condition | None:
        return conditions.get(self.status.conditions, condition_type)

    @property
    def ready(self) -> conditions.Condition | None:
        """The ``Ready`` condition, or ``None`` before the resolver has run."""
        return self.condition(conditions.ConditionType.READY)

    def static_hash(self) -> str:
        """The static-drift hash: selector terms are left out (they drift through status), the resolved
        AMI family is put in. sha256 of canonical JSON, so stable across processes and restarts."""
        hashed = {k: v for k, v in self.spec.items() if not k.endswith("SelectorTerms") and k != "amiFamily"}
        hashed["amiFamily"] = self.ami_family
        canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
