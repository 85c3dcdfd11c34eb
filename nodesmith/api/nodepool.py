"""NodePool (``nodesmith.io/v1``, cluster-scoped): what nodes may be launched, and how they may be disrupted.

Fields are Karpenter v1's, so manifests convert 1:1 (``karpenter.sh`` → ``nodesmith.io``). Fed by
Kubernetes dicts (the NodePool informer, ``nodesmith convert``); consumed by the provisioner (template,
requirements, weight, limits), disruption (budgets, consolidation policy, drift hash), the NodePool
reconcilers (hash, readiness, validation, counter) and `nodesmith.api.crds`, which renders the schema
declared here into the CRD.

Parsing (:meth:`NodePool.from_dict`) applies the CRD defaults (``expireAfter: 720h``,
``disruption: {consolidationPolicy: WhenEmptyOrUnderutilized, consolidateAfter: 0s, budgets: [{nodes:
10%}]}``), validates against the CRD schema and the Python mirror of its CEL rules, then builds; bad input
raises `nodesmith.errors.ValidationError` naming the field path. :meth:`NodePool.to_dict` writes every
defaulted field and omits unset optional ones (``weight``, ``terminationGracePeriod``, an all-default
status), so ``to_dict(from_dict(x)) == x`` for manifests that spell out defaults and write quantities
canonically, and ``from_dict(to_dict(p)) == p`` always. What the schema cannot check (which label
domains the loaded providers make well-known) is reported by :func:`runtime_errors`, which the NodePool
validation reconciler turns into the ``ValidationSucceeded`` condition, as Karpenter does.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final, TypeAlias, final

import attrs

from nodesmith import errors
from nodesmith.api import (
    budgets,
    conditions,
    labels,
    meta,
    nodeclaim,
    nodeselector,
    quantity,
    requirements,
    schema,
)

__all__ = [
    "API_VERSION",
    "CONDITION_TYPES",
    "HASH_VERSION",
    "KIND",
    "ConsolidationPolicy",
    "Disruption",
    "NodeClaimTemplate",
    "NodePool",
    "NodePoolSpec",
    "NodePoolStatus",
    "Packing",
    "runtime_errors",
]

API_VERSION: Final = f"{labels.GROUP}/v1"
KIND: Final = "NodePool"

HASH_VERSION: Final = "v1"
"""Stamped next to the hash (``nodesmith.io/nodepool-hash-version``). Bump it when a hashed field's default
changes, a field with already-set values joins the hash, or one leaves it: NodeClaims stamped with another
version are re-stamped rather than reported as drifted."""

CONDITION_TYPES: Final = conditions.ConditionTypes(
    dependents=(conditions.ConditionType.VALIDATION_SUCCEEDED, conditions.ConditionType.NODE_CLASS_READY)
)
"""``Ready`` = ValidationSucceeded ∧ NodeClassReady; ``NodeRegistrationHealthy`` is informational."""


class Packing(enum.StrEnum):
    """How the scheduling engine sizes this pool's new NodeClaims (annotation ``nodesmith.io/packing``).

    ``KARPENTER`` (the default): each NodeClaim keeps every instance type that fits its pods and launches
    the cheapest. ``COST_OPTIMISED``: each NodeClaim is aimed at the instance type cheapest for the pods
    still to place and filled first-fit (`nodesmith.scheduling.packing`), a nodesmith extension."""

    KARPENTER = "karpenter"
    COST_OPTIMISED = "cost-optimised"

    @classmethod
    def from_annotation(cls, value: str | None) -> Packing:
        """The annotation's value read leniently: both spellings opt in; anything else is the default."""
        if value is not None and value.strip().lower() in ("cost-optimised", "cost-optimized"):
            return cls.COST_OPTIMISED
        return cls.KARPENTER


class ConsolidationPolicy(enum.StrEnum):
    WHEN_EMPTY = "WhenEmpty"
    WHEN_EMPTY_OR_UNDERUTILIZED = "WhenEmptyOrUnderutilized"
    BALANCED = "Balanced"


# -- schema -------------------------------------------------------------------------------------------

