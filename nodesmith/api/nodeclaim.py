"""NodeClaim (``nodesmith.io/v1``, cluster-scoped): one requested machine, Karpenter v1's shape.

Fed by Kubernetes dicts (the NodeClaim informer, the provisioner's own creations, provider ``create``
results); consumed by cluster state, the lifecycle/termination/disruption reconcilers and providers.
The spec schema declared here is shared with the NodePool template (`nodesmith.api.nodepool`) and
rendered into the CRD by `nodesmith.api.crds`.

Parsing (:meth:`NodeClaim.from_dict`) applies the CRD defaults (``expireAfter: 720h``), then validates
against the same schema the CRD carries (including the Python mirror of its CEL rules), then builds.
:meth:`NodeClaim.to_dict` writes every defaulted field and omits unset optional ones, so
``to_dict(from_dict(x)) == x`` for a manifest that spells out its defaults and writes quantities in
canonical form (`nodesmith.api.quantity.format_quantity`); ``from_dict(to_dict(m)) == m`` always.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final, TypeAlias, final

import attrs

from nodesmith import errors
from nodesmith.api import conditions, labels, meta, nodeselector, quantity, requirements, schema

__all__ = [
    "API_VERSION",
    "CONDITION_TYPES",
    "KIND",
    "NodeClaim",
    "NodeClaimSpec",
    "NodeClaimStatus",
]

API_VERSION: Final = f"{labels.GROUP}/v1"
KIND: Final = "NodeClaim"

CONDITION_TYPES: Final = conditions.ConditionTypes(
    dependents=(
        conditions.ConditionType.LAUNCHED,
        conditions.ConditionType.REGISTERED,
        conditions.ConditionType.INITIALIZED,
    )
)
"""``Ready`` = Launched ∧ Registered ∧ Initialized; the other NodeClaim conditions are informational."""


# -- schema (shared with the NodePool template) ----------------------------------------------------------


def claim_spec_properties(key_rules: tuple[schema.Rule, ...]) -> dict[str, schema.Schema]:
    """Properties common to ``NodeClaim.spec`` and ``NodePool.spec.template.spec``."""
    return {
        "taints": meta.taints_schema("Taints will be applied to the NodeClaim's node."),
        "startupTaints": meta.taints_schema(
            "Taints applied to nodes at startup that are expected to be removed automatically (e.g. by a "
            "DaemonSet); pods need not tolerate them to get a node provisioned."
        ),
        "requirements": schema.array(
            nodeselector.requirement_schema(key_rules),
            "Requirements are layered with the template labels and applied to every node.",
            max_items=100,
        ),
        "nodeClassRef": meta.NODE_CLASS_REF_SCHEMA,
        "expireAfter": schema.string(
            "How long after creation the node is deleted (or Never), regardless of disruption budgets.",
            pattern=meta.DURATION_OR_NEVER_PATTERN,
            max_length=64,
            default="720h",
        ),
        "terminationGracePeriod": schema.string(
            "The longest the node may drain once deletion starts; after it, PDBs and do-not-disrupt are "
            "bypassed and pods are deleted so their own grace period ends in time. Unset waits forever.",
            pattern=meta.DURATION_PATTERN,
            max_length=64,
        ),
    }


NODECLAIM_KEY_RULES: Final = nodeselector.restricted_key_rules(
    allowed=(labels.LABEL_CAPACITY_TYPE, labels.LABEL_NODEPOOL, labels.LABEL_RESERVATION_ID),
    forbidden=(labels.LABEL_HOSTNAME,),
)

SPEC_SCHEMA: Final = schema.obj(
    {
        **claim_spec_properties(NODECLAIM_KEY_RULES),
        "resources": schema.obj(
            {"requests": schema.resource_list("The resources the NodeClaim's pods (and daemons) request.")},
            "Resources models the resource requirements for the NodeClaim to launch.",
        ),
    },
    "NodeClaimSpec describes the desired state of the NodeClaim. It is immutable.",
    required=("nodeClassRef", "requirements"),
    rules=(schema.Rule("self == oldSelf", "spec is immutable"),),
)
STATUS_SCHEMA: Final = schema.obj(
    {
        "nodeName": schema.string("The name of the Node that registered for this NodeClaim."),
        "providerID": schema.string("The provider's identifier of the instance."),
        "imageID": schema.string("The image the instance runs."),
        "capacity": schema.resource_list("The instance's capacity."),
        "allocatable": schema.resource_list("The instance's allocatable resources."),
        "conditions": conditions.CONDITIONS_SCHEMA,
        "lastPodEventTime": schema.date_time(
            "The last time a pod was scheduled to or removed from the node (drives consolidateAfter)."
        ),
    },
    "NodeClaimStatus defines the observed state of NodeClaim.",
)
OBJECT_SCHEMA: Final = schema.obj(
    {
        "apiVersion": schema.string(enum=[API_VERSION]),
        "kind": schema.string(enum=[KIND]),
        "metadata": schema.obj({}),
        "spec": SPEC_SCHEMA,
        "status": STATUS_SCHEMA,
    },
    "NodeClaim is a request for one node, launched by a cloud provider from flexible requirements.",
    required=("spec",),
)


_Requirements: TypeAlias = requirements.Requirements
DEFAULT_EXPIRE_AFTER: Final = meta.Duration.of(dt.timedelta(hours=720))


# -- model --------------------------------------------------------------------------------------------


def _resources(values: Mapping[str, Any] | None, path: str) -> dict[str, int]:
    try:
        return quantity.parse_resources(values, field=path)
    except quantity.QuantityError as err:
        raise errors.ValidationError(path, str(err)) from None


def _duration(value: str | None, path: str) -> meta.Duration | None:
    return None if value is None else meta.Duration.parse(value, path)


@final
@attrs.frozen(slots=True)
class NodeClaimSpec:
    node_class_ref: meta.NodeClassRef
    requirements: tuple[nodeselector.NodeSelectorRequirement, ...] = ()
    taints: tuple[meta.Taint, ...] = ()
    startup_taints: tuple[meta.Taint, ...] = ()
    resources: Mapping[str, int] = attrs.field(factory=dict)
    """``resources.requests`` in milli-units."""
    expire_after: meta.Duration = DEFAULT_EXPIRE_AFTER
    termination_grace_period: meta.Duration | None = None

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> NodeClaimSpec:
        return cls(
            node_class_ref=meta.NodeClassRef(**{k: d["nodeClassRef"][k] for k in ("group", "kind", "name")}),
            requirements=nodeselector.requirements_from(d.get("requirements"), f"{path}.requirements"),
            taints=meta.taints_from(d.get("taints"), f"{path}.taints"),
            startup_taints=meta.taints_from(d.get("startupTaints"), f"{path}.startupTaints"),
            resources=_resources((d.get("resources") or {}).get("requests"), f"{path}.resources.requests"),
            expire_after=meta.Duration.parse(d.get("expireAfter", "720h"), f"{path}.expireAfter"),
            termination_grace_period=_duration(
                d.get("terminationGracePeriod"), f"{path}.terminationGracePeriod"
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.taints:
            out["taints"] = [t.to_dict() for t in self.taints]
        if self.startup_taints:
            out["startupTaints"] = [t.to_dict() for t in self.startup_taints]
        out["requirements"] = [r.to_dict() for r in self.requirements]
        if self.resources:
            out["resources"] = {"requests": quantity.format_resources(self.resources)}
        out["nodeClassRef"] = self.node_class_ref.to_dict()
        out["expireAfter"] = self.expire_after.text
        if self.termination_grace_period is not None:
            out["terminationGracePeriod"] = self.termination_grace_period.text
        return out

    def to_requirements(self) -> _Requirements:
        return nodeselector.to_requirements(self.requirements)


@final
@attrs.frozen(slots=True)
class NodeClaimStatus:
    node_name: str | None = None
    provider_id: str | None = None
    image_id: str | None = None
    capacity: Mapping[str, int] = attrs.field(factory=dict)
    allocatable: Mapping[str, int] = attrs.field(factory=dict)
    conditions: tuple[conditions.Condition, ...] = ()
    last_pod_event_time: dt.datetime | None = None

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> NodeClaimStatus:
        last = d.get("lastPodEventTime")
        return cls(
            node_name=d.get("nodeName"),
            provider_id=d.get("providerID"),
            image_id=d.get("imageID"),
            capacity=_resources(d.get("capacity"), f"{path}.capacity"),
            allocatable=_resources(d.get("allocatable"), f"{path}.allocatable"),
            conditions=conditions.conditions_from(d.get("conditions"), f"{path}.conditions"),
            last_pod_event_time=None if last is None else meta.parse_time(last, f"{path}.lastPodEventTime"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (
            ("nodeName", self.node_name),
            ("providerID", self.provider_id),
            ("imageID", self.image_id),
        ):
            if value is not None:
                out[key] = value
        if self.capacity:
            out["capacity"] = quantity.format_resources(self.capacity)
        if self.allocatable:
            out["allocatable"] = quantity.format_resources(self.allocatable)
        if self.conditions:
            out["conditions"] = [c.to_dict() for c in self.conditions]
        if self.last_pod_event_time is not None:
            out["lastPodEventTime"] = meta.format_time(self.last_pod_event_time)
        return out


@final
@attrs.frozen(slots=True)
class NodeClaim:
    metadata: meta.ObjectMeta
    spec: NodeClaimSpec
    status: NodeClaimStatus = NodeClaimStatus()
    _requirements: _Requirements = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_requirements", self.spec.to_requirements())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeClaim:
        """Default, validate and build; raises `errors.ValidationError` naming the bad field."""
        if not isinstance(d, Mapping):
            raise errors.ValidationError("<root>", f"a NodeClaim must be an object, got {type(d).__name__}")
        defaulted = schema.apply_defaults(OBJECT_SCHEMA, d)
        schema.validate(OBJECT_SCHEMA, defaulted)
        return cls(
            metadata=meta.ObjectMeta.from_dict(defaulted.get("metadata")),
            spec=NodeClaimSpec._build(defaulted["spec"], "spec"),
            status=NodeClaimStatus._build(defaulted.get("status") or {}, "status"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": self.metadata.to_dict(),
            "spec": self.spec.to_dict(),
        }
        status = self.status.to_dict()
        if status:
            out["status"] = status
        return out

    # -- helpers -----------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def requirements(self) -> _Requirements:
        """``spec.requirements`` as set algebra (computed once)."""
        return self._requirements

    @property
    def nodepool_name(self) -> str | None:
        return self.metadata.labels.get(labels.LABEL_NODEPOOL)

    @property
    def deleting(self) -> bool:
        return self.metadata.deletion_timestamp is not None

    def condition(self, condition_type: str) -> conditions.Condition | None:
        return conditions.get(self.status.conditions, condition_type)

    def is_true(self, condition_type: str) -> bool:
        return conditions.is_true(self.status.conditions, condition_type)

    def with_condition(
        self,
        condition_type: str,
        status: conditions.ConditionStatus | bool,
        *,
        now: dt.datetime,
        reason: str | None = None,
        message: str = "",
    ) -> NodeClaim:
        """A copy with one condition set (and ``Ready`` recomputed) at the object's generation."""
        updated = CONDITION_TYPES.set(
            self.status.conditions,
            condition_type,
            status,
            reason=reason,
            message=message,
            now=now,
            generation=self.metadata.generation,
        )
        return attrs.evolve(self, status=attrs.evolve(self.status, conditions=updated))

    def without_condition(self, condition_type: str) -> NodeClaim:
        """A copy without an informational condition (``Drifted``, ``Consolidatable``, ...)."""
        updated = CONDITION_TYPES.clear(self.status.conditions, condition_type)
        return attrs.evolve(self, status=attrs.evolve(self.status, conditions=updated))
