"""How many nodes each NodePool may have disrupted right now, per reason (spec §4.3), plus nodesmith's
time-window budgets and the evaluated budgets shown in NodePool status.

Fed by the NodePools, the live state nodes (`candidates.NodeView`) and the orchestration queue's record
of disruptions started (`Started`); consumed by the methods (a command never exceeds its pool's
allowance), validation, the ``nodesmith_nodepools_allowed_disruptions`` gauge and the NodePool status
reconciler (`evaluated_budgets`).

Karpenter's rule (``BuildDisruptionBudgetMapping``): a pool's *total* counts its managed, initialized
nodes whose instance is not terminating; *disrupting* counts those of them not Ready or marked for
deletion; the allowance is ``max(min over active budgets for the reason (percent of total, rounded up)
− disrupting, 0)``.

Beyond Karpenter -- **time-window budgets** (kubernetes-sigs/karpenter#2909: "at most N% of nodes
disrupted in any 10 minutes"). Karpenter's budgets bound disruptions *in flight*, so once consolidation
got fast, churn went up: a node whose disruption finished frees its budget for the next loop. A window
budget bounds disruptions *started* within a sliding window. Declared on the NodePool (until the API
grows a field) as the annotation ``nodesmith.io/disruption-window-budgets``, a comma-separated list of
``<nodes>/<window>`` with an optional ``:<Reason>|<Reason>`` suffix, e.g. ``"20%/10m, 1/1m:Drifted"``.
The allowance is then also bounded by ``max(nodes(total) − started within the window, 0)``. A malformed
annotation fails closed (0), like a malformed budget.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, final

import attrs

from nodesmith.api import budgets as api_budgets
from nodesmith.api import conditions, duration, labels
from nodesmith.api.nodepool import NodePool
from nodesmith.disruption.candidates import Candidate, NodeView
from nodesmith.disruption.commands import Method, Rejection, RejectionReason

__all__ = [
    "WINDOW_BUDGETS_ANNOTATION",
    "PoolCounts",
    "Started",
    "WindowBudget",
    "allowed",
    "count",
    "evaluated_budgets",
    "mapping",
    "take_within",
    "window_budgets",
]

WINDOW_BUDGETS_ANNOTATION: Final = f"{labels.GROUP}/disruption-window-budgets"
REASONS: Final = tuple(api_budgets.DisruptionReason)


@final
@attrs.frozen(slots=True)
class PoolCounts:
    total: int = 0
    disrupting: int = 0


@final
@attrs.frozen(slots=True)
class Started:
    """One node whose disruption began at ``at`` (kept by the orchestration queue)."""

    nodepool: str
    reason: api_budgets.DisruptionReason
    at: dt.datetime


@final
@attrs.frozen(slots=True)
class WindowBudget:
    """At most ``nodes`` (count or percent of the pool, rounded up) disruptions started per ``window``."""

    nodes: int | str
    window: dt.timedelta
    reasons: tuple[api_budgets.DisruptionReason, ...] | None = None

    def applies_to(self, reason: api_budgets.DisruptionReason | str) -> bool:
        return self.reasons is None or reason in self.reasons

    def text(self) -> str:
        suffix = "" if self.reasons is None else ":" + "|".join(r.value for r in self.reasons)
        return f"{self.nodes}/{duration.format_duration(self.window)}{suffix}"


_FAIL_CLOSED: Final = WindowBudget(0, dt.timedelta(days=365))


def _node_ready(node: NodeView) -> bool:
    return node.node is not None and node.node.ready


def count(nodes: Iterable[NodeView]) -> dict[str, PoolCounts]:
    """Per NodePool: managed ∧ initialized ∧ instance not terminating; of those, NotReady or marked."""
    totals: dict[str, int] = {}
    disrupting: dict[str, int] = {}
    for node in nodes:
        claim = node.nodeclaim
        pool = node.nodepool
        if claim is None or pool is None or not node.initialized:
            continue
        if claim.is_true(conditions.ConditionType.INSTANCE_TERMINATING):
            continue
        totals[pool] = totals.get(pool, 0) + 1
        if node.marked_for_deletion or not _node_ready(node):
            disrupting[pool] = disrupting.get(pool, 0) + 1
    return {pool: PoolCounts(total, disrupting.get(pool, 0)) for pool, total in totals.items()}


def _scaled(nodes: int | str, total: int) -> int:
    if isinstance(nodes, int):
        return nodes
    text = nodes.strip()
    try:
        if text.endswith("%"):
            return -(-int(text[:-1]) * total // 100)
        return int(text)
    except ValueError:
        return 0


def window_budgets(pool: NodePool) -> tuple[WindowBudget, ...]:
    """The pool's time-window budgets from `WINDOW_BUDGETS_ANNOTATION` (malformed → one that allows 0)."""
    raw = pool.metadata.annotations.get(WINDOW_BUDGETS_ANNOTATION)
    if not raw:
        return ()
    out = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            spec, _, reasons = entry.partition(":")
            nodes_text, _, window_text = spec.partition("/")
            nodes: int | str = nodes_text.strip()
            assert isinstance(nodes, str)
            if not nodes.endswith("%"):
                nodes = int(nodes)
            elif not 0 <= int(nodes[:-1]) <= 100:
                raise ValueError(nodes)
            window = duration.parse_duration(window_text.strip())
            if window <= dt.timedelta(0):
                raise ValueError(window_text)
            parsed = (
                tuple(api_budgets.DisruptionReason(r.strip()) for r in reasons.split("|"))
                if reasons.strip()
                else None
            )
        except ValueError:
            return (_FAIL_CLOSED,)
        out.append(WindowBudget(nodes, window, parsed))
    return tuple(out)


