"""Cold sync and idle cost of the daemon against the real local control plane, at N nodes and M pods.

Creates N kwok nodes (kwok makes them Ready and heartbeats them, as kubelets would) and M pods bound
to them through ``spec.nodeName`` (no scheduling needed; kwok marks them Running), waits until every
pod is Running, then starts a real ``nodesmith run --provider kwok`` process and measures:

- **cold sync**: from process start to ``/readyz`` answering 200 (every informer has listed), as wall
  time and as the daemon's own CPU time (``/proc/<pid>/stat``; the machine is shared, so CPU time is
  the primary figure), plus RSS once synced;
- **idle**: over ``--idle`` seconds with nothing to do (all nodes unmanaged and full, no pending
  pods), the daemon's CPU seconds per minute and RSS at the end;
- what the API server and etcd spent (CPU seconds) while the daemon listed, and one plain paged
  list of the pods from this script, so the API server's own share is visible.

    uv run python tests/bench/bench_cluster.py --nodes 500 --pods 5000 --idle 60
    uv run python tests/bench/bench_cluster.py --nodes 10000 --pods 150000 --seed etcd

``--seed api`` (the default) creates every object through the API server, which here manages a few
dozen a second. ``--seed etcd`` creates one node and one pod through the API server, waits until kwok
has made them Ready and Running, and writes stamped copies of those two straight into etcd (see
`nodesmith.testing.etcdseed`); the API server then lists and watches them like any others, kwok
heartbeats the nodes, and the pods are already Running so kwok leaves them be. The daemon's cold
sync is the same either way: it lists everything from kube-apiserver.

Never asserts a time; it only prints figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import anyio

from nodesmith.dev.cluster import KWOK_NODE_ANNOTATION
from nodesmith.kube import errors, resources
from nodesmith.kube.client import KubeClient
from nodesmith.runtime import crds
from nodesmith.testing import cluster, e2e, etcdseed

NAMESPACE = "bench-cluster"
CREATE_WORKERS = 32
_TICK = os.sysconf("SC_CLK_TCK")


def node_body(i: int) -> dict[str, Any]:
    name = f"bench-node-{i:05d}"
    key, value = KWOK_NODE_ANNOTATION
    return {
        "metadata": {
            "name": name,
            "annotations": {key: value},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m5.4xlarge",
                "topology.kubernetes.io/zone": f"zone-{i % 3}",
                "type": "kwok",
            },
        },
        "spec": {"providerID": f"kwok://{name}"},
        "status": {
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "allocatable": {"cpu": "15890m", "memory": "62Gi", "pods": "110"},
        },
    }


def pod_body(i: int, nodes: int) -> dict[str, Any]:
    app = f"app-{i % 200}"
    return {
        "metadata": {"name": f"{app}-{i:06d}", "labels": {"app": app}},
        "spec": {
            "nodeName": f"bench-node-{i % nodes:05d}",
            "automountServiceAccountToken": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "main",
                    "image": "pause",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ],
        },
    }


async def create_all(
    kube: KubeClient,
    resource: resources.Resource,
    body: Callable[[int], dict[str, Any]],
    count: int,
    namespace: str | None = None,
) -> float:
    """Create ``count`` objects with `CREATE_WORKERS` concurrent requests; return the seconds it took.
    (A bare HTTP client with kept-alive connections was no faster here: the API server is the limit.)"""
    started = time.monotonic()
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            with contextlib.suppress(errors.AlreadyExistsError):
                await kube.create(resource, body(i), namespace)

    async with anyio.create_task_group() as group:
        for _ in range(CREATE_WORKERS):
            group.start_soon(worker)
    return time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def plane_pids(
    directory: pathlib.Path, binaries: tuple[str, ...] = ("etcd", "kube-apiserver")
) -> dict[str, int]:
    """PIDs of this control plane's `binaries` (found by their data/config directory)."""
    found: dict[str, int] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or str(directory).encode() not in b" ".join(argv):
            continue
        binary = pathlib.Path(argv[0].decode(errors="replace")).name
        if binary in binaries:
            found[binary] = int(entry.name)
    return found


