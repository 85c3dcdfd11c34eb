"""The EC2NodeClass schema: one declaration for the CRD (`nodesmith_aws.crds`) and for validation
(`nodesmith_aws.nodeclass.EC2NodeClass.from_dict`), CEL rules with their Python mirrors.

Pure data. Split from `nodesmith_aws.nodeclass` to keep each module to one topic: this is the wire shape,
that is the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from nodesmith.api import conditions, schema

__all__ = ["OBJECT_SCHEMA", "SPEC_SCHEMA", "STATUS_SCHEMA"]

GROUP: Final = "aws.nodesmith.io"
KIND: Final = "EC2NodeClass"
API_VERSION: Final = f"{GROUP}/v1"
AMI_FAMILIES: Final = ("AL2", "AL2023", "Bottlerocket", "Custom")

RESTRICTED_TAG_PREFIXES: Final = ("kubernetes.io/cluster/",)
RESTRICTED_TAGS: Final = (
    "nodesmith.io/nodepool",
    "nodesmith.io/nodeclaim",
    f"{GROUP}/ec2nodeclass",
    "eks:eks-cluster-name",
)


# -- schema --------------------------------------------------------------------------------------------


def _only(field: str, others: Sequence[str]) -> schema.Rule:
    """CEL: ``field`` cannot be combined with any of ``others`` in one term."""
    expr = " && ".join(f"!has(self.{o})" for o in others)
    return schema.Rule(
        f"has(self.{field}) ? {expr} : true",
        f"'{field}' is mutually exclusive, cannot be set with a combination of other fields in {'/'.join(others)}",
        lambda term: field not in term or not any(o in term for o in others),
    )


def _some(fields: Sequence[str]) -> schema.Rule:
    return schema.Rule(
        " || ".join(f"has(self.{f})" for f in fields),
        f"expected at least one, got none, {fields!r}",
        lambda term: any(f in term for f in fields),
    )


_TAGS_NOT_EMPTY: Final = schema.Rule(
    "self.all(k, k != '' && self[k] != '')",
    "empty tag keys or values aren't supported",
    lambda tags: all(k and v for k, v in tags.items()),
)


def _tags(description: str) -> schema.Schema:
    return schema.map_of(schema.string(), description, max_properties=20, rules=(_TAGS_NOT_EMPTY,))


_ID = r"^{}-[0-9a-z]+$"

SUBNET_TERM: Final = schema.obj(
    {
        "tags": _tags("Tags to match; a value of '*' matches any value."),
        "id": schema.string("The subnet ID.", pattern=_ID.format("subnet")),
    },
    "A subnet selector term: its fields are ANDed; terms are ORed.",
    rules=(_some(("tags", "id")), _only("id", ("tags",))),
)
SECURITY_GROUP_TERM: Final = schema.obj(
    {
        "tags": _tags("Tags to match; a value of '*' matches any value."),
        "id": schema.string("The security group ID.", pattern=_ID.format("sg")),
        "name": schema.string("The security group name."),
    },
    "A security-group selector term: its fields are ANDed; terms are ORed.",
    rules=(_some(("tags", "id", "name")), _only("id", ("tags", "name")), _only("name", ("tags", "id"))),
)
CAPACITY_RESERVATION_TERM: Final = schema.obj(
    {
        "tags": _tags("Tags to match; a value of '*' matches any value."),
        "id": schema.string("The capacity reservation ID.", pattern=_ID.format("cr")),
        "ownerID": schema.string("The account that owns the reservation.", pattern=r"^[0-9]{12}$"),
    },
    "A capacity-reservation selector term: its fields are ANDed; terms are ORed.",
    rules=(_some(("tags", "id")), _only("id", ("tags", "ownerID"))),
)
AMI_TERM: Final = schema.obj(
    {
        "alias": schema.string(
            "family@version: al2, al2023 or bottlerocket, and latest or a pinned version.",
            pattern=r"^(al2|al2023|bottlerocket)@(latest|v[\d.]+)$",
            max_length=30,
        ),
        "tags": _tags("Tags to match; a value of '*' matches any value."),
        "id": schema.string("The AMI ID.", pattern=_ID.format("ami")),
        "name": schema.string("The AMI name (wildcards allowed)."),
        "owner": schema.string("The AMI owner: an account ID, or 'self'/'amazon'."),
        "ssmParameter": schema.string("An SSM parameter whose value is an AMI ID."),
    },
    "An AMI selector term: its fields are ANDed; terms are ORed.",
    rules=(
        _some(("alias", "tags", "id", "name", "ssmParameter")),
        _only("alias", ("tags", "id", "name", "owner", "ssmParameter")),
        _only("id", ("alias", "tags", "name", "owner")),
    ),
)

_EBS: Final = schema.obj(
    {
        "deleteOnTermination": schema.boolean("Delete the volume when the instance terminates."),
        "encrypted": schema.boolean("Encrypt the volume."),
        "iops": schema.integer("Provisioned IOPS (io1, io2, gp3).", minimum=0),
        "kmsKeyID": schema.string("The KMS key for encryption."),
        "snapshotID": schema.string("The snapshot to create the volume from."),
        "throughput": schema.integer("Throughput in MiB/s (gp3).", minimum=0),
        "volumeSize": schema.quantity("Size of the volume (e.g. 20Gi)."),
        "volumeType": schema.string(
            "The EBS volume type.", enum=("standard", "io1", "io2", "gp2", "sc1", "st1", "gp3")
        ),
    },
    "EBS settings of the device.",
    rules=(_some(("snapshotID", "volumeSize")),),
)
BLOCK_DEVICE_MAPPING: Final = schema.obj(
    {
        "deviceName": schema.string("The device name (e.g. /dev/xvda)."),
        "rootVolume": schema.boolean("This device is the node's root volume (ephemeral storage)."),
        "ebs": _EBS,
    },
    "A block device mapping for the launch template.",
)
_EVICTION_SIGNALS: Final = (
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "pid.available",
)


def _signals(field: str) -> schema.Rule:
    names = ", ".join(f"'{s}'" for s in _EVICTION_SIGNALS)
    return schema.Rule(
        f"self.all(x, x in [{names}])",
        f"valid keys for {field} are {list(_EVICTION_SIGNALS)}",
        lambda m: all(k in _EVICTION_SIGNALS for k in m),
    )


def _matched(field: str, other: str) -> schema.Rule:
    """CEL: every signal in ``field`` also appears in ``other`` (a soft threshold needs its grace period,
    and a grace period its threshold: the kubelet refuses to start otherwise)."""
    return schema.Rule(
        f"has(self.{field}) ? self.{field}.all(e, has(self.{other}) && e in self.{other}) : true",
        f"{field} OwnerKey does not have a matching {other}",
        lambda k: all(e in (k.get(other) or {}) for e in k.get(field) or {}),
    )


_DURATION: Final = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"

KUBELET: Final = schema.obj(
    {
        "maxPods": schema.integer("Overrides the ENI-limited max pods.", minimum=0, format="int32"),
        "podsPerCore": schema.integer("Caps pods at podsPerCore x vCPUs.", minimum=0, format="int32"),
        "kubeReserved": schema.map_of(schema.string(), "kube-reserved overrides (cpu, memory, ...)."),
        "systemReserved": schema.map_of(schema.string(), "system-reserved overrides."),
        "evictionHard": schema.map_of(
            schema.string(),
            "Hard eviction thresholds (memory.available...).",
            max_properties=len(_EVICTION_SIGNALS),
            rules=(_signals("evictionHard"),),
        ),
        "evictionSoft": schema.map_of(
            schema.string(),
            "Soft eviction thresholds.",
            max_properties=len(_EVICTION_SIGNALS),
            rules=(_signals("evictionSoft"),),
        ),
        "evictionSoftGracePeriod": schema.map_of(
            schema.string(pattern=_DURATION),
            "How long each soft threshold must hold before pods are evicted (e.g. 1m30s).",
            max_properties=len(_EVICTION_SIGNALS),
            rules=(_signals("evictionSoftGracePeriod"),),
        ),
        "evictionMaxPodGracePeriod": schema.integer(
            "Longest pod termination grace period (seconds) honoured on soft eviction.", format="int32"
        ),
        "imageGCHighThresholdPercent": schema.integer(
            "Disk usage percent that always triggers image garbage collection.", minimum=0, maximum=100
        ),
        "imageGCLowThresholdPercent": schema.integer(
            "Disk usage percent image garbage collection frees down to.", minimum=0, maximum=100
        ),
        "cpuCFSQuota": schema.boolean("Enforce CPU limits with CFS quota."),
        "clusterDNS": schema.array(schema.string(), "DNS server IPs for the kubelet."),
    },
    "Kubelet settings, applied through the user data and used to compute allocatable.",
    rules=(
        _matched("evictionSoft", "evictionSoftGracePeriod"),
        _matched("evictionSoftGracePeriod", "evictionSoft"),
        schema.Rule(
            "has(self.imageGCHighThresholdPercent) && has(self.imageGCLowThresholdPercent) ? "
            "self.imageGCHighThresholdPercent > self.imageGCLowThresholdPercent : true",
            "imageGCHighThresholdPercent must be greater than imageGCLowThresholdPercent",
            lambda k: (
                "imageGCHighThresholdPercent" not in k
                or "imageGCLowThresholdPercent" not in k
                or k["imageGCHighThresholdPercent"] > k["imageGCLowThresholdPercent"]
            ),
        ),
    ),
)
_METADATA_DEFAULT: Final = {
    "httpEndpoint": "enabled",
    "httpProtocolIPv6": "disabled",
    "httpPutResponseHopLimit": 1,
    "httpTokens": "required",
}
METADATA_OPTIONS: Final = schema.obj(
    {
        "httpEndpoint": schema.string(enum=("enabled", "disabled"), default="enabled"),
        "httpProtocolIPv6": schema.string(enum=("enabled", "disabled"), default="disabled"),
        "httpPutResponseHopLimit": schema.integer(minimum=1, maximum=64, default=1),
        "httpTokens": schema.string(enum=("required", "optional"), default="required"),
    },
    "Instance metadata service options; IMDSv2 (httpTokens: required) by default.",
    default=_METADATA_DEFAULT,
)


def _restricted_tags_ok(tags: Mapping[str, str]) -> bool:
    return not any(k in RESTRICTED_TAGS or k.startswith(RESTRICTED_TAG_PREFIXES) for k in tags)


def _one_root_volume(bdms: Sequence[Mapping[str, Any]]) -> bool:
    return sum(1 for b in bdms if b.get("rootVolume")) <= 1


def _alias_alone(terms: Sequence[Mapping[str, Any]]) -> bool:
    return not (any("alias" in t for t in terms) and len(terms) > 1)


def _role_xor_profile(spec: Mapping[str, Any]) -> bool:
    return ("role" in spec) != ("instanceProfile" in spec)


def _family_or_alias(spec: Mapping[str, Any]) -> bool:
    return "amiFamily" in spec or any("alias" in t for t in spec.get("amiSelectorTerms", ()))


SPEC_SCHEMA: Final = schema.obj(
    {
        "subnetSelectorTerms": schema.array(
            SUBNET_TERM, "Subnets to launch into.", min_items=1, max_items=30
        ),
        "securityGroupSelectorTerms": schema.array(
            SECURITY_GROUP_TERM, "Security groups for the instances.", min_items=1, max_items=30
        ),
        "capacityReservationSelectorTerms": schema.array(
            CAPACITY_RESERVATION_TERM,
            "Capacity reservations (ODCRs) offered as capacity type reserved.",
            max_items=30,
        ),
        "amiSelectorTerms": schema.array(
            AMI_TERM,
            "AMIs to launch.",
            min_items=1,
            max_items=30,
            rules=(
                schema.Rule(
                    "!(self.exists(x, has(x.alias)) && self.size() != 1)",
                    "'alias' is mutually exclusive, cannot be set with a combination of other amiSelectorTerms",
                    _alias_alone,
                ),
            ),
        ),
        "amiFamily": schema.string(
            "The AMI family; derived from the alias when there is one.", enum=AMI_FAMILIES
        ),
        "userData": schema.string(
            "User data merged with the family's bootstrap (MIME for AL2/AL2023, TOML for Bottlerocket)."
        ),
        "role": schema.string("IAM role for a managed instance profile.", min_length=1),
        "instanceProfile": schema.string("An existing instance profile (unmanaged).", min_length=1),
        "tags": schema.map_of(
            schema.string(),
            "Tags for every resource nodesmith creates (instances, volumes, launch templates).",
            rules=(
                _TAGS_NOT_EMPTY,
                schema.Rule(
                    "self.all(k, !k.startsWith('kubernetes.io/cluster/') && k != 'nodesmith.io/nodepool' && "
                    "k != 'nodesmith.io/nodeclaim' && k != 'aws.nodesmith.io/ec2nodeclass' && k != 'eks:eks-cluster-name')",
                    "tag contains a restricted tag key (kubernetes.io/cluster/*, nodesmith.io/nodepool, "
                    "nodesmith.io/nodeclaim, aws.nodesmith.io/ec2nodeclass, eks:eks-cluster-name)",
                    _restricted_tags_ok,
                ),
            ),
        ),
        "kubelet": KUBELET,
        "blockDeviceMappings": schema.array(
            BLOCK_DEVICE_MAPPING,
            "Block devices; the family default when unset.",
            max_items=50,
            rules=(
                schema.Rule(
                    "self.filter(x, has(x.rootVolume) ? x.rootVolume == true : false).size() <= 1",
                    "must have only one blockDeviceMappings with rootVolume",
                    _one_root_volume,
                ),
            ),
        ),
        "instanceStorePolicy": schema.string(
            "RAID0 the instance stores and use them for ephemeral storage.", enum=("RAID0",)
        ),
        "detailedMonitoring": schema.boolean("Enable detailed CloudWatch monitoring."),
        "associatePublicIPAddress": schema.boolean(
            "Give instances a public IP; unset uses the subnet default."
        ),
        "metadataOptions": METADATA_OPTIONS,
        "context": schema.string("Sent as CreateFleet's Context (reserved capacity)."),
    },
    "EC2NodeClassSpec is the configuration EC2 instances are launched with.",
    required=("subnetSelectorTerms", "securityGroupSelectorTerms", "amiSelectorTerms"),
    rules=(
        schema.Rule(
            "has(self.role) != has(self.instanceProfile)",
            "must specify exactly one of ['role', 'instanceProfile']",
            _role_xor_profile,
        ),
        schema.Rule(
            "has(self.amiFamily) || self.amiSelectorTerms.exists(x, has(x.alias))",
            "amiFamily must be specified if amiSelectorTerms does not contain an alias",
            _family_or_alias,
        ),
    ),
)

_REQUIREMENT: Final = schema.obj(
    {
        "key": schema.string(),
        "operator": schema.string(),
        "values": schema.array(schema.string()),
    },
    required=("key", "operator"),
)
STATUS_SCHEMA: Final = schema.obj(
    {
        "subnets": schema.array(
            schema.obj(
                {"id": schema.string(), "zone": schema.string(), "zoneID": schema.string()},
                required=("id", "zone"),
            ),
            "Subnets resolved from subnetSelectorTerms.",
        ),
        "securityGroups": schema.array(
            schema.obj({"id": schema.string(), "name": schema.string()}, required=("id",)),
            "Security groups resolved from securityGroupSelectorTerms.",
        ),
        "amis": schema.array(
            schema.obj(
                {
                    "id": schema.string(),
                    "name": schema.string(),
                    "deprecated": schema.boolean(),
                    "requirements": schema.array(_REQUIREMENT),
                },
                required=("id", "requirements"),
            ),
            "AMIs resolved from amiSelectorTerms, with the requirements an instance type must meet to use each.",
        ),
        "instanceProfile": schema.string("The instance profile instances are launched with."),
        "capacityReservations": schema.array(
            schema.obj(
                {
                    "id": schema.string(),
                    "instanceType": schema.string(),
                    "availabilityZone": schema.string(),
                    "availableInstanceCount": schema.integer(minimum=0),
                    "ownerID": schema.string(),
                    "instanceMatchCriteria": schema.string(),
                    "endTime": schema.string(),
                },
                required=("id", "instanceType", "availabilityZone"),
            ),
            "Active capacity reservations resolved from capacityReservationSelectorTerms.",
        ),
        "conditions": conditions.CONDITIONS_SCHEMA,
    },
    "EC2NodeClassStatus is what the selectors resolved to.",
)
OBJECT_SCHEMA: Final = schema.obj(
    {
        "apiVersion": schema.string(enum=[API_VERSION]),
        "kind": schema.string(enum=[KIND]),
        "metadata": schema.obj({}),
        "spec": SPEC_SCHEMA,
        "status": STATUS_SCHEMA,
    },
    "EC2NodeClass is the AWS-specific configuration of the nodes a NodePool launches.",
    required=("spec",),
)
