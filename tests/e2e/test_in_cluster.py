"""nodesmith as users run it: the image built from deploy/Dockerfile, the Helm chart installed with two
replicas on a real kubelet node (`nodesmith dev up --real-node`), scaling kwok nodes from inside the
cluster.

Needs root (containerd, the kubelet, iptables): CI runs as root; anywhere else this module fails loudly
instead of skipping. The module starts its own cluster with a real node (not the session's loopback
control plane), builds and imports the image, installs the chart once, and checks in file order:
replicas Ready with one leader, /metrics through the Service from a pod, the egress fence, inflate
0 -> N -> 0 across a leader failover, and what `helm uninstall` leaves. Teardown asserts that the node
left nothing on the machine (process, mount, iptables chain, link, cgroup).
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import os
import pathlib
import subprocess
import time
import uuid
from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.dev import binaries, cluster, helm, images, node, nodenet
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import cluster as testing_cluster
from nodesmith.testing import e2e

#: The first test's setup may build kubelet, kube-proxy, helm and the base image on a cold machine
#: (about 15 minutes on 2 cores), longer than the suite's default per-test timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(3600)]

RELEASE = "nodesmith"
NAMESPACE = "nodesmith"
CHART = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "charts" / "nodesmith"
#: TEST-NET-2 (RFC 5737): documentation-only, never routed. (TEST-NET-1's 192.0.2.1 is this kind of
#: machine's own gateway, so it is not used: the fence must make the attempt fail before any router.)
OUTSIDE = "198.51.100.1"
DEPLOYMENTS = resources.Resource("apps", "v1", "deployments", "Deployment", namespaced=True)
SERVICES = resources.Resource("", "v1", "services", "Service", namespaced=True)
#: Everything the chart renders (values-kwok: no ServiceMonitor, no price-overlay ConfigMap).
CHART_OBJECTS = (
    DEPLOYMENTS,
    SERVICES,
    resources.Resource("", "v1", "serviceaccounts", "ServiceAccount", namespaced=True),
    resources.Resource("", "v1", "configmaps", "ConfigMap", namespaced=True),
    resources.Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", namespaced=True),
    resources.Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", namespaced=True),
    resources.PDBS,
    resources.PODS,
    resources.Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    resources.Resource(
        "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
    ),
)
WAIT = 120.0


@dataclasses.dataclass(frozen=True)
class InCluster:
    local: cluster.LocalCluster
    node: node.RealNode
    image: str

    def helm(self, *args: str) -> str:
        result = subprocess.run(
            [str(helm.ensure_helm()), *args],
            env={**os.environ, "KUBECONFIG": str(self.local.kubeconfig)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def in_cluster(
    live_progress: collections.abc.Callable[[str], binaries.Progress],
) -> collections.abc.Iterator[InCluster]:
    if os.geteuid() != 0:
        pytest.fail("the in-cluster e2e tests need root (CI runs them as root)", pytrace=False)
    progress = live_progress("in-cluster e2e")
    local = cluster.LocalCluster(f"incluster-{os.getpid()}", progress=progress, die_with_parent=True)
    leftovers: list[str] = []
    try:
        real = node.up(local)
        reference, archive = images.build(progress)
        real.import_image(archive)
        env = InCluster(local, real, reference)
        repository, tag = reference.rsplit(":", 1)
        env.helm(
            *("upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace"),
            *("-f", str(CHART / "values-kwok.yaml"), "--set", "replicas=2"),
            *("--set", f"image.repository={repository}", "--set", f"image.tag={tag}"),
            *("--set", "image.pullPolicy=Never"),
            # Two replicas and the probe pods on one small machine.
            *("--set", "resources.requests.cpu=100m", "--set", "resources.requests.memory=128Mi"),
        )
        yield env
    finally:
        leftovers = node.down(local)
    assert not leftovers, "the real node left behind:\n" + "\n".join(leftovers)
    testing_cluster.prune_stopped("incluster-")


@pytest.fixture
async def client(in_cluster: InCluster) -> KubeClient:
    return await KubeClient.connect(in_cluster.local.kubeconfig)


async def chart_pods(client: KubeClient) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={RELEASE}"
    return (await client.list(resources.PODS, NAMESPACE, label_selector=selector)).items


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return "deletionTimestamp" not in pod["metadata"] and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


async def leader(client: KubeClient) -> str:
    lease = await client.get(resources.LEASES, "nodesmith-leader-election", NAMESPACE)
    return str(lease.get("spec", {}).get("holderIdentity") or "")


async def run_in_pod(client: KubeClient, env: InCluster, code: str) -> tuple[str, str]:
    """Run `code` with python3 in the nodesmith image on the real node; return its phase and log.

    The log is read through the API server, which fetches it from the kubelet with its client
    certificate -- what `kubectl logs` does.
    """
    name = f"probe-{uuid.uuid4().hex[:6]}"
    await client.create(
        resources.PODS,
        {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"kubernetes.io/hostname": env.node.name},
                "tolerations": [{"key": node.CONTROL_PLANE_TAINT["key"], "operator": "Exists"}],
                "containers": [
                    {
                        "name": "probe",
                        "image": env.image,
                        "imagePullPolicy": "Never",
                        "command": ["python3", "-c", code],
                    }
                ],
            },
        },
        namespace="default",
    )

    async def finished() -> str:
        pod = await client.get(resources.PODS, name, "default")
        phase = str(pod.get("status", {}).get("phase", ""))
        return phase if phase in {"Succeeded", "Failed"} else ""

    try:
        phase = await e2e.eventually(finished, WAIT, f"probe pod {name} to finish")
        with env.local.admin_http(timeout=10.0) as http:
            response = http.get(f"{env.local.server}/api/v1/namespaces/default/pods/{name}/log")
        assert response.status_code == 200, f"pod log through the kubelet: HTTP {response.status_code}"
        return phase, response.text
    finally:
        await client.delete(resources.PODS, name, "default")


def pod_log(env: InCluster, pod: str, namespace: str = NAMESPACE, lines: int = 60) -> str:
    with env.local.admin_http(timeout=10.0) as http:
        response = http.get(
            f"{env.local.server}/api/v1/namespaces/{namespace}/pods/{pod}/log",
            params={"tailLines": str(lines)},
        )
    return response.text


async def test_both_replicas_ready_and_one_holds_the_lease(client: KubeClient) -> None:
    async def two_ready() -> list[dict[str, Any]]:
        pods = [p for p in await chart_pods(client) if _ready(p)]
        return pods if len(pods) == 2 else []

    pods = await e2e.eventually(two_ready, WAIT, "both nodesmith replicas Ready")
    names = {p["metadata"]["name"] for p in pods}
    holder = await e2e.eventually(lambda: leader(client), WAIT, "a lease holder")
    assert holder in names


async def test_metrics_are_served_through_the_service_to_a_pod(
    client: KubeClient, in_cluster: InCluster
) -> None:
    service = await client.get(SERVICES, RELEASE, NAMESPACE)
    ip, port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["port"]
    code = (
        "import urllib.request\n"
        f"r = urllib.request.urlopen('http://{ip}:{port}/metrics', timeout=10)\n"
        "print('status', r.status)\n"
        "print(r.read().decode())\n"
    )
    phase, log = await run_in_pod(client, in_cluster, code)
    assert phase == "Succeeded", log
    assert "status 200" in log
    # Prometheus text format from the controller's exporter (nodesmith_* series appear once recorded,
    # and the Service may pick the standby, which has recorded nothing yet).
    assert "# TYPE process_start_time_seconds gauge" in log


async def test_a_pod_cannot_reach_an_address_outside_the_machine(
    client: KubeClient, in_cluster: InCluster
) -> None:
    # The fence is checked first: without it the attempt below would leave the machine.
    dropped_before = nodenet.drop_count()
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('{OUTSIDE}', 80), timeout=3)\n"
        "    print('CONNECTED')\n"
        "except OSError as err:\n"
        "    print('blocked', type(err).__name__)\n"
    )
    phase, log = await run_in_pod(client, in_cluster, code)
    assert phase == "Succeeded", log
    assert "blocked" in log
    assert "CONNECTED" not in log
    assert nodenet.drop_count() > dropped_before, "the pod's packets were not dropped by the fence"


async def test_inflate_is_provisioned_and_consolidated_across_a_leader_failover(
    client: KubeClient, in_cluster: InCluster
) -> None:
    name = f"inc-{uuid.uuid4().hex[:6]}"
    await e2e.create_namespace(client, name)
    await client.create(e2e.KWOK_NODE_CLASSES, {"metadata": {"name": name}, "spec": {}})
    pool = e2e.nodepool(
        name, name, disruption={"consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never"}
    )
    await client.create(resources.NODEPOOLS, pool)
    await client.create(DEPLOYMENTS, e2e.deployment("inflate", name, 0, pool=name), namespace=name)
    try:

        async def served(replicas: int) -> bool:
            pods = (await client.list(resources.PODS, name, label_selector="app=inflate")).items
            running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
            return len(pods) == replicas and len(running) == replicas

        async def pool_nodes() -> list[dict[str, Any]]:
            selector = f"{labels.LABEL_NODEPOOL}={name}"
            return (await client.list(resources.NODES, label_selector=selector)).items

        async def scale(replicas: int) -> None:
            await client.merge_patch(DEPLOYMENTS, "inflate", {"spec": {"replicas": replicas}}, name)

        async def every_node_used() -> None:
            """No double launch: each of the pool's nodes and NodeClaims carries an inflate pod."""
            pods = (await client.list(resources.PODS, name, label_selector="app=inflate")).items
            used = {p["spec"].get("nodeName") for p in pods}
            nodes = {n["metadata"]["name"] for n in await pool_nodes()}
            claims = [
                c
                for c in (await client.list(resources.NODECLAIMS)).items
                if c["metadata"].get("labels", {}).get(labels.LABEL_NODEPOOL) == name
            ]
            assert nodes, "no node was launched"
            assert nodes <= used, f"nodes without an inflate pod: {sorted(nodes - used)}"
            assert len(claims) == len(nodes), f"{len(claims)} NodeClaims for {len(nodes)} nodes"

        await scale(3)
        await e2e.eventually(lambda: served(3), WAIT, "3 inflate pods Running on kwok nodes")
        await every_node_used()

        first = await leader(client)
        standby = {p["metadata"]["name"] for p in await chart_pods(client)} - {first}
        await client.delete(resources.PODS, first, NAMESPACE)
        await scale(6)

        async def successor() -> str:
            """Another live replica holds the lease: the standby, or the Deployment's replacement for the
            deleted pod. Either may win: the deleted leader's lease is not released (its release
            uses the lease as first acquired, whose resourceVersion is stale after any renewal) so
            both contend when it expires, 15 s later, about when the replacement has started."""
            holder = await leader(client)
            live = {p["metadata"]["name"] for p in await chart_pods(client) if _ready(p)}
            return holder if holder != first and holder in live else ""

        try:
            holder = await e2e.eventually(successor, WAIT, "another replica taking the lease")
        except AssertionError as err:
            lease = await client.get(resources.LEASES, "nodesmith-leader-election", NAMESPACE)
            logs = "\n".join(f"--- {pod}:\n{pod_log(in_cluster, pod)}" for pod in sorted(standby))
            raise AssertionError(f"{err}\nlease: {lease.get('spec')}\n{logs}") from None
        print(f"lease: {first} -> {holder} ({'the standby' if holder in standby else 'the replacement pod'})")
        await e2e.eventually(lambda: served(6), WAIT, "6 inflate pods Running after the failover")
        await every_node_used()

        await client.merge_patch(
            resources.NODEPOOLS, name, {"spec": {"disruption": {"consolidateAfter": "0s"}}}
        )
        await scale(0)

        async def consolidated() -> bool:
            return not await pool_nodes()

        await e2e.eventually(consolidated, WAIT, "the pool's kwok nodes consolidated away")
    finally:
        await e2e.cleanup(client, namespace=name, nodepools=[name])
        with contextlib.suppress(kube_errors.NotFoundError):
            await client.delete(e2e.KWOK_NODE_CLASSES, name)