NODEPOOL_KEY_RULES: Final = nodeselector.restricted_key_rules(
    allowed=(labels.LABEL_CAPACITY_TYPE, labels.LABEL_RESERVATION_ID), forbidden=(labels.LABEL_HOSTNAME,)
)
"""Requirement keys: nothing in the ``nodesmith.io`` domain but capacity-type and reservation-id (so not
the nodepool label), and not the hostname."""

_DOMAIN_PREFIX: Final = f"{labels.GROUP}/"
TEMPLATE_LABEL_RULES: Final = (
    schema.Rule(
        f"self.all(x, x == '{labels.LABEL_CAPACITY_TYPE}' || !x.startsWith('{_DOMAIN_PREFIX}'))",
        f'label domain "{labels.GROUP}" is restricted',
        lambda m: all(k == labels.LABEL_CAPACITY_TYPE or not k.startswith(_DOMAIN_PREFIX) for k in m),
    ),
    schema.Rule(
        f"self.all(x, x != '{labels.LABEL_HOSTNAME}')",
        f'label "{labels.LABEL_HOSTNAME}" is restricted',
        lambda m: labels.LABEL_HOSTNAME not in m,
    ),
)

TEMPLATE_SCHEMA: Final = schema.obj(
    {
        "metadata": schema.obj(
            {
                "labels": schema.map_of(
                    schema.string(pattern=meta.LABEL_VALUE_PATTERN, max_length=63),
                    "Labels applied to every node launched from this NodePool.",
                    max_properties=100,
                    rules=TEMPLATE_LABEL_RULES,
                ),
                "annotations": schema.map_of(
                    schema.string(), "Annotations applied to every node launched from this NodePool."
                ),
            }
        ),
        "spec": schema.obj(
            {
                **nodeclaim.claim_spec_properties(NODEPOOL_KEY_RULES),
                "nodeClassRef": meta.NODE_CLASS_REF_SCHEMA.with_rules(
                    schema.Rule("self.group == oldSelf.group", "nodeClassRef.group is immutable"),
                    schema.Rule("self.kind == oldSelf.kind", "nodeClassRef.kind is immutable"),
                ),
            },
            "The NodeClaim every node of this NodePool is launched from (without resource requests).",
            required=("nodeClassRef", "requirements"),
        ),
    },
    "The template of the NodeClaims this NodePool launches; each is narrowed further by its pods.",
    required=("spec",),
)
DISRUPTION_SCHEMA: Final = schema.obj(
    {
        "consolidationPolicy": schema.string(
            "Which nodes consolidation may disrupt: WhenEmpty, WhenEmptyOrUnderutilized or Balanced.",
            enum=list(ConsolidationPolicy),
            default=ConsolidationPolicy.WHEN_EMPTY_OR_UNDERUTILIZED.value,
        ),
        "consolidateAfter": schema.string(
            "How long a node must see no pod changes before consolidation may disrupt it (or Never).",
            pattern=meta.DURATION_OR_NEVER_PATTERN,
            max_length=64,
            default="0s",
        ),
        "budgets": budgets.BUDGETS_SCHEMA,
    },
    "Disruption contains the parameters of voluntary disruption (consolidation, drift).",
    default={"consolidateAfter": "0s"},
)
SPEC_SCHEMA: Final = schema.obj(
    {
        "template": TEMPLATE_SCHEMA,
        "disruption": DISRUPTION_SCHEMA,
        "limits": schema.resource_list(
            "Bounds on the total capacity of this NodePool's nodes (cpu, memory, nodes...)."
        ),
        "weight": schema.integer(
            "Priority among NodePools when scheduling: higher first; unset counts as 0.",
            minimum=1,
            maximum=100,
            format="int32",
        ),
        "replicas": schema.integer(
            "Makes the NodePool static (alpha, as Karpenter's): it keeps this many NodeClaims whatever the "
            "pods need, and neither provisioning nor consolidation touches them. Scaled with `kubectl scale`.",
            minimum=0,
        ),
    },
    "NodePoolSpec: the nodes this NodePool may launch for unschedulable pods, and how they may be disrupted.",
    required=("template",),
    rules=(
        schema.Rule(
            "has(self.replicas) == has(oldSelf.replicas)",
            "a NodePool cannot change between static (replicas set) and dynamic (replicas unset)",
        ),
        schema.Rule(
            "!has(self.replicas) || !has(self.limits) || self.limits.all(k, k == 'nodes')",
            "a static NodePool (replicas set) may only limit nodes",
            lambda spec: spec.get("replicas") is None or all(k == "nodes" for k in spec.get("limits") or {}),
        ),
    ),
)
STATUS_SCHEMA: Final = schema.obj(
    {
        "resources": schema.resource_list("The total capacity of this NodePool's nodes."),
        "nodes": schema.integer("The number of nodes of this NodePool.", default=0),
        "conditions": conditions.CONDITIONS_SCHEMA,
        "nodeClassObservedGeneration": schema.integer("The generation of the NodeClass last observed."),
        "disruptionBudgets": schema.array(
            schema.obj(
                {
                    "reason": schema.string("The disruption reason these figures are for.", max_length=64),
                    "allowed": schema.integer("How many more nodes may be disrupted for this reason now."),
                    "nodes": schema.integer("The NodePool's nodes counted by its budgets."),
                    "disrupting": schema.integer("The NodePool's nodes being disrupted now."),
                    "activeBudgets": schema.array(
                        schema.string(max_length=256),
                        "Budgets in force now (nodes[@schedule]).",
                        max_items=50,
                    ),
                    "windowBudgets": schema.array(
                        schema.obj(
                            {
                                "budget": schema.string(max_length=64),
                                "started": schema.integer("Disruptions started within the window."),
                            }
                        ),
                        "Time-window budgets and their use.",
                        max_items=50,
                    ),
                }
            ),
            "Evaluated disruption budgets per reason, as the disruption controller sees them (nodesmith).",
            max_items=8,
        ),
    },
    "NodePoolStatus defines the observed state of NodePool.",
)
OBJECT_SCHEMA: Final = schema.obj(
    {
        "apiVersion": schema.string(enum=[API_VERSION]),
        "kind": schema.string(enum=[KIND]),
        "metadata": schema.obj({}),
        "spec": SPEC_SCHEMA,
        "status": STATUS_SCHEMA,
    },
    "NodePool launches nodes for unschedulable pods and retires them when they are no longer needed.",
    required=("spec",),
)


