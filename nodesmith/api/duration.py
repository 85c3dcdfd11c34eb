"""Go-style durations (``720h``, ``1h30m``, ``500ms``) as Karpenter's API spells them.

NodePool and NodeClaim fields such as ``expireAfter``, ``consolidateAfter``, ``terminationGracePeriod`` and
budget ``duration`` are Go ``time.Duration`` strings, some of which may also be ``Never``. The grammar is
small and exact (Go's ``time.ParseDuration``), so we parse it here rather than bend a general "human time"
library to it; ``format_duration`` prints the compact form Karpenter users write.
"""

from __future__ import annotations

import re
from datetime import timedelta
from fractions import Fraction
from typing import Final

__all__ = [
    "MAX_NANOS",
    "NEVER",
    "DurationError",
    "format_duration",
    "parse_duration",
    "parse_nillable_duration",
]

NEVER: Final = "Never"
MAX_NANOS: Final = 2**63 - 1
"""The longest duration Go can hold (about 292 years): longer ones are refused, as Go refuses them."""

_UNIT_NANOS: Final = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_PART_RE: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """Raised when a string is not a Go duration such as ``30s``, ``1h30m`` or ``720h``."""


def parse_duration(value: str) -> timedelta:
    """Parse a Go duration string (an optional sign, then number+unit pairs; ``0`` alone is allowed)."""
    if not isinstance(value, str):
        raise DurationError(f"duration must be a string, not {type(value).__name__}")
    text = value.strip()
    sign = 1
    if text[:1] in "+-" and text:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return timedelta(0)
    if not text:
        raise DurationError(f"{value!r} is not a duration (expected e.g. 30s, 1h30m, 720h)")
    nanos = Fraction(0)
    position = 0
    for match in _PART_RE.finditer(text):
        if match.start() != position:
            break
        nanos += Fraction(match[1]) * _UNIT_NANOS[match[2]]
        position = match.end()
    if position != len(text):
        raise DurationError(f"{value!r} is not a duration (expected e.g. 30s, 1h30m, 720h)")
    if nanos > MAX_NANOS:
        # Go's time.ParseDuration refuses the same (an int64 of nanoseconds); timedelta would overflow later
        raise DurationError(f"{value!r} is out of range (at most 2562047h, about 292 years)")
    micros = sign * nanos / 1000
    return timedelta(microseconds=int(micros))


def parse_nillable_duration(value: str | None) -> timedelta | None:
    """Parse a duration that may also be ``Never`` (returned as ``None``)."""
    if value is None or value == NEVER:
        return None
    return parse_duration(value)


def format_duration(value: timedelta | None) -> str:
    """Render compactly (``720h``, ``1h30m``, ``15s``, ``250ms``); ``None`` renders as ``Never``."""
    if value is None:
        return NEVER
    micros = (value.days * 86400 + value.seconds) * 10**6 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros < 10**6:
        return f"{sign}{micros // 1000}ms" if micros % 1000 == 0 else f"{sign}{micros}us"
    seconds, rest = divmod(micros, 10**6)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds or rest:
        frac = f".{rest:06d}".rstrip("0") if rest else ""
        parts.append(f"{seconds}{frac}s")
    return sign + "".join(parts)
