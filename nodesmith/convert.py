"""Convert Karpenter manifests into nodesmith manifests: ``nodesmith convert``.

Reads Kubernetes dicts (fed by `nodesmith.cli`'s ``convert`` command, which parses YAML files or stdin)
and returns the equivalent nodesmith objects plus a report of every field that was changed in meaning,
moved, or has no equivalent. Nothing is dropped silently: each drop is a `Note` of kind ``dropped``.

Handled inputs, following Karpenter's own migration paths (v1alpha5 → v1beta1 → v1) in one step:

* ``karpenter.sh/v1alpha5`` Provisioner → ``nodesmith.io/v1`` NodePool (an inline ``spec.provider``
  becomes an EC2NodeClass of the same name);
* ``karpenter.k8s.aws/v1alpha1`` AWSNodeTemplate → ``aws.nodesmith.io/v1`` EC2NodeClass;
* ``karpenter.sh/v1beta1`` NodePool and ``karpenter.k8s.aws/v1beta1`` EC2NodeClass → v1 semantics;
* ``karpenter.sh/v1`` NodePool and ``karpenter.k8s.aws/v1`` EC2NodeClass → group and key renames only.

Label, annotation, taint and requirement keys are renamed ``karpenter.sh/*`` → ``nodesmith.io/*`` and
``karpenter.k8s.aws/*`` → ``aws.nodesmith.io/*``. Kubelet settings live on the EC2NodeClass in v1, so
a Provisioner's ``kubeletConfiguration`` or a v1beta1 NodePool's ``kubelet`` is moved onto the
EC2NodeClass it references when that class is converted in the same run (`convert_all`), and reported
otherwise. Other Kubernetes objects pass through unchanged. Pure: no I/O, values in, values out.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable, Mapping
from typing import Any, Final, final

import attrs

from nodesmith import errors
from nodesmith.api import labels, nodepool

__all__ = ["Conversion", "Note", "NoteKind", "Options", "convert_all", "rename_key"]

KARPENTER_GROUP: Final = "karpenter.sh"
KARPENTER_AWS_GROUP: Final = "karpenter.k8s.aws"
KARPENTER_KWOK_GROUP: Final = "karpenter.kwok.sh"
AWS_GROUP: Final = "aws.nodesmith.io"
KWOK_GROUP: Final = "kwok.nodesmith.io"
EC2NODECLASS: Final = "EC2NodeClass"

_KEY_PREFIXES: Final = (
    (f"{KARPENTER_AWS_GROUP}/", f"{AWS_GROUP}/"),
    (f"{KARPENTER_KWOK_GROUP}/", f"{KWOK_GROUP}/"),
    (f"{KARPENTER_GROUP}/", f"{labels.GROUP}/"),
)
# Keys whose name changed between Karpenter versions, mapped straight to the nodesmith v1 name.
_RENAMED_KEYS: Final = {
    "karpenter.sh/provisioner-name": labels.LABEL_NODEPOOL,
    "karpenter.sh/do-not-evict": labels.ANNOTATION_DO_NOT_DISRUPT,
    "karpenter.sh/do-not-consolidate": labels.ANNOTATION_DO_NOT_DISRUPT,
}
_GROUP_RENAMES: Final = {
    KARPENTER_GROUP: labels.GROUP,
    KARPENTER_AWS_GROUP: AWS_GROUP,
    KARPENTER_KWOK_GROUP: KWOK_GROUP,
}
# The EC2NodeClass spec fields nodesmith-aws implements (its README lists the rest).
EC2NODECLASS_FIELDS: Final = frozenset(
    {
        "subnetSelectorTerms",
        "securityGroupSelectorTerms",
        "amiSelectorTerms",
        "amiFamily",
        "userData",
        "role",
        "instanceProfile",
        "tags",
        "kubelet",
        "blockDeviceMappings",
        "instanceStorePolicy",
        "detailedMonitoring",
        "associatePublicIPAddress",
        "metadataOptions",
        "context",
    }
)
# The kubelet settings nodesmith-aws implements (Karpenter v1 has a few more).
KUBELET_FIELDS: Final = frozenset(
    {
        "maxPods",
        "podsPerCore",
        "kubeReserved",
        "systemReserved",
        "evictionHard",
        "evictionSoft",
        "evictionSoftGracePeriod",
        "evictionMaxPodGracePeriod",
        "imageGCHighThresholdPercent",
        "imageGCLowThresholdPercent",
        "cpuCFSQuota",
        "clusterDNS",
    }
)
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
_DROPPED_METADATA: Final = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "finalizers",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


class NoteKind(enum.StrEnum):
    """How a field fared: ``dropped`` has no nodesmith equivalent; ``moved`` went elsewhere;
    ``changed`` was rewritten in a way worth reading; ``invalid`` fails nodesmith validation."""

    DROPPED = "dropped"
    MOVED = "moved"
    CHANGED = "changed"
    INVALID = "invalid"


@final
@attrs.frozen(slots=True)
class Note:
    """One line of the report: which object and field, what happened, and why."""

    source: str
    field: str
    kind: NoteKind
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.field}: {self.kind}: {self.message}"


@final
@attrs.frozen(slots=True)
class Options:
    """Values a Karpenter manifest may leave to global settings that v1 needs on the object."""

    instance_profile: str | None = None
    role: str | None = None


@final
@attrs.frozen(slots=True)
class Conversion:
    """The converted objects, in input order, and the report."""

    objects: list[dict[str, Any]]
    notes: list[Note]

    @property
    def lossless(self) -> bool:
        return not any(n.kind in (NoteKind.DROPPED, NoteKind.INVALID) for n in self.notes)


def rename_key(key: str) -> str:
    """A Karpenter label / annotation / taint / requirement key → its nodesmith name; others unchanged."""
    if key in _RENAMED_KEYS:
        return _RENAMED_KEYS[key]
    for old, new in _KEY_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def _rename_keys(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return {rename_key(k): v for k, v in (values or {}).items()}


def _duration(seconds: int | float) -> str:
    whole = int(seconds)
    if whole and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


@attrs.define
class _Context:
    """Mutable state of one conversion run: the report and the kubelet settings waiting for a class."""

    options: Options
    notes: list[Note] = attrs.Factory(list)
    # EC2NodeClass name → (source, field, kubelet settings) from NodePools referencing it.
    kubelets: list[tuple[str, str, str, dict[str, Any]]] = attrs.Factory(list)

    def note(self, source: str, field: str, kind: NoteKind, message: str) -> None:
        self.notes.append(Note(source, field, kind, message))

    def drop_rest(self, source: str, prefix: str, rest: Mapping[str, Any]) -> None:
        for key in rest:
            self.note(source, f"{prefix}{key}", NoteKind.DROPPED, "no nodesmith equivalent")


def _metadata(d: Mapping[str, Any], ctx: _Context, source: str) -> dict[str, Any]:
    meta = dict(d.get("metadata") or {})
    for key in _DROPPED_METADATA:
        meta.pop(key, None)
    if "labels" in meta:
        meta["labels"] = _rename_keys(meta["labels"])
    if "annotations" in meta:
        annotations = _rename_keys(meta["annotations"])
        annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
        meta["annotations"] = annotations
        if not annotations:
            del meta["annotations"]
    if "status" in d:
        ctx.note(source, "status", NoteKind.DROPPED, "status is written by the controller, not converted")
    return meta


def _requirements(reqs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for req in reqs:
        converted = dict(req)
        converted["key"] = rename_key(str(req["key"]))
        out.append(converted)
    return out


def _taints(taints: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**t, "key": rename_key(str(t["key"]))} for t in taints]


def _node_class_ref(ref: Mapping[str, Any], ctx: _Context, source: str, path: str) -> dict[str, Any]:
    """v1alpha5 ``providerRef`` / v1beta1 ``nodeClassRef`` ``{apiVersion?, kind?, name}`` and v1's
    ``{group, kind, name}`` → nodesmith's ``{group, kind, name}``; no group means the AWS class."""
    ref = dict(ref)
    name = ref.pop("name", None)
    group = ref.pop("group", None)
    api_version = ref.pop("apiVersion", None)
    if group is None and api_version:
        group = str(api_version).split("/")[0]
    kind = ref.pop("kind", None) or EC2NODECLASS
    if kind == "AWSNodeTemplate":
        kind = EC2NODECLASS
    group = _GROUP_RENAMES.get(group or KARPENTER_AWS_GROUP, group)
    ctx.drop_rest(source, f"{path}.", ref)
    return {"group": group, "kind": kind, "name": name}


