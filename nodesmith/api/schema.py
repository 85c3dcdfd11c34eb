"""A small OpenAPI v3 schema DSL: the one declaration behind both the CRDs and ``from_dict`` validation.

Each model module (`nodepool`, `nodeclaim`, `budgets`, `meta`, `conditions`; later the providers'
NodeClass modules) declares the schema of its Kubernetes shape next to the attrs class that parses it,
using the builders here (``string``, ``integer``, ``obj``, ``array``, ``map_of``, ``quantity``, ...).
From that one declaration:

* `nodesmith.api.crds` renders ``openAPIV3Schema`` for the CustomResourceDefinitions
  (:meth:`Schema.to_openapi`), so the CRDs are never maintained by hand;
* the models call :func:`apply_defaults` (the apiserver's structural defaulting algorithm) and
  :func:`validate` (types, enums, patterns, bounds, required fields and the Python mirror of every
  CEL rule) before they build, so a bad dict fails with a `ValidationError` naming the field path
  (``spec.template.spec.requirements[2].operator``) instead of a ``KeyError`` deep inside.

A CEL rule (:class:`Rule`) carries its expression for the apiserver *and* a Python predicate doing the
same check here. Transition rules (those reading ``oldSelf``) have no predicate: they only make sense
on update, which is the apiserver's job. ``None`` values are treated as absent, as the apiserver prunes
nulls of non-nullable fields before defaulting. Unknown fields are ignored (the apiserver prunes them).

Pure: values in, values out.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith import errors

__all__ = [
    "QUANTITY_PATTERN",
    "UNSET",
    "Rule",
    "Schema",
    "apply_defaults",
    "array",
    "boolean",
    "date_time",
    "int_or_string",
    "integer",
    "join",
    "map_of",
    "obj",
    "quantity",
    "resource_list",
    "string",
    "validate",
]

QUANTITY_PATTERN: Final = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
"""The apimachinery ``resource.Quantity`` grammar, as controller-gen writes it into CRDs."""


class _Unset:
    """Sentinel type for "no default" (``None`` is a legitimate default in JSON)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@final
@attrs.frozen(slots=True)
class Rule:
    """An ``x-kubernetes-validations`` entry plus the Python predicate that checks the same thing.

    ``check`` receives the (defaulted) value at the schema node the rule is attached to and returns
    True when it is valid. It is ``None`` for transition rules (``oldSelf``), which only the apiserver
    can evaluate.
    """

    rule: str
    message: str
    check: Callable[[Any], bool] | None = attrs.field(default=None, eq=False)
    field_path: str | None = None

    @property
    def transition(self) -> bool:
        return "oldSelf" in self.rule

    def to_openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "rule": self.rule}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        return out


@final
@attrs.frozen(slots=True)
class Schema:
    """One node of a structural OpenAPI v3 schema. Build with the functions below, not directly."""

    type: str | None = None
    description: str | None = None
    properties: Mapping[str, Schema] = attrs.field(factory=dict)
    required: tuple[str, ...] = ()
    items: Schema | None = None
    additional_properties: Schema | None = None
    enum: tuple[Any, ...] = ()
    pattern: str | None = None
    format: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    max_properties: int | None = None
    default: Any = UNSET
    int_or_string: bool = False
    preserve_unknown_fields: bool = False
    list_type: str | None = None
    list_map_keys: tuple[str, ...] = ()
    map_type: str | None = None
    rules: tuple[Rule, ...] = ()

    def evolve(self, **changes: Any) -> Schema:
        """A copy with some attributes changed (e.g. a different default or extra rules)."""
        return attrs.evolve(self, **changes)

    def with_rules(self, *rules: Rule) -> Schema:
        return attrs.evolve(self, rules=self.rules + rules)

    def to_openapi(self) -> dict[str, Any]:
        """Render as the ``openAPIV3Schema`` dict an apiextensions.k8s.io/v1 CRD carries."""
        out: dict[str, Any] = {}
        if self.int_or_string:
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            out["x-kubernetes-int-or-string"] = True
        elif self.type is not None:
            out["type"] = self.type
        if self.description:
            out["description"] = self.description
        if self.properties:
            out["properties"] = {name: prop.to_openapi() for name, prop in self.properties.items()}
        if self.required:
            out["required"] = list(self.required)
        if self.items is not None:
            out["items"] = self.items.to_openapi()
        if self.additional_properties is not None:
            out["additionalProperties"] = self.additional_properties.to_openapi()
        if self.enum:
            out["enum"] = list(self.enum)
        simple: dict[str, Any] = {
            "pattern": self.pattern,
            "format": self.format,
            "minLength": self.min_length,
            "maxLength": self.max_length,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "minItems": self.min_items,
            "maxItems": self.max_items,
            "maxProperties": self.max_properties,
            "x-kubernetes-list-type": self.list_type,
            "x-kubernetes-map-type": self.map_type,
        }
        out.update({key: value for key, value in simple.items() if value is not None})
        if self.default is not UNSET:
            out["default"] = copy.deepcopy(self.default)
        if self.preserve_unknown_fields:
            out["x-kubernetes-preserve-unknown-fields"] = True
        if self.list_map_keys:
            out["x-kubernetes-list-map-keys"] = list(self.list_map_keys)
        if self.rules:
            out["x-kubernetes-validations"] = [rule.to_openapi() for rule in self.rules]
        return out