def total_cpu(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def populate(kube: KubeClient, nodes: int, pods: int) -> dict[str, float]:
    await e2e.create_namespace(kube, NAMESPACE)
    node_seconds = await create_all(kube, resources.NODES, node_body, nodes)
    pod_seconds = await create_all(kube, resources.PODS, lambda i: pod_body(i, nodes), pods, NAMESPACE)
    started = time.monotonic()

    async def all_running() -> bool:
        waiting = await kube.list(resources.PODS, NAMESPACE, field_selector="status.phase!=Running")
        return not waiting.items

    await e2e.eventually(all_running, 3600, f"{pods} pods Running", interval=2.0)
    return {
        "node_create_per_s": nodes / node_seconds,
        "pod_create_per_s": pods / pod_seconds,
        "kwok_running_s": time.monotonic() - started,
    }


def stamp_node(static: bool) -> Callable[[dict[str, Any], int], None]:
    """Node ``i + 1`` from the template node 0 (name, per-node labels, provider ID, hostname address);
    `static` ones lose kwok's annotation, so kwok leaves them alone (no heartbeats)."""

    def vary(obj: dict[str, Any], i: int) -> None:
        body = node_body(i + 1)
        name = body["metadata"]["name"]
        obj["metadata"]["name"] = name
        if static:
            obj["metadata"]["annotations"] = {}
        obj["metadata"]["labels"] = body["metadata"]["labels"]
        obj["spec"]["providerID"] = body["spec"]["providerID"]
        for address in obj["status"].get("addresses", []):
            if address["type"] == "Hostname":
                address["address"] = name

    return vary


def stamp_pod(nodes: int) -> Callable[[dict[str, Any], int], None]:
    """Pod ``i + 1`` from the template pod 0 (name, labels, node, pod IP)."""

    def vary(obj: dict[str, Any], i: int) -> None:
        index = i + 1
        body = pod_body(index, nodes)
        obj["metadata"]["name"] = body["metadata"]["name"]
        obj["metadata"]["labels"] = body["metadata"]["labels"]
        obj["spec"]["nodeName"] = body["spec"]["nodeName"]
        ip = f"10.{244 + index // 65536}.{index // 256 % 256}.{index % 256}"
        obj["status"]["podIP"] = ip
        obj["status"]["podIPs"] = [{"ip": ip}]

    return vary


async def listed_count(kube: KubeClient, resource: resources.Resource, namespace: str | None = None) -> int:
    """How many objects the API server lists, from one page of one item and its remaining count."""
    page = await kube.request("GET", resource.path(namespace), params={"limit": "1"})
    return len(page.get("items") or []) + int((page.get("metadata") or {}).get("remainingItemCount", 0))


async def populate_etcd(
    kube: KubeClient, etcd: str, nodes: int, pods: int, static: bool = False
) -> dict[str, float]:
    """Node 0 and pod 0 through the API server (kwok makes them Ready and Running), the rest stamped from
    them into etcd; returns once the API server lists them all."""
    with contextlib.suppress(errors.AlreadyExistsError):  # the smoke tests share one control plane
        await e2e.create_namespace(kube, NAMESPACE)
    first_node, first_pod = node_body(0), pod_body(0, nodes)
    with contextlib.suppress(errors.AlreadyExistsError):
        await kube.create(resources.NODES, first_node)
    with contextlib.suppress(errors.AlreadyExistsError):
        await kube.create(resources.PODS, first_pod, NAMESPACE)

    async def templates() -> tuple[dict[str, Any], dict[str, Any]] | None:
        node = await kube.get(resources.NODES, first_node["metadata"]["name"])
        pod = await kube.get(resources.PODS, first_pod["metadata"]["name"], NAMESPACE)
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])
        )
        return (node, pod) if ready and pod["status"].get("phase") == "Running" else None

    node, pod = await e2e.eventually(templates, 120, "template node Ready and pod Running", interval=0.5)
    # Objects already there (the smoke tests share one control plane) are kept, never overwritten: etcd
    # seeding only creates (`etcdseed.put_all`).
    have_nodes = {n["metadata"]["name"] for n in (await kube.list(resources.NODES)).items}
    have_pods = {p["metadata"]["name"] for p in (await kube.list(resources.PODS, NAMESPACE)).items}

    def new(objects: Iterable[dict[str, Any]], have: set[str]) -> Iterator[dict[str, Any]]:
        return (o for o in objects if o["metadata"]["name"] not in have)

    started = time.monotonic()
    written_nodes = await etcdseed.put_all(
        etcd, "nodes", new(etcdseed.stamped(node, nodes - 1, stamp_node(static)), have_nodes)
    )
    node_seconds = time.monotonic() - started
    written_pods = await etcdseed.put_all(
        etcd, "pods", new(etcdseed.stamped(pod, pods - 1, stamp_pod(nodes)), have_pods)
    )
    written = time.monotonic()
    assert written_nodes + len(have_nodes) >= nodes
    assert written_pods + len(have_pods) >= pods

    async def all_listed() -> bool:
        return (
            await listed_count(kube, resources.NODES) >= nodes
            and await listed_count(kube, resources.PODS, NAMESPACE) >= pods
        )

    await e2e.eventually(all_listed, 600, f"{nodes} nodes and {pods} pods listed", interval=1.0)
    return {
        "etcd_nodes_per_s": nodes / node_seconds if node_seconds else float("inf"),
        "etcd_pods_per_s": pods / (written - started - node_seconds),
        "seed_s": written - started,
        "listed_after_s": time.monotonic() - written,
    }