# ---------------------------------------------------------------- NodePool


def _provisioner(d: Mapping[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    """v1alpha5 Provisioner → NodePool (+ EC2NodeClass from an inline ``provider``)."""
    source = f"Provisioner/{(d.get('metadata') or {}).get('name', '')}"
    name = (d.get("metadata") or {}).get("name", "")
    spec = dict(d.get("spec") or {})
    template_meta: dict[str, Any] = {}
    template_spec: dict[str, Any] = {}
    out_spec: dict[str, Any] = {"template": {"metadata": template_meta, "spec": template_spec}}
    extra: list[dict[str, Any]] = []

    if labels_ := spec.pop("labels", None):
        template_meta["labels"] = _rename_keys(labels_)
    if annotations := spec.pop("annotations", None):
        template_meta["annotations"] = _rename_keys(annotations)
    template_spec["requirements"] = _requirements(spec.pop("requirements", None) or ())
    if taints := spec.pop("taints", None):
        template_spec["taints"] = _taints(taints)
    if startup := spec.pop("startupTaints", None):
        template_spec["startupTaints"] = _taints(startup)

    provider_ref = spec.pop("providerRef", None)
    provider = spec.pop("provider", None)
    if provider_ref is not None:
        template_spec["nodeClassRef"] = _node_class_ref(provider_ref, ctx, source, "spec.providerRef")
    elif provider is not None:
        template_spec["nodeClassRef"] = {"group": AWS_GROUP, "kind": EC2NODECLASS, "name": name}
        ctx.note(
            source,
            "spec.provider",
            NoteKind.MOVED,
            f"inline provider became EC2NodeClass/{name}",
        )
        inline = {
            "apiVersion": f"{KARPENTER_AWS_GROUP}/v1alpha1",
            "kind": "AWSNodeTemplate",
            "metadata": {"name": name},
            "spec": provider,
        }
        extra.extend(_aws_node_template(inline, ctx))
    else:
        ctx.note(source, "spec.providerRef", NoteKind.INVALID, "neither providerRef nor provider is set")

    if kubelet := spec.pop("kubeletConfiguration", None):
        ref_name = template_spec.get("nodeClassRef", {}).get("name", name)
        ctx.kubelets.append((source, "spec.kubeletConfiguration", ref_name, dict(kubelet)))

    ttl_empty = spec.pop("ttlSecondsAfterEmpty", None)
    consolidation = spec.pop("consolidation", None) or {}
    disruption: dict[str, Any] = {}
    if consolidation.get("enabled"):
        disruption = {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "0s"}
        if ttl_empty is not None:
            ctx.note(
                source,
                "spec.ttlSecondsAfterEmpty",
                NoteKind.DROPPED,
                "cannot be combined with consolidation.enabled; consolidation covers empty nodes",
            )
    elif ttl_empty is not None:
        disruption = {"consolidationPolicy": "WhenEmpty", "consolidateAfter": _duration(ttl_empty)}
    else:
        disruption = {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never"}
        ctx.note(
            source,
            "spec.disruption",
            NoteKind.CHANGED,
            "no ttlSecondsAfterEmpty or consolidation: the Provisioner never removed nodes, "
            "so consolidateAfter is Never",
        )
    out_spec["disruption"] = disruption

    expiry = spec.pop("ttlSecondsUntilExpired", None)
    if expiry is not None:
        template_spec["expireAfter"] = _duration(expiry)
    else:
        template_spec["expireAfter"] = "Never"
        ctx.note(
            source,
            "spec.ttlSecondsUntilExpired",
            NoteKind.CHANGED,
            "unset meant no expiry; v1's default is 720h, so expireAfter is set to Never",
        )

    limits = spec.pop("limits", None) or {}
    if resources := limits.pop("resources", None):
        out_spec["limits"] = dict(resources)
    ctx.drop_rest(source, "spec.limits.", limits)
    if (weight := spec.pop("weight", None)) is not None:
        out_spec["weight"] = weight
    ctx.drop_rest(source, "spec.", spec)

    if not template_meta:
        del out_spec["template"]["metadata"]
    pool = {
        "apiVersion": labels.API_VERSION,
        "kind": "NodePool",
        "metadata": _metadata(d, ctx, source),
        "spec": out_spec,
    }
    return [pool, *extra]


def _nodepool(d: Mapping[str, Any], ctx: _Context, version: str) -> list[dict[str, Any]]:
    """v1beta1 or v1 NodePool → nodesmith NodePool."""
    source = f"NodePool/{(d.get('metadata') or {}).get('name', '')}"
    spec = copy.deepcopy(dict(d.get("spec") or {}))
    template = spec.get("template") or {}
    tmeta = template.get("metadata") or {}
    for key in ("labels", "annotations"):
        if key in tmeta:
            tmeta[key] = _rename_keys(tmeta[key])
    tspec = template.get("spec") or {}
    if "requirements" in tspec:
        tspec["requirements"] = _requirements(tspec["requirements"])
    for key in ("taints", "startupTaints"):
        if key in tspec:
            tspec[key] = _taints(tspec[key])
    if "nodeClassRef" in tspec:
        tspec["nodeClassRef"] = _node_class_ref(
            tspec["nodeClassRef"], ctx, source, "spec.template.spec.nodeClassRef"
        )
    disruption = spec.get("disruption") or {}
    if version == "v1beta1":
        if kubelet := tspec.pop("kubelet", None):
            ref_name = (tspec.get("nodeClassRef") or {}).get("name", "")
            ctx.kubelets.append((source, "spec.template.spec.kubelet", ref_name, dict(kubelet)))
        if "expireAfter" in disruption:
            tspec["expireAfter"] = disruption.pop("expireAfter")
        if disruption.get("consolidationPolicy") == "WhenUnderutilized":
            disruption["consolidationPolicy"] = "WhenEmptyOrUnderutilized"
            disruption.setdefault("consolidateAfter", "0s")
            ctx.note(
                source,
                "spec.disruption.consolidationPolicy",
                NoteKind.CHANGED,
                "WhenUnderutilized is WhenEmptyOrUnderutilized in v1",
            )
    elif "kubelet" in tspec:
        ctx.note(
            source,
            "spec.template.spec.kubelet",
            NoteKind.DROPPED,
            "v1 NodePools have no kubelet field; set it on the EC2NodeClass",
        )
        del tspec["kubelet"]
    for budget in disruption.get("budgets") or ():
        if "reasons" in budget:
            budget["reasons"] = list(budget["reasons"])
    return [
        {
            "apiVersion": labels.API_VERSION,
            "kind": "NodePool",
            "metadata": _metadata(d, ctx, source),
            "spec": spec,
        }
    ]


# ---------------------------------------------------------------- EC2NodeClass


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


def _alias(family: str | None, ctx: _Context, source: str) -> list[dict[str, Any]] | None:
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


def _node_class_common(spec: dict[str, Any], out: dict[str, Any], ctx: _Context, source: str) -> None:
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


def _aws_node_template(d: Mapping[str, Any], ctx: _Context) -> list[dict[str, Any]]:
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


def _ec2_node_class(d: Mapping[str, Any], ctx: _Context, version: str) -> list[dict[str, Any]]:
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
    d: Mapping[str, Any], spec: dict[str, Any], ctx: _Context, source: str
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
        "metadata": _metadata(d, ctx, source),
        "spec": spec,
    }


# ---------------------------------------------------------------- driver


def _convert_one(d: Mapping[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    api_version = str(d.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    kind = d.get("kind")
    name = (d.get("metadata") or {}).get("name", "")
    if group == KARPENTER_GROUP and kind == "Provisioner":
        return _provisioner(d, ctx)
    if group == KARPENTER_GROUP and kind == "NodePool" and version in ("v1beta1", "v1"):
        return _nodepool(d, ctx, version)
    if group == KARPENTER_AWS_GROUP and kind == "AWSNodeTemplate":
        return _aws_node_template(d, ctx)
    if group == KARPENTER_AWS_GROUP and kind == EC2NODECLASS and version in ("v1beta1", "v1"):
        return _ec2_node_class(d, ctx, version)
    if group in (KARPENTER_KWOK_GROUP,) and kind == "KWOKNodeClass":
        out = copy.deepcopy(dict(d))
        out["apiVersion"] = f"{KWOK_GROUP}/v1"
        out["metadata"] = _metadata(d, ctx, f"{kind}/{name}")
        return [out]
    if group in _GROUP_RENAMES:
        ctx.note(
            f"{kind}/{name}",
            "<object>",
            NoteKind.DROPPED,
            f"{api_version} {kind} is not converted (runtime objects are recreated by nodesmith)",
        )
        return []
    return [copy.deepcopy(dict(d))]


def _attach_kubelets(objects: list[dict[str, Any]], ctx: _Context) -> None:
    classes = {o["metadata"].get("name"): o for o in objects if o.get("kind") == EC2NODECLASS}
    for source, field, class_name, kubelet in ctx.kubelets:
        target = classes.get(class_name)
        if target is None:
            ctx.note(
                source,
                field,
                NoteKind.DROPPED,
                f"kubelet settings belong on EC2NodeClass/{class_name}, which was not in the input; "
                f"add spec.kubelet there: {kubelet}",
            )
            continue
        kept = _kubelet(kubelet, ctx, source, field)
        existing = target["spec"].get("kubelet")
        if existing is not None and existing != kept:
            ctx.note(
                source,
                field,
                NoteKind.DROPPED,
                f"EC2NodeClass/{class_name} already has different kubelet settings from another "
                "NodePool; v1 has one kubelet per class, split the class to keep both",
            )
            continue
        target["spec"]["kubelet"] = kept
        ctx.note(source, field, NoteKind.MOVED, f"moved to EC2NodeClass/{class_name} spec.kubelet")


def _kubelet(kubelet: Mapping[str, Any], ctx: _Context, source: str, field: str) -> dict[str, Any]:
    kept = {k: v for k, v in kubelet.items() if k in KUBELET_FIELDS}
    for key in kubelet:
        if key not in KUBELET_FIELDS:
            message = (
                "removed in Karpenter v1" if key == "containerRuntime" else "not implemented by nodesmith-aws"
            )
            ctx.note(source, f"{field}.{key}", NoteKind.DROPPED, message)
    return kept


def _validate(objects: list[dict[str, Any]], ctx: _Context) -> None:
    for obj in objects:
        if obj.get("apiVersion") == labels.API_VERSION and obj.get("kind") == "NodePool":
            try:
                nodepool.NodePool.from_dict(obj)
            except errors.ValidationError as err:
                ctx.note(
                    f"NodePool/{obj['metadata'].get('name', '')}", "<object>", NoteKind.INVALID, str(err)
                )


def convert_all(docs: Iterable[Mapping[str, Any] | None], options: Options = Options()) -> Conversion:
    """Convert every document (``None`` entries, i.e. empty YAML documents, are skipped)."""
    ctx = _Context(options=options)
    objects: list[dict[str, Any]] = []
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if _is_list(doc):
            items = doc.get("items") or ()
            if not isinstance(items, list):
                raise errors.ValidationError(f"document {index}", "a List whose items is not a list")
            for item in items:
                objects.extend(_convert_checked(item, f"document {index}", ctx))
            continue
        objects.extend(_convert_checked(doc, f"document {index}", ctx))
    try:
        _attach_kubelets(objects, ctx)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise errors.ValidationError("kubelet settings", f"malformed: {_why(err)}") from err
    _validate(objects, ctx)
    return Conversion(objects=objects, notes=ctx.notes)


def _is_list(doc: Mapping[str, Any]) -> bool:
    return str(doc.get("kind", "")).endswith("List")


def _convert_checked(doc: object, where: str, ctx: _Context) -> list[dict[str, Any]]:
    """`_convert_one`, for input of any shape: what is not a Kubernetes object, or is one of the kinds
    converted with fields of the wrong shape, raises ``ValidationError`` naming it (never a ``TypeError``)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("kind"), str) or not doc.get("apiVersion"):
        raise errors.ValidationError(where, "not a Kubernetes object (it needs apiVersion and kind)")
    metadata = doc.get("metadata")
    name = metadata.get("name", "") if isinstance(metadata, Mapping) else ""
    try:
        return _convert_one(doc, ctx)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise errors.ValidationError(
            f"{where} ({doc['kind']}/{name})", f"malformed {doc['kind']}: {_why(err)}"
        ) from err


def _why(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"