# -- builders ----------------------------------------------------------------------------------------


def string(
    description: str | None = None,
    *,
    pattern: str | None = None,
    enum: Sequence[str] = (),
    min_length: int | None = None,
    max_length: int | None = None,
    format: str | None = None,
    default: Any = UNSET,
    rules: Sequence[Rule] = (),
) -> Schema:
    return Schema(
        type="string",
        description=description,
        pattern=pattern,
        enum=tuple(str(choice) for choice in enum),
        min_length=min_length,
        max_length=max_length,
        format=format,
        default=default,
        rules=tuple(rules),
    )


def date_time(description: str | None = None) -> Schema:
    """An RFC 3339 timestamp (``metav1.Time``)."""
    return string(description, format="date-time")


def integer(
    description: str | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    format: str | None = "int64",
    default: Any = UNSET,
    rules: Sequence[Rule] = (),
) -> Schema:
    return Schema(
        type="integer",
        description=description,
        minimum=minimum,
        maximum=maximum,
        format=format,
        default=default,
        rules=tuple(rules),
    )


def boolean(description: str | None = None, *, default: Any = UNSET) -> Schema:
    return Schema(type="boolean", description=description, default=default)


def int_or_string(
    description: str | None = None,
    *,
    pattern: str | None = None,
    minimum: int | None = None,
    default: Any = UNSET,
    rules: Sequence[Rule] = (),
) -> Schema:
    """``intstr.IntOrString``; ``pattern`` applies to strings and ``minimum`` to integers only."""
    return Schema(
        int_or_string=True,
        description=description,
        pattern=pattern,
        minimum=minimum,
        default=default,
        rules=tuple(rules),
    )


def quantity(description: str | None = None) -> Schema:
    """A ``resource.Quantity`` (``500m``, ``2``, ``1.5Gi``, or a bare integer)."""
    return int_or_string(description, pattern=QUANTITY_PATTERN)


def obj(
    properties: Mapping[str, Schema],
    description: str | None = None,
    *,
    required: Sequence[str] = (),
    default: Any = UNSET,
    rules: Sequence[Rule] = (),
) -> Schema:
    return Schema(
        type="object",
        description=description,
        properties=dict(properties),
        required=tuple(required),
        default=default,
        rules=tuple(rules),
    )


def map_of(
    values: Schema,
    description: str | None = None,
    *,
    max_properties: int | None = None,
    map_type: str | None = None,
    rules: Sequence[Rule] = (),
) -> Schema:
    """An object with arbitrary keys (labels, annotations, resource lists)."""
    return Schema(
        type="object",
        description=description,
        additional_properties=values,
        max_properties=max_properties,
        map_type=map_type,
        rules=tuple(rules),
    )


def resource_list(description: str | None = None) -> Schema:
    """A ``corev1.ResourceList`` (resource name → quantity)."""
    return map_of(quantity(), description)


def array(
    items: Schema,
    description: str | None = None,
    *,
    min_items: int | None = None,
    max_items: int | None = None,
    list_type: str | None = "atomic",
    list_map_keys: Sequence[str] = (),
    default: Any = UNSET,
    rules: Sequence[Rule] = (),
) -> Schema:
    return Schema(
        type="array",
        description=description,
        items=items,
        min_items=min_items,
        max_items=max_items,
        list_type=list_type,
        list_map_keys=tuple(list_map_keys),
        default=default,
        rules=tuple(rules),
    )


# -- defaulting ----------------------------------------------------------------------------------------


def apply_defaults(schema: Schema, value: Any) -> Any:
    """A deep copy of ``value`` with defaults filled in, the way the apiserver does it: a missing (or
    null) property gets its default, then defaulting recurses into every property, so defaults nested
    inside a defaulted object apply too."""
    if isinstance(value, Mapping):
        out = {key: item for key, item in value.items() if item is not None}
        for name, prop in schema.properties.items():
            if name not in out and prop.default is not UNSET:
                out[name] = copy.deepcopy(prop.default)
        for key, item in list(out.items()):
            sub = schema.properties.get(key, schema.additional_properties)
            out[key] = apply_defaults(sub, item) if sub is not None else copy.deepcopy(item)
        return out
    if isinstance(value, list | tuple):
        if schema.items is None:
            return copy.deepcopy(list(value))
        return [apply_defaults(schema.items, item) for item in value]
    return value


