"""Provisioning benchmark on the real local control plane: N pending pods → all Running, against the floor.

Karpenter's performance suite shape ("basic scale-out"): half the pods request 0.9 CPU / 3.1 GiB, half
3.5 CPU / 28 GiB; or, with ``--shape one-per-node``, as many nodes as pods (`ONE_PER_NODE`). Two runs,
each on a fresh control plane:

- **floor**: the same Deployments on kwok nodes that already exist (enough of them, created before the
  clock starts) and no autoscaler -- what the control plane and kwok alone need;
- **nodesmith**: a real ``nodesmith run --provider kwok`` process launches the nodes;
- **launch floor** (``--with-launch-floor``): no autoscaler either, but the benchmark itself creates the
  floor's nodes at the moment it creates the Deployments, as an autoscaler that knew the answer at once
  and wrote nothing but the Nodes would -- what the control plane and kwok need to create, ready and fill
  new nodes. An autoscaler's distance from this one is its own (decisions, NodeClaims, registration);
  its distance from the floor also holds the control plane's cost of making nodes at all.

Printed per run: wall time from the Deployments' creation to every pod Running, and a timeline from
the objects' own timestamps (second resolution): the last pod created by the ReplicaSets, the first
and last NodeClaim (batch window + solve + API writes), the last NodeClaim launched (the lifecycle's
provider call), the last Node created and Ready (kwok), the last NodeClaim registered (the lifecycle
removed the unregistered taint kube-scheduler waits for), the last pod scheduled (kube-scheduler) and
Running (kwok); from the daemon's metrics the solve time and
batches; from the API server's own request counter the writes (create, patch, update, delete) each
resource received during the run, and per NodeClaim. Then the ratio nodesmith / floor. Karpenter's own e2e bound for 1,000 pods is < 2 minutes
and < 260 MB.

With ``--with-karpenter`` a third run, on a fresh control plane too, has real Karpenter (its kwok
provider, `karpenter_kwok`; built with Go from the module proxy on first use) launch the nodes for the
same Deployments and NodePool, and the ratios say how far each autoscaler is from the floor.

    uv run python tests/bench/bench_provisioning.py [--pods 1000]
        [--mode both|floor|launch-floor|nodesmith|karpenter] [--with-karpenter] [--with-launch-floor]
        [--shape basic|one-per-node]
        [--log FILE] [--karpenter-log FILE]

Never asserts a time; it only prints figures.
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import datetime as dt
import math
import pathlib
import re
import tempfile
import time
from typing import Any

import anyio
import karpenter_kwok  # a sibling module: the scripts here run with this folder on sys.path

from nodesmith.api import labels
from nodesmith.dev.cluster import KWOK_NODE_ANNOTATION
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.runtime import crds
from nodesmith.testing import cluster, e2e

#: Pre-existing nodes of the floor run, about as large as those nodesmith picks for this workload (so kwok
#: heartbeats about as many nodes in both runs): 36 large or 142 small pods each.
FLOOR_NODE = {"cpu": "128", "memory": "1024Gi", "pods": "250"}


#: How many Nodes the launch floor creates at once: as many as nodesmith's provisioner creates NodeClaims
#: at once (`nodesmith.reconcilers.provisioner`'s CREATE_CONCURRENCY).
LAUNCH_FLOOR_CONCURRENCY = 64


#: ``one-per-node``: "1,000 nodes' worth of pods". Each pod requests 3 CPU and the NodePool offers only
#: 4-CPU types (3.9 allocatable after kube-reserved), so no two pods share a node: N pods need N nodes.
#: The floor runs them on N pre-existing nodes of that size.
ONE_PER_NODE = {"cpu": "4", "memory": "8Gi", "pods": "64"}
SHAPES = ("basic", "one-per-node")


def floor_node(i: int, pool: str, capacity: dict[str, str] = FLOOR_NODE) -> dict[str, Any]:
    name = f"{pool}-{i:05d}"
    key, value = KWOK_NODE_ANNOTATION
    return {
        "metadata": {
            "name": name,
            "annotations": {key: value},
            "labels": {
                "kubernetes.io/hostname": name,
                labels.LABEL_ARCH: "amd64",
                labels.LABEL_OS: "linux",
                "e2e/pool": pool,
            },
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def floor_node_count(pods: int, shape: str = "basic") -> int:
    if shape == "one-per-node":
        return pods
    small, large = pods - pods // 2, pods // 2
    return math.ceil(large / 36) + math.ceil(small / 142) + 1


def deployments(pods: int, namespace: str, pool: str, shape: str) -> list[dict[str, Any]]:
    """The Deployments of ``shape`` (see the module docstring)."""
    if shape == "one-per-node":
        return [e2e.deployment("single", namespace, pods, pool=pool, cpu="3", memory="1Gi")]
    small, large = pods - pods // 2, pods // 2
    return [
        e2e.deployment("small", namespace, small, pool=pool, cpu="900m", memory="3174Mi"),
        e2e.deployment("large", namespace, large, pool=pool, cpu="3500m", memory="28Gi"),
    ]


def bench_nodepool(pool: str, shape: str) -> dict[str, Any]:
    if shape == "one-per-node":
        only_4_cpu = [
            {"key": "kwok.nodesmith.io/instance-cpu", "operator": "In", "values": ["4"]},
            {"key": "kwok.nodesmith.io/instance-family", "operator": "In", "values": ["c"]},
        ]
        return e2e.nodepool(pool, pool, requirements=only_4_cpu)
    return e2e.nodepool(pool, pool)


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _condition_time(obj: dict[str, Any], kind: str) -> dt.datetime | None:
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == kind and condition.get("status") == "True":
            return _time(condition.get("lastTransitionTime"))
    return None


def timeline(
    started: dt.datetime,
    pods: list[dict[str, Any]],
    claims: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
) -> dict[str, float]:
    """Seconds from ``started`` to the first/last of each step, from the objects' timestamps."""

    def since(times: list[dt.datetime | None], pick: Any = max) -> float:
        known = [t for t in times if t is not None]
        return (pick(known) - started).total_seconds() if known else float("nan")

    def created(objs: list[dict[str, Any]]) -> list[dt.datetime | None]:
        return [_time(o["metadata"].get("creationTimestamp")) for o in objs]

    return {
        "last pod created": since(created(pods)),
        "first NodeClaim": since(created(claims), min),
        "last NodeClaim": since(created(claims)),
        "last Launched": since([_condition_time(c, "Launched") for c in claims]),
        "last Node created": since(created(nodes)),
        "last Node Ready": since([_condition_time(n, "Ready") for n in nodes]),
        "last Registered": since([_condition_time(c, "Registered") for c in claims]),
        "last pod scheduled": since([_condition_time(p, "PodScheduled") for p in pods]),
        "last pod Running": since([_condition_time(p, "Ready") for p in pods]),
    }


