"""What if? ``nodesmith simulate`` and ``nodesmith explain``: the daemon's decisions replayed on a snapshot.

A snapshot (`snapshotfile`: objects plus the instance types the provider offered each NodePool) is fed
into a real `nodesmith.state.ClusterState`; `replay` runs the provisioner's scheduling on it, `simulate`
applies NodePool changes and reports BEFORE vs AFTER (launches, pending pods, drift, budgets, cost),
`explain` says why a pod is pending and what disruption makes of a node, and `render` prints them;
`recorded` prints what a running daemon actually decided (its ``/decisions``).
All of that is pure -- no I/O, no clock -- and reuses `nodesmith.scheduling`, `nodesmith.disruption` and
`nodesmith.state.simulation` unchanged. Only `live` talks to a cluster and a provider (read-only lists),
to take a snapshot; the CLI reads and writes files.
"""

from __future__ import annotations

from nodesmith.whatif import explain, recorded, render, replay, simulate, snapshotfile

__all__ = ["explain", "recorded", "render", "replay", "simulate", "snapshotfile"]