# -- validation ----------------------------------------------------------------------------------------

_TYPE_NAMES: Final = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "a boolean",
    "number": "a number",
}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _type_ok(schema: Schema, value: Any) -> bool:
    if schema.int_or_string:
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    match schema.type:
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "object":
            return isinstance(value, Mapping)
        case "array":
            return isinstance(value, list | tuple)
    return True


def _expected(schema: Schema) -> str:
    if schema.int_or_string:
        return "an integer or a string"
    assert schema.type is not None
    return _TYPE_NAMES.get(
        schema.type, f"an {schema.type}" if schema.type[0] in "aeiou" else f"a {schema.type}"
    )


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile(pattern)
    return compiled


def join(path: str, name: str) -> str:
    """``spec`` + ``template`` → ``spec.template``; the root path is empty."""
    return f"{path}.{name}" if path else name


def validate(schema: Schema, value: Any, path: str = "") -> None:
    """Raise `errors.ValidationError` at the first place ``value`` breaks ``schema`` (call it on a
    defaulted value: the checks mirror what the apiserver does after defaulting)."""
    where = path or "<root>"
    if not _type_ok(schema, value):
        raise errors.ValidationError(where, f"must be {_expected(schema)}, got {_type_name(value)} {value!r}")
    if schema.enum and value not in schema.enum:
        allowed = ", ".join(str(choice) for choice in schema.enum)
        raise errors.ValidationError(where, f"unsupported value {value!r}: must be one of {allowed}")
    if isinstance(value, str):
        _validate_string(schema, value, where)
    elif isinstance(value, int) and not isinstance(value, bool):
        if schema.minimum is not None and value < schema.minimum:
            raise errors.ValidationError(where, f"must be at least {schema.minimum}, got {value}")
        if schema.maximum is not None and value > schema.maximum:
            raise errors.ValidationError(where, f"must be at most {schema.maximum}, got {value}")
    elif isinstance(value, Mapping):
        _validate_object(schema, value, path)
    elif isinstance(value, list | tuple):
        if schema.min_items is not None and len(value) < schema.min_items:
            raise errors.ValidationError(
                where, f"must have at least {schema.min_items} items, got {len(value)}"
            )
        if schema.max_items is not None and len(value) > schema.max_items:
            raise errors.ValidationError(
                where, f"must have at most {schema.max_items} items, got {len(value)}"
            )
        if schema.items is not None:
            for index, item in enumerate(value):
                if item is None:
                    raise errors.ValidationError(f"{path}[{index}]", "must not be null")
                validate(schema.items, item, f"{path}[{index}]")
        if schema.list_type == "set" and len({repr(item) for item in value}) != len(value):
            raise errors.ValidationError(where, "must not contain duplicate items")
    for rule in schema.rules:
        if rule.check is not None and not rule.check(value):
            field = join(path, rule.field_path.lstrip(".")) if rule.field_path else where
            raise errors.ValidationError(field, rule.message)


def _validate_string(schema: Schema, value: str, where: str) -> None:
    if schema.min_length is not None and len(value) < schema.min_length:
        message = (
            "must not be empty"
            if schema.min_length == 1
            else f"must be at least {schema.min_length} characters"
        )
        raise errors.ValidationError(where, message)
    if schema.max_length is not None and len(value) > schema.max_length:
        raise errors.ValidationError(
            where, f"must be at most {schema.max_length} characters, got {len(value)}"
        )
    if schema.pattern is not None and _compiled(schema.pattern).search(value) is None:
        raise errors.ValidationError(where, f"{value!r} does not match {schema.pattern!r}")


def _validate_object(schema: Schema, value: Mapping[str, Any], path: str) -> None:
    where = path or "<root>"
    present = {key for key, item in value.items() if item is not None}
    for name in schema.required:
        if name not in present:
            raise errors.ValidationError(join(path, name), "required field is missing")
    if schema.max_properties is not None and len(present) > schema.max_properties:
        raise errors.ValidationError(
            where, f"must have at most {schema.max_properties} entries, got {len(present)}"
        )
    for key, item in value.items():
        if item is None:
            continue
        if not isinstance(key, str):
            raise errors.ValidationError(where, f"keys must be strings, got {key!r}")
        prop = schema.properties.get(key)
        if prop is not None:
            validate(prop, item, join(path, key))
        elif schema.additional_properties is not None:
            validate(schema.additional_properties, item, join(path, key))
