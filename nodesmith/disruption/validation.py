"""Validation: is a command decided ``validation delay`` ago (15 s) still right? (spec §4.4
"Validation"; Karpenter's ``validation.go``).

The delay outlasts the pod-event dedupe (10 s), so churn that started after the decision is seen. The
reconciler re-evaluates candidates on a fresh snapshot and calls `validate`: every candidate must still
be one (else *churn*), still eligible for the method, within its pool's allowance (else *budget*), and
the re-simulation must still say the same thing (delete: no new node; replace: exactly one, offering
at least the command's instance types -- else *scheduling*). Emptiness keeps the subset that is still
empty and within budget. Fed by the command, fresh candidates, the fresh allowance and a fresh
`simulate.Simulate`; consumed by the reconciler, which acts on the returned command or reports the
rejection as a ``ConsolidationRejected`` event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from nodesmith.disruption import budgets, consolidation, emptiness
from nodesmith.disruption.candidates import Candidate
from nodesmith.disruption.commands import Command, Decision, Method, Rejection, RejectionReason
from nodesmith.disruption.simulate import Simulate

__all__ = ["validate"]


def _reject(command: Command, message: str) -> Rejection:
    first = command.candidates[0]
    return Rejection(first.name, RejectionReason.VALIDATION, message, first.nodeclaim.name, command.method)


def validate(
    command: Command,
    fresh: Sequence[Candidate],
    allowance: Mapping[str, int],
    simulate: Simulate,
    options: consolidation.Options = consolidation.DEFAULT_OPTIONS,
) -> Command | Rejection:
    """The command to execute now (possibly narrowed, for emptiness), or why it no longer holds."""
    by_key = {c.key: c for c in fresh}
    if command.method is Method.EMPTINESS:
        still = [by_key[c.key] for c in command.candidates if c.key in by_key]
        still = [c for c in still if emptiness.eligible(c) is None]
        kept, _ = budgets.take_within(still, allowance, command.method)
        if not kept:
            return _reject(command, "churn: no candidate is still empty and within budget")
        return attrs.evolve(command, candidates=tuple(kept), savings=sum(c.price or 0.0 for c in kept))
    if command.method is Method.DRIFT:
        return command
    current = []
    for c in command.candidates:
        now = by_key.get(c.key)
        if now is None:
            return _reject(command, f"churn: {c.name} is no longer a disruption candidate")
        why = consolidation.eligible(now)
        if why is not None:
            return _reject(command, f"churn: {c.name} {why.message}")
        current.append(now)
    per_pool: dict[str, int] = {}
    for c in current:
        per_pool[c.nodepool.name] = per_pool.get(c.nodepool.name, 0) + 1
    for pool, needed in per_pool.items():
        if allowance.get(pool, 0) < needed:
            return _reject(
                command, f"budget: NodePool {pool} now allows {allowance.get(pool, 0)}, needs {needed}"
            )
    again = consolidation.compute(current, simulate, command.method, options)
    if isinstance(again, Rejection):
        return _reject(command, f"scheduling: {again.message}")
    if again.decision is not command.decision:
        return _reject(command, f"scheduling: the simulation now says {again.decision.value}")
    if command.decision is Decision.REPLACE:
        wanted = {it.name for it in command.replacements[0].instance_types}
        offered = {it.name for it in again.replacements[0].instance_types}
        if not wanted <= offered:
            return _reject(command, "scheduling: the replacement's instance types changed")
    return attrs.evolve(command, candidates=tuple(current))
