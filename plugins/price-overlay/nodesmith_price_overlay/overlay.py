"""NodeOverlay objects: parsed and validated from the documents of an overlay file, one at a time.

The file loader (:mod:`nodesmith_price_overlay.source`) hands the YAML documents here; the result feeds
:mod:`nodesmith_price_overlay.apply`. An overlay that breaks a rule is not built: its problem comes back as
an :class:`OverlayError` naming the overlay and the field, and the other overlays still load — the same
rules Karpenter's ``karpenter.sh/v1alpha1`` NodeOverlay CRD enforces with OpenAPI and CEL:

* ``metadata.name`` is required and unique in the file;
* ``spec.weight`` is an integer in 1..10000 (absent: 0, the lowest);
* ``spec.requirements`` are node selector requirements (at most 100), ``In``/``NotIn`` with values,
  ``Gt``/``Lt``/``Gte``/``Lte`` with one non-negative integer;
* ``spec.price`` is a non-negative decimal; ``spec.priceAdjustment`` is ``+x``/``-x`` (absolute) or
  ``+x%``/``-x%`` (percent, a decrease at most ``-100%``); never both;
* ``spec.capacity`` holds extended resources only (not ``cpu``, ``memory``, ``ephemeral-storage``, ``pods``).

Requirement keys written the Karpenter way (``karpenter.sh/capacity-type``, ``karpenter.sh/nodepool``) are
mapped to nodesmith's, so overlay manifests written for Karpenter work unchanged. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith.api import labels, quantity
from nodesmith.api.requirements import Requirement, RequirementError, Requirements

__all__ = ["KIND", "NodeOverlay", "OverlayError", "PriceChange", "parse_overlay"]

KIND: Final = "NodeOverlay"
MAX_WEIGHT: Final = 10000
MAX_REQUIREMENTS: Final = 100
STANDARD_RESOURCES: Final = frozenset({"cpu", "memory", "ephemeral-storage", "pods"})
_VALUE_OPERATORS: Final = frozenset({"In", "NotIn"})
_NUMERIC_OPERATORS: Final = frozenset({"Gt", "Lt", "Gte", "Lte"})
_PRICE: Final = re.compile(r"^\d+(\.\d+)?$")
_ADJUSTMENT: Final = re.compile(r"^(?P<sign>[+-])(?P<amount>\d*\.?\d+)(?P<percent>%?)$")
_FROM_KARPENTER: Final = {karpenter: ours for ours, karpenter in labels.KARPENTER_LABEL_ALIASES.items()}


class OverlayError(ValueError):
    """Raised when one overlay is invalid; ``overlay`` and ``field`` say which and where."""

    def __init__(self, overlay: str, field: str, message: str) -> None:
        super().__init__(f"overlay {overlay!r}: {field}: {message}")
        self.overlay = overlay
        self.field = field
        self.message = message


@final
@attrs.frozen(slots=True)
class PriceChange:
    """A price rule: an absolute price (``absolute``), or an adjustment by ``amount`` (``percent``: in %)."""

    text: str
    amount: float
    absolute: bool = False
    percent: bool = False

    def apply(self, price: float) -> float:
        """The new price; never below zero (as Karpenter's ``AdjustedPrice``)."""
        if self.absolute:
            return self.amount
        new = price * (1 + self.amount / 100) if self.percent else price + self.amount
        return max(new, 0.0)


@final
@attrs.frozen(slots=True)
class NodeOverlay:
    """One validated overlay. ``price`` is ``spec.price`` or ``spec.priceAdjustment`` (at most one is set)."""

    name: str
    weight: int
    requirements: Requirements
    price: PriceChange | None = None
    capacity: Mapping[str, int] = attrs.field(factory=dict)


def parse_overlay(document: Any, index: int) -> NodeOverlay:
    """Build one overlay from a manifest (``kind: NodeOverlay``, ``metadata.name``, ``spec``).

    ``index`` (0-based position in the file) names overlays that have no name yet. Raises
    :class:`OverlayError` for the first problem found."""
    if not isinstance(document, Mapping):
        raise OverlayError(
            f"#{index + 1}", "(document)", f"expected a mapping, got {type(document).__name__}"
        )
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise OverlayError(f"#{index + 1}", "metadata.name", "required")
    kind = document.get("kind", KIND)
    if kind != KIND:
        raise OverlayError(name, "kind", f"expected {KIND!r}, got {kind!r}")
    spec = document.get("spec")
    if not isinstance(spec, Mapping):
        raise OverlayError(name, "spec", "required, a mapping")
    unknown = sorted(set(spec) - {"weight", "requirements", "price", "priceAdjustment", "capacity"})
    if unknown:
        raise OverlayError(name, f"spec.{unknown[0]}", "unknown field")
    if spec.get("price") is not None and spec.get("priceAdjustment") is not None:
        raise OverlayError(name, "spec.price", "cannot set both 'price' and 'priceAdjustment'")
    price = _price(name, spec.get("price")) if spec.get("price") is not None else None
    if spec.get("priceAdjustment") is not None:
        price = _adjustment(name, spec["priceAdjustment"])
    capacity = _capacity(name, spec.get("capacity"))
    if price is None and not capacity:
        raise OverlayError(name, "spec", "sets none of price, priceAdjustment, capacity")
    return NodeOverlay(
        name=name,
        weight=_weight(name, spec.get("weight")),
        requirements=_requirements(name, spec.get("requirements")),
        price=price,
        capacity=capacity,
    )


def _weight(name: str, raw: Any) -> int:
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_WEIGHT:
        raise OverlayError(name, "spec.weight", f"must be an integer in 1..{MAX_WEIGHT}, got {raw!r}")
    return raw


def _requirements(name: str, raw: Any) -> Requirements:
    if raw is None:
        return Requirements()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise OverlayError(name, "spec.requirements", "must be a list of node selector requirements")
    if len(raw) > MAX_REQUIREMENTS:
        raise OverlayError(name, "spec.requirements", f"at most {MAX_REQUIREMENTS} requirements")
    out: list[Requirement] = []
    for i, term in enumerate(raw):
        out.append(_requirement(name, f"spec.requirements[{i}]", term))
    return Requirements(out)


def _requirement(name: str, field: str, term: Any) -> Requirement:
    key = term.get("key") if isinstance(term, Mapping) else None
    if not isinstance(key, str) or not key:
        raise OverlayError(name, field, "needs a 'key', an 'operator' and (for most operators) 'values'")
    operator = term.get("operator")
    values = term.get("values") or []
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise OverlayError(name, f"{field}.values", "must be a list of strings")
    values = [str(v) for v in values]
    if operator in _VALUE_OPERATORS and not values:
        raise OverlayError(name, f"{field}.values", f"operator {operator} needs at least one value")
    if operator in _NUMERIC_OPERATORS and (len(values) != 1 or not values[0].isdigit()):
        raise OverlayError(name, f"{field}.values", f"operator {operator} needs one non-negative integer")
    try:
        return Requirement.new(_FROM_KARPENTER.get(key, key), str(operator), values)
    except RequirementError as err:
        raise OverlayError(name, f"{field}.operator", str(err)) from None


def _price(name: str, raw: Any) -> PriceChange:
    text = _number_text(raw)
    if text is None or not _PRICE.match(text):
        raise OverlayError(name, "spec.price", f"must be a non-negative decimal such as '0.25', got {raw!r}")
    return PriceChange(text=text, amount=float(text), absolute=True)


def _adjustment(name: str, raw: Any) -> PriceChange:
    # YAML reads an unquoted +0.05 as the number 0.05: a number is a signed absolute adjustment.
    text = _number_text(raw)
    if text is not None and not isinstance(raw, str) and text[0] not in "+-":
        text = "+" + text
    match = _ADJUSTMENT.match(text or "")
    if match is None:
        raise OverlayError(
            name, "spec.priceAdjustment", f"must look like '+0.05', '-0.01', '+5%' or '-10%', got {raw!r}"
        )
    amount = float(match["amount"]) * (-1 if match["sign"] == "-" else 1)
    percent = bool(match["percent"])
    if percent and amount < -100:
        raise OverlayError(name, "spec.priceAdjustment", f"a decrease cannot exceed -100%, got {raw!r}")
    return PriceChange(text=str(text), amount=amount, percent=percent)


def _number_text(raw: Any) -> str | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return repr(raw) if isinstance(raw, float) else str(raw)
    return raw.strip() if isinstance(raw, str) else None


def _capacity(name: str, raw: Any) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise OverlayError(name, "spec.capacity", "must map extended resource names to quantities")
    for resource in raw:
        if resource in STANDARD_RESOURCES:
            raise OverlayError(
                name, f"spec.capacity.{resource}", "only extended resources may be added, not standard ones"
            )
    try:
        parsed = quantity.parse_resources(raw, field="spec.capacity")
    except quantity.QuantityError as err:
        field, _, message = str(err).partition(": ")
        raise OverlayError(name, field, message) from None
    for resource, amount in parsed.items():
        if amount < 0:
            raise OverlayError(
                name, f"spec.capacity.{resource}", f"must not be negative, got {raw[resource]!r}"
            )
    return parsed
