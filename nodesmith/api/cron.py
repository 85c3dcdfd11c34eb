"""Which budget ``schedule`` strings Karpenter's cron parser accepts (robfig/cron v3 ``ParseStandard``).

Fed by `nodesmith.api.budgets`, which evaluates schedules with croniter; croniter is more lenient (it
takes ``tue-mon`` as a wrapping range, ``7`` as Sunday, and more), and a schedule Karpenter rejects must
make the NodePool fail closed rather than be evaluated. :func:`problem` answers that question, with the
Go parser's own wording, before croniter is asked anything.

The grammar: one of the descriptors ``@yearly @annually @monthly @weekly @daily @midnight @hourly``
(``@every <duration>`` too, though the CRD pattern keeps it out), or exactly five space-separated fields
(minute 0-59, hour 0-23, day of month 1-31, month 1-12 or ``jan``-``dec``, day of week 0-6 or
``sun``-``sat``), each a comma-separated list of ``*``/``?``, ``N``, ``N-M``, optionally ``/step``.
"""

from __future__ import annotations

import re
from typing import Final

from nodesmith.api import duration

__all__ = ["DESCRIPTORS", "problem"]

DESCRIPTORS: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_MONTHS: Final = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DAYS: Final = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: Final = (
    (0, 59, None),
    (0, 23, None),
    (1, 31, None),
    (1, 12, _MONTHS),
    (0, 6, _DAYS),
)
_INT: Final = re.compile(r"[+-]?[0-9]+")


class _Invalid(Exception):
    pass


def _number(text: str, names: dict[str, int] | None = None) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    if not _INT.fullmatch(text):
        raise _Invalid(f"failed to parse int from {text}")
    value = int(text)
    if value < 0:
        raise _Invalid(f"negative number ({value}) not allowed: {text}")
    return value


def _check_range(expr: str, low: int, high: int, names: dict[str, int] | None) -> None:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _number(low_and_high[0], names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _number(low_and_high[1], names)
        else:
            raise _Invalid(f"too many hyphens: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _number(range_and_step[1])
        if len(low_and_high) == 1:
            end = high  # "N/step" means "N-max/step"
    elif len(range_and_step) > 2:
        raise _Invalid(f"too many slashes: {expr}")
    if start < low:
        raise _Invalid(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise _Invalid(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise _Invalid(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise _Invalid(f"step of range should be a positive number: {expr}")


def problem(schedule: str) -> str | None:
    """Why Karpenter's parser rejects ``schedule`` (its error text), or ``None`` when it accepts it."""
    spec = schedule.strip()
    if not spec:
        return "empty spec string"
    try:
        if spec.startswith("@"):
            if spec in DESCRIPTORS:
                return None
            if spec.startswith("@every "):
                duration.parse_duration(spec[len("@every ") :])
                return None
            raise _Invalid(f"unrecognized descriptor: {spec}")
        fields = spec.split()
        if len(fields) != len(_FIELDS):
            raise _Invalid(f"expected exactly 5 fields, found {len(fields)}: {spec}")
        for text, (low, high, names) in zip(fields, _FIELDS, strict=True):
            for expr in text.split(","):
                _check_range(expr, low, high, names)
    except _Invalid as err:
        return str(err)
    except ValueError as err:
        return f"failed to parse duration {spec}: {err}"
    return None
