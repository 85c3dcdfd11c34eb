"""Convert Karpenter manifests into nodesmith manifests: ``nodesmith convert``.

Reads Kubernetes dicts (fed by `nodesmith.cli`'s ``convert`` command, which parses YAML files or stdin)
and returns the equivalent nodesmith objects plus a report of every field that was changed in meaning,
moved, or has no equivalent. Nothing is dropped silently: each drop is a `Note` of kind ``dropped``.

Handled here, following Karpenter's own migration paths (v1alpha5 → v1beta1 → v1) in one step:

* ``karpenter.sh/v1alpha5`` Provisioner → ``nodesmith.io/v1`` NodePool;
* ``karpenter.sh/v1beta1`` NodePool → v1 semantics; ``karpenter.sh/v1`` NodePool → key renames only.

Node classes belong to providers, so the core knows none: each provider plugin hands a
`KarpenterConverter` to ``convert_all`` (hook ``nodesmith_karpenter_converter``) that converts its
Karpenter group's objects (nodesmith-aws: AWSNodeTemplate and EC2NodeClass; nodesmith-kwok:
KWOKNodeClass), a Provisioner's inline ``spec.provider``, and says which kubelet settings its node class
keeps. Without the plugin, its objects are reported, not converted.

Label, annotation, taint and requirement keys are renamed ``karpenter.sh/*`` → ``nodesmith.io/*`` and each
converter's Karpenter group to its nodesmith group. Kubelet settings live on the node class in v1, so a
Provisioner's ``kubeletConfiguration`` or a v1beta1 NodePool's ``kubelet`` is moved onto the class it
references when that class is converted in the same run (`convert_all`), and reported otherwise. Other
Kubernetes objects pass through unchanged. Pure: no I/O, values in, values out.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol, final

import attrs

from nodesmith import errors
from nodesmith.api import labels, nodepool

__all__ = [
    "Context",
    "Conversion",
    "KarpenterConverter",
    "Note",
    "NoteKind",
    "Options",
    "convert_all",
    "rename_key",
]

KARPENTER_GROUP: Final = "karpenter.sh"
KARPENTER_DEFAULT_CLASS_GROUP: Final = "karpenter.k8s.aws"
"""The group Karpenter assumes for a v1alpha5/v1beta1 node class reference that names none; whichever
plugin converts that group receives it."""

# Keys whose name changed between Karpenter versions, mapped straight to the nodesmith v1 name.
_RENAMED_KEYS: Final = {
    "karpenter.sh/provisioner-name": labels.LABEL_NODEPOOL,
    "karpenter.sh/do-not-evict": labels.ANNOTATION_DO_NOT_DISRUPT,
    "karpenter.sh/do-not-consolidate": labels.ANNOTATION_DO_NOT_DISRUPT,
}
_GROUP_RENAMES: Final = {
    KARPENTER_GROUP: labels.GROUP,
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


class KarpenterConverter(Protocol):
    """What a provider plugin converts for `convert_all`: the objects of one Karpenter group (its node
    classes), returned by its ``nodesmith_karpenter_converter`` hook."""

    karpenter_group: str
    """The Karpenter API group this converter owns, e.g. ``karpenter.k8s.aws``."""
    group: str
    """The nodesmith group its objects and keys move to, e.g. ``aws.nodesmith.io``."""

    def node_class_kind(self, karpenter_kind: str | None) -> str:
        """The nodesmith kind a node class reference of ``karpenter_kind`` (``None``: unset) names."""
        ...

    def convert(self, d: Mapping[str, Any], version: str, ctx: Context) -> list[dict[str, Any]] | None:
        """``d`` (of this group, API ``version``) converted, or ``None`` when its kind is not converted."""
        ...

    def inline_provider(self, name: str, provider: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
        """The node class called ``name`` built from a v1alpha5 Provisioner's inline ``spec.provider``."""
        ...

    def kubelet(self, kubelet: Mapping[str, Any], ctx: Context, source: str, field: str) -> dict[str, Any]:
        """The kubelet settings the node class keeps, reporting the rest on ``ctx``."""
        ...


