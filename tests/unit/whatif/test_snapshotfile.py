"""The simulation snapshot file: round trips, refusals, and the replay into a `ClusterState`."""

from __future__ import annotations

import json

import pytest

from nodesmith import errors
from nodesmith.whatif import snapshotfile
from tests.unit.whatif import factories as f


def sample() -> f.Builder:
    b = f.Builder()
    b.pool("default", families=["c"])
    b.machine("n1", "c-4")
    b.pod("n1", "1", name="web")
    b.pod(None, "1", name="waiting")
    b.pdb("guard", "web", 1)
    return b


@pytest.mark.parametrize("as_json", [False, True])
def test_a_snapshot_survives_dump_and_load(as_json: bool) -> None:
    file = sample().file()
    text = snapshotfile.dumps(file, as_json=as_json)
    if as_json:
        json.loads(text)
    back = snapshotfile.loads(text)

    assert back == file
    assert back.to_dict() == file.to_dict()


def test_the_replayed_state_joins_machines_and_sees_pending_pods() -> None:
    state, notes = sample().file().state()
    snap = state.snapshot()

    assert notes == []
    assert [(n.name, n.nodeclaim.name if n.nodeclaim else None) for n in snap.nodes] == [("n1", "claim-n1")]
    assert [p.name for p in snap.nodes[0].pods] == ["web"]
    assert [p.name for p in snap.unbound_pods] == ["waiting"]
    assert list(snap.pdbs) == ["default/guard"]
    assert snap.taken_at.isoformat() == "2025-01-01T01:00:00+00:00"


def test_a_malformed_nodepool_is_left_out_with_a_note() -> None:
    b = sample()
    b.objects.append({**f.nodepool("broken"), "spec": {}})
    state, notes = b.file().state()

    assert "broken" not in state.snapshot().nodepools
    assert notes == ["NodePool broken is malformed and was left out"]


def test_the_files_pods_are_parsed_into_views_where_the_state_is_built() -> None:
    b = sample()
    b.pod("n1", "not-a-quantity", name="broken")
    state, notes = b.file().state()
    snap = state.snapshot()

    assert notes == ["Pod default/broken is malformed and was left out"]
    assert sorted(snap.pods) == ["default/waiting", "default/web"]
    web = snap.pods["default/web"]
    assert (web.node_name, web.counts_on, web.requests["cpu"]) == ("n1", "n1", 1000)
    assert snap.nodes[0].pods == (web,)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("kind: Pod\napiVersion: v1\n", "<root>"),
        ("[1, 2", "snapshot"),
        ("apiVersion: nodesmith.io/v1\nkind: SimulationSnapshot\nobjects: []\n", "takenAt"),
        (
            "apiVersion: nodesmith.io/v1\nkind: SimulationSnapshot\ntakenAt: 2025-01-01T00:00:00Z\n"
            "objects: [{kind: Node, apiVersion: v1, metadata: {}}]\n",
            "objects[0]",
        ),
        (
            "apiVersion: nodesmith.io/v1\nkind: SimulationSnapshot\ntakenAt: 2025-01-01T00:00:00Z\n"
            "instanceTypes: {default: [{name: a, capacity: {cpu: many}}]}\n",
            "instanceTypes.default[0]",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        snapshotfile.loads(text)
    assert field in caught.value.field


def test_a_replacement_nodepool_keeps_the_old_status_while_its_nodeclass_is_the_same() -> None:
    b = sample()
    b.pools["default"]["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "X"}]}
    file = b.file().with_nodepools([f.nodepool("default", families=["m"])])

    (pool,) = file.nodepool_objects().values()
    assert pool["status"]["conditions"][0]["status"] == "False"
    assert pool["spec"]["template"]["spec"]["requirements"][0]["values"] == ["m"]
