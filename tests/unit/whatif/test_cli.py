"""``nodesmith simulate`` and ``nodesmith explain`` end to end through click, on snapshot files."""

from __future__ import annotations

import json
import pathlib

import yaml
from click.testing import CliRunner

from nodesmith import cli
from nodesmith.whatif import snapshotfile
from tests.unit.whatif import factories as f


def write_snapshot(tmp_path: pathlib.Path) -> pathlib.Path:
    b = f.Builder()
    b.pool("default", families=["c"])
    b.machine("c1", "c-4")
    b.machine("c2", "c-4")
    b.pod("c1", "3")
    b.pod("c2", "100m", name="precious", annotations={"nodesmith.io/do-not-disrupt": "true"})
    b.pod(None, "1", name="stuck", node_selector={f.FAMILY: "gpu"})
    path = tmp_path / "snap.yaml"
    path.write_text(snapshotfile.dumps(b.file()))
    return path


def write_pool(tmp_path: pathlib.Path, manifest: dict[str, object]) -> pathlib.Path:
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def test_simulate_text_and_json(tmp_path: pathlib.Path) -> None:
    snap = write_snapshot(tmp_path)
    pool = write_pool(tmp_path, f.nodepool("default", families=["m"]))
    runner = CliRunner()

    text = runner.invoke(cli.main, ["simulate", "--snapshot", str(snap), "--nodepool", str(pool)])
    as_json = runner.invoke(
        cli.main, ["simulate", "--snapshot", str(snap), "--nodepool", str(pool), "--json"]
    )

    assert text.exit_code == 0, text.output
    assert "Drift: 2 node(s) the change replaces" in text.output
    assert "pending default/stuck" in text.output
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    assert sorted(d["node"] for d in report["drifted"]) == ["c1", "c2"]
    assert report["after"]["launches"][0]["cheapest"]["instanceType"].startswith("m-")


def test_simulate_refuses_an_invalid_nodepool_without_a_traceback(tmp_path: pathlib.Path) -> None:
    snap = write_snapshot(tmp_path)
    pool = write_pool(tmp_path, f.nodepool("default", policy="WhenBored"))
    result = CliRunner().invoke(cli.main, ["simulate", "--snapshot", str(snap), "--nodepool", str(pool)])

    assert result.exit_code == 1
    assert "invalid change: NodePool 'default'" in result.output
    assert "consolidationPolicy" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_simulate_needs_a_snapshot_source(tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(cli.main, ["simulate"])

    assert result.exit_code == 2
    assert "--snapshot FILE, or --provider NAME" in result.output


def test_explain_pod_text_and_json(tmp_path: pathlib.Path) -> None:
    snap = write_snapshot(tmp_path)
    runner = CliRunner()

    text = runner.invoke(cli.main, ["explain", "pod", "default/stuck", "--snapshot", str(snap)])
    as_json = runner.invoke(cli.main, ["explain", "pod", "default/stuck", "--snapshot", str(snap), "--json"])
    missing = runner.invoke(cli.main, ["explain", "pod", "default/ghost", "--snapshot", str(snap)])

    assert text.exit_code == 0, text.output
    assert "pod default/stuck: pending" in text.output
    assert "nodepool default: requirements: incompatible with nodepool 'default'" in text.output
    assert json.loads(as_json.output)["pending"]["reasons"][0]["keys"] == [f.FAMILY]
    assert missing.exit_code == 1
    assert "pod default/ghost is not in the snapshot" in missing.output


def test_explain_node_text_and_json(tmp_path: pathlib.Path) -> None:
    snap = write_snapshot(tmp_path)
    runner = CliRunner()

    text = runner.invoke(cli.main, ["explain", "node", "c2", "--snapshot", str(snap)])
    as_json = runner.invoke(cli.main, ["explain", "node", "claim-c2", "--snapshot", str(snap), "--json"])

    assert text.exit_code == 0, text.output
    assert "node c2: not-a-candidate" in text.output
    result = json.loads(as_json.output)
    assert result["node"] == "c2"
    assert result["candidate"] is False
    assert [b["reason"] for b in result["blockers"]] == ["do-not-disrupt"]