async def run(
    plane: cluster.ControlPlane,
    nodes: int,
    pods: int,
    idle: float,
    log: pathlib.Path,
    profile: pathlib.Path | None = None,
    seed: str = "api",
) -> dict[str, float]:
    kube = await KubeClient.connect(plane.kubeconfig)
    await crds.install(kube, crds.all_crds())
    paused: list[int] = []
    if seed.startswith("etcd"):
        if plane.cluster is None:
            raise SystemExit(
                "--seed etcd needs a control plane this script starts (not NODESMITH_TEST_KUBECONFIG)"
            )
        if seed == "etcd-static":
            # The namespace's default ServiceAccount comes from kube-controller-manager: made first.
            with contextlib.suppress(errors.AlreadyExistsError):
                await e2e.create_namespace(kube, NAMESPACE)
            # Static nodes never heartbeat, so kube-controller-manager would mark them NotReady after its
            # grace period and then every pod on them not-ready: a storm of status writes. Paused instead.
            paused = list(plane_pids(plane.cluster.directory, ("kube-controller-manager",)).values())
            for pid in paused:
                os.kill(pid, signal.SIGSTOP)
    try:
        if seed.startswith("etcd") and plane.cluster is not None:
            url = etcdseed.etcd_url(plane.cluster.directory)
            out = await populate_etcd(kube, url, nodes, pods, seed == "etcd-static")
        else:
            out = await populate(kube, nodes, pods)
        return await measure_sync(kube, plane, pods, idle, log, profile, out)
    finally:
        for paused_pid in paused:
            os.kill(paused_pid, signal.SIGCONT)


async def measure_sync(
    kube: KubeClient,
    plane: cluster.ControlPlane,
    pods: int,
    idle: float,
    log: pathlib.Path,
    profile: pathlib.Path | None,
    out: dict[str, float],
) -> dict[str, float]:
    """A plain list of the pods, then the daemon's cold sync and idle cost, into `out`."""
    # The API server's and etcd's CPU only when this script started them (not with an existing cluster).
    server = plane_pids(plane.cluster.directory) if plane.cluster is not None else {}

    out["short_lists"] = out["failed_lists"] = 0

    async def plain_list() -> int:
        # Right after a seed through etcd the API server's watch cache can lag etcd by more than its
        # 3 s consistent-read wait (504 "Too large resource version"): counted, waited out, listed again.
        while True:
            try:
                return len((await kube.list(resources.PODS)).items)
            except errors.ServerError:
                out["failed_lists"] += 1
                if out["failed_lists"] > 10:
                    raise
                await anyio.sleep(10)

    listed = await plain_list()  # waits out the watch cache's lag; the second list is the one timed
    t0, server_cpu0 = time.monotonic(), total_cpu(server.values())
    listed = await plain_list()
    out["plain_list_s"] = time.monotonic() - t0
    out["plain_list_server_cpu_s"] = total_cpu(server.values()) - server_cpu0
    # Seeded through etcd, a paged list has now and then come back a few pods short (objects sharing
    # a resourceVersion, see `etcdseed.TXN_OPS`?): counted and printed, and listed again.
    while listed < pods and out["short_lists"] < 3:
        out["short_lists"] += 1
        listed = await plain_list()
    assert listed >= pods, f"listed {listed} pods, created {pods}"

    daemon = e2e.DaemonProcess(plane.kubeconfig, log)
    if profile is not None:  # the daemon under cProfile, written when it exits on SIGTERM
        daemon.argv[1:1] = ["-m", "cProfile", "-o", str(profile)]
    server_cpu0 = total_cpu(server.values())
    started = time.monotonic()
    daemon.start()
    assert daemon.process is not None
    pid = daemon.process.pid
    try:
        await daemon.wait_ready(timeout=1800)
        out["sync_wall_s"] = time.monotonic() - started
        out["sync_cpu_s"] = cpu_seconds(pid)
        out["sync_server_cpu_s"] = total_cpu(server.values()) - server_cpu0
        out["synced_rss_mib"] = rss_mib(pid)
        for binary, server_pid in server.items():
            out[f"{binary}_rss_mib"] = rss_mib(server_pid)
        idle_cpu0, idle_t0 = cpu_seconds(pid), time.monotonic()
        idle_server_cpu0 = total_cpu(server.values())
        await anyio.sleep(idle)  # a benchmark's observation window, not test synchronisation
        minutes = (time.monotonic() - idle_t0) / 60
        out["idle_cpu_s_per_min"] = (cpu_seconds(pid) - idle_cpu0) / minutes if minutes else 0.0
        out["idle_rss_mib"] = rss_mib(pid)
        out["peak_rss_mib"] = daemon.peak_rss_mib()
        daemon.check_alive()
        out["idle_server_cpu_s_per_min"] = (
            (total_cpu(server.values()) - idle_server_cpu0) / minutes if minutes else 0.0
        )
    finally:
        daemon.stop()
    return out


