"""Cache memory and ingest rate: N Nodes and M Pods fed through the real informer path into ClusterState.

Not collected by pytest (no ``test_`` prefix). Run:

    uv run python tests/bench/bench_state.py                      # 5,000 nodes, 50,000 pods
    uv run python tests/bench/bench_state.py --nodes 50 --pods 500   # CI smoke size

The stream is synthesized as the API server would send it: every event is a JSON line decoded with
``json.loads`` (so no strings are shared between objects, as with a real watch), pods carry realistic
metadata (labels, ownerReferences, managedFields -- which the informer strips), a spec with requests,
tolerations and a volume, and a status with conditions and a container status. Each event goes through
`nodesmith.state.informer.Informer.apply` (transform, store, handler) into `ClusterState`, exactly as a
watch would deliver it. Printed: ingest rate, tracemalloc bytes held after ingest (state + informer
stores), peak, RSS, and the time to take a snapshot.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import resource
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio

from nodesmith.kube import resources
from nodesmith.kube.results import ListResult, WatchEvent
from nodesmith.state import ClusterState, Informer


def node_line(i: int) -> str:
    name = f"node-{i:05d}"
    obj = {
        "type": "ADDED",
        "object": {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": f"00000000-0000-0000-0000-{i:012d}",
                "resourceVersion": str(1000 + i),
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/os": "linux",
                    "node.kubernetes.io/instance-type": "m5.2xlarge",
                    "topology.kubernetes.io/zone": f"zone-{i % 3}",
                    "topology.kubernetes.io/region": "region-1",
                    "nodesmith.io/nodepool": "default",
                    "nodesmith.io/capacity-type": "on-demand",
                    "nodesmith.io/registered": "true",
                    "nodesmith.io/initialized": "true",
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
                "managedFields": [
                    {"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {}}}
                ],
            },
            "spec": {"providerID": f"kwok://{name}"},
            "status": {
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                "allocatable": {"cpu": "7910m", "memory": "30Gi", "pods": "110", "ephemeral-storage": "95Gi"},
                "conditions": [
                    {
                        "type": t,
                        "status": "False" if t != "Ready" else "True",
                        "lastHeartbeatTime": "2025-01-01T00:00:00Z",
                        "lastTransitionTime": "2025-01-01T00:00:00Z",
                        "reason": f"Kubelet{t}",
                        "message": f"kubelet reports {t}",
                    }
                    for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
                ],
                "addresses": [{"type": "InternalIP", "address": f"10.0.{i // 250}.{i % 250}"}],
                "nodeInfo": {"kubeletVersion": "v1.34.2", "osImage": "kwok", "architecture": "amd64"},
            },
        },
    }
    return json.dumps(obj)


def pod_line(i: int, nodes: int) -> str:
    app = f"app-{i % 500}"
    name = f"{app}-{i:06d}"
    obj = {
        "type": "ADDED",
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": f"ns-{i % 20}",
                "uid": f"10000000-0000-0000-0000-{i:012d}",
                "resourceVersion": str(100000 + i),
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "generateName": f"{app}-",
                "labels": {"app": app, "pod-template-hash": "5d4f8b7c9"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": f"{app}-5d4f8b7c9",
                        "uid": f"20000000-0000-0000-0000-{i % 500:012d}",
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "managedFields": [
                    {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:spec": {}}},
                    {"manager": "kubelet", "operation": "Update", "subresource": "status", "fieldsV1": {}},
                ],
            },
            "spec": {
                "nodeName": f"node-{i % nodes:05d}",
                "containers": [
                    {
                        "name": "main",
                        "image": f"registry.example.com/{app}:1.2.3",
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"memory": "256Mi"},
                        },
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "APP", "value": app}],
                    }
                ],
                "tolerations": [
                    {
                        "key": "node.kubernetes.io/not-ready",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    },
                    {
                        "key": "node.kubernetes.io/unreachable",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    },
                ],
                "volumes": [
                    {
                        "name": "kube-api-access",
                        "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
                    }
                ],
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "serviceAccountName": "default",
                "priority": 0,
            },
            "status": {
                "phase": "Running",
                "podIP": f"10.244.{i // 250 % 256}.{i % 250}",
                "startTime": "2025-01-01T00:00:00Z",
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
                    for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
                ],
                "containerStatuses": [
                    {
                        "name": "main",
                        "ready": True,
                        "restartCount": 0,
                        "image": f"registry.example.com/{app}:1.2.3",
                        "started": True,
                        "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
                    }
                ],
            },
        },
    }
    return json.dumps(obj)


class Recorded:
    """A Source replaying a recorded stream of JSON lines (an empty list, then one watch).

    Decoding happens here, as in `KubeClient.watch`; synthesizing the lines (``json.dumps``) does not
    count: `ingest` times only decode + apply."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines

    async def list(
        self,
        resource: resources.Resource,
        namespace: str | None = None,
        *,
        each: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        resource_version: str = "",
    ) -> ListResult:
        return ListResult([], "1")

    async def watch(
        self, resource: resources.Resource, *, resource_version: str, timeout_seconds: int = 300
    ) -> AsyncIterator[WatchEvent]:
        for line in self.lines:
            event = json.loads(line)
            yield WatchEvent(event["type"], event["object"])


