"""ClusterState behaviour on dict fixtures: the providerID join, pods and requests per node, the synced
gate, nominations, deletion marks, consolidation state and snapshots."""

from __future__ import annotations

import datetime as dt

import pytest

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.state import ClusterState
from nodesmith.state.changes import Change, PodMove
from nodesmith.testing.clock import FakeClock

from . import factories as f


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> ClusterState:
    s = ClusterState(clock=clock.now)
    s.on_synced(resources.NODES)
    s.on_synced(resources.NODECLAIMS)
    return s


def test_node_and_nodeclaim_join_by_provider_id_in_either_order(state: ClusterState) -> None:
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-1", provider_id="kwok://a"))
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a", nodepool="default"))
    state.on_upsert(resources.NODES, f.node("b", provider_id="kwok://b", nodepool="default"))
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-2", provider_id="kwok://b"))

    nodes = {n.key: n for n in state.snapshot().nodes}

    assert set(nodes) == {"kwok://a", "kwok://b"}
    assert nodes["kwok://a"].name == "a"
    assert nodes["kwok://a"].nodeclaim is not None
    assert nodes["kwok://a"].nodeclaim.name == "nc-1"
    assert nodes["kwok://b"].nodeclaim is not None
    assert nodes["kwok://b"].node is not None


def test_inflight_nodeclaim_without_node_counts_as_capacity_with_its_own_view(state: ClusterState) -> None:
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-1", provider_id="kwok://a", cpu="8"))

    (node,) = state.snapshot().nodes

    assert node.node is None
    assert node.allocatable["cpu"] == 8000
    assert node.labels[labels.LABEL_NODEPOOL] == "default"
    assert [t.key for t in node.taints] == ["dedicated"]
    assert not node.registered
    assert not node.initialized


def test_unregistered_node_answers_with_its_nodeclaims_labels(state: ClusterState) -> None:
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-1", provider_id="kwok://a", cpu="8"))
    state.on_upsert(
        resources.NODES,
        f.node("a", provider_id="kwok://a", nodepool="default", registered=False, initialized=False),
    )

    (node,) = state.snapshot().nodes

    assert node.labels[labels.LABEL_INSTANCE_TYPE] == "m.large"
    assert node.allocatable["cpu"] == 8000


def test_unmanaged_node_is_registered_and_initialized_and_keyed_by_name_without_provider_id(
    state: ClusterState,
) -> None:
    state.on_upsert(resources.NODES, f.node("plain"))

    (node,) = state.snapshot().nodes

    assert node.key == "node/plain"
    assert node.registered
    assert node.initialized
    assert not node.managed


def test_deleting_node_keeps_state_node_while_nodeclaim_remains(state: ClusterState) -> None:
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-1", provider_id="kwok://a"))
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a", nodepool="default"))

    state.on_delete(resources.NODES, f.node("a", provider_id="kwok://a"))
    assert [n.node for n in state.snapshot().nodes] == [None]

    state.on_delete(resources.NODECLAIMS, f.nodeclaim("nc-1"))
    assert state.snapshot().nodes == ()


def test_pods_are_indexed_by_node_with_request_sums(state: ClusterState) -> None:
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    state.on_upsert(resources.PODS, f.pod("p1", node_name="a", cpu="500m"))
    state.on_upsert(resources.PODS, f.pod("p2", node_name="a", cpu="1"))
    state.on_upsert(resources.PODS, f.pod("pending"))

    snap = state.snapshot()
    (node,) = snap.nodes

    assert {p.name for p in node.pods} == {"p1", "p2"}
    assert node.pod_requests["cpu"] == 1500
    assert node.pod_requests["pods"] == 2000
    assert node.available()["cpu"] == 2500
    assert [p.name for p in snap.unbound_pods] == ["pending"]


def test_pod_moves_and_terminal_pods_stop_counting(state: ClusterState) -> None:
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    state.on_upsert(resources.PODS, f.pod("p1", node_name="a", cpu="2"))
    state.on_upsert(resources.PODS, f.pod("p1", node_name="a", cpu="2", phase="Succeeded"))

    (node,) = state.snapshot().nodes
    assert node.pods == ()
    assert dict(node.pod_requests) == {}

    state.on_delete(resources.PODS, f.pod("p1"))
    assert state.snapshot().pods == {}


def test_the_change_feed_names_what_changed_and_where_workload_pods_moved(state: ClusterState) -> None:
    heard: list[Change] = []
    state.subscribe(heard.append)
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    state.on_upsert(resources.PODS, f.pod("p1"))  # pending: no node touched
    state.on_upsert(resources.PODS, f.pod("p1", node_name="a"))  # bound: arrived on a
    state.on_upsert(resources.PODS, f.pod("p1", node_name="a"))  # same fingerprint: no pod event
    state.on_upsert(resources.PODS, f.pod("p1", node_name="a", phase="Succeeded"))  # finished on a
    state.on_upsert(resources.PODS, f.pod("ds", node_name="a", daemonset="agent"))  # DaemonSet: none
    state.on_delete(resources.PODS, f.pod("p1"))  # gone from a
    assert heard == [
        Change(resources.NODES, "a"),
        Change(resources.PODS, "default/p1"),
        Change(resources.PODS, "default/p1", pod_move=PodMove(frozenset({"a"}), arrived=True)),
        Change(resources.PODS, "default/p1"),
        Change(resources.PODS, "default/p1", pod_move=PodMove(frozenset({"a"}), arrived=False)),
        Change(resources.PODS, "default/ds"),
        Change(resources.PODS, "default/p1", deleted=True, pod_move=PodMove(frozenset({"a"}), arrived=False)),
    ]