def rename_key(key: str, converters: Iterable[KarpenterConverter] = ()) -> str:
    """A Karpenter label / annotation / taint / requirement key → its nodesmith name; others unchanged.
    Keys of a provider's Karpenter group are renamed when that provider's converter is given."""
    if key in _RENAMED_KEYS:
        return _RENAMED_KEYS[key]
    renames = [(c.karpenter_group, c.group) for c in converters] + list(_GROUP_RENAMES.items())
    for old, new in renames:
        if key.startswith(f"{old}/"):
            return f"{new}/{key[len(old) + 1 :]}"
    return key


def _duration(seconds: int | float) -> str:
    whole = int(seconds)
    if whole and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


@attrs.define
class Context:
    """Mutable state of one conversion run: the converters, the report and the kubelet settings waiting
    for their node class. Converters write their notes and object metadata through it."""

    options: Options
    converters: tuple[KarpenterConverter, ...] = ()
    notes: list[Note] = attrs.Factory(list)
    # (source, field, node class reference {group, kind, name}, kubelet settings) from NodePools.
    kubelets: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = attrs.Factory(list)

    def note(self, source: str, field: str, kind: NoteKind, message: str) -> None:
        self.notes.append(Note(source, field, kind, message))

    def drop_rest(self, source: str, prefix: str, rest: Mapping[str, Any]) -> None:
        for key in rest:
            self.note(source, f"{prefix}{key}", NoteKind.DROPPED, "no nodesmith equivalent")

    def rename_key(self, key: str) -> str:
        return rename_key(key, self.converters)

    def rename_keys(self, values: Mapping[str, Any] | None) -> dict[str, Any]:
        return {self.rename_key(k): v for k, v in (values or {}).items()}

    def converter(self, karpenter_group: str) -> KarpenterConverter | None:
        return next((c for c in self.converters if c.karpenter_group == karpenter_group), None)

    def metadata(self, d: Mapping[str, Any], source: str) -> dict[str, Any]:
        """``d``'s metadata without what the API server wrote, keys renamed; ``status`` is reported."""
        meta = dict(d.get("metadata") or {})
        for key in _DROPPED_METADATA:
            meta.pop(key, None)
        if "labels" in meta:
            meta["labels"] = self.rename_keys(meta["labels"])
        if "annotations" in meta:
            annotations = self.rename_keys(meta["annotations"])
            annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
            meta["annotations"] = annotations
            if not annotations:
                del meta["annotations"]
        if "status" in d:
            self.note(
                source, "status", NoteKind.DROPPED, "status is written by the controller, not converted"
            )
        return meta


def _requirements(reqs: Iterable[Mapping[str, Any]], ctx: Context) -> list[dict[str, Any]]:
    out = []
    for req in reqs:
        converted = dict(req)
        converted["key"] = ctx.rename_key(str(req["key"]))
        out.append(converted)
    return out


def _taints(taints: Iterable[Mapping[str, Any]], ctx: Context) -> list[dict[str, Any]]:
    return [{**t, "key": ctx.rename_key(str(t["key"]))} for t in taints]


def _node_class_ref(ref: Mapping[str, Any], ctx: Context, source: str, path: str) -> dict[str, Any]:
    """v1alpha5 ``providerRef`` / v1beta1 ``nodeClassRef`` ``{apiVersion?, kind?, name}`` and v1's
    ``{group, kind, name}`` → nodesmith's ``{group, kind, name}``; no group means Karpenter's default
    (`KARPENTER_DEFAULT_CLASS_GROUP`), and the converter of the group names the kind."""
    ref = dict(ref)
    name = ref.pop("name", None)
    group = ref.pop("group", None)
    api_version = ref.pop("apiVersion", None)
    if group is None and api_version:
        group = str(api_version).split("/")[0]
    group = group or KARPENTER_DEFAULT_CLASS_GROUP
    kind = ref.pop("kind", None)
    ctx.drop_rest(source, f"{path}.", ref)
    converter = ctx.converter(group)
    if converter is not None:
        return {"group": converter.group, "kind": converter.node_class_kind(kind), "name": name}
    if group not in _GROUP_RENAMES.values():
        ctx.note(source, path, NoteKind.INVALID, f"no installed plugin converts {group} node classes")
    return {"group": _GROUP_RENAMES.get(group, group), "kind": kind, "name": name}


