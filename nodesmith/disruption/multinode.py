"""Multi-node consolidation: the largest prefix of the best candidates that can go together, found by
binary search (spec §4.4 "MultiNodeConsolidation"; Karpenter's ``multinodeconsolidation.go``).

Candidates eligible for consolidation are sorted by savings ratio (price per unit of disruption, highest
first), cut to each NodePool's ``Underutilized`` allowance and to at most 100, then the prefix length is
binary-searched from 2 to all of them with `consolidation.compute`: a prefix that works (delete, or
replace with one cheaper node) moves the lower bound up, one that does not moves the upper bound down.
A replace must also be cheaper than the cheapest candidate of the same instance type it would launch
(else deleting the others and keeping that one disrupts less). The last working prefix wins; a deadline
(1 minute in the reconciler) returns the best found so far. Fed by candidates, the allowance, a
`simulate.Simulate` and `consolidation.Options`; consumed by the disruption reconciler (then validated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

import attrs

from nodesmith.disruption import balanced, budgets, consolidation
from nodesmith.disruption.candidates import Candidate
from nodesmith.disruption.commands import Command, Method, Outcome
from nodesmith.disruption.simulate import Simulate

__all__ = ["MAX_CANDIDATES", "compute"]

METHOD: Final = Method.MULTI_NODE
MAX_CANDIDATES: Final = 100


def _same_type_ok(command: Command) -> Command | None:
    """Karpenter's ``filterOutSameInstanceType``: keep only replacement types cheaper than the cheapest
    candidate already running that type; ``None`` if none is left."""
    if not command.replacements:
        return command
    replacement = command.replacements[0]
    running: dict[str, float] = {}
    for c in command.candidates:
        if c.instance_type is not None and c.price is not None:
            name = c.instance_type.name
            running[name] = min(running.get(name, c.price), c.price)
    limit = min((running[it.name] for it in replacement.instance_types if it.name in running), default=None)
    if limit is None:
        return command
    kept = consolidation.filter_cheaper(replacement.instance_types, replacement.requirements, limit)
    if not kept:
        return None
    narrowed = attrs.evolve(replacement, instance_types=tuple(kept))
    return attrs.evolve(command, replacements=(narrowed,))


def compute(
    candidates: Sequence[Candidate],
    allowance: Mapping[str, int],
    simulate: Simulate,
    options: consolidation.Options = consolidation.DEFAULT_OPTIONS,
    deadline: Callable[[], bool] | None = None,
) -> Outcome:
    eligible = [c for c in candidates if consolidation.eligible(c) is None]
    eligible.sort(key=lambda c: (-c.savings_ratio, c.name))
    kept, _ = budgets.take_within(eligible, allowance, METHOD)
    kept = kept[:MAX_CANDIDATES]
    totals = balanced.pool_totals(candidates)
    if len(kept) < 2:
        return Outcome(METHOD, None, (), budgets=dict(allowance))
    best: Command | None = None
    low, high = 1, len(kept) - 1
    timed_out = False
    while low <= high:
        if deadline is not None and deadline():
            timed_out = True
            break
        middle = (low + high) // 2
        verdict = consolidation.compute(kept[: middle + 1], simulate, METHOD, options, totals)
        command = _same_type_ok(verdict) if isinstance(verdict, Command) else None
        if command is not None:
            best = command
            low = middle + 1
        else:
            high = middle - 1
    return Outcome(METHOD, best, (), timed_out=timed_out, budgets=dict(allowance))
