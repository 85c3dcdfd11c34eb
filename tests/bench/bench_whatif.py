"""``nodesmith simulate`` and ``nodesmith explain`` on a synthetic snapshot: N nodes, M bound pods and P
pending ones, through the snapshot file format, the real `ClusterState` and the pure what-if core.

Not collected by pytest (no ``test_`` prefix; `test_bench_smoke.py` runs it small and checks facts). Run:

    uv run python tests/bench/bench_whatif.py                       # 500 nodes, 5,000 pods, 200 pending
    uv run python tests/bench/bench_whatif.py --nodes 50 --pods 500 --pending 20

The cluster is the consolidation benchmark's half-used one (`bench_consolidation.machine`/`pod`, one
NodePool over Karpenter's ``fake.InstanceTypes(20)``), plus pending pods of 500m CPU / 512 MiB. The change
simulated: the NodePool's instance types narrowed to ``fake-it-8`` .. ``fake-it-19``, which drifts every
node (all ``fake-it-7``). Printed per stage: writing and reading the snapshot (YAML), the simulate
report (BEFORE and AFTER provisioning, drift, cost), explaining one pending pod and one node.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import time
from collections.abc import Callable
from typing import Any, TypeVar

import bench_consolidation as consolidation_bench  # a sibling script (its folder is on sys.path)

from nodesmith.api import labels
from nodesmith.testing import factories, manifests
from nodesmith.whatif import explain, simulate, snapshotfile

T = TypeVar("T")
NOW = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)


def snapshot(nodes: int, pods: int, pending: int, *, seed: int = 42) -> snapshotfile.SnapshotFile:
    """The synthetic cluster as a snapshot file."""
    rng = random.Random(seed)
    objects: list[dict[str, Any]] = [consolidation_bench.nodepool()]
    for i in range(nodes):
        objects.extend(consolidation_bench.machine(i))
    per_node = max(pods // nodes, 1)
    for i in range(pods):
        node = f"node-{(i // per_node) % nodes:05d}"
        cpu = rng.choice((100, 200, 300, 400, 500, 600, 700))
        objects.append(consolidation_bench.pod(i, node, cpu, rng.choice((128, 256, 512, 768))))
    for i in range(pending):
        objects.append(
            manifests.app_pod(
                f"pending-{i:05d}", pending=True, cpu="500m", memory="512Mi", app="burst", uid=f"uid-p-{i}"
            )
        )
    return snapshotfile.SnapshotFile(
        NOW, tuple(objects), {"default": tuple(factories.fake_instance_types(20))}
    )


def narrowed_nodepool() -> dict[str, Any]:
    """The change: only instance types bigger than the nodes' (drifts every node)."""
    pool = consolidation_bench.nodepool()
    template = pool["spec"]["template"]
    allowed = [f"fake-it-{i}" for i in range(8, 20)]  # the nodes are all fake-it-7
    template["spec"]["requirements"] = [
        *template["spec"].get("requirements", []),
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": allowed},
    ]
    return pool


def timed(label: str, fn: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = fn()
    print(f"  {label:<46} {time.perf_counter() - started:8.3f} s")
    return result


def run(nodes: int, pods: int, pending: int) -> tuple[simulate.Report, explain.PodExplanation]:
    snap = timed("build the snapshot", lambda: snapshot(nodes, pods, pending))
    text = timed("write it (YAML)", lambda: snapshotfile.dumps(snap))
    print(f"    -> {len(text) / 1e6:.1f} MB")
    snap = timed("read it back", lambda: snapshotfile.loads(text, now=NOW))
    change = simulate.Change((narrowed_nodepool(),))
    report = timed("simulate the NodePool change", lambda: simulate.run(snap, change))
    summary = report.to_dict()
    print(f"    -> drifted {len(summary['drifted'])} nodes; cost {summary['cost']}")
    pod = timed("explain one pending pod", lambda: explain.explain_pod(snap, "default/pending-00000"))
    print(f"    -> {pod.verdict}")
    node = timed("explain one node (removal simulation)", lambda: explain.explain_node(snap, "node-00000"))
    print(f"    -> {node.verdict}")
    return report, pod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--pending", type=int, default=200)
    args = parser.parse_args()
    print(f"what-if: {args.nodes} nodes, {args.pods} bound pods, {args.pending} pending, 20 instance types")
    run(args.nodes, args.pods, args.pending)
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