async def test_helm_upgrade_to_a_rebuilt_image_hands_over_and_keeps_serving(
    client: KubeClient, in_cluster: InCluster
) -> None:
    """A rolling upgrade replaces both replicas; pods that go pending meanwhile are still served, and
    the lease ends with a replica of the new image. The times to serve are printed, not asserted."""
    rebuilt, archive = images.build(print, labels={"io.nodesmith.dev/rebuild": uuid.uuid4().hex[:8]})
    assert rebuilt != in_cluster.image
    in_cluster.node.import_image(archive)
    name = f"upg-{uuid.uuid4().hex[:6]}"
    await e2e.create_namespace(client, name)
    await client.create(e2e.KWOK_NODE_CLASSES, {"metadata": {"name": name}, "spec": {}})
    pool = e2e.nodepool(
        name, name, disruption={"consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never"}
    )
    await client.create(resources.NODEPOOLS, pool)
    await client.create(DEPLOYMENTS, e2e.deployment("inflate", name, 0, pool=name), namespace=name)
    try:

        async def served(replicas: int) -> bool:
            pods = (await client.list(resources.PODS, name, label_selector="app=inflate")).items
            return len(pods) == replicas and all(p.get("status", {}).get("phase") == "Running" for p in pods)

        async def scale_and_time(replicas: int) -> float:
            started = time.monotonic()
            await client.merge_patch(DEPLOYMENTS, "inflate", {"spec": {"replicas": replicas}}, name)
            await e2e.eventually(lambda: served(replicas), WAIT, f"{replicas} inflate pods Running")
            return time.monotonic() - started

        _, tag = rebuilt.rsplit(":", 1)
        in_cluster.helm(
            "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--set", f"image.tag={tag}"
        )
        during = await scale_and_time(2)

        async def rolled_out() -> bool:
            pods = await chart_pods(client)
            new = [p for p in pods if p["spec"]["containers"][0]["image"] == rebuilt and _ready(p)]
            return len(pods) == 2 and len(new) == 2

        await e2e.eventually(rolled_out, WAIT, "both replicas on the rebuilt image")

        async def new_leader() -> bool:
            names = {p["metadata"]["name"] for p in await chart_pods(client)}
            return await leader(client) in names

        await e2e.eventually(new_leader, WAIT, "a replica of the rebuilt image holding the lease")
        after = await scale_and_time(4)
        print(f"pending pods served in {during:.1f}s during the upgrade, {after:.1f}s after it")
    finally:
        await e2e.cleanup(client, namespace=name, nodepools=[name])
        with contextlib.suppress(kube_errors.NotFoundError):
            await client.delete(e2e.KWOK_NODE_CLASSES, name)


async def test_helm_uninstall_leaves_only_the_crds_and_the_lease(
    client: KubeClient, in_cluster: InCluster
) -> None:
    """Runs last (file order). The Lease is the controller's, not the chart's: Helm never owned it."""
    in_cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")

    async def remaining() -> list[str]:
        found = []
        for resource in CHART_OBJECTS:
            items = (await client.list(resource, NAMESPACE if resource.namespaced else None)).items
            found += [
                f"{resource.kind}/{i['metadata']['name']}" for i in items if RELEASE in i["metadata"]["name"]
            ]
        return found

    async def gone() -> bool:
        return not await remaining()

    await e2e.eventually(gone, WAIT, "the chart's objects (pods included) to go")
    leases = (await client.list(resources.LEASES, NAMESPACE)).items
    assert [item["metadata"]["name"] for item in leases] == ["nodesmith-leader-election"]
    crds = {c["metadata"]["name"] for c in (await client.list(resources.CRDS)).items}
    assert {"nodepools.nodesmith.io", "nodeclaims.nodesmith.io", "kwoknodeclasses.kwok.nodesmith.io"} <= crds
