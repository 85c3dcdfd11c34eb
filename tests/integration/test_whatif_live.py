"""``nodesmith simulate --dump`` against the real control plane with the kwok provider: the snapshot
taken live (read-only lists, the provider's instance types) loads back, and a simulation on it says the
pending pod would get a NodeClaim of the test's NodePool."""

from __future__ import annotations

import pathlib

import anyio
import pytest
from click.testing import CliRunner

from nodesmith import cli
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.whatif import simulate, snapshotfile
from nodesmith_kwok import plugin as kwok_plugin
from nodesmith_kwok import provider as kwok_provider
from tests.integration import lifecycle_harness as h

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def pending_pod(name: str, pool: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeSelector": {"whatif/pool": pool},
            "containers": [
                {"name": "c", "image": "registry.k8s.io/pause:3.9", "resources": {"requests": {"cpu": "1"}}}
            ],
        },
    }


async def _unschedulable(kube: KubeClient, name: str) -> bool:
    pod = await kube.get(resources.PODS, name, "default")
    return any(
        c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


async def test_a_live_dump_loads_and_simulates_a_nodeclaim_for_the_pending_pod(
    kube: KubeClient, kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    node_class = await h.make_node_class(kube, h.unique("whatif"))
    pool, pod = h.unique("whatif"), h.unique("pending")
    await kube.create(
        resources.NODEPOOLS,
        {
            "metadata": {"name": pool},
            "spec": {
                "template": {
                    "metadata": {"labels": {"whatif/pool": pool}},
                    "spec": {
                        "nodeClassRef": {"group": h.KWOK_GROUP, "kind": h.KWOK_KIND, "name": node_class},
                        "requirements": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
                    },
                }
            },
        },
    )
    try:
        await kube.create(resources.PODS, pending_pod(pod, pool))
        await h.eventually(lambda: _unschedulable(kube, pod), "pod marked Unschedulable")
        dump = tmp_path / "snapshot.yaml"
        args = ["simulate", "--provider", "kwok", "--kubeconfig", str(kubeconfig), "--dump", str(dump)]
        result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli.main, args))
        assert result.exit_code == 0, result.output

        loaded = snapshotfile.loads(dump.read_text(), source=str(dump))
        assert pool in loaded.nodepool_objects()
        assert set(kwok_plugin.INSTANCE_LABELS) <= loaded.well_known_labels  # recorded for offline replays
        assert any(it.name == "c-1x-amd64-linux" for it in loaded.instance_types[pool])
        report = simulate.run(loaded, simulate.Change())
        launches = [launch for launch in report.before.launches if f"default/{pod}" in launch.pods]
        assert [launch.nodepool for launch in launches] == [pool]
        assert launches[0].price is not None
        assert all(p.pod != f"default/{pod}" for p in report.before.pending)
    finally:
        await h.delete_quietly(kube, resources.PODS, pod, "default")
        await h.delete_quietly(kube, resources.NODEPOOLS, pool)
        await h.delete_quietly(kube, kwok_provider.NODE_CLASSES, node_class)
