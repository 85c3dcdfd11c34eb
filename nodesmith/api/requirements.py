"""Node requirements as set algebra: one ``Requirement`` per label key, ``Requirements`` per object.

NodePool templates, NodeClaims, pods (nodeSelector, node affinity), instance types, offerings and
topology decisions all say "which label values are acceptable", and every scheduling decision is an
intersection of those sets. This module is that algebra; the scheduling engine, the instance-type
filters and the disruption simulation consume it. Pure: values in, values out.

A ``Requirement`` is a possibly-complemented set of string values, optionally bounded by inclusive integer
bounds (``gte``/``lte``):

=================  ==========================================
operator           representation
=================  ==========================================
``In v…``          values={v…}
``NotIn v…``       complement, values={v…}
``Exists``         complement, values={}
``DoesNotExist``   values={}
``Gt N``           complement, gte=N+1
``Lt N``           complement, lte=N-1
``Gte N``/``Lte N`` complement, gte=N / lte=N
=================  ==========================================

Construction canonicalises once (beta keys normalised, ``Gt N`` → ``gte=N+1``, out-of-bound values
dropped from concrete sets, an empty bounded range → ``DoesNotExist``) so every operation handles one form.
Where Karpenter's ``HasIntersection`` answers "yes" for two complemented sets whose bounds leave only
excluded integers, this one answers exactly (it counts the integers the bounds leave).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith.api import labels

__all__ = [
    "Operator",
    "Requirement",
    "RequirementError",
    "Requirements",
]


class RequirementError(ValueError):
    """Raised when a requirement cannot be built: unknown operator, missing or non-integer values."""


class Operator(enum.StrEnum):
    """Node selector operators, Kubernetes' six plus Karpenter's inclusive ``Gte``/``Lte``."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"
    GTE = "Gte"
    LTE = "Lte"


_NEGATIVE_OPERATORS: Final = frozenset({Operator.NOT_IN, Operator.DOES_NOT_EXIST})


def _as_int(value: str) -> int | None:
    # Kubernetes parses Gt/Lt values with strconv.Atoi: optional sign, decimal digits only.
    text = value[1:] if value[:1] in "+-" else value
    if not text.isdigit() or not text.isascii():
        return None
    return int(value)


def _within(value: str, gte: int | None, lte: int | None) -> bool:
    if gte is None and lte is None:
        return True
    number = _as_int(value)
    if number is None:
        return False
    return (gte is None or number >= gte) and (lte is None or number <= lte)


