"""The consolidation simulator that prepares the cluster once per snapshot decides exactly what the plain
definition decides -- a fresh scheduling input without the candidates' machines, solved from scratch
(`simulation.rebuilding_simulator`) -- on seeded random clusters with the constraints whose counts the
prepared path takes back out: zone and hostname spread, required and preferred (anti-)affinity (bound
pods' inverse anti-affinity included), host ports, node selectors, a tainted NodePool, DaemonSet pods,
NodePool limits, pending pods, a machine being deleted, an uninitialized node and an in-flight NodeClaim."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from typing import Any

import attrs
import pytest

from nodesmith.api import labels
from nodesmith.disruption import budgets, candidates, multinode, pdb, singlenode
from nodesmith.kube import resources
from nodesmith.scheduling import pods, scheduler, topology, topologygroup
from nodesmith.state import ClusterState, simulation
from nodesmith.state.snapshot import Snapshot
from nodesmith.testing import factories, manifests

NOW = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)
ZONES = factories.FAKE_ZONES
NODE_ZONES = (*ZONES, "test-zone-4")
"""A zone no instance type offers: only the nodes in it make it a domain."""
TAINT = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
SIZES = {"fake-it-3": ("3900m", "8Gi"), "fake-it-5": ("5900m", "12Gi"), "fake-it-7": ("7900m", "16Gi")}


def _tier(app: str) -> str:
    return ("web", "db")[int(app.rsplit("-", 1)[1]) % 2]


def _constraints(rng: random.Random, app: str, other: str) -> dict[str, Any]:
    """One app's scheduling constraints, drawn at random; they select the app's pods or its whole tier
    (so several groups can select one pod)."""
    me = rng.choice(({"app": app}, {"tier": _tier(app)}))
    kind = rng.choice(
        ("none", "zone-spread", "host-spread", "anti", "affinity", "preferred-anti", "port", "selector")
    )
    if kind == "zone-spread":
        return {"spread": [factories.spread(labels.LABEL_ZONE, me, max_skew=rng.choice((1, 2)))]}
    if kind == "host-spread":
        return {"spread": [factories.spread(labels.LABEL_HOSTNAME, me)]}
    if kind == "anti":
        return {"anti_affinity": [factories.affinity_term(labels.LABEL_HOSTNAME, me)]}
    if kind == "affinity":
        return {"affinity": [factories.affinity_term(labels.LABEL_ZONE, {"app": other})]}
    if kind == "preferred-anti":
        return {"preferred_anti_affinity": [(50, factories.affinity_term(labels.LABEL_HOSTNAME, me))]}
    if kind == "port":
        return {"host_ports": [8080]}
    if kind == "selector":
        return {"node_selector": {labels.LABEL_ZONE: rng.choice(NODE_ZONES)}}
    return {}


def random_cluster(seed: int) -> Snapshot:
    rng = random.Random(seed)
    state = ClusterState(clock=lambda: NOW)
    for r in (resources.NODES, resources.NODECLAIMS, resources.PODS, resources.NODEPOOLS):
        state.on_synced(r)
    everything = manifests.nodepool_disruption(policy=None, budgets=[{"nodes": "100%"}])
    default = manifests.nodepool_manifest("default", disruption=everything)
    if rng.random() < 0.5:  # little room left under the limit: some pods find no place at all
        default["spec"]["limits"] = {"cpu": str(rng.randint(30, 70))}
    state.on_upsert(resources.NODEPOOLS, default)
    state.on_upsert(
        resources.NODEPOOLS, manifests.nodepool_manifest("tainted", taints=[TAINT], disruption=everything)
    )
    count = rng.randint(6, 12)
    names = [f"node-{i:02d}" for i in range(count)]
    in_flight = rng.random() < 0.5
    for i, name in enumerate(names):
        pool = "tainted" if rng.random() < 0.2 else "default"
        size = rng.choice(sorted(SIZES))
        node, claim = manifests.machine(
            name,
            node_labels=manifests.machine_labels(
                name,
                instance_type=size,
                zone=rng.choice(NODE_ZONES),
                nodepool=pool,
                capacity_type=rng.choice(("on-demand", "on-demand", "spot")),
                initialized=i != 1,
            ),
            allocatable={"cpu": SIZES[size][0], "memory": SIZES[size][1], "pods": "60"},
            provider_id=f"fake://{name}",
            created=None,
        )
        if pool == "tainted":
            node["spec"]["taints"] = [TAINT]
        if i == 2:
            node["metadata"]["deletionTimestamp"] = manifests.STAMP
        state.on_upsert(resources.NODECLAIMS, claim)
        if not (in_flight and i == count - 1):
            state.on_upsert(resources.NODES, node)
    apps = [f"app-{a}" for a in range(rng.randint(3, 6))]
    shapes = {app: _constraints(rng, app, rng.choice(apps)) for app in apps}
    for n in range(rng.randint(20, 60)):
        app = rng.choice(apps)
        pending = rng.random() < 0.1
        extra: dict[str, Any] = dict(shapes[app])
        if rng.random() < 0.3:
            extra["tolerations"] = [TOLERATION]
        pod = factories.pod(
            f"pod-{n:03d}",
            labels={"app": app, "tier": _tier(app)},
            cpu=f"{rng.choice((100, 250, 500, 1000, 1500))}m",
            memory=f"{rng.choice((128, 512, 1024, 2048))}Mi",
            owner_kind="ReplicaSet",
            node_name=None if pending else rng.choice(names[: count - 1] if in_flight else names),
            **extra,
        )
        state.on_upsert(resources.PODS, pod)
    # One pod alone in refusing a tier on its node: its inverse group lives and dies with it.
    loner = factories.pod(
        "loner",
        labels={"app": "loner"},
        cpu="100m",
        owner_kind="ReplicaSet",
        node_name=rng.choice(names[: count - 1]),
        anti_affinity=[factories.affinity_term(labels.LABEL_HOSTNAME, {"tier": "web"})],
    )
    state.on_upsert(resources.PODS, loner)
    for name in names[:4]:
        daemon = factories.daemonset_pod(name=f"ds-{name}", cpu="100m", memory="64Mi", node_name=name)
        state.on_upsert(resources.PODS, daemon)
    return state.snapshot()


def _setup(snapshot: Snapshot) -> tuple[dict[str, Any], list[candidates.Candidate], dict[str, int]]:
    types = {pool: factories.fake_instance_types(12) for pool in ("default", "tainted")}
    ctx = candidates.Context(
        now=NOW,
        nodepools=snapshot.nodepools,
        instance_types={pool: {it.name: it for it in its} for pool, its in types.items()},
        pdbs=pdb.Limits.of(snapshot.pdbs.values()),
    )
    found, _ = candidates.evaluate_all(snapshot.nodes, ctx)
    allowance = budgets.mapping(snapshot.nodepools.values(), snapshot.nodes, budgets.REASONS[0], NOW)
    return types, found, dict(allowance)


@pytest.mark.parametrize("seed", range(40))
def test_prepared_simulations_equal_rebuilt_ones_on_random_clusters(seed: int) -> None:
    snapshot = random_cluster(seed)
    types, found, _ = _setup(snapshot)
    assert found, "the generator always leaves candidates"
    prepared = simulation.consolidation_simulator(snapshot, types)
    plain = simulation.rebuilding_simulator(snapshot, types)
    rng = random.Random(seed)
    groups: list[list[candidates.Candidate]] = [[c] for c in found]
    groups += [rng.sample(found, k) for k in range(2, min(len(found), 5) + 1)]
    groups.append(list(found))
    # Every order twice over: the prepared simulator must not carry anything from one run to the next.
    for group in itertools.chain(groups, reversed(groups)):
        assert prepared(group) == plain(group), [c.name for c in group]


@pytest.mark.parametrize("seed", range(40))
def test_single_and_multi_node_consolidation_decide_the_same_on_random_clusters(seed: int) -> None:
    snapshot = random_cluster(seed)
    types, found, allowance = _setup(snapshot)
    for method in (singlenode, multinode):
        fast = method.compute(found, allowance, simulation.consolidation_simulator(snapshot, types))
        slow = method.compute(found, allowance, simulation.rebuilding_simulator(snapshot, types))
        assert fast.to_dict() == slow.to_dict()


def _state(
    topo: topology.Topology,
    batch: list[pods.SchedulingPod],
    probes: list[pods.SchedulingPod],
    *,
    early: bool,
) -> list[tuple[Any, ...]]:
    """What a run can observe of its topology: every group its pods own and every inverse group that
    selects them or any other pod (``probes``), in order, with their domains and counts, after two new
    NodeClaims' hostnames were registered and one of them taken back. ``early``: make every group before
    that (the scheduler makes most of them up front), else after (a run makes bound pods' groups lazily)."""
    if early:
        for pod in batch:
            topo.update(pod)
        for pod in probes:
            topo.inverse_selecting(pod)
    topo.register(labels.LABEL_HOSTNAME, "hostname-placeholder-0001")
    topo.register(labels.LABEL_HOSTNAME, "hostname-placeholder-0002")
    topo.unregister(labels.LABEL_HOSTNAME, "hostname-placeholder-0002")
    for pod in batch:
        topo.update(pod)

    def seen(g: topologygroup.TopologyGroup) -> tuple[Any, ...]:
        return (g.hash_key, dict(g.domains), frozenset(g.empty), frozenset(g.nonzero))

    return [
        (pod.ref.uid, [seen(g) for g in topo.owned(pod)], [seen(g) for g in topo.inverse_selecting(pod)])
        for pod in [*batch, *probes]
    ]


@pytest.mark.parametrize("seed", range(40))
def test_topology_counts_without_a_machine_equal_counts_made_without_it(seed: int) -> None:
    snapshot = random_cluster(seed)
    types, found, _ = _setup(snapshot)
    base = simulation.scheduling_input(snapshot, [], types)
    everything = scheduler.Prepared(base)
    pending = simulation.pending_pods(snapshot)
    probes = [everything.parse(p.body) for node in snapshot.nodes for p in node.pods]
    active = [n for n in snapshot.nodes if not n.marked_for_deletion and not n.deleting]
    views = {node.key: view.name for node, view in zip(active, base.existing_nodes, strict=True)}
    for candidate in found:
        name = views[candidate.key]
        # Half the machine's pods only: the others leave with it (bound pods' groups may vanish).
        batch = [everything.parse(p.body) for p in [*pending, *candidate.reschedulable_pods[1::2]]]
        uids = [p.ref.uid for p in batch]
        without = scheduler.Prepared(
            attrs.evolve(base, existing_nodes=[v for v in base.existing_nodes if v.name != name])
        )
        expected = _state(topology.Topology(without.topology, (), uids), batch, probes, early=True)
        actual = _state(topology.Topology(everything.topology, {name}, uids), batch, probes, early=False)
        assert actual == expected, name
