"""`nodesmith simulate`'s pure core: NodePool changes on a snapshot, BEFORE vs AFTER."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nodesmith import errors
from nodesmith.api import nodepool as api_nodepool
from nodesmith.cloudprovider import manager
from nodesmith.whatif import render, simulate, snapshotfile
from tests.unit.whatif import factories as f

TAINT = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}


def c_cluster() -> f.Builder:
    """Pool ``default`` (family c) with two c-4 machines; pool ``other`` (tainted) with one."""
    b = f.Builder()
    b.pool("default", families=["c"])
    b.pool("other", taints=[TAINT])
    b.machine("c1", "c-4")
    b.machine("c2", "c-4")
    b.machine("o1", "c-4", pool="other")
    b.pod("c1", "3")
    b.pod("c2", "3")
    return b


def test_moving_a_pool_from_family_c_to_m_drifts_exactly_its_c_nodes_and_relaunches_on_m() -> None:
    report = simulate.run(c_cluster().file(), simulate.Change((f.nodepool("default", families=["m"]),)))

    assert {(d.node, d.reason, d.new) for d in report.drifted} == {
        ("c1", "RequirementsDrifted", True),
        ("c2", "RequirementsDrifted", True),
    }
    assert report.after.launches
    assert all(launch.nodepool == "default" for launch in report.after.launches)
    assert all(
        launch.instance_type and launch.instance_type.startswith("m-") for launch in report.after.launches
    )
    assert report.after.pending == ()
    assert report.drift_budgets == {"default": 1}  # the default budget, 10% of 2 nodes, rounded up


def test_cost_before_and_after_use_the_snapshot_offerings() -> None:
    report = simulate.run(c_cluster().file(), simulate.Change((f.nodepool("default", families=["m"]),)))

    assert report.cost.current == pytest.approx(3 * 0.16)
    assert report.cost.before == pytest.approx(report.cost.current)  # nothing pending before
    after_launches = sum(launch.price or 0 for launch in report.after.launches)
    assert report.cost.after == pytest.approx(0.16 + after_launches)
    assert report.cost.delta == pytest.approx(report.cost.after - report.cost.before)


def test_a_template_taint_drifts_by_hash_and_an_unchanged_pool_drifts_nothing() -> None:
    file = c_cluster().file()
    tainted = simulate.run(file, simulate.Change((f.nodepool("default", families=["c"], taints=[TAINT]),)))
    same = simulate.run(file, simulate.Change((f.nodepool("default", families=["c"]),)))

    assert {d.reason for d in tainted.drifted} == {"NodePoolDrifted"}
    assert same.drifted == ()
    assert same.cost.after == pytest.approx(same.cost.before)


def test_a_do_not_disrupt_pod_is_reported_as_blocking_its_drifted_node() -> None:
    b = c_cluster()
    b.pod("c1", "100m", name="precious", annotations={"nodesmith.io/do-not-disrupt": "true"})
    report = simulate.run(b.file(), simulate.Change((f.nodepool("default", families=["m"]),)))

    blocked = {d.node: d.blocked_by for d in report.drifted}
    assert blocked["c2"] == ()
    assert any("default/precious" in why for why in blocked["c1"])


def test_pending_pods_before_and_after_carry_the_engines_reasons() -> None:
    b = c_cluster()
    b.pod(None, "1", name="wants-m", node_selector={f.FAMILY: "m"})
    report = simulate.run(b.file(), simulate.Change((f.nodepool("default", families=["c", "m"]),)))

    (before,) = report.before.pending
    assert before.pod == "default/wants-m"
    assert {r["nodepool"] for r in before.reasons} == {"default", "other"}
    assert any(f.FAMILY in r["keys"] for r in before.reasons if r["nodepool"] == "default")
    assert report.after.pending == ()
    assert any("default/wants-m" in launch.pods for launch in report.after.launches)
    assert report.drifted == ()  # widening the requirement drifts nothing


def test_deleting_a_pool_replaces_its_nodes_elsewhere() -> None:
    b = c_cluster()
    b.pod("o1", "1", name="tolerant")
    report = simulate.run(b.file(), simulate.Change(deleted=("other",)))

    assert [(d.node, d.reason) for d in report.drifted] == [("o1", simulate.DELETED_REASON)]
    # default has no taint, so the pod of the deleted pool's node finds a place there
    assert report.after.pending == ()
    assert report.cost.after < report.cost.before


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ({**f.nodepool("default"), "spec": {"template": {"spec": {}}}}, "nodeClassRef"),
        (f.nodepool("default", policy="WhenBored"), "consolidationPolicy"),
        (
            f.nodepool(
                "default", requirements=[{"key": "nodesmith.io/nodepool", "operator": "In", "values": ["x"]}]
            ),
            "restricted",
        ),
        ({**f.nodepool("default"), "apiVersion": "karpenter.sh/v1"}, "nodesmith convert"),
    ],
)
def test_an_invalid_nodepool_is_refused_with_the_reason(manifest: dict[str, object], expected: str) -> None:
    file = c_cluster().file()
    with pytest.raises(errors.ValidationError) as caught:
        simulate.run(file, simulate.Change((manifest,)))
    assert expected in str(caught.value)


def test_deleting_an_unknown_pool_is_refused() -> None:
    assert simulate.validate(c_cluster().file(), simulate.Change(deleted=("ghost",))) == [
        "NodePool 'ghost' to delete is not in the snapshot"
    ]


def test_an_added_pool_borrows_instance_types_of_its_nodeclass_and_says_so() -> None:
    b = f.Builder()
    b.pool("default", families=["c"])
    b.pod(None, "1", name="wants-m", node_selector={f.FAMILY: "m"})
    report = simulate.run(b.file(), simulate.Change((f.nodepool("memory", families=["m"]),)))

    assert report.added == ("memory",)
    assert [launch.nodepool for launch in report.after.launches] == ["memory"]
    assert any("uses the instance types the snapshot has for default" in n for n in report.notes)


def test_the_text_report_names_drifted_nodes_and_the_cost_delta() -> None:
    report = simulate.run(c_cluster().file(), simulate.Change((f.nodepool("default", families=["m"]),)))
    text = "\n".join(render.report(report))

    assert "changed default" in text
    assert "Drift: 2 node(s) the change replaces" in text
    assert "Cost: now $0.4800/h" in text


def _with_class(pool: dict[str, Any], node_class: str) -> dict[str, Any]:
    changed = copy.deepcopy(pool)
    changed["spec"]["template"]["spec"]["nodeClassRef"]["name"] = node_class
    return changed


def test_a_pool_moved_to_another_nodeclass_does_not_keep_the_old_ones_types() -> None:
    moved = _with_class(f.nodepool("default", families=["c"]), "elsewhere")
    types, notes = simulate.instance_types_after(c_cluster().file(), simulate.Change((moved,)))
    assert "default" not in types
    assert notes == ["no instance types known for NodePool default (NodeClass 'elsewhere')"]
    # an unchanged NodeClass keeps the snapshot's types, with nothing to say
    same, notes = simulate.instance_types_after(
        c_cluster().file(), simulate.Change((f.nodepool("default", families=["m"]),))
    )
    assert same["default"] == f.CATALOGUE
    assert notes == []


def test_what_the_provider_offers_a_changed_pool_is_used_after_and_only_after() -> None:
    m_only = tuple(it for it in f.CATALOGUE if it.name.startswith("m-"))
    moved = _with_class(f.nodepool("default", families=["c", "m"]), "m-class")
    file = c_cluster().file()
    report = simulate.run(file, simulate.Change((moved,), instance_types={"default": m_only}))
    types, _ = simulate.instance_types_after(
        file, simulate.Change((moved,), instance_types={"default": m_only})
    )
    assert types["default"] == m_only
    assert file.instance_types["default"] == f.CATALOGUE  # BEFORE: the snapshot as it is
    assert {d.node for d in report.drifted} == {"c1", "c2"}  # a new NodeClass drifts the pool's nodes
    assert report.after.launches
    assert all(
        launch.instance_type and launch.instance_type.startswith("m-") for launch in report.after.launches
    )


AWS_FAMILY = "aws.nodesmith.io/instance-family"


def test_a_nodepool_on_a_plugin_label_gets_the_daemons_answer_offline() -> None:
    """The daemon validates with the loaded plugins' well-known labels; a snapshot records them, so the
    offline replay gives the same answer without loading any plugin."""
    daemon_labels = manager.Plugins.load().well_known_labels()
    pool = f.nodepool("default", requirements=[{"key": AWS_FAMILY, "operator": "In", "values": ["c"]}])
    daemon_answer = api_nodepool.runtime_errors(api_nodepool.NodePool.from_dict(pool), daemon_labels)
    recorded = snapshotfile.SnapshotFile.from_dict(
        {**c_cluster().document(), "wellKnownLabels": sorted(daemon_labels)}
    )

    assert simulate.validate(recorded, simulate.Change((pool,))) == daemon_answer == []
    # A snapshot that recorded no plugin labels (an older file) refuses it, naming the label.
    assert any(
        AWS_FAMILY in p and "restricted" in p
        for p in simulate.validate(c_cluster().file(), simulate.Change((pool,)))
    )


def test_recorded_well_known_labels_reach_the_scheduling_engine() -> None:
    """A pod selecting a provider label its NodePool does not mention is schedulable exactly when the
    label is well-known: the value in the snapshot decides, not the plugins installed here."""
    b = f.Builder()
    b.pool("default")
    b.pod(None, "1", name="wants-m", node_selector={f.FAMILY: "m"})
    without = simulate.run(b.file(), simulate.Change())
    with_label = simulate.run(
        snapshotfile.SnapshotFile.from_dict({**b.document(), "wellKnownLabels": [f.FAMILY]}),
        simulate.Change(),
    )

    assert [p.pod for p in without.before.pending] == ["default/wants-m"]
    assert without.before.launches == ()
    assert with_label.before.pending == ()
    assert [(launch.instance_type or "").startswith("m-") for launch in with_label.before.launches] == [True]


def test_well_known_labels_survive_a_snapshot_round_trip() -> None:
    file = snapshotfile.SnapshotFile.from_dict({**c_cluster().document(), "wellKnownLabels": [AWS_FAMILY]})
    again = snapshotfile.loads(snapshotfile.dumps(file))
    assert AWS_FAMILY in again.well_known_labels
    assert again.well_known_labels == file.well_known_labels