def _max_bound(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a > b else b


def _min_bound(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a < b else b


@final
@attrs.frozen(slots=True, repr=False)
class Requirement:
    """The set of values acceptable for one label key. Build with :meth:`new` or the short constructors."""

    key: str
    complement: bool
    values: frozenset[str]
    gte: int | None = None
    lte: int | None = None
    min_values: int | None = None

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        key: str,
        operator: str | Operator,
        values: Iterable[str] = (),
        *,
        min_values: int | None = None,
    ) -> Requirement:
        """Build from a node selector requirement (``key``, ``operator``, ``values``)."""
        key = labels.normalize_label(key)
        try:
            op = Operator(operator)
        except ValueError:
            raise RequirementError(
                f"{key}: unknown operator {operator!r}; expected one of {', '.join(o.value for o in Operator)}"
            ) from None
        vals = frozenset(str(v) for v in values)
        if op is Operator.IN:
            return cls(key, False, vals, min_values=min_values)
        if op is Operator.NOT_IN:
            return cls(key, True, vals, min_values=min_values)
        if op is Operator.EXISTS:
            return cls(key, True, frozenset(), min_values=min_values)
        if op is Operator.DOES_NOT_EXIST:
            return cls(key, False, frozenset(), min_values=min_values)
        if len(vals) != 1:
            raise RequirementError(
                f"{key}: operator {op.value} takes exactly one integer value, got {sorted(vals)}"
            )
        (raw,) = vals
        number = _as_int(raw)
        if number is None:
            raise RequirementError(f"{key}: operator {op.value} takes an integer value, got {raw!r}")
        if op is Operator.GT:
            return cls._bounded(key, number + 1, None, min_values)
        if op is Operator.LT:
            return cls._bounded(key, None, number - 1, min_values)
        if op is Operator.GTE:
            return cls._bounded(key, number, None, min_values)
        return cls._bounded(key, None, number, min_values)

    @classmethod
    def _bounded(cls, key: str, gte: int | None, lte: int | None, min_values: int | None) -> Requirement:
        return cls(key, True, frozenset(), gte, lte, min_values)

    @classmethod
    def in_(cls, key: str, *values: str, min_values: int | None = None) -> Requirement:
        return cls(labels.normalize_label(key), False, frozenset(values), min_values=min_values)

    @classmethod
    def not_in(cls, key: str, *values: str) -> Requirement:
        return cls(labels.normalize_label(key), True, frozenset(values))

    @classmethod
    def exists(cls, key: str) -> Requirement:
        return cls(labels.normalize_label(key), True, frozenset())

    @classmethod
    def does_not_exist(cls, key: str) -> Requirement:
        return cls(labels.normalize_label(key), False, frozenset())

    # -- queries -----------------------------------------------------------------------------------

    @property
    def operator(self) -> Operator:
        """The node selector operator this set reads as (bounds read as ``Exists`` with a range)."""
        if self.complement:
            return Operator.NOT_IN if self.values else Operator.EXISTS
        return Operator.IN if self.values else Operator.DOES_NOT_EXIST

    @property
    def bounded(self) -> bool:
        return self.gte is not None or self.lte is not None

    def has(self, value: str) -> bool:
        """Membership: is a node labelled ``key=value`` acceptable?"""
        if self.complement:
            return value not in self.values and _within(value, self.gte, self.lte)
        return value in self.values

    def is_empty(self) -> bool:
        """True when no value is acceptable (DoesNotExist, or a complement whose range is all excluded)."""
        if not self.complement:
            return not self.values
        return not _complement_has_member(self.values, self.gte, self.lte)

    def any_value(self) -> str | None:
        """One value of the set, deterministically: the smallest concrete value, or the lowest integer of a
        bounded range that is not excluded. ``None`` for an unbounded complement or an empty set."""
        if not self.complement:
            return min(self.values) if self.values else None
        if self.gte is None:
            return None
        candidate = self.gte
        while self.lte is None or candidate <= self.lte:
            if str(candidate) not in self.values:
                return str(candidate)
            candidate += 1
        return None

    # -- algebra -----------------------------------------------------------------------------------

    def intersection(self, other: Requirement) -> Requirement:
        """The values acceptable to both (same key assumed); ``min_values`` is the larger of the two."""
        gte = _max_bound(self.gte, other.gte)
        lte = _min_bound(self.lte, other.lte)
        min_values = _max_bound(self.min_values, other.min_values)
        if gte is not None and lte is not None and gte > lte:
            return Requirement(self.key, False, frozenset(), min_values=min_values)
        if self.complement and other.complement:
            return Requirement(self.key, True, self.values | other.values, gte, lte, min_values)
        if self.complement:
            values = frozenset(v for v in other.values if v not in self.values)
        elif other.complement:
            values = frozenset(v for v in self.values if v not in other.values)
        else:
            values = self.values & other.values
        if gte is not None or lte is not None:
            values = frozenset(v for v in values if _within(v, gte, lte))
        return Requirement(self.key, False, values, min_values=min_values)

    def has_intersection(self, other: Requirement) -> bool:
        """Allocation-free ``not self.intersection(other).is_empty()``."""
        gte = _max_bound(self.gte, other.gte)
        lte = _min_bound(self.lte, other.lte)
        if gte is not None and lte is not None and gte > lte:
            return False
        if self.complement and other.complement:
            if gte is None or lte is None:
                return True
            return _complement_has_member_union(self.values, other.values, gte, lte)
        if self.complement:
            return any(v not in self.values and _within(v, gte, lte) for v in other.values)
        if other.complement:
            return any(v not in other.values and _within(v, gte, lte) for v in self.values)
        small, large = (
            (self.values, other.values)
            if len(self.values) <= len(other.values)
            else (other.values, self.values)
        )
        return any(v in large for v in small)

    # -- conversion --------------------------------------------------------------------------------

    def to_node_selector(self) -> list[dict[str, Any]]:
        """Render as node selector requirements (a bounded complement with exclusions takes several)."""
        out: list[dict[str, Any]] = []
        if self.gte is not None:
            out.append({"key": self.key, "operator": "Gt", "values": [str(self.gte - 1)]})
        if self.lte is not None:
            out.append({"key": self.key, "operator": "Lt", "values": [str(self.lte + 1)]})
        if not out or self.values:
            op = self.operator
            entry: dict[str, Any] = {"key": self.key, "operator": op.value}
            if op in (Operator.IN, Operator.NOT_IN):
                entry["values"] = sorted(self.values)
            out.append(entry)
        if self.min_values is not None:
            out[-1]["minValues"] = self.min_values
        return out

    def __repr__(self) -> str:
        op = self.operator
        text = f"{self.key} {op.value}"
        if self.values:
            shown = sorted(self.values)
            text += f" [{', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''}]"
        if self.gte is not None:
            text += f" >={self.gte}"
        if self.lte is not None:
            text += f" <={self.lte}"
        if self.min_values is not None:
            text += f" minValues={self.min_values}"
        return text

    __str__ = __repr__


def _complement_has_member(excluded: frozenset[str], gte: int | None, lte: int | None) -> bool:
    if gte is None or lte is None:
        return True
    return _complement_has_member_union(excluded, frozenset(), gte, lte)


def _complement_has_member_union(a: frozenset[str], b: frozenset[str], gte: int, lte: int) -> bool:
    """Is some integer in ``[gte, lte]`` excluded by neither set? Only integers in range can be excluded,
    so the range has a member unless it is no larger than the number of excluded in-range integers."""
    if lte - gte + 1 > len(a) + len(b):
        return True
    return any(str(n) not in a and str(n) not in b for n in range(gte, lte + 1))


_EXISTS_CACHE: dict[str, Requirement] = {}


def _exists(key: str) -> Requirement:
    requirement = _EXISTS_CACHE.get(key)
    if requirement is None:
        requirement = _EXISTS_CACHE[key] = Requirement(key, True, frozenset())
    return requirement


@final
class Requirements(Mapping[str, Requirement]):
    """Requirements keyed by label, intersected per key. Immutable: operations return new objects.

    ``get(key)`` of an undefined key is ``Exists`` (anything goes), but ``key in reqs`` tells whether the
    key is defined, which matters for the "custom labels must be defined" rule of :meth:`compatible`.
    """

    __slots__ = ("_by_key", "_hash")

    def __init__(self, requirements: Iterable[Requirement] = ()) -> None:
        by_key: dict[str, Requirement] = {}
        for requirement in requirements:
            existing = by_key.get(requirement.key)
            by_key[requirement.key] = requirement if existing is None else existing.intersection(requirement)
        self._by_key = by_key
        self._hash: int | None = None

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def _wrap(cls, by_key: dict[str, Requirement]) -> Requirements:
        out = cls.__new__(cls)
        out._by_key = by_key
        out._hash = None
        return out

    @classmethod
    def from_labels(cls, values: Mapping[str, str]) -> Requirements:
        """``key In [value]`` for every label."""
        return cls(Requirement.in_(key, value) for key, value in values.items())

    @classmethod
    def from_node_selector(cls, terms: Sequence[Mapping[str, Any]]) -> Requirements:
        """From node selector requirements (``[{key, operator, values, minValues?}]``), ANDed."""
        return cls(
            Requirement.new(
                str(term["key"]),
                str(term["operator"]),
                term.get("values") or (),
                min_values=term.get("minValues"),
            )
            for term in terms
        )

    # -- mapping -----------------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Requirement:
        return self._by_key[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def get(self, key: str, default: Any = None) -> Requirement:
        """The requirement for ``key``; ``Exists`` when the key is undefined."""
        requirement = self._by_key.get(key)
        return requirement if requirement is not None else _exists(key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Requirements) and self._by_key == other._by_key

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._by_key.values()))
        return self._hash

    def __repr__(self) -> str:
        return "Requirements(" + ", ".join(repr(self._by_key[k]) for k in sorted(self._by_key)) + ")"

    # -- algebra -----------------------------------------------------------------------------------

    def add(self, *requirements: Requirement) -> Requirements:
        """A copy with each requirement intersected into its key."""
        by_key = dict(self._by_key)
        for requirement in requirements:
            existing = by_key.get(requirement.key)
            by_key[requirement.key] = requirement if existing is None else existing.intersection(requirement)
        return Requirements._wrap(by_key)

    def intersect(self, other: Requirements) -> Requirements:
        """Per-key intersection of two requirement sets (keys of either side are kept)."""
        if not other._by_key:
            return self
        if not self._by_key:
            return other
        return self.add(*other._by_key.values())

    def without(self, *keys: str) -> Requirements:
        """A copy with the given keys undefined."""
        return Requirements._wrap({k: v for k, v in self._by_key.items() if k not in keys})

    def intersects(self, other: Requirements) -> bool:
        """For keys defined on both sides the sets must meet, unless both sides only exclude
        (``NotIn``/``DoesNotExist``), which Kubernetes treats as compatible."""
        a, b = (
            (self._by_key, other._by_key)
            if len(self._by_key) <= len(other._by_key)
            else (other._by_key, self._by_key)
        )
        for key, mine in a.items():
            theirs = b.get(key)
            if theirs is None or mine.has_intersection(theirs):
                continue
            if mine.operator in _NEGATIVE_OPERATORS and theirs.operator in _NEGATIVE_OPERATORS:
                continue
            return False
        return True

    def is_compatible(self, incoming: Requirements, allow_undefined: frozenset[str] = frozenset()) -> bool:
        """Can something with these requirements satisfy ``incoming``?

        Keys of ``incoming`` that are not in ``allow_undefined`` must be defined here unless ``incoming``
        only excludes values for them ("custom labels must be defined"); keys defined on both sides must
        intersect. Pass the well-known labels (``SchedulingInput.well_known_labels``) to let well-known labels be undefined on this side.
        """
        mine = self._by_key
        for key, requirement in incoming._by_key.items():
            if key in mine or key in allow_undefined:
                continue
            if requirement.operator not in _NEGATIVE_OPERATORS:
                return False
        return self.intersects(incoming)

    def compatibility_errors(
        self, incoming: Requirements, allow_undefined: frozenset[str] = frozenset()
    ) -> list[str]:
        """Why :meth:`is_compatible` is false, one message per failing key (empty when compatible).
        Kept apart so the hot path never formats strings."""
        errors: list[str] = []
        for key in sorted(incoming._by_key):
            requirement = incoming._by_key[key]
            if key not in self._by_key and key not in allow_undefined:
                if requirement.operator not in _NEGATIVE_OPERATORS:
                    errors.append(f"label {key!r} does not have known values")
                continue
            theirs = self._by_key.get(key)
            if theirs is None or theirs.has_intersection(requirement):
                continue
            if theirs.operator in _NEGATIVE_OPERATORS and requirement.operator in _NEGATIVE_OPERATORS:
                continue
            errors.append(f"key {key}, {requirement!r} not in {theirs!r}")
        return errors

    # -- conversion --------------------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        """Labels implied by single-valued ``In`` requirements (what a node launched for these must carry)."""
        return {
            key: next(iter(req.values))
            for key, req in self._by_key.items()
            if not req.complement and len(req.values) == 1
        }

    def to_node_selector(self) -> list[dict[str, Any]]:
        """Render as node selector requirements, keys sorted for stable output."""
        out: list[dict[str, Any]] = []
        for key in sorted(self._by_key):
            out.extend(self._by_key[key].to_node_selector())
        return out
