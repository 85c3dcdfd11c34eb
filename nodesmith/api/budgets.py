"""Disruption budgets (``spec.disruption.budgets[]``) and the primitive that evaluates them.

Fed by `nodesmith.api.nodepool`, which parses a NodePool's budgets with :meth:`Budget._build`; consumed
by the disruption engine (``BuildDisruptionBudgetMapping``'s equivalent: how many of a pool's nodes a
method may disrupt right now) and the NodePool metrics. Pure: the clock is an argument.

Semantics are Karpenter's (`pkg/apis/v1/nodepool.go`, spec §4.3):

* a budget without ``schedule`` is always active; with one, it is active when a cron hit (UTC) falls in
  ``(now - duration, now]``;
* ``nodes`` is an integer or a percentage of the pool's nodes, percentages rounded **up**;
* the allowed count for a reason is the **minimum** over active budgets whose ``reasons`` include it
  (no ``reasons`` = every reason); no active budget means unlimited (:data:`UNLIMITED`, Karpenter's
  ``MaxInt32``);
* a schedule the CRD pattern admits but Karpenter's cron parser (robfig/cron ``ParseStandard``, checked by
  `nodesmith.api.cron`) rejects -- ``0 0 * * tue-mon`` -- parses, so the NodePool still provisions, but
  fails closed: while any of a pool's budgets cannot be evaluated, it may disrupt nothing for any reason
  (Karpenter's ``MustGetAllowedDisruptions``); :func:`problems` says why, for the NodePool status.

Time-window budgets beyond cron (planned) will add fields here; :meth:`Budget.is_active` is the one place
that decides activity, so they slot in there.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs
import croniter

from nodesmith import errors
from nodesmith.api import cron, meta, schema

__all__ = [
    "BUDGETS_SCHEMA",
    "DEFAULT_BUDGETS",
    "UNLIMITED",
    "Budget",
    "DisruptionReason",
    "allowed_disruptions",
    "problems",
]

UNLIMITED: Final = 2**31 - 1
"""What :func:`allowed_disruptions` returns when no budget limits a reason (Karpenter's ``math.MaxInt32``)."""

NODES_PATTERN: Final = r"^((100|[0-9]{1,2})%|[0-9]+)$"
DURATION_PATTERN: Final = r"^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$"
SCHEDULE_PATTERN: Final = (
    r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly))$|^(\S+\s+\S+\s+\S+\s+\S+\s+\S+)$"
)


class DisruptionReason(enum.StrEnum):
    """Voluntary disruption methods a budget can be scoped to."""

    UNDERUTILIZED = "Underutilized"
    EMPTY = "Empty"
    DRIFTED = "Drifted"


BUDGET_SCHEMA: Final = schema.obj(
    {
        "nodes": schema.int_or_string(
            "The most NodeClaims of this NodePool that may be disrupting at once: an integer or a percentage "
            "of the pool's nodes (rounded up).",
            pattern=NODES_PATTERN,
            minimum=0,
            default="10%",
        ),
        "schedule": schema.string(
            "When the budget becomes active, in cron syntax (UTC; @hourly-style macros allowed). "
            "If omitted the budget is always active. Requires duration.",
            pattern=SCHEDULE_PATTERN,
            max_length=128,
        ),
        "duration": schema.string(
            "How long the budget stays active after each schedule hit (hours and minutes). Requires schedule.",
            pattern=DURATION_PATTERN,
            max_length=32,
        ),
        "reasons": schema.array(
            schema.string(enum=list(DisruptionReason)),
            "Disruption methods this budget applies to; all of them when omitted.",
            max_items=50,
            list_type="set",
        ),
    },
    "Budget restricts how many NodeClaims may be disrupted at once, optionally on a schedule.",
    required=("nodes",),
    rules=(
        schema.Rule(
            "has(self.schedule) == has(self.duration)",
            "'schedule' must be set with 'duration'",
            lambda b: ("schedule" in b) == ("duration" in b),
        ),
    ),
)
BUDGETS_SCHEMA: Final = schema.array(
    BUDGET_SCHEMA,
    "Budgets: when several are active the most restrictive applies. Defaults to one budget of 10%.",
    max_items=50,
    default=[{"nodes": "10%"}],
)


def _validate_schedule(value: str, field: str) -> None:
    """What the CRD pattern checks (a macro or five fields); the fields themselves are checked when the
    budget is evaluated, as in Karpenter, so an admitted NodePool always parses."""
    if not re.search(SCHEDULE_PATTERN, value):
        raise errors.ValidationError(
            field, f"{value!r} is not a cron schedule (5 fields, or @hourly/@daily/...)"
        )


