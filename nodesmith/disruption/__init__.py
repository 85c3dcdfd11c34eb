"""Disruption decisions: no I/O, no async, no clock, no logging side effects: values in, values out.

Given the cluster's machines (anything shaped like `candidates.NodeView`), the NodePools, their instance
types, the PDBs, the time, and a function that simulates scheduling without some machines
(`simulate.Simulate`), decide which machines to disrupt and why -- with Karpenter's semantics
(shared/spec/karpenter-core.md §3-4) -- and say why every other machine was left alone.

Front door::

    from nodesmith import disruption
    found, rejected = disruption.candidates.evaluate_all(nodes, disruption.candidates.Context(...))
    outcome = disruption.emptiness.compute(found, allowance)

Modules, one concept each: ``pods`` (what a pod costs to move, do-not-disrupt), ``pdb`` (which pods a
PodDisruptionBudget holds), ``candidates`` (eligibility, price, disruption cost), ``budgets`` (allowed
disruptions per NodePool and reason, time-window budgets, evaluated budgets for status), ``commands``
(`Command`, `Rejection`, `Outcome` records), ``simulate`` (the scheduling seam), ``emptiness``,
``drift``, ``consolidation`` (shared rules and price filters), ``multinode``, ``singlenode``,
``balanced`` (savings-vs-disruption score), ``validation`` (the 15 s re-check), ``marking`` (Drifted,
Consolidatable and expiration verdicts per NodeClaim), ``repair`` (node repair: unhealthy conditions
and the pool-wide circuit breaker), ``static`` (static NodePools: NodeClaims to add or remove).
"""

from __future__ import annotations

from nodesmith.disruption import (
    balanced,
    budgets,
    candidates,
    commands,
    consolidation,
    drift,
    emptiness,
    marking,
    multinode,
    pdb,
    pods,
    repair,
    simulate,
    singlenode,
    static,
    validation,
)
from nodesmith.disruption.candidates import Candidate, Context, DisruptionClass, NodeView
from nodesmith.disruption.commands import (
    Command,
    Decision,
    Method,
    Outcome,
    Rejection,
    RejectionReason,
    Replacement,
)
from nodesmith.disruption.simulate import Simulate, SimulatedClaim, SimulationResult

__all__ = [
    "Candidate",
    "Command",
    "Context",
    "Decision",
    "DisruptionClass",
    "Method",
    "NodeView",
    "Outcome",
    "Rejection",
    "RejectionReason",
    "Replacement",
    "Simulate",
    "SimulatedClaim",
    "SimulationResult",
    "balanced",
    "budgets",
    "candidates",
    "commands",
    "consolidation",
    "drift",
    "emptiness",
    "marking",
    "multinode",
    "pdb",
    "pods",
    "repair",
    "simulate",
    "singlenode",
    "static",
    "validation",
]
