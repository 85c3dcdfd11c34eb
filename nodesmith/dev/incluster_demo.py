"""`make demo-in-cluster`: nodesmith installed with its Helm chart, scaling kwok nodes from inside.

Fed by `nodesmith dev demo-in-cluster`; drives `nodesmith.dev.node` (control plane + real node),
`nodesmith.dev.images` (the image from ``deploy/Dockerfile``) and the pinned helm, then does what the
kind quickstart in ``deploy/README.md`` does by hand: apply ``deploy/examples/kwok.yaml``, scale
``inflate`` up and watch kwok nodes appear, scale it to 0 and watch consolidation remove them. Every
wait polls the API with a deadline. Unless asked to keep it, the cluster is torn down at the end.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import time
import typing

import httpx
import yaml

from nodesmith import errors
from nodesmith.dev import binaries, cluster, helm, images, node

NAMESPACE = "nodesmith"
WAIT = 180.0
#: kind/plural paths of the example manifest's objects.
_PATHS = {
    "KWOKNodeClass": "/apis/kwok.nodesmith.io/v1/kwoknodeclasses",
    "NodePool": "/apis/nodesmith.io/v1/nodepools",
    "Deployment": "/apis/apps/v1/namespaces/default/deployments",
}


class DemoError(errors.NodesmithError):
    """Raised when a step of the demo does not happen in time."""


def _wait(what: str, check: typing.Callable[[], typing.Any], progress: binaries.Progress) -> typing.Any:
    deadline = time.monotonic() + WAIT
    while not (result := check()):
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {WAIT:.0f}s waiting for {what}")
        time.sleep(0.5)
    progress(what)
    return result


def install_chart(local: cluster.LocalCluster, reference: str, root: pathlib.Path) -> None:
    """`helm upgrade --install` the chart with the kwok values and the locally built image."""
    chart = root / "deploy" / "charts" / "nodesmith"
    repository, tag = reference.rsplit(":", 1)
    argv = [str(helm.ensure_helm()), "upgrade", "--install", "nodesmith", str(chart)]
    argv += [
        "-n",
        NAMESPACE,
        "--create-namespace",
        "-f",
        str(chart / "values-kwok.yaml"),
        "--set",
        "replicas=2",
    ]
    argv += [
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        "image.pullPolicy=Never",
    ]
    argv += ["--set", "resources.requests.cpu=100m", "--set", "resources.requests.memory=128Mi"]
    env = {**os.environ, "KUBECONFIG": str(local.kubeconfig)}
    subprocess.run(argv, env=env, check=True)


def run(name: str, *, keep: bool, replicas: int = 5) -> None:
    """The whole demo; prints what happens. Raises `errors.NodesmithError` on failure."""
    progress = binaries.stderr_progress("demo-in-cluster")
    local = cluster.LocalCluster(name, progress=progress)
    real = node.up(local)
    try:
        reference, archive = images.build(progress)
        real.import_image(archive)
        install_chart(local, reference, images.repository_root())
        with local.admin_http(timeout=10.0) as http:
            _demo(http, local, progress, replicas)
    finally:
        if keep:
            progress(
                f"kept running: export KUBECONFIG={local.kubeconfig}; `nodesmith dev down --name {name}`"
            )
        else:
            leftovers = node.down(local)
            if leftovers:
                raise DemoError("teardown left behind:\n  " + "\n  ".join(leftovers))


def _demo(
    http: httpx.Client, local: cluster.LocalCluster, progress: binaries.Progress, replicas: int
) -> None:
    server = local.server
    deployment = f"{server}/apis/apps/v1/namespaces/{NAMESPACE}/deployments/nodesmith"

    def available() -> bool:
        status = http.get(deployment).json().get("status", {})
        return bool(status.get("availableReplicas", 0) == 2)

    _wait("nodesmith: 2 replicas available on the real node", available, progress)
    lease = f"{server}/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/nodesmith-leader-election"
    holder = _wait(
        "a leader elected", lambda: http.get(lease).json().get("spec", {}).get("holderIdentity"), progress
    )
    progress(f"leader: {holder}")
    example = images.repository_root() / "deploy" / "examples" / "kwok.yaml"
    for doc in yaml.safe_load_all(example.read_text()):
        response = http.post(f"{server}{_PATHS[doc['kind']]}", json=doc)
        if response.status_code not in (201, 409):
            raise DemoError(f"creating {doc['kind']}: HTTP {response.status_code} {response.text[:300]}")
    inflate = f"{server}/apis/apps/v1/namespaces/default/deployments/inflate"
    pods = f"{server}/api/v1/namespaces/default/pods"
    nodes = f"{server}/api/v1/nodes"

    def scale(count: int) -> None:
        patch = http.patch(
            inflate,
            json={"spec": {"replicas": count}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        patch.raise_for_status()
        progress(f"scaled inflate to {count}")

    def kwok_nodes() -> list[str]:
        items = http.get(nodes, params={"labelSelector": "nodesmith.io/nodepool=default"}).json()["items"]
        return [n["metadata"]["name"] for n in items]

    def running() -> bool:
        items = http.get(pods, params={"labelSelector": "app=inflate"}).json()["items"]
        return len(items) == replicas and all(p.get("status", {}).get("phase") == "Running" for p in items)

    scale(replicas)
    _wait(f"{replicas} inflate pods Running", running, progress)
    progress(f"kwok nodes launched by the in-cluster nodesmith: {', '.join(kwok_nodes())}")
    scale(0)
    _wait("kwok nodes consolidated away (consolidateAfter: 30s)", lambda: not kwok_nodes(), progress)