def test_pod_bound_before_its_node_appears_is_counted_once_the_node_arrives(state: ClusterState) -> None:
    state.on_upsert(resources.PODS, f.pod("p1", node_name="a", cpu="2"))
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))

    (node,) = state.snapshot().nodes
    assert node.pod_requests["cpu"] == 2000


def test_daemonset_requests_and_newest_daemonset_pod(state: ClusterState) -> None:
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    state.on_upsert(
        resources.PODS,
        f.pod("ds-old", node_name="a", daemonset="agent", cpu="100m", created="2025-01-01T00:00:00Z"),
    )
    state.on_upsert(
        resources.PODS, f.pod("ds-new", daemonset="agent", cpu="200m", created="2025-01-02T00:00:00Z")
    )
    state.on_upsert(resources.PODS, f.pod("app", node_name="a", cpu="1"))

    snap = state.snapshot()
    (node,) = snap.nodes

    assert node.daemonset_requests["cpu"] == 100
    assert node.pod_requests["cpu"] == 1100
    assert snap.daemonset_pods["default/agent"].name == "ds-new"

    state.on_delete(resources.PODS, f.pod("ds-new"))
    assert state.snapshot().daemonset_pods["default/agent"].name == "ds-old"


def test_inverse_anti_affinity_index_holds_bound_pods_with_required_terms(state: ClusterState) -> None:
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    state.on_upsert(resources.PODS, f.pod("anti", node_name="a", anti_affinity_key=labels.LABEL_HOSTNAME))
    state.on_upsert(resources.PODS, f.pod("plain", node_name="a"))
    state.on_upsert(resources.PODS, f.pod("unbound", anti_affinity_key=labels.LABEL_HOSTNAME))

    anti = state.snapshot().anti_affinity_pods
    assert [(p.name, n) for p, n in anti] == [("anti", "a")]

    state.on_delete(resources.PODS, f.pod("anti"))
    assert state.snapshot().anti_affinity_pods == ()


def test_synced_waits_for_both_informers(clock: FakeClock) -> None:
    state = ClusterState(clock=clock.now)
    assert not state.synced()
    state.on_synced(resources.NODES)
    assert not state.synced()
    state.on_synced(resources.NODECLAIMS)
    assert state.synced()


def test_created_nodeclaim_blocks_synced_until_it_has_a_provider_id(state: ClusterState) -> None:
    state.update_nodeclaim_created(f.nodeclaim("nc-1"))

    assert not state.synced()
    assert state.unlaunched_nodeclaims() == ["nc-1"]
    assert state.snapshot().nodes == ()
    assert [c.name for c in state.snapshot().unlaunched_nodeclaims] == ["nc-1"]

    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-1", provider_id="kwok://a"))

    assert state.synced()
    assert [n.key for n in state.snapshot().nodes] == ["kwok://a"]


def test_forgetting_a_failed_create_unblocks_synced(state: ClusterState) -> None:
    state.update_nodeclaim_created(f.nodeclaim("nc-1"))
    state.delete_nodeclaim("nc-1")
    assert state.synced()


def test_managed_node_without_provider_id_holds_synced(state: ClusterState) -> None:
    state.on_upsert(resources.NODES, f.node("a", nodepool="default"))
    assert not state.synced()
    assert state.snapshot().nodes == ()

    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a", nodepool="default"))
    assert state.synced()


def test_marks_and_nominations_survive_launch_rekeying(state: ClusterState, clock: FakeClock) -> None:
    state.update_nodeclaim_created(f.nodeclaim("nc-1"))
    key = state.key_for_nodeclaim("nc-1")
    assert key == "nodeclaim/nc-1"
    state.nominate(key, clock.now() + dt.timedelta(seconds=20))
    state.mark_for_deletion(key)

    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-1", provider_id="kwok://a"))

    node = state.state_node("kwok://a")
    assert node is not None
    assert node.marked_for_deletion
    assert node.nominated(clock.now())
    clock.step(21)
    assert not node.nominated(clock.now())


def test_nomination_only_extends(state: ClusterState, clock: FakeClock) -> None:
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    state.nominate("kwok://a", clock.now() + dt.timedelta(seconds=30))
    state.nominate("kwok://a", clock.now() + dt.timedelta(seconds=10))
    node = state.state_node("kwok://a")
    assert node is not None
    assert node.nominated_until == clock.now() + dt.timedelta(seconds=30)