_Requirements: TypeAlias = requirements.Requirements
_ZERO: Final = meta.Duration.of(dt.timedelta(0))


# -- model --------------------------------------------------------------------------------------------


def _resources(values: Mapping[str, Any] | None, path: str) -> dict[str, int]:
    try:
        return quantity.parse_resources(values, field=path)
    except quantity.QuantityError as err:
        raise errors.ValidationError(path, str(err)) from None


@final
@attrs.frozen(slots=True)
class NodeClaimTemplate:
    spec: nodeclaim.NodeClaimSpec
    """Shares `nodeclaim.NodeClaimSpec`; a template never has ``resources``."""
    labels: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> NodeClaimTemplate:
        metadata = d.get("metadata") or {}
        spec = {key: value for key, value in d["spec"].items() if key != "resources"}
        return cls(
            spec=nodeclaim.NodeClaimSpec._build(spec, f"{path}.spec"),
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        if metadata:
            out["metadata"] = metadata
        out["spec"] = self.spec.to_dict()
        return out


@final
@attrs.frozen(slots=True)
class Disruption:
    consolidation_policy: ConsolidationPolicy = ConsolidationPolicy.WHEN_EMPTY_OR_UNDERUTILIZED
    consolidate_after: meta.Duration = _ZERO
    """``value is None`` means Never."""
    budgets: tuple[budgets.Budget, ...] = budgets.DEFAULT_BUDGETS

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> Disruption:
        return cls(
            consolidation_policy=ConsolidationPolicy(d["consolidationPolicy"]),
            consolidate_after=meta.Duration.parse(d["consolidateAfter"], f"{path}.consolidateAfter"),
            budgets=tuple(
                budgets.Budget._build(b, f"{path}.budgets[{i}]") for i, b in enumerate(d["budgets"])
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "consolidationPolicy": self.consolidation_policy.value,
            "consolidateAfter": self.consolidate_after.text,
            "budgets": [b.to_dict() for b in self.budgets],
        }


@final
@attrs.frozen(slots=True)
class NodePoolSpec:
    template: NodeClaimTemplate
    disruption: Disruption = Disruption()
    limits: Mapping[str, int] = attrs.field(factory=dict)
    """Milli-units, keyed by resource name (``nodes`` included)."""
    weight: int | None = None
    replicas: int | None = None
    """Set: a static NodePool that keeps this many NodeClaims (``nodesmith.reconcilers.staticcapacity``)."""

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> NodePoolSpec:
        return cls(
            template=NodeClaimTemplate._build(d["template"], f"{path}.template"),
            disruption=Disruption._build(d["disruption"], f"{path}.disruption"),
            limits=_resources(d.get("limits"), f"{path}.limits"),
            weight=d.get("weight"),
            replicas=d.get("replicas"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"template": self.template.to_dict(), "disruption": self.disruption.to_dict()}
        if self.limits:
            out["limits"] = quantity.format_resources(self.limits)
        if self.weight is not None:
            out["weight"] = self.weight
        if self.replicas is not None:
            out["replicas"] = self.replicas
        return out


@final
@attrs.frozen(slots=True)
class NodePoolStatus:
    resources: Mapping[str, int] = attrs.field(factory=dict)
    nodes: int = 0
    conditions: tuple[conditions.Condition, ...] = ()
    node_class_observed_generation: int | None = None
    disruption_budgets: tuple[Mapping[str, Any], ...] = ()
    """Evaluated budgets per reason (``nodesmith.disruption.budgets.evaluated_budgets``), kept as written."""

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> NodePoolStatus:
        return cls(
            resources=_resources(d.get("resources"), f"{path}.resources"),
            nodes=d.get("nodes", 0),
            conditions=conditions.conditions_from(d.get("conditions"), f"{path}.conditions"),
            node_class_observed_generation=d.get("nodeClassObservedGeneration"),
            disruption_budgets=tuple(d.get("disruptionBudgets") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        """Empty for an all-default status (so a manifest without status round-trips)."""
        if self == NodePoolStatus():
            return {}
        out: dict[str, Any] = {}
        if self.resources:
            out["resources"] = quantity.format_resources(self.resources)
        out["nodes"] = self.nodes
        if self.conditions:
            out["conditions"] = [c.to_dict() for c in self.conditions]
        if self.node_class_observed_generation is not None:
            out["nodeClassObservedGeneration"] = self.node_class_observed_generation
        if self.disruption_budgets:
            out["disruptionBudgets"] = [dict(b) for b in self.disruption_budgets]
        return out


@final
@attrs.frozen(slots=True)
class NodePool:
    metadata: meta.ObjectMeta
    spec: NodePoolSpec
    status: NodePoolStatus = NodePoolStatus()
    _requirements: _Requirements = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        reqs = self.spec.template.spec.to_requirements().intersect(
            requirements.Requirements.from_labels(self.labels)
        )
        object.__setattr__(self, "_requirements", reqs)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodePool:
        """Default, validate and build; raises `errors.ValidationError` naming the bad field."""
        if not isinstance(d, Mapping):
            raise errors.ValidationError("<root>", f"a NodePool must be an object, got {type(d).__name__}")
        defaulted = schema.apply_defaults(OBJECT_SCHEMA, d)
        schema.validate(OBJECT_SCHEMA, defaulted)
        return cls(
            metadata=meta.ObjectMeta.from_dict(defaulted.get("metadata")),
            spec=NodePoolSpec._build(defaulted["spec"], "spec"),
            status=NodePoolStatus._build(defaulted.get("status") or {}, "status"),
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
    def is_static(self) -> bool:
        """``spec.replicas`` is set: a fixed number of nodes, not provisioned for pods nor consolidated."""
        return self.spec.replicas is not None

    @property
    def packing(self) -> Packing:
        """The ``nodesmith.io/packing`` annotation: an annotation, not a spec field, so manifests stay
        Karpenter v1's and the drift hash is untouched."""
        return Packing.from_annotation(self.metadata.annotations.get(labels.ANNOTATION_PACKING))

    @property
    def weight(self) -> int:
        """``spec.weight``, 0 when unset (the order NodePools are tried in)."""
        return self.spec.weight or 0

    @property
    def labels(self) -> dict[str, str]:
        """The labels every node of this pool carries: template labels, ``nodesmith.io/nodepool`` and the
        NodeClass label (``<group>/<lowercase kind>: <name>``)."""
        ref = self.spec.template.spec.node_class_ref
        return {**self.spec.template.labels, labels.LABEL_NODEPOOL: self.name, ref.label: ref.name}

    @property
    def requirements(self) -> _Requirements:
        """Template requirements ∩ ``In`` requirements for :attr:`labels` (spec §2.4 step 5). The
        scheduler adds its simulation-only keys (registered/initialized) itself."""
        return self._requirements

    def hash(self) -> str:
        """Stable hash of the template fields that make a node drift when they change (Karpenter's
        ``nodepool-hash``): template labels and annotations, taints and startupTaints (order-insensitive),
        nodeClassRef, expireAfter and terminationGracePeriod (by value, so ``90m`` = ``1h30m``).
        Requirements are left out: drift checks them separately against node labels."""
        spec = self.spec.template.spec

        def seconds(value: meta.Duration | None) -> float | str | None:
            if value is None:
                return None
            return "Never" if value.value is None else value.value.total_seconds()

        document = {
            "labels": dict(sorted(self.spec.template.labels.items())),
            "annotations": dict(sorted(self.spec.template.annotations.items())),
            "taints": sorted(json.dumps(t.to_dict(), sort_keys=True) for t in spec.taints),
            "startupTaints": sorted(json.dumps(t.to_dict(), sort_keys=True) for t in spec.startup_taints),
            "nodeClassRef": spec.node_class_ref.to_dict(),
            "expireAfter": seconds(spec.expire_after),
            "terminationGracePeriod": seconds(spec.termination_grace_period),
        }
        digest = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).digest()
        return str(int.from_bytes(digest[:8], "big"))

    def allowed_disruptions(
        self, reason: budgets.DisruptionReason | str, total_nodes: int, now: dt.datetime
    ) -> int:
        """`budgets.allowed_disruptions` over this pool's budgets."""
        return budgets.allowed_disruptions(self.spec.disruption.budgets, reason, total_nodes, now)

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
    ) -> NodePool:
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


def runtime_errors(pool: NodePool, well_known: frozenset[str]) -> list[str]:
    """What the CRD schema cannot check, one message each (empty when valid): template labels and
    requirement keys in restricted domains (which depends on the providers' ``well_known`` labels), the
    nodepool label, and duplicate taints. Karpenter's ``RuntimeValidate``."""
    problems: list[str] = []
    template = pool.spec.template
    for key in sorted(template.labels):
        if key == labels.LABEL_NODEPOOL or labels.is_restricted_label(key, well_known):
            problems.append(f"spec.template.metadata.labels.{key}: label {key!r} is restricted")
    for index, entry in enumerate(template.spec.requirements):
        key = labels.normalize_label(entry.key)
        if key == labels.LABEL_NODEPOOL or labels.is_restricted_label(key, well_known):
            problems.append(f"spec.template.spec.requirements[{index}].key: label {key!r} is restricted")
    seen: set[tuple[str, str]] = set()
    for field, taints in (("taints", template.spec.taints), ("startupTaints", template.spec.startup_taints)):
        for index, taint in enumerate(taints):
            identity = (taint.key, taint.effect.value)
            if identity in seen:
                problems.append(
                    f"spec.template.spec.{field}[{index}]: duplicate taint {taint.key}:{taint.effect.value}"
                )
            seen.add(identity)
    return problems