async def ingest(
    state: ClusterState, resource: resources.Resource, lines: Iterator[str]
) -> tuple[Informer, int, float]:
    """Feed ``lines`` through a real Informer; return it, the event count and seconds spent decoding
    and applying (line synthesis excluded)."""
    informer = Informer(Recorded(iter(())), resource, state)
    await informer.relist()
    count, spent = 0, 0.0
    for line in lines:
        t0 = time.perf_counter()
        event = json.loads(line)
        informer.apply(WatchEvent(event["type"], event["object"]))
        spent += time.perf_counter() - t0
        count += 1
    return informer, count, spent


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(nodes: int, pods: int, trace: bool) -> dict[str, float]:
    state = ClusterState(clock=lambda: dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    state.on_synced(resources.NODECLAIMS)
    gc.collect()
    rss_before = rss_mib()
    if trace:
        tracemalloc.start()
    node_informer, n, node_seconds = await ingest(
        state, resources.NODES, (node_line(i) for i in range(nodes))
    )
    pod_informer, p, pod_seconds = await ingest(
        state, resources.PODS, (pod_line(i, nodes) for i in range(pods))
    )
    elapsed = node_seconds + pod_seconds
    gc.collect()
    out: dict[str, float] = {"events": n + p, "seconds": elapsed, "events_per_s": (n + p) / elapsed}
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out.update(held_mib=current / 2**20, peak_mib=peak / 2**20)
    out["rss_mib"] = rss_mib()
    out["rss_delta_mib"] = out["rss_mib"] - rss_before
    t0 = time.perf_counter()
    first = state.snapshot()
    out["first_snapshot_ms"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    snap = state.snapshot()
    out["snapshot_ms"] = (time.perf_counter() - t0) * 1000
    assert len(snap.nodes) == nodes
    assert len(snap.pods) == pods
    assert state.synced()
    assert sum(len(node.pods) for node in first.nodes) == pods
    out["stored"] = len(node_informer.store) + len(pod_informer.store)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=50000)
    args = parser.parse_args()
    speed = anyio.run(run, args.nodes, args.pods, False)
    memory = anyio.run(run, args.nodes, args.pods, True)
    print(f"nodesmith cache bench: {args.nodes} nodes, {args.pods} pods (informer.apply -> ClusterState)")
    print(
        f"  ingest:    {speed['events_per_s']:,.0f} events/s ({speed['seconds']:.2f}s for {int(speed['events'])} events)"
    )
    print(f"  RSS:       {speed['rss_mib']:.0f} MiB total, +{speed['rss_delta_mib']:.0f} MiB for the cache")
    print(
        f"  traced:    {memory['held_mib']:.0f} MiB held after ingest "
        f"({memory['held_mib'] * 2**20 / (args.nodes + args.pods) / 1024:.1f} KiB/object), "
        f"peak {memory['peak_mib']:.0f} MiB"
    )
    print(
        f"  snapshot:  first {speed['first_snapshot_ms']:.0f} ms (builds views), then {speed['snapshot_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