def claim_steps(claims: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per NodeClaim, seconds spent in each step of its way to a registered Node: (median, max) over the
    NodeClaims that took the step. Second resolution, like the timeline."""
    by_name = {n["metadata"]["name"]: n for n in nodes}
    steps: dict[str, list[float]] = collections.defaultdict(list)
    for claim in claims:
        created = _time(claim["metadata"].get("creationTimestamp"))
        launched = _condition_time(claim, "Launched")
        registered = _condition_time(claim, "Registered")
        node = by_name.get(str((claim.get("status") or {}).get("nodeName") or ""))
        node_created = _time(node["metadata"].get("creationTimestamp")) if node else None
        node_ready = _condition_time(node, "Ready") if node else None
        pairs = {
            "created->launched": (created, launched),
            "launched->registered": (launched, registered),
            "node created->registered": (node_created, registered),
            "node created->Ready": (node_created, node_ready),
        }
        for step, (start, end) in pairs.items():
            if start is not None and end is not None:
                steps[step].append((end - start).total_seconds())
    return {k: (sorted(v)[len(v) // 2], max(v)) for k, v in steps.items()}


def metric_sum(text: str, name: str) -> float:
    """The sum of every series of ``name`` in a Prometheus exposition."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.eE+-]+)$", re.MULTILINE)
    return sum(float(m.group(1)) for m in pattern.finditer(text))


WRITE_VERBS = frozenset({"POST", "PATCH", "PUT", "DELETE", "APPLY"})
_REQUESTS = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.eE+-]+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def api_writes(text: str) -> collections.Counter[str]:
    """Write requests the API server answered so far, by ``resource[/subresource] VERB``, from its
    ``apiserver_request_total`` series."""
    counts: collections.Counter[str] = collections.Counter()
    for match in _REQUESTS.finditer(text):
        series = dict(_LABEL.findall(match.group(1)))
        if series.get("verb") not in WRITE_VERBS:
            continue
        resource = series.get("resource", "")
        if series.get("subresource"):
            resource += "/" + series["subresource"]
        counts[f"{resource} {series['verb']}"] += int(float(match.group(2)))
    return counts


