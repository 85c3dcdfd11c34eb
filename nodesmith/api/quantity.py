"""Kubernetes resource quantities, held exactly as integer milli-units.

Everything that reads `cpu: 500m`, `memory: 1.5Gi` or `pods: 110` goes through here: the API model when it
parses NodePools/NodeClaims/Pods, providers when they describe instance types, and the scheduling engine,
which adds, subtracts and compares plain ``int`` vectors keyed by resource name (``Resources``).

Why integers of milli-units: Kubernetes compares quantities exactly (``resource.Quantity.Cmp``), floats do
not, and Python ints are arbitrary-precision and the fastest exact number Python has. A quantity finer than
a milli-unit is rounded *up*, as ``Quantity.MilliValue`` does. ``kubernetes.utils.parse_quantity`` parses the
same grammar into ``Decimal``; we do not depend on the whole Kubernetes client for one function, but the
unit tests check that both parsers agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Final, TypeAlias

__all__ = [
    "QuantityError",
    "Resources",
    "add",
    "fits",
    "format_quantity",
    "format_resources",
    "is_zero",
    "max_of",
    "parse_quantity",
    "parse_resources",
    "subtract",
    "sum_of",
]

Resources: TypeAlias = Mapping[str, int]
"""Resource name → amount in milli-units (``{"cpu": 500, "memory": 1073741824000}``)."""

_BINARY: Final = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: Final = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY_RE: Final = re.compile(
    r"^(?P<sign>[+-]?)(?P<num>\d+(?:\.\d*)?|\.\d+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE](?P<exp>[+-]?\d+))?$"
)


class QuantityError(ValueError):
    """Raised when a string is not a Kubernetes quantity (``"1.5Gi"``, ``"100m"``, ``"2e3"``)."""


def parse_quantity(value: str | int | float) -> int:
    """Parse a Kubernetes quantity into milli-units, rounding sub-milli precision up."""
    if isinstance(value, bool):
        raise QuantityError(f"quantity must be a string or number, not {value!r}")
    if isinstance(value, int):
        return value * 1000
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError(f"quantity must be finite, not {value!r}")
        return _ceil(Fraction(value) * 1000)
    if not isinstance(value, str):
        raise QuantityError(f"quantity must be a string or number, not {type(value).__name__}")
    match = _QUANTITY_RE.match(value.strip())
    if match is None:
        raise QuantityError(f"{value!r} is not a quantity (expected e.g. 500m, 2, 1.5Gi, 1e3)")
    number = Fraction(match["num"])
    if match["exp"] is not None:
        number *= Fraction(10) ** int(match["exp"])
    elif match["suffix"] in _BINARY:
        number *= _BINARY[match["suffix"]]
    else:
        number *= _DECIMAL[match["suffix"] or ""]
    if match["sign"] == "-":
        number = -number
    return _ceil(number * 1000)


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def format_quantity(milli: int) -> str:
    """Render milli-units in the shortest canonical form Kubernetes accepts back unchanged."""
    if milli % 1000:
        return f"{milli}m"
    whole = milli // 1000
    if whole and whole % _BINARY["Mi"] == 0:
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi"):
            if whole % _BINARY[suffix] == 0:
                return f"{whole // _BINARY[suffix]}{suffix}"
    return str(whole)


def parse_resources(
    values: Mapping[str, str | int | float] | None, *, field: str = "resources"
) -> dict[str, int]:
    """Parse a ResourceList (``{"cpu": "1", "memory": "2Gi"}``); errors name the offending key."""
    out: dict[str, int] = {}
    for name, raw in (values or {}).items():
        try:
            out[str(name)] = parse_quantity(raw)
        except QuantityError as err:
            raise QuantityError(f"{field}.{name}: {err}") from err
    return out


def format_resources(values: Resources) -> dict[str, str]:
    """Render a ResourceList for the Kubernetes API, keys sorted for stable output."""
    return {name: format_quantity(values[name]) for name in sorted(values)}


def add(*lists: Resources) -> dict[str, int]:
    """Sum resource lists key by key."""
    out: dict[str, int] = {}
    for resources in lists:
        for name, amount in resources.items():
            out[name] = out.get(name, 0) + amount
    return out


def sum_of(lists: Iterable[Resources]) -> dict[str, int]:
    """Sum an iterable of resource lists key by key."""
    return add(*lists)


def subtract(left: Resources, right: Resources) -> dict[str, int]:
    """``left - right`` key by key; keys only in ``right`` come out negative."""
    out = dict(left)
    for name, amount in right.items():
        out[name] = out.get(name, 0) - amount
    return out


def max_of(*lists: Resources) -> dict[str, int]:
    """Key-wise maximum (used for init containers and pessimistic limit accounting)."""
    out: dict[str, int] = {}
    for resources in lists:
        for name, amount in resources.items():
            if name not in out or amount > out[name]:
                out[name] = amount
    return out


def fits(requests: Resources, available: Resources) -> bool:
    """True when every requested amount is at most what is available; an absent resource is zero."""
    return all(amount <= available.get(name, 0) for name, amount in requests.items() if amount > 0)


def is_zero(resources: Resources) -> bool:
    """True when every amount is zero (an empty list is zero)."""
    return not any(resources.values())
