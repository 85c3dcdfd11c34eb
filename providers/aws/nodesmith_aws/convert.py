"""Karpenter's AWS objects into nodesmith-aws objects, for ``nodesmith convert`` through the plugin hook.

The core (`nodesmith.convert`) converts Karpenter's NodePools and Provisioners and knows no provider; it
asks this plugin (``nodesmith_karpenter_converter``) for what belongs to AWS: the
``karpenter.k8s.aws/v1alpha1`` AWSNodeTemplate and ``v1beta1``/``v1`` EC2NodeClass, a Provisioner's
inline ``spec.provider``, and which kubelet settings an EC2NodeClass keeps. Pure: values in, values out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final, final

from nodesmith.convert import KARPENTER_GROUP, Context, NoteKind
from nodesmith_aws.bootstrap import options

__all__ = ["AWS_GROUP", "EC2NODECLASS", "KARPENTER_AWS_GROUP", "AwsConverter"]

KARPENTER_AWS_GROUP: Final = "karpenter.k8s.aws"
AWS_GROUP: Final = "aws.nodesmith.io"
EC2NODECLASS: Final = "EC2NodeClass"
_ALIAS_FAMILIES: Final = {
    "AL2": "al2",
    "AL2023": "al2023",
    "Bottlerocket": "bottlerocket",
    "Windows2019": "windows2019",
    "Windows2022": "windows2022",
    "Windows2025": "windows2025",
}
# v1beta1 EC2NodeClass defaulted the IMDS hop limit to 2; v1 (and nodesmith) default it to 1.
_V1BETA1_METADATA_OPTIONS: Final = {
    "httpEndpoint": "enabled",
    "httpProtocolIPv6": "disabled",
    "httpPutResponseHopLimit": 2,
    "httpTokens": "required",
}


@final
class AwsConverter:
    """The `nodesmith.convert.KarpenterConverter` for ``karpenter.k8s.aws`` objects."""

    karpenter_group = KARPENTER_AWS_GROUP
    group = AWS_GROUP

    def node_class_kind(self, karpenter_kind: str | None) -> str:
        """Karpenter's node class kinds (and the v1alpha5 default, none) all become EC2NodeClass."""
        return EC2NODECLASS

    def convert(self, d: Mapping[str, Any], version: str, ctx: Context) -> list[dict[str, Any]] | None:
        kind = d.get("kind")
        if kind == "AWSNodeTemplate":
            return _aws_node_template(d, ctx)
        if kind == EC2NODECLASS and version in ("v1beta1", "v1"):
            return _ec2_node_class(d, ctx, version)
        return None

    def inline_provider(self, name: str, provider: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
        """A v1alpha5 Provisioner's ``spec.provider`` is an AWSNodeTemplate spec without the object."""
        inline = {
            "apiVersion": f"{KARPENTER_AWS_GROUP}/v1alpha1",
            "kind": "AWSNodeTemplate",
            "metadata": {"name": name},
            "spec": provider,
        }
        return _aws_node_template(inline, ctx)

    def kubelet(self, kubelet: Mapping[str, Any], ctx: Context, source: str, field: str) -> dict[str, Any]:
        return _kubelet(kubelet, ctx, source, field)


def _kubelet(kubelet: Mapping[str, Any], ctx: Context, source: str, field: str) -> dict[str, Any]:
    kept = {k: v for k, v in kubelet.items() if k in options.KUBELET_FIELDS}
    for key in kubelet:
        if key not in options.KUBELET_FIELDS:
            message = (
                "removed in Karpenter v1" if key == "containerRuntime" else "not implemented by nodesmith-aws"
            )
            ctx.note(source, f"{field}.{key}", NoteKind.DROPPED, message)
    return kept


def _legacy_selector(selector: Mapping[str, str], kind: str) -> list[dict[str, Any]]:
    """v1alpha1 map selectors: ``aws-ids`` / ``aws::ids`` are id lists, ``aws::name`` / ``aws::owners``
    (AMIs) are name and owner terms; every other key is a tag, all tags ANDed in one term."""
    terms: list[dict[str, Any]] = []
    tags: dict[str, str] = {}
    names: list[str] = []
    owners: list[str] = []
    for key, value in selector.items():
        if key in ("aws-ids", "aws::ids"):
            terms.extend({"id": v.strip()} for v in str(value).split(",") if v.strip())
        elif key == "aws::name" and kind == "ami":
            names.extend(v.strip() for v in str(value).split(",") if v.strip())
        elif key == "aws::owners" and kind == "ami":
            owners.extend(v.strip() for v in str(value).split(",") if v.strip())
        else:
            tags[key] = str(value)
    if names:
        for name in names:
            for owner in owners or [""]:
                term: dict[str, Any] = {"name": name, **({"tags": tags} if tags else {})}
                if owner:
                    term["owner"] = owner
                terms.append(term)
    elif tags:
        terms.extend([{"tags": tags, "owner": o} for o in owners] if owners else [{"tags": tags}])
    return terms


def _alias(family: str | None, ctx: Context, source: str) -> list[dict[str, Any]] | None:
    if family in _ALIAS_FAMILIES:
        ctx.note(
            source,
            "spec.amiFamily",
            NoteKind.CHANGED,
            f"became amiSelectorTerms alias {_ALIAS_FAMILIES[family]}@latest; pin a version "
            "for production so AMI releases do not drift nodes unannounced",
        )
        return [{"alias": f"{_ALIAS_FAMILIES[family]}@latest"}]
    return None


def _node_class_common(spec: dict[str, Any], out: dict[str, Any], ctx: Context, source: str) -> None:
    """Fields that are the same from v1alpha1 through v1: copied, then ``role``/``instanceProfile``."""
    for key in (
        "userData",
        "tags",
        "blockDeviceMappings",
        "metadataOptions",
        "detailedMonitoring",
        "associatePublicIPAddress",
        "instanceStorePolicy",
        "context",
        "role",
        "instanceProfile",
        "kubelet",
    ):
        if key in spec:
            out[key] = spec.pop(key)
    if "kubelet" in out:
        out["kubelet"] = _kubelet(out["kubelet"], ctx, source, "spec.kubelet")
    if "role" not in out and "instanceProfile" not in out:
        if ctx.options.role:
            out["role"] = ctx.options.role
        elif ctx.options.instance_profile:
            out["instanceProfile"] = ctx.options.instance_profile
        else:
            ctx.note(
                source,
                "spec.role",
                NoteKind.INVALID,
                "v1 needs role or instanceProfile (was a global setting); pass --role or --instance-profile",
            )


def _aws_node_template(d: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """v1alpha1 AWSNodeTemplate → EC2NodeClass."""
    source = f"AWSNodeTemplate/{(d.get('metadata') or {}).get('name', '')}"
    spec = dict(d.get("spec") or {})
    out: dict[str, Any] = {}
    if (subnets := spec.pop("subnetSelector", None)) is not None:
        out["subnetSelectorTerms"] = _legacy_selector(subnets, "subnet")
    if (groups := spec.pop("securityGroupSelector", None)) is not None:
        out["securityGroupSelectorTerms"] = _legacy_selector(groups, "sg")
    family = spec.pop("amiFamily", None)
    ami_selector = spec.pop("amiSelector", None)
    if ami_selector:
        out["amiSelectorTerms"] = _legacy_selector(ami_selector, "ami")
        out["amiFamily"] = family or "AL2"
    elif (alias := _alias(family or "AL2", ctx, source)) is not None:
        out["amiSelectorTerms"] = alias
    else:
        out["amiFamily"] = family
        ctx.note(
            source,
            "spec.amiFamily",
            NoteKind.INVALID,
            f"amiFamily {family} has no v1 alias and no amiSelector was given",
        )
    if profile := spec.pop("instanceProfile", None):
        out["instanceProfile"] = profile
    if "launchTemplate" in spec:
        ctx.note(
            source,
            "spec.launchTemplate",
            NoteKind.DROPPED,
            "custom launch templates were removed in v1beta1; use userData and the other fields",
        )
        spec.pop("launchTemplate")
    _node_class_common(spec, out, ctx, source)
    if "metadataOptions" not in out:
        out["metadataOptions"] = dict(_V1BETA1_METADATA_OPTIONS)
        ctx.note(
            source,
            "spec.metadataOptions",
            NoteKind.CHANGED,
            "set to the old default (httpPutResponseHopLimit 2); v1's default is 1",
        )
    ctx.drop_rest(source, "spec.", spec)
    return [_node_class_object(d, out, ctx, source)]


def _ec2_node_class(d: Mapping[str, Any], ctx: Context, version: str) -> list[dict[str, Any]]:
    """v1beta1 or v1 EC2NodeClass → nodesmith EC2NodeClass."""
    source = f"EC2NodeClass/{(d.get('metadata') or {}).get('name', '')}"
    spec = copy.deepcopy(dict(d.get("spec") or {}))
    out: dict[str, Any] = {}
    for key in ("subnetSelectorTerms", "securityGroupSelectorTerms", "amiSelectorTerms", "amiFamily"):
        if key in spec:
            out[key] = spec.pop(key)
    if version == "v1beta1":
        if "amiSelectorTerms" not in out:
            alias = _alias(out.get("amiFamily"), ctx, source)
            if alias is not None:
                out["amiSelectorTerms"] = alias
                del out["amiFamily"]
        if "metadataOptions" not in spec:
            spec["metadataOptions"] = dict(_V1BETA1_METADATA_OPTIONS)
            ctx.note(
                source,
                "spec.metadataOptions",
                NoteKind.CHANGED,
                "set to the v1beta1 default (httpPutResponseHopLimit 2); v1's default is 1",
            )
    _node_class_common(spec, out, ctx, source)
    for key in spec:
        message = "not implemented by nodesmith-aws" if version == "v1" else "no nodesmith equivalent"
        ctx.note(source, f"spec.{key}", NoteKind.DROPPED, message)
    return [_node_class_object(d, out, ctx, source)]


def _node_class_object(
    d: Mapping[str, Any], spec: dict[str, Any], ctx: Context, source: str
) -> dict[str, Any]:
    if "tags" in spec:
        for key in spec["tags"]:
            if key.startswith((f"{KARPENTER_GROUP}/", f"{KARPENTER_AWS_GROUP}/")):
                ctx.note(
                    source,
                    f"spec.tags[{key}]",
                    NoteKind.CHANGED,
                    "tag keys are AWS tags and kept as written; nodesmith tags its own keys",
                )
    return {
        "apiVersion": f"{AWS_GROUP}/v1",
        "kind": EC2NODECLASS,
        "metadata": ctx.metadata(d, source),
        "spec": spec,
    }