def api_conflicts(text: str) -> collections.Counter[str]:
    """Write requests the API server refused with 409 Conflict so far, by ``resource[/subresource]``
    (a write guarded by a stale resourceVersion; the writer retries)."""
    counts: collections.Counter[str] = collections.Counter()
    for match in _REQUESTS.finditer(text):
        series = dict(_LABEL.findall(match.group(1)))
        if series.get("verb") in WRITE_VERBS and series.get("code") == "409":
            resource = series.get("resource", "")
            if series.get("subresource"):
                resource += "/" + series["subresource"]
            counts[resource] += int(float(match.group(2)))
    return counts


async def one_run(
    kubeconfig: pathlib.Path,
    pods: int,
    floor: bool,
    log: pathlib.Path,
    apiserver_metrics: collections.abc.Callable[[], str] | None = None,
    shape: str = "basic",
    autoscaler: str = "nodesmith",
    nodes_at_start: bool = False,
) -> dict[str, Any]:
    """One run on the control plane at ``kubeconfig``; its pool and namespace are named after the mode
    and shape, so several runs can share one control plane (the CI smoke test does). ``autoscaler``
    (unless ``floor``): ``nodesmith``, or ``karpenter`` (`karpenter_kwok`; builds its binary first).
    ``nodes_at_start`` (with ``floor``): the launch floor, the floor's nodes created with the Deployments."""
    karpenter = not floor and autoscaler == "karpenter"
    mode = ("launch-floor" if nodes_at_start else "floor") if floor else autoscaler
    pool = namespace = f"bench-{mode}" + ("" if shape == "basic" else f"-{shape}")
    kube = await KubeClient.connect(kubeconfig)
    if not karpenter:
        await crds.install(kube, crds.all_crds())
    await e2e.create_namespace(kube, namespace)
    daemon: e2e.DaemonProcess | None = None
    capacity = ONE_PER_NODE if shape == "one-per-node" else FLOOR_NODE

    async def create_floor_nodes(at_once: int) -> None:
        limiter = anyio.CapacityLimiter(at_once)

        async def create_floor_node(i: int) -> None:
            async with limiter:
                await kube.create(resources.NODES, floor_node(i, pool, capacity))

        async with anyio.create_task_group() as group:
            for i in range(floor_node_count(pods, shape)):
                group.start_soon(create_floor_node, i)

    # The floor's nodes exist before the clock starts; the launch floor makes its own once it runs.
    pre_existing = floor and not nodes_at_start
    if pre_existing:
        await create_floor_nodes(16)
    elif karpenter:
        await karpenter_kwok.prepare(kube, pool, bench_nodepool(pool, shape))
        daemon = karpenter_kwok.KarpenterProcess(kubeconfig, log).start()
    elif not floor:
        await kube.create(e2e.KWOK_NODE_CLASSES, {"metadata": {"name": pool}, "spec": {}})
        await kube.create(resources.NODEPOOLS, bench_nodepool(pool, shape))
        daemon = e2e.DaemonProcess(kubeconfig, log).start()
    try:
        if daemon is not None:
            await daemon.wait_ready()
        elif pre_existing:

            async def nodes_ready() -> bool:
                # Ready, and untainted: kube-controller-manager taints a new Node not-ready until it
                # sees it Ready, which with hundreds of nodes takes it tens of seconds; pre-existing
                # nodes are past that
                listed = (await kube.list(resources.NODES, label_selector=f"e2e/pool={pool}")).items
                return all(
                    _condition_time(n, "Ready") and not (n.get("spec") or {}).get("taints") for n in listed
                )

            await e2e.eventually(nodes_ready, 600, "the floor's nodes Ready and untainted", interval=1.0)
        metrics_before = apiserver_metrics() if apiserver_metrics else None
        started_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        started = time.monotonic()
        async with anyio.create_task_group() as group:
            if nodes_at_start:
                group.start_soon(create_floor_nodes, LAUNCH_FLOOR_CONCURRENCY)
            for body in deployments(pods, namespace, pool, shape):
                await kube.create(e2e.DEPLOYMENTS, body, namespace)

        async def all_running() -> bool:
            listed = (await kube.list(resources.PODS, namespace)).items
            running = sum(1 for p in listed if p.get("status", {}).get("phase") == "Running")
            return len(listed) == pods and running == pods

        await e2e.eventually(all_running, 3600, f"{pods} pods Running", interval=1.0)
        out: dict[str, Any] = {"wall_seconds": time.monotonic() - started}
        if apiserver_metrics is not None and metrics_before is not None:
            metrics_after = apiserver_metrics()
            out["writes"] = api_writes(metrics_after) - api_writes(metrics_before)
            out["conflicts"] = api_conflicts(metrics_after) - api_conflicts(metrics_before)
        listed_pods = (await kube.list(resources.PODS, namespace)).items
        nodes = (await kube.list(resources.NODES, label_selector=f"e2e/pool={pool}")).items
        claim_kind, claim_label = (
            (karpenter_kwok.NODECLAIMS, karpenter_kwok.NODEPOOL_LABEL)
            if karpenter
            else (resources.NODECLAIMS, labels.LABEL_NODEPOOL)
        )
        claims = [] if floor else (await kube.list(claim_kind, label_selector=f"{claim_label}={pool}")).items
        out["timeline"] = timeline(started_at, listed_pods, claims, [] if pre_existing else nodes)
        out["claim_steps"] = claim_steps(claims, nodes)
        out["nodes"] = len(nodes)
        if daemon is not None:
            text = await daemon.metrics_text()
            out["autoscaler"] = autoscaler
            if karpenter:
                out.update(karpenter_kwok.summary(text))
            else:
                out["solve_seconds"] = metric_sum(text, "nodesmith_scheduler_scheduling_duration_seconds_sum")
                out["batches"] = metric_sum(text, "nodesmith_scheduler_scheduling_duration_seconds_count")
                out["create_seconds"] = metric_sum(text, "nodesmith_cloudprovider_duration_seconds_sum")
            out["peak_rss_mib"] = daemon.peak_rss_mib()
            price = sum(
                float(n["metadata"]["labels"].get("eks-node-viewer/instance-price", 0)) for n in nodes
            )
            out["hourly_price"] = price
        return out
    finally:
        if daemon is not None:
            daemon.stop()