def test_marked_for_deletion_also_when_deleting_and_excluded_from_active(state: ClusterState) -> None:
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    state.on_upsert(resources.NODES, f.node("b", provider_id="kwok://b", deleting=True))
    state.on_upsert(resources.NODES, f.node("c", provider_id="kwok://c"))
    state.mark_for_deletion("kwok://c")

    snap = state.snapshot()

    assert [n.key for n in snap.active_nodes()] == ["kwok://a"]
    state.unmark_for_deletion("kwok://c")
    assert {n.key for n in state.snapshot().active_nodes()} == {"kwok://a", "kwok://c"}


def test_consolidation_state_moves_on_relevant_changes_and_refreshes_every_five_minutes(
    state: ClusterState, clock: FakeClock
) -> None:
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    first = state.consolidation_state()
    clock.step(10)
    assert state.consolidation_state() == first

    state.on_upsert(resources.PODS, f.pod("p", node_name="a"))
    assert state.consolidation_state() == clock.now()

    marked_at = clock.now()
    clock.step(60)
    state.on_upsert(resources.PODS, f.pod("pending"))  # unbound: irrelevant to consolidation
    assert state.consolidation_state() == marked_at

    clock.step(300)
    assert state.consolidation_state() == clock.now()


def test_snapshot_is_immutable_and_isolated_from_later_changes(state: ClusterState) -> None:
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    state.on_upsert(resources.PODS, f.pod("p1", node_name="a"))
    snap = state.snapshot()

    state.on_upsert(resources.PODS, f.pod("p2", node_name="a"))
    state.on_upsert(resources.NODES, f.node("b", provider_id="kwok://b"))

    assert len(snap.nodes) == 1
    assert len(snap.nodes[0].pods) == 1
    assert set(snap.pods) == {"default/p1"}
    with pytest.raises(TypeError):
        snap.pods["x"] = {}  # type: ignore[index]  # the write the snapshot must refuse
    with pytest.raises(TypeError):
        snap.nodes[0].pod_requests["cpu"] = 1  # type: ignore[index]  # likewise
    assert len(state.snapshot().nodes) == 2


def test_malformed_objects_are_skipped_and_the_last_good_version_kept(state: ClusterState) -> None:
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a", cpu="4"))
    bad = f.node("a", provider_id="kwok://a")
    bad["status"]["allocatable"]["cpu"] = "lots"
    state.on_upsert(resources.NODES, bad)
    state.on_upsert(resources.NODECLAIMS, {"metadata": {"name": "broken"}, "spec": "nope"})
    state.on_upsert(resources.PODS, f.pod("weird", node_name="a", cpu="-x-"))
    state.on_upsert(resources.NODEPOOLS, {"metadata": {"name": "np"}, "spec": {"template": 3}})

    (node,) = state.snapshot().nodes
    assert node.allocatable["cpu"] == 4000
    assert state.malformed(resources.NODES) == {"a"}
    assert state.malformed(resources.NODECLAIMS) == {"broken"}
    assert state.malformed(resources.PODS) == {"default/weird"}
    assert state.snapshot().nodepools == {}
    assert state.synced()


def test_nodepools_are_parsed_and_other_kinds_stored_by_key(state: ClusterState) -> None:
    state.on_upsert(resources.NODEPOOLS, f.nodepool("default"))
    pdb = {"metadata": {"name": "pdb", "namespace": "ns"}, "spec": {"maxUnavailable": 0}}
    state.on_upsert(resources.PDBS, pdb)
    va = {"metadata": {"name": "va"}, "spec": {"nodeName": "a"}}
    state.on_upsert(resources.VOLUMEATTACHMENTS, va)

    snap = state.snapshot()

    assert snap.nodepools["default"].name == "default"
    assert snap.pdbs == {"ns/pdb": pdb}
    assert snap.volume_attachments_on("a") == (va,)
    state.on_delete(resources.PDBS, pdb)
    assert state.snapshot().pdbs == {}


def test_nodepool_resources_sum_capacity_of_active_machines(state: ClusterState) -> None:
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-1", provider_id="kwok://a", cpu="4"))
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-2", provider_id="kwok://b", cpu="8"))
    state.on_upsert(resources.NODECLAIMS, f.nodeclaim("nc-3", provider_id="kwok://c", cpu="8", deleting=True))

    totals = state.snapshot().nodepool_resources("default")

    assert totals["cpu"] == 12000
    assert totals["nodes"] == 2000


def test_provider_id_change_moves_the_node(state: ClusterState) -> None:
    state.on_upsert(resources.NODES, f.node("a"))
    state.on_upsert(resources.NODES, f.node("a", provider_id="kwok://a"))
    assert [n.key for n in state.snapshot().nodes] == ["kwok://a"]


def test_subscribers_hear_every_applied_event_and_a_failing_one_is_skipped(state: ClusterState) -> None:
    heard: list[tuple[str, str, bool]] = []

    def broken(change: Change) -> None:
        raise RuntimeError("subscriber bug")

    state.subscribe(broken)
    state.subscribe(lambda change: heard.append((change.resource.kind, change.key, change.deleted)))
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": {}, "status": {}}
    state.on_upsert(resources.PODS, pod)
    state.on_delete(resources.PODS, pod)
    assert heard == [("Pod", "ns/p", False), ("Pod", "ns/p", True)]
