"""Runs the control-plane benchmarks (cold sync and idle cost, provisioning against the floor) at a tiny
size on the session's real control plane and checks facts, never time."""

from __future__ import annotations

import math
import pathlib

import bench_all
import bench_cluster  # a sibling script: pytest puts this folder on sys.path
import bench_provisioning
import pytest

from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import cluster, etcdseed

pytestmark = [pytest.mark.bench, pytest.mark.anyio]


async def test_cluster_bench_syncs_the_daemon_over_created_nodes_and_pods(
    control_plane: cluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    out = await bench_cluster.run(control_plane, 3, 12, 0.5, tmp_path / "nodesmith.log")

    assert out["sync_cpu_s"] > 0
    assert out["synced_rss_mib"] > 0
    assert out["idle_cpu_s_per_min"] >= 0
    assert out["peak_rss_mib"] >= out["idle_rss_mib"] > 0
    assert not math.isnan(out["idle_rss_mib"])


async def test_cluster_bench_seeded_through_etcd_lists_every_object_through_the_api_server(
    control_plane: cluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    if control_plane.cluster is None:
        pytest.fail("--seed etcd needs the session's own control plane, not NODESMITH_TEST_KUBECONFIG")
    kube = await KubeClient.connect(control_plane.kubeconfig)
    out = await bench_cluster.run(control_plane, 4, 20, 0.5, tmp_path / "nodesmith.log", seed="etcd")

    assert out["seed_s"] > 0
    assert out["sync_cpu_s"] > 0
    # The bench table's cold-sync rows read every figure they print from this run (none missing or NaN).
    table = bench_all.Bench(bench_all.QUICK)
    bench_all.coldsync_rows(table, 4, 20, 0.5, out)
    assert len(table.table) == 2
    assert not any("nan" in cell for row in table.table for cell in row), table.table
    assert table.table[0][1].startswith(f"{out['sync_wall_s']:.1f} s ({out['sync_cpu_s']:.1f} CPU s)")
    assert "kube-apiserver" in table.table[1][1]
    pods = (await kube.list(resources.PODS, bench_cluster.NAMESPACE)).items
    seeded = [p for p in pods if p["metadata"]["name"].startswith("app-")]
    assert len(seeded) >= 20
    # Stamped copies are distinct objects that decode intact: own uid, their node, Running as kwok left pod 0.
    assert len({p["metadata"]["uid"] for p in seeded}) == len(seeded)
    # (pods 1-11 may be the API-created ones of the test above, which seeding keeps as they are)
    one = next(p for p in seeded if p["metadata"]["name"] == "app-13-000013")
    assert one["spec"]["nodeName"] == "bench-node-00001"
    assert one["status"]["phase"] == "Running"
    assert one["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    # Seeding only creates: a copy of an existing pod on another node is refused, and the pod is unchanged
    # (kube-scheduler exits when a pod it placed changes node).
    moved = {**one, "metadata": {**one["metadata"]}, "spec": {**one["spec"], "nodeName": "bench-node-00002"}}
    moved["metadata"].pop("resourceVersion")
    with pytest.raises(etcdseed.SeedError, match="exists already"):
        await etcdseed.put_all(etcdseed.etcd_url(control_plane.cluster.directory), "pods", [moved])
    again = await kube.get(resources.PODS, "app-13-000013", bench_cluster.NAMESPACE)
    assert again["spec"]["nodeName"] == "bench-node-00001"
    assert again["metadata"]["uid"] == one["metadata"]["uid"]
    node = await kube.get(resources.NODES, "bench-node-00003")
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-0"
    assert node["spec"]["providerID"] == "kwok://bench-node-00003"


async def test_provisioning_bench_runs_pods_on_the_floor_and_on_launched_nodes(
    control_plane: cluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    floor = await bench_provisioning.one_run(control_plane.kubeconfig, 4, True, tmp_path / "floor.log")
    launched = await bench_provisioning.one_run(control_plane.kubeconfig, 4, False, tmp_path / "ns.log")

    assert floor["nodes"] == bench_provisioning.floor_node_count(4)
    assert not math.isnan(floor["timeline"]["last pod Running"])
    assert launched["nodes"] >= 1
    assert launched["batches"] >= 1
    assert launched["solve_seconds"] > 0
    assert not math.isnan(launched["timeline"]["first NodeClaim"])
    assert launched["timeline"]["last pod Running"] >= launched["timeline"]["first NodeClaim"]


async def test_provisioning_bench_one_per_node_shape_needs_a_node_per_pod(
    control_plane: cluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    shape = "one-per-node"
    floor = await bench_provisioning.one_run(
        control_plane.kubeconfig, 3, True, tmp_path / "floor.log", shape=shape
    )
    launched = await bench_provisioning.one_run(
        control_plane.kubeconfig, 3, False, tmp_path / "ns.log", shape=shape
    )

    assert floor["nodes"] == bench_provisioning.floor_node_count(3, shape) == 3
    assert not math.isnan(floor["timeline"]["last pod Running"])
    assert launched["nodes"] == 3  # no two pods share a node
    assert not math.isnan(launched["timeline"]["last Registered"])
    assert set(launched["claim_steps"]) >= {"created->launched", "node created->registered"}
    assert launched["timeline"]["last pod Running"] >= launched["timeline"]["last NodeClaim"]


async def test_the_launch_floor_makes_its_nodes_after_the_clock_starts(
    control_plane: cluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    shape = "one-per-node"
    launch = await bench_provisioning.one_run(
        control_plane.kubeconfig, 3, True, tmp_path / "launch.log", shape=shape, nodes_at_start=True
    )

    assert launch["nodes"] == 3
    # Its nodes were created once the Deployments were (second resolution), and no NodeClaim was written.
    assert launch["timeline"]["last Node created"] >= 0
    assert math.isnan(launch["timeline"]["first NodeClaim"])
    assert launch["timeline"]["last pod Running"] >= launch["timeline"]["last Node Ready"]


def test_provisioning_bench_counts_writes_and_conflicts_from_the_api_servers_metrics() -> None:
    text = "\n".join(
        [
            'apiserver_request_total{code="200",resource="nodes",verb="PATCH"} 7',
            'apiserver_request_total{code="409",resource="nodes",verb="PATCH"} 3',
            'apiserver_request_total{code="201",resource="nodeclaims",verb="POST"} 2',
            'apiserver_request_total{code="409",resource="nodeclaims",subresource="status",verb="PUT"} 1',
            'apiserver_request_total{code="200",resource="nodes",verb="GET"} 50',
        ]
    )
    writes = bench_provisioning.api_writes(text)
    assert writes == {"nodes PATCH": 10, "nodeclaims POST": 2, "nodeclaims/status PUT": 1}
    assert bench_provisioning.api_conflicts(text) == {"nodes": 3, "nodeclaims/status": 1}