def _started_within(history: Iterable[Started], pool: str, window: WindowBudget, now: dt.datetime) -> int:
    since = now - window.window
    return sum(
        1 for s in history if s.nodepool == pool and since < s.at <= now and window.applies_to(s.reason)
    )


def allowed(
    pool: NodePool,
    reason: api_budgets.DisruptionReason,
    counts: PoolCounts,
    now: dt.datetime,
    history: Sequence[Started] = (),
) -> int:
    """Disruptions ``pool`` may start now for ``reason``: Karpenter's allowance, then every window budget."""
    result = max(pool.allowed_disruptions(reason, counts.total, now) - counts.disrupting, 0)
    for window in window_budgets(pool):
        if window.applies_to(reason):
            budget = _scaled(window.nodes, counts.total) - _started_within(history, pool.name, window, now)
            result = min(result, max(budget, 0))
    return result


def mapping(
    pools: Iterable[NodePool],
    nodes: Iterable[NodeView],
    reason: api_budgets.DisruptionReason,
    now: dt.datetime,
    history: Sequence[Started] = (),
) -> dict[str, int]:
    """NodePool → allowed disruptions for ``reason``."""
    counts = count(nodes)
    return {
        pool.name: allowed(pool, reason, counts.get(pool.name, PoolCounts()), now, history) for pool in pools
    }


def evaluated_budgets(
    pool: NodePool, nodes: Iterable[NodeView], now: dt.datetime, history: Sequence[Started] = ()
) -> list[dict[str, Any]]:
    """What NodePool ``status.disruptionBudgets`` shows (kubernetes-sigs/karpenter#2353): per reason,
    the nodes counted, those disrupting, the allowance now, and which budgets are active."""
    counts = count(nodes).get(pool.name, PoolCounts())
    out = []
    for reason in REASONS:
        active = []
        for budget in pool.spec.disruption.budgets:
            if not budget.applies_to(reason):
                continue
            try:
                is_active = budget.is_active(now)
            except ValueError:
                is_active = True
            if is_active:
                active.append(
                    str(budget.nodes) if budget.schedule is None else f"{budget.nodes}@{budget.schedule}"
                )
        windows = [w for w in window_budgets(pool) if w.applies_to(reason)]
        out.append(
            {
                "reason": reason.value,
                "allowed": allowed(pool, reason, counts, now, history),
                "nodes": counts.total,
                "disrupting": counts.disrupting,
                "activeBudgets": active,
                "windowBudgets": [
                    {"budget": w.text(), "started": _started_within(history, pool.name, w, now)}
                    for w in windows
                ],
            }
        )
    return out


def take_within(
    candidates: Iterable[Candidate], allowance: Mapping[str, int], method: Method
) -> tuple[list[Candidate], list[Rejection]]:
    """Keep candidates in order while their pool's allowance lasts (decrementing it); the rest come back
    as `RejectionReason.BUDGET` rejections naming the pool, the reason and the allowance."""
    left = dict(allowance)
    kept: list[Candidate] = []
    rejected: list[Rejection] = []
    for candidate in candidates:
        pool = candidate.nodepool.name
        if left.get(pool, 0) > 0:
            left[pool] -= 1
            kept.append(candidate)
            continue
        rejected.append(
            Rejection(
                candidate.name,
                RejectionReason.BUDGET,
                f"budget of NodePool {pool} for {method.reason.value} is {allowance.get(pool, 0)}"
                + ("" if allowance.get(pool, 0) == 0 else " and is used up"),
                candidate.nodeclaim.name,
                method,
            )
        )
    return kept, rejected