def run_on_fresh_plane(
    pods: int,
    floor: bool,
    log: pathlib.Path | None = None,
    shape: str = "basic",
    autoscaler: str = "nodesmith",
    nodes_at_start: bool = False,
) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        cluster.start_local_cluster(f"bench-{int(time.time())}") as plane,
    ):
        local = plane.cluster

        def apiserver_metrics() -> str:
            assert local is not None
            with local.admin_http(timeout=30) as http:
                response = http.get(f"{local.server}/metrics")
            response.raise_for_status()
            return response.text

        return anyio.run(
            one_run,
            plane.kubeconfig,
            pods,
            floor,
            log or pathlib.Path(tmp) / f"{autoscaler}.log",
            apiserver_metrics if local is not None else None,
            shape,
            autoscaler,
            nodes_at_start,
        )


def measure(
    pods: int, karpenter: bool = False, shape: str = "basic", launch_floor: bool = False
) -> dict[str, dict[str, Any]]:
    """The floor run, then (``launch_floor``) the launch floor's, the nodesmith run, then (``karpenter``)
    Karpenter's, all of ``shape`` (what ``bench_all.py`` calls)."""
    out = {"floor": run_on_fresh_plane(pods, floor=True, shape=shape)}
    if launch_floor:
        out["launch floor"] = run_on_fresh_plane(pods, floor=True, shape=shape, nodes_at_start=True)
    out["nodesmith"] = run_on_fresh_plane(pods, floor=False, shape=shape)
    if karpenter:
        out["karpenter"] = run_on_fresh_plane(pods, floor=False, shape=shape, autoscaler="karpenter")
    return out