def report(nodes: int, pods: int, out: dict[str, float]) -> None:
    print(f"nodesmith cluster bench: {nodes} kwok nodes, {pods} bound pods (real API server)")
    if "seed_s" in out:
        print(
            f"  seed etcd: {out['seed_s']:.1f}s ({out['etcd_nodes_per_s']:.0f} nodes/s, "
            f"{out['etcd_pods_per_s']:.0f} pods/s written); the API server listed them all "
            f"{out['listed_after_s']:.1f}s later"
        )
    else:
        print(
            f"  populate:  {out['node_create_per_s']:.0f} nodes/s, {out['pod_create_per_s']:.0f} pods/s "
            f"created; kwok had them Running {out['kwok_running_s']:.0f}s later"
        )
    print(
        f"  API list:  all pods in {out['plain_list_s']:.1f}s wall "
        f"(API server + etcd {out['plain_list_server_cpu_s']:.1f} CPU s)"
        + (f"; {out['short_lists']:.0f} paged list(s) came back short" if out["short_lists"] else "")
        + (f"; {out['failed_lists']:.0f} answered 504 first" if out["failed_lists"] else "")
    )
    print(
        f"  cold sync: {out['sync_wall_s']:.1f}s wall to /readyz, daemon {out['sync_cpu_s']:.1f} CPU s "
        f"(incl. start-up), API server + etcd {out['sync_server_cpu_s']:.1f} CPU s; "
        f"RSS {out['synced_rss_mib']:.0f} MiB"
    )
    if "kube-apiserver_rss_mib" in out:
        print(
            f"  servers:   RSS once synced: kube-apiserver {out['kube-apiserver_rss_mib']:.0f} MiB, "
            f"etcd {out.get('etcd_rss_mib', float('nan')):.0f} MiB"
        )
    print(
        f"  idle:      {out['idle_cpu_s_per_min']:.2f} CPU s/min, RSS {out['idle_rss_mib']:.0f} MiB "
        f"(peak {out['peak_rss_mib']:.0f} MiB); API server + etcd meanwhile "
        f"{out.get('idle_server_cpu_s_per_min', float('nan')):.1f} CPU s/min"
    )


def measure(nodes: int, pods: int, idle: float, seed: str = "api") -> dict[str, float]:
    """`run` on a control plane of its own (what ``main`` and ``bench_all.py`` call)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        cluster.start_local_cluster(f"bench-{int(time.time())}") as plane,
    ):
        return anyio.run(run, plane, nodes, pods, idle, pathlib.Path(tmp) / "nodesmith.log", None, seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle observation")
    parser.add_argument("--profile", type=pathlib.Path, help="write the daemon's cProfile stats here")
    parser.add_argument(
        "--seed",
        choices=("api", "etcd", "etcd-static"),
        default="api",
        help="create the objects through the API server or etcd",
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        cluster.start_local_cluster(f"bench-{int(time.time())}") as plane,
    ):
        log = pathlib.Path(tmp) / "nodesmith.log"
        out = anyio.run(run, plane, args.nodes, args.pods, args.idle, log, args.profile, args.seed)
    report(args.nodes, args.pods, out)


if __name__ == "__main__":
    main()