# ---------------------------------------------------------------- NodePool


def _provisioner(d: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """v1alpha5 Provisioner → NodePool (+ EC2NodeClass from an inline ``provider``)."""
    source = f"Provisioner/{(d.get('metadata') or {}).get('name', '')}"
    name = (d.get("metadata") or {}).get("name", "")
    spec = dict(d.get("spec") or {})
    template_meta: dict[str, Any] = {}
    template_spec: dict[str, Any] = {}
    out_spec: dict[str, Any] = {"template": {"metadata": template_meta, "spec": template_spec}}
    extra: list[dict[str, Any]] = []

    if labels_ := spec.pop("labels", None):
        template_meta["labels"] = ctx.rename_keys(labels_)
    if annotations := spec.pop("annotations", None):
        template_meta["annotations"] = ctx.rename_keys(annotations)
    template_spec["requirements"] = _requirements(spec.pop("requirements", None) or (), ctx)
    if taints := spec.pop("taints", None):
        template_spec["taints"] = _taints(taints, ctx)
    if startup := spec.pop("startupTaints", None):
        template_spec["startupTaints"] = _taints(startup, ctx)

    provider_ref = spec.pop("providerRef", None)
    provider = spec.pop("provider", None)
    if provider_ref is not None:
        template_spec["nodeClassRef"] = _node_class_ref(provider_ref, ctx, source, "spec.providerRef")
    elif provider is not None:
        template_spec["nodeClassRef"] = _inline_provider(name, provider, ctx, source, extra)
    else:
        ctx.note(source, "spec.providerRef", NoteKind.INVALID, "neither providerRef nor provider is set")

    if kubelet := spec.pop("kubeletConfiguration", None):
        ref = template_spec.get("nodeClassRef") or {"name": name}
        ctx.kubelets.append((source, "spec.kubeletConfiguration", ref, dict(kubelet)))

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
        "metadata": ctx.metadata(d, source),
        "spec": out_spec,
    }
    return [pool, *extra]


def _inline_provider(
    name: str, provider: Mapping[str, Any], ctx: Context, source: str, extra: list[dict[str, Any]]
) -> dict[str, Any]:
    """A Provisioner's inline ``spec.provider`` becomes a node class of the Provisioner's name, built by
    the converter of Karpenter's default node class group; the reference to it is returned."""
    converter = ctx.converter(KARPENTER_DEFAULT_CLASS_GROUP)
    if converter is None:
        ctx.note(
            source,
            "spec.provider",
            NoteKind.DROPPED,
            f"no installed plugin converts {KARPENTER_DEFAULT_CLASS_GROUP} node classes",
        )
        return {"group": KARPENTER_DEFAULT_CLASS_GROUP, "kind": None, "name": name}
    kind = converter.node_class_kind(None)
    ctx.note(source, "spec.provider", NoteKind.MOVED, f"inline provider became {kind}/{name}")
    extra.extend(converter.inline_provider(name, provider, ctx))
    return {"group": converter.group, "kind": kind, "name": name}


def _nodepool(d: Mapping[str, Any], ctx: Context, version: str) -> list[dict[str, Any]]:
    """v1beta1 or v1 NodePool → nodesmith NodePool."""
    source = f"NodePool/{(d.get('metadata') or {}).get('name', '')}"
    spec = copy.deepcopy(dict(d.get("spec") or {}))
    template = spec.get("template") or {}
    tmeta = template.get("metadata") or {}
    for key in ("labels", "annotations"):
        if key in tmeta:
            tmeta[key] = ctx.rename_keys(tmeta[key])
    tspec = template.get("spec") or {}
    if "requirements" in tspec:
        tspec["requirements"] = _requirements(tspec["requirements"], ctx)
    for key in ("taints", "startupTaints"):
        if key in tspec:
            tspec[key] = _taints(tspec[key], ctx)
    if "nodeClassRef" in tspec:
        tspec["nodeClassRef"] = _node_class_ref(
            tspec["nodeClassRef"], ctx, source, "spec.template.spec.nodeClassRef"
        )
    disruption = spec.get("disruption") or {}
    if version == "v1beta1":
        if kubelet := tspec.pop("kubelet", None):
            ref = tspec.get("nodeClassRef") or {"name": ""}
            ctx.kubelets.append((source, "spec.template.spec.kubelet", ref, dict(kubelet)))
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
            "metadata": ctx.metadata(d, source),
            "spec": spec,
        }
    ]


