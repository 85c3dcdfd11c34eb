"""Single-node consolidation: the first candidate that can be deleted, or replaced by one cheaper node,
on its own (spec §4.4 "SingleNodeConsolidation"; Karpenter's ``singlenodeconsolidation.go``).

Eligible candidates are sorted by savings ratio, then interleaved round-robin across NodePools so one
big pool cannot starve the others; a pool with no ``Underutilized`` allowance left is skipped (each of
its candidates gets a budget rejection). Every candidate tried and refused yields a structured
rejection (would not fit, not cheaper, 1→N, spot-to-spot, Balanced score), which the reconciler turns
into an ``Unconsolidatable`` event. A deadline (3 minutes in the reconciler) stops the scan. Fed by
candidates, the allowance, a `simulate.Simulate` and `consolidation.Options`; consumed by the reconciler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from nodesmith.disruption import balanced, budgets, consolidation
from nodesmith.disruption.candidates import Candidate
from nodesmith.disruption.commands import Command, Method, Outcome, Rejection
from nodesmith.disruption.simulate import Simulate

__all__ = ["compute", "interleave"]

METHOD: Final = Method.SINGLE_NODE


def interleave(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Round-robin across NodePools, keeping each pool's order (pools in order of first appearance)."""
    by_pool: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_pool.setdefault(c.nodepool.name, []).append(c)
    queues = list(by_pool.values())
    out: list[Candidate] = []
    index = 0
    while any(queues):
        for queue in queues:
            if len(queue) > index:
                out.append(queue[index])
        index += 1
        if all(len(q) <= index for q in queues):
            break
    return out


def compute(
    candidates: Sequence[Candidate],
    allowance: Mapping[str, int],
    simulate: Simulate,
    options: consolidation.Options = consolidation.DEFAULT_OPTIONS,
    deadline: Callable[[], bool] | None = None,
) -> Outcome:
    rejections: list[Rejection] = []
    eligible: list[Candidate] = []
    for c in candidates:
        why = consolidation.eligible(c)
        if why is None:
            eligible.append(c)
        else:
            rejections.append(why)
    eligible.sort(key=lambda c: (-c.savings_ratio, c.name))
    totals = balanced.pool_totals(candidates)
    for candidate in interleave(eligible):
        if allowance.get(candidate.nodepool.name, 0) <= 0:
            rejections += budgets.take_within([candidate], allowance, METHOD)[1]
            continue
        if deadline is not None and deadline():
            return Outcome(METHOD, None, tuple(rejections), timed_out=True, budgets=dict(allowance))
        verdict = consolidation.compute([candidate], simulate, METHOD, options, totals)
        if isinstance(verdict, Command):
            return Outcome(METHOD, verdict, tuple(rejections), budgets=dict(allowance))
        rejections.append(verdict)
    return Outcome(METHOD, None, tuple(rejections), budgets=dict(allowance))