def report(pods: int, name: str, out: dict[str, Any]) -> None:
    print(f"{name}: pods={pods} wall_seconds={out['wall_seconds']:.1f} nodes={out['nodes']}")
    steps = ", ".join(f"{k} {v:.0f}s" for k, v in out["timeline"].items() if not math.isnan(v))
    print(f"  timeline (from the Deployments' creation): {steps}")
    if out.get("claim_steps"):
        steps = ", ".join(f"{k} {m:.0f}s/{x:.0f}s" for k, (m, x) in out["claim_steps"].items())
        print(f"  per NodeClaim (median/max): {steps}")
    if "solve_seconds" in out:
        print(
            f"  {out.get('autoscaler', 'nodesmith')}: solve {out['solve_seconds']:.2f}s over {out['batches']:.0f} batches, "
            f"provider calls {out['create_seconds']:.2f}s, peak RSS {out['peak_rss_mib']:.0f} MiB, "
            f"hourly price {out['hourly_price']:.2f}"
        )
    writes: collections.Counter[str] = out.get("writes") or collections.Counter()
    if writes:
        by_resource: collections.Counter[str] = collections.Counter()
        for key, count in writes.items():
            by_resource[key.split(" ")[0]] += count
        top = ", ".join(f"{k} {v}" for k, v in by_resource.most_common(8))
        print(f"  API writes during the run: {sum(writes.values())} ({top})")
        conflicts: collections.Counter[str] = out.get("conflicts") or collections.Counter()
        if conflicts:
            refused = ", ".join(f"{k} {v}" for k, v in conflicts.most_common(5))
            print(f"  of which refused with 409 Conflict: {sum(conflicts.values())} ({refused})")
        claims = writes.get("nodeclaims POST", 0)
        if claims:
            own = {k: v for k, v in writes.items() if k.startswith("nodeclaims")}
            detail = ", ".join(f"{k} {v}" for k, v in sorted(own.items()))
            nodes = sum(v for k, v in writes.items() if k.startswith("nodes"))
            print(
                f"  per NodeClaim: {sum(own.values()) / claims:.1f} NodeClaim writes ({detail}); "
                f"{nodes / claims:.1f} Node writes (kwok's heartbeats included)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument(
        "--mode", choices=("both", "floor", "launch-floor", "nodesmith", "karpenter"), default="both"
    )
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="basic",
        help="basic: Karpenter's scale-out mix; one-per-node: every pod needs a node of its own",
    )
    parser.add_argument("--log", type=pathlib.Path, help="keep the daemon's log here")
    parser.add_argument(
        "--with-karpenter",
        action="store_true",
        help="after the floor and nodesmith, run real Karpenter (its kwok provider; built with Go on first use)",
    )
    parser.add_argument("--karpenter-log", type=pathlib.Path, help="keep Karpenter's log here")
    parser.add_argument(
        "--with-launch-floor",
        action="store_true",
        help="after the floor, the launch floor: no autoscaler, the floor's nodes created with the Deployments",
    )
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    if args.mode in ("both", "floor"):
        results["floor"] = run_on_fresh_plane(args.pods, floor=True, shape=args.shape)
        report(args.pods, "floor (pre-existing nodes, no autoscaler)", results["floor"])
    if args.mode == "launch-floor" or args.with_launch_floor:
        results["launch floor"] = run_on_fresh_plane(
            args.pods, floor=True, shape=args.shape, nodes_at_start=True
        )
        report(
            args.pods,
            "launch floor (the floor's nodes created with the Deployments, no autoscaler)",
            results["launch floor"],
        )
    if args.mode in ("both", "nodesmith"):
        results["nodesmith"] = run_on_fresh_plane(args.pods, floor=False, log=args.log, shape=args.shape)
        report(args.pods, "nodesmith (launches the nodes)", results["nodesmith"])
    if args.mode == "karpenter" or args.with_karpenter:
        results["karpenter"] = run_on_fresh_plane(
            args.pods, floor=False, log=args.karpenter_log, shape=args.shape, autoscaler="karpenter"
        )
        report(
            args.pods,
            f"karpenter {karpenter_kwok.VERSION} (its kwok provider launches the nodes)",
            results["karpenter"],
        )
    pairs = [
        (name, yardstick) for yardstick in ("floor", "launch floor") for name in ("nodesmith", "karpenter")
    ]
    for ours, theirs in (*pairs, ("launch floor", "floor"), ("nodesmith", "karpenter")):
        if ours in results and theirs in results:
            ratio = results[ours]["wall_seconds"] / results[theirs]["wall_seconds"]
            print(f"ratio {ours} / {theirs} at {args.pods} pods ({args.shape}): {ratio:.2f}x")


if __name__ == "__main__":
    main()