# ---------------------------------------------------------------- driver


def _convert_one(d: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
    api_version = str(d.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    kind = d.get("kind")
    name = (d.get("metadata") or {}).get("name", "")
    if group == KARPENTER_GROUP and kind == "Provisioner":
        return _provisioner(d, ctx)
    if group == KARPENTER_GROUP and kind == "NodePool" and version in ("v1beta1", "v1"):
        return _nodepool(d, ctx, version)
    converter = ctx.converter(group)
    if converter is not None and (converted := converter.convert(d, version, ctx)) is not None:
        return converted
    if group in _GROUP_RENAMES or converter is not None:
        ctx.note(
            f"{kind}/{name}",
            "<object>",
            NoteKind.DROPPED,
            f"{api_version} {kind} is not converted (runtime objects are recreated by nodesmith)",
        )
        return []
    if group.startswith("karpenter."):
        ctx.note(
            f"{kind}/{name}", "<object>", NoteKind.DROPPED, f"no installed plugin converts {group} objects"
        )
        return []
    return [copy.deepcopy(dict(d))]


def _attach_kubelets(objects: list[dict[str, Any]], ctx: Context) -> None:
    for source, field, ref, kubelet in ctx.kubelets:
        class_name = f"{ref.get('kind') or 'node class'}/{ref.get('name')}"
        converter = next((c for c in ctx.converters if c.group == ref.get("group")), None)
        target = next((o for o in objects if _is_referenced(o, ref)), None)
        if converter is None or target is None:
            ctx.note(
                source,
                field,
                NoteKind.DROPPED,
                f"kubelet settings belong on {class_name}, which was not in the input; "
                f"add spec.kubelet there: {kubelet}",
            )
            continue
        kept = converter.kubelet(kubelet, ctx, source, field)
        existing = target["spec"].get("kubelet")
        if existing is not None and existing != kept:
            ctx.note(
                source,
                field,
                NoteKind.DROPPED,
                f"{class_name} already has different kubelet settings from another "
                "NodePool; v1 has one kubelet per class, split the class to keep both",
            )
            continue
        target["spec"]["kubelet"] = kept
        ctx.note(source, field, NoteKind.MOVED, f"moved to {class_name} spec.kubelet")


def _is_referenced(obj: Mapping[str, Any], ref: Mapping[str, Any]) -> bool:
    return (
        str(obj.get("apiVersion", "")).split("/")[0] == ref.get("group")
        and obj.get("kind") == ref.get("kind")
        and obj["metadata"].get("name") == ref.get("name")
    )


def _validate(objects: list[dict[str, Any]], ctx: Context) -> None:
    for obj in objects:
        if obj.get("apiVersion") == labels.API_VERSION and obj.get("kind") == "NodePool":
            try:
                nodepool.NodePool.from_dict(obj)
            except errors.ValidationError as err:
                ctx.note(
                    f"NodePool/{obj['metadata'].get('name', '')}", "<object>", NoteKind.INVALID, str(err)
                )


def convert_all(
    docs: Iterable[Mapping[str, Any] | None],
    options: Options = Options(),
    converters: Iterable[KarpenterConverter] = (),
) -> Conversion:
    """Convert every document (``None`` entries, i.e. empty YAML documents, are skipped); provider
    objects through ``converters`` (the plugins' ``Plugins.karpenter_converters()``)."""
    ctx = Context(options=options, converters=tuple(converters))
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


def _convert_checked(doc: object, where: str, ctx: Context) -> list[dict[str, Any]]:
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
