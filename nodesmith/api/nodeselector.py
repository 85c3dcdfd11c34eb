"""``requirements[]`` entries as written (``NodeSelectorRequirementWithMinValues``), their schema and CEL rules.

Fed by NodePool templates and NodeClaim specs (`nodesmith.api.nodepool`, `nodesmith.api.nodeclaim`; later
provider objects such as node overlays); consumed by those models, which keep the raw entries for round
trips and turn them into `nodesmith.api.requirements.Requirements` for the set algebra, and by
`nodesmith.api.crds` through the schema. The key restrictions differ per resource, so the schema is built
by :func:`requirement_schema` with the resource's :func:`restricted_key_rules`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith import errors
from nodesmith.api import labels, meta, requirements, schema

__all__ = [
    "REQUIREMENT_RULES",
    "NodeSelectorRequirement",
    "requirement_schema",
    "requirements_from",
    "restricted_key_rules",
    "to_requirements",
]


_BOUND_OPERATORS: Final = ("Gt", "Lt", "Gte", "Lte")
_INTEGER_RE: Final = r"^[0-9]+$"


def _values(x: Mapping[str, Any]) -> Sequence[str]:
    return x.get("values") or ()


REQUIREMENT_RULES: Final = (
    schema.Rule(
        "self.operator != 'In' || (has(self.values) && size(self.values) > 0)",
        "requirements with operator 'In' must have a value defined",
        lambda x: x["operator"] != "In" or len(_values(x)) > 0,
    ),
    schema.Rule(
        "!(self.operator in ['Gt', 'Lt', 'Gte', 'Lte']) || "
        f"(has(self.values) && size(self.values) == 1 && self.values[0].matches('{_INTEGER_RE}'))",
        "requirements with operator 'Gt', 'Lt', 'Gte' or 'Lte' must have a single non-negative integer value",
        lambda x: (
            x["operator"] not in _BOUND_OPERATORS
            or (len(_values(x)) == 1 and re.fullmatch(_INTEGER_RE, str(_values(x)[0])) is not None)
        ),
    ),
    schema.Rule(
        "!(self.operator == 'In' && has(self.minValues)) || (has(self.values) && size(self.values) >= self.minValues)",
        "requirements with 'minValues' must have at least that many values specified in the 'values' field",
        lambda x: not (x["operator"] == "In" and "minValues" in x) or len(_values(x)) >= x["minValues"],
    ),
)


def requirement_schema(key_rules: Sequence[schema.Rule] = ()) -> schema.Schema:
    """A ``NodeSelectorRequirementWithMinValues``; ``key_rules`` restrict the keys (NodePool and
    NodeClaim restrict different label domains)."""
    return schema.obj(
        {
            "key": schema.string(
                "The label key that the selector applies to.",
                pattern=meta.LABEL_KEY_PATTERN,
                max_length=316,
                rules=key_rules,
            ),
            "operator": schema.string(
                "Represents a key's relationship to a set of values.", enum=list(requirements.Operator)
            ),
            "values": schema.array(
                schema.string(pattern=meta.LABEL_VALUE_PATTERN, max_length=63),
                "Values for In/NotIn (non-empty for In), one integer for Gt/Lt/Gte/Lte, none otherwise.",
                max_items=1000,
            ),
            "minValues": schema.integer(
                "The minimum number of unique values required to define the flexibility of the requirement.",
                minimum=1,
                maximum=50,
                format=None,
            ),
        },
        "A node selector requirement with minValues: the set of instance label values a node may have.",
        required=("key", "operator"),
        rules=REQUIREMENT_RULES,
    )


def restricted_key_rules(allowed: Sequence[str], forbidden: Sequence[str]) -> tuple[schema.Rule, ...]:
    """CEL rules keeping keys out of the ``nodesmith.io`` domain (except ``allowed``) and off ``forbidden``.

    Subdomains (``aws.nodesmith.io``) are left to runtime validation: which of their labels are
    well-known depends on the provider plugins loaded (`labels.is_restricted_label`)."""
    prefix = f"{labels.GROUP}/"
    listed = ", ".join(f"'{key}'" for key in allowed)
    out = [
        schema.Rule(
            f"self in [{listed}] || !self.startsWith('{prefix}')",
            f'label domain "{labels.GROUP}" is restricted',
            lambda key: key in allowed or not key.startswith(prefix),
        )
    ]
    out.extend(
        schema.Rule(f"self != '{key}'", f'label "{key}" is restricted', _is_not(key)) for key in forbidden
    )
    return tuple(out)


def _is_not(forbidden: str) -> Callable[[str], bool]:
    return lambda key: key != forbidden


@final
@attrs.frozen(slots=True)
class NodeSelectorRequirement:
    """One ``requirements[]`` entry exactly as written (order and spelling kept for round trips);
    `nodesmith.api.requirements.Requirement` is its set-algebra form."""

    key: str
    operator: requirements.Operator
    values: tuple[str, ...] = ()
    min_values: int | None = None

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> NodeSelectorRequirement:
        out = cls(
            key=d["key"],
            operator=requirements.Operator(d["operator"]),
            values=tuple(d.get("values") or ()),
            min_values=d.get("minValues"),
        )
        try:
            out.to_requirement()
        except requirements.RequirementError as err:
            raise errors.ValidationError(path, str(err)) from None
        return out

    def to_requirement(self) -> requirements.Requirement:
        return requirements.Requirement.new(self.key, self.operator, self.values, min_values=self.min_values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "operator": self.operator.value}
        if self.values:
            out["values"] = list(self.values)
        if self.min_values is not None:
            out["minValues"] = self.min_values
        return out


def requirements_from(
    values: Sequence[Mapping[str, Any]] | None, path: str
) -> tuple[NodeSelectorRequirement, ...]:
    return tuple(NodeSelectorRequirement._build(r, f"{path}[{i}]") for i, r in enumerate(values or ()))


def to_requirements(entries: Sequence[NodeSelectorRequirement]) -> requirements.Requirements:
    return requirements.Requirements(entry.to_requirement() for entry in entries)
