"""Consolidation decision time on a synthetic cluster: N nodes, M pods, through the real `ClusterState`,
the real simulation adapter and the pure disruption methods (no API, no clock).

Not collected by pytest (no ``test_`` prefix). Run:

    uv run python tests/bench/bench_consolidation.py                    # 500 nodes, 5,000 pods
    uv run python tests/bench/bench_consolidation.py --nodes 50 --pods 500

The cluster: one NodePool over Karpenter's ``fake.InstanceTypes(20)`` catalogue; every node a
``fake-it-7`` (8 vCPU, 16 GiB) in one of three zones, on-demand, initialized and consolidatable; pods of
100m-700m CPU and 128-768 MiB (seeded RNG, so runs compare), about half the nodes' CPU used -- plenty
to consolidate. Printed per stage: snapshot, candidates (+ budgets), one simulation, emptiness,
multi-node (binary search over the 100 best), single-node to its first command, and a single-node scan
over every candidate of a cluster where nothing can move (pods sized so each node is ~95% full and no pod fits another node's free room), which
is Karpenter's worst case (sigs#2972: ~3 vCPU at 500 nodes).

Each stage prints wall and CPU seconds (the CPU figure is what the process itself spent, so it stays
comparable on a shared machine). The simulation adapter prepares the cluster once per snapshot
(``scheduler.Prepared``) on its first simulation, so "one simulation" includes that preparation; "first
command from the snapshot" is a fresh adapter + single-node to its first command, what one disruption
pass pays before it can act; the "yardstick" is one solve of all the cluster's pods as if pending, the
scale the issue set for a whole scan. The plain path that rebuilds the cluster for
every candidate (``simulation.rebuilding_simulator``, the definition the prepared path is tested
against) is timed on the first ``--reference`` candidates of the full scan for a before/after figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import time
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from nodesmith.disruption import budgets, candidates, emptiness, multinode, pdb, singlenode
from nodesmith.kube import resources
from nodesmith.scheduling import scheduler
from nodesmith.state import ClusterState, simulation
from nodesmith.testing import factories, manifests

T = TypeVar("T")
NOW = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)
ZONES = factories.FAKE_ZONES
TYPE = "fake-it-7"


def nodepool() -> dict[str, Any]:
    return manifests.nodepool_manifest(
        node_class="d",
        disruption=manifests.nodepool_disruption(policy=None, budgets=[{"nodes": "100%"}]),
    )


def machine(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    name = f"node-{i:05d}"
    return manifests.machine(
        name,
        node_labels=manifests.machine_labels(name, instance_type=TYPE, zone=ZONES[i % 3]),
        allocatable={"cpu": "7900m", "memory": "16Gi", "pods": "80"},
        provider_id=f"fake://{name}",
        claim_uid=f"uid-c-{name}",
        created=None,
        node_class="d",
    )


def pod(i: int, node: str, cpu_m: int, mem_mi: int) -> dict[str, Any]:
    return manifests.app_pod(
        f"pod-{i:06d}",
        node_name=node,
        cpu=f"{cpu_m}m",
        memory=f"{mem_mi}Mi",
        app=f"app-{i % 50}",
        uid=f"uid-pod-{i}",
    )


def build(nodes: int, pods: int, *, full: bool, seed: int = 42) -> ClusterState:
    rng = random.Random(seed)
    state = ClusterState(clock=lambda: NOW)
    for r in (resources.NODES, resources.NODECLAIMS, resources.PODS, resources.NODEPOOLS):
        state.on_synced(r)
    state.on_upsert(resources.NODEPOOLS, nodepool())
    for i in range(nodes):
        node, claim = machine(i)
        state.on_upsert(resources.NODECLAIMS, claim)
        state.on_upsert(resources.NODES, node)
    per_node = max(pods // nodes, 1)
    for i in range(pods):
        host = f"node-{(i // per_node) % nodes:05d}"
        # full: 95% of 7.9 CPU used by pods bigger than any node's free room, so nothing can move
        cpu = 7500 // per_node if full else rng.choice((100, 200, 300, 400, 500, 600, 700))
        state.on_upsert(resources.PODS, pod(i, host, cpu, rng.choice((128, 256, 512, 768))))
    return state


def timed(label: str, fn: Callable[[], T], cpu_into: dict[str, float] | None = None, key: str = "") -> T:
    """Runs ``fn`` and prints its wall and CPU seconds; the CPU seconds also go to ``cpu_into[key]``."""
    started, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"  {label:<50} {wall:8.3f} s wall {cpu:8.3f} s cpu")
    if cpu_into is not None:
        cpu_into[key or label] = cpu
    return result


def run(nodes: int, pods: int, *, full: bool, reference: int = 0) -> dict[str, Any]:
    """One cluster's stages, printed; returns the decisions for the smoke test and, under ``"cpu"``, the
    CPU seconds of the headline stages (``first``, ``scan``, ``yardstick``) for ``figures``."""
    state = build(nodes, pods, full=full)
    cpu: dict[str, float] = {}
    types = {"default": factories.fake_instance_types(20)}
    snapshot = timed("snapshot", state.snapshot)
    ctx = candidates.Context(
        now=NOW,
        nodepools=snapshot.nodepools,
        instance_types={"default": {it.name: it for it in types["default"]}},
        pdbs=pdb.Limits.of(snapshot.pdbs.values()),
    )
    found, _ = timed("candidates", lambda: candidates.evaluate_all(snapshot.nodes, ctx))
    facts: dict[str, Any] = {"candidates": len(found), "cpu": cpu}
    allowance = timed(
        "budgets",
        lambda: budgets.mapping(snapshot.nodepools.values(), snapshot.nodes, budgets.REASONS[0], NOW),
    )
    simulate = timed("simulation adapter", lambda: simulation.consolidation_simulator(snapshot, types))
    timed("one simulation (1 candidate; prepares the cluster)", lambda: simulate(found[:1]))
    timed("emptiness", lambda: emptiness.compute(found, allowance))
    if not full:
        outcome = timed(
            "multi-node (binary search, <=100)", lambda: multinode.compute(found, allowance, simulate)
        )
        command = outcome.command
        print(f"    -> {command.describe() if command else 'nothing'}")
        facts["multi"] = command
        outcome = timed(
            "single-node (to first command)", lambda: singlenode.compute(found, allowance, simulate)
        )
        command = outcome.command
        print(f"    -> {command.describe() if command else 'nothing'}")
        facts["single"] = command

        def cold() -> object:
            fresh = simulation.consolidation_simulator(snapshot, types)
            return singlenode.compute(found, allowance, fresh).command

        timed("first command from the snapshot (adapter + single)", cold, cpu, "first")
    else:
        outcome = timed(
            f"single-node (scan of all {len(found)}, none movable)",
            lambda: singlenode.compute(found, allowance, simulate),
            cpu,
            "scan",
        )
        print(f"    -> {len(outcome.rejections)} rejections, command: {outcome.command is not None}")
        facts["single"] = outcome
        everything = [p.body for node in snapshot.nodes for p in node.pods]
        solo = attrs.evolve(simulation.scheduling_input(snapshot, everything, types), existing_nodes=[])
        timed(
            f"yardstick: solve all {len(everything)} pods as pending",
            lambda: scheduler.solve(solo),
            cpu,
            "yardstick",
        )
        if reference:
            some = found[:reference]
            plain = simulation.rebuilding_simulator(snapshot, types)
            started = time.process_time()
            slow = singlenode.compute(some, allowance, plain)
            per_plain = (time.process_time() - started) / len(some)
            started = time.process_time()
            fast = singlenode.compute(some, allowance, simulate)
            per_prepared = (time.process_time() - started) / len(some)
            same = slow.to_dict() == fast.to_dict()
            print(
                f"  per candidate, first {len(some)}: rebuilt each time {per_plain * 1000:8.2f} ms cpu, "
                f"prepared once {per_prepared * 1000:8.2f} ms cpu ({per_plain / per_prepared:.0f}x); "
                f"same decisions: {same}"
            )
            print(
                f"    -> the rebuilding path would scan all {len(found)} in ~{per_plain * len(found):.0f} s cpu"
            )
    return facts


def figures(nodes: int, pods: int) -> dict[str, float]:
    """CPU seconds of the first command (half-used cluster), the full scan and its yardstick (full
    cluster), as ``main`` measures them without the rebuilding reference (what ``bench_all.py`` calls)."""
    first = run(nodes, pods, full=False)["cpu"]["first"]
    full = run(nodes, pods, full=True)
    return {"first": first, **full["cpu"], "candidates": full["candidates"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument(
        "--reference", type=int, default=20, help="candidates to time on the rebuilding path (0: none)"
    )
    args = parser.parse_args()
    print(f"consolidation: {args.nodes} nodes, {args.pods} pods, 20 instance types")
    print("half-used cluster (consolidation possible):")
    run(args.nodes, args.pods, full=False)
    print("full cluster (worst case: every candidate simulated, none movable):")
    run(args.nodes, args.pods, full=True, reference=args.reference)
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