@final
@attrs.frozen(slots=True)
class Budget:
    nodes: int | str = "10%"
    schedule: str | None = None
    duration: meta.Duration | None = None
    reasons: tuple[DisruptionReason, ...] | None = None
    """``None`` applies to every reason (an empty list written out applies to none)."""

    @classmethod
    def _build(cls, d: Mapping[str, Any], path: str) -> Budget:
        schedule = d.get("schedule")
        if schedule is not None:
            _validate_schedule(schedule, f"{path}.schedule")
        raw_duration = d.get("duration")
        reasons = d.get("reasons")
        return cls(
            nodes=d.get("nodes", "10%"),
            schedule=schedule,
            duration=None if raw_duration is None else meta.Duration.parse(raw_duration, f"{path}.duration"),
            reasons=None if reasons is None else tuple(DisruptionReason(r) for r in reasons),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nodes": self.nodes}
        if self.schedule is not None:
            out["schedule"] = self.schedule
        if self.duration is not None:
            out["duration"] = self.duration.text
        if self.reasons is not None:
            out["reasons"] = [reason.value for reason in self.reasons]
        return out

    def applies_to(self, reason: DisruptionReason | str) -> bool:
        return self.reasons is None or reason in self.reasons

    def is_active(self, now: dt.datetime) -> bool:
        """True without a schedule; otherwise when a cron hit (UTC) lies in ``(now - duration, now]``.
        Raises `errors.ValidationError` when the schedule cannot be evaluated."""
        if self.schedule is None and self.duration is None:
            return True
        if self.schedule is None or self.duration is None or self.duration.value is None:
            raise errors.ValidationError("budget", "schedule and duration must be set together")
        problem = cron.problem(self.schedule)
        if problem is not None:
            raise errors.ValidationError("schedule", f"invalid cron {self.schedule!r}: {problem}")
        now = _utc(now)
        try:
            start = now - self.duration.value
            next_hit = croniter.croniter(self.schedule.replace("?", "*"), start).get_next(dt.datetime)
        except (croniter.CroniterError, ValueError, KeyError) as err:
            raise errors.ValidationError(
                "budget.schedule", f"cannot evaluate {self.schedule!r}: {err}"
            ) from err
        return bool(next_hit <= now)

    def allowed(self, total_nodes: int, now: dt.datetime) -> int:
        """How many of ``total_nodes`` this budget lets be disrupted at ``now`` (unlimited when inactive);
        a budget that cannot be evaluated fails closed (0)."""
        try:
            if not self.is_active(now):
                return UNLIMITED
        except errors.ValidationError:
            return 0
        return _scaled(self.nodes, total_nodes)


def _utc(now: dt.datetime) -> dt.datetime:
    return now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)


def _scaled(nodes: int | str, total: int) -> int:
    """``intstr.GetScaledValueFromIntOrPercent(nodes, total, roundUp=true)``; malformed → 0 (fail closed)."""
    if isinstance(nodes, int):
        return nodes
    text = nodes.strip()
    try:
        if text.endswith("%"):
            return -(-int(text[:-1]) * total // 100)
        return int(text)
    except ValueError:
        return 0


DEFAULT_BUDGETS: Final = (Budget(nodes="10%"),)


def allowed_disruptions(
    budgets: Sequence[Budget], reason: DisruptionReason | str, total_nodes: int, now: dt.datetime
) -> int:
    """How many of a pool's ``total_nodes`` may be disrupted for ``reason`` at ``now``: the minimum over
    active budgets that apply to the reason, :data:`UNLIMITED` when none does, 0 while any budget cannot
    be evaluated. Callers subtract the nodes already disrupting (``max(allowed - disrupting, 0)``)."""
    if problems(budgets, now):
        return 0
    allowed = UNLIMITED
    for budget in budgets:
        if budget.applies_to(reason):
            allowed = min(allowed, budget.allowed(total_nodes, now))
    return allowed


def problems(budgets: Sequence[Budget], now: dt.datetime) -> list[str]:
    """Why budgets cannot be evaluated, one message each naming ``spec.disruption.budgets[i]``."""
    out = []
    for index, budget in enumerate(budgets):
        try:
            budget.is_active(now)
        except errors.ValidationError as err:
            out.append(f"spec.disruption.budgets[{index}].{err}")
    return out
