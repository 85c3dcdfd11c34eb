"""Provisioning benchmark on the real local control plane: N pending pods → all Running.

Karpenter's performance suite shape ("basic scale-out"): half the pods request 0.9 CPU / 3.1 GiB, half
3.5 CPU / 28 GiB. nodesmith runs as a real ``nodesmith run --provider kwok`` process. Prints wall time from
the Deployments' creation to every pod Running, the nodes launched, their hourly price, and nodesmith's peak
RSS. Karpenter's own e2e bound for 1,000 pods is < 2 minutes and < 260 MB.

    uv run python tests/bench/bench_provisioning.py [--pods 1000]

Never asserts a time; it only prints figures.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import anyio

from nodesmith.api import labels
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.runtime import crds
from nodesmith.testing import cluster, e2e

POOL = "bench"
NAMESPACE = "bench"


async def run(kubeconfig: pathlib.Path, pods: int, log: pathlib.Path) -> None:
    kube = await KubeClient.connect(kubeconfig)
    await crds.install(kube, crds.all_crds())
    await e2e.create_namespace(kube, NAMESPACE)
    await kube.create(e2e.KWOK_NODE_CLASSES, {"metadata": {"name": POOL}, "spec": {}})
    await kube.create(resources.NODEPOOLS, e2e.nodepool(POOL, POOL))
    daemon = e2e.DaemonProcess(kubeconfig, log).start()
    try:
        await daemon.wait_ready()
        small, large = pods - pods // 2, pods // 2
        started = time.monotonic()
        await kube.create(
            e2e.DEPLOYMENTS,
            e2e.deployment("small", NAMESPACE, small, pool=POOL, cpu="900m", memory="3174Mi"),
            NAMESPACE,
        )
        await kube.create(
            e2e.DEPLOYMENTS,
            e2e.deployment("large", NAMESPACE, large, pool=POOL, cpu="3500m", memory="28Gi"),
            NAMESPACE,
        )

        async def all_running() -> bool:
            listed = (await kube.list(resources.PODS, NAMESPACE)).items
            running = sum(1 for p in listed if p.get("status", {}).get("phase") == "Running")
            return len(listed) == pods and running == pods

        await e2e.eventually(all_running, 900, f"{pods} pods Running", interval=1.0)
        elapsed = time.monotonic() - started
        nodes = (await kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={POOL}")).items
        price = sum(float(n["metadata"]["labels"].get("eks-node-viewer/instance-price", 0)) for n in nodes)
        types: dict[str, int] = {}
        for node in nodes:
            kind = node["metadata"]["labels"][labels.LABEL_INSTANCE_TYPE]
            types[kind] = types.get(kind, 0) + 1
        print(f"pods={pods} wall_seconds={elapsed:.1f} nodes={len(nodes)} hourly_price={price:.2f}")
        print(f"nodesmith_peak_rss_mib={daemon.peak_rss_mib():.0f}")
        print("instance types: " + ", ".join(f"{k}×{v}" for k, v in sorted(types.items())))
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=1000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        cluster.start_local_cluster(f"bench-{int(time.time())}") as plane,
    ):
        anyio.run(run, plane.kubeconfig, args.pods, pathlib.Path(tmp) / "nodesmith.log")


if __name__ == "__main__":
    main()
