"""End-to-end helpers: run ``nodesmith run`` as a real process and build scenario objects.

Used by ``tests/e2e`` and the provisioning benchmark: a `DaemonProcess` is the daemon exactly as a user
runs it (its own process, flags, logs, health endpoint), so killing and restarting it is a real crash.
Scenario objects (NodePools, KWOKNodeClasses, Deployments) get unique names per test, and `cleanup`
removes what a test made while the daemon is still there to drain it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import anyio
import httpx

from nodesmith.api import labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient

__all__ = [
    "DEPLOYMENTS",
    "KWOK_NODE_CLASSES",
    "SERVICE_ACCOUNTS",
    "DaemonProcess",
    "cleanup",
    "create_namespace",
    "deployment",
    "eventually",
    "nodepool",
]

DEPLOYMENTS: Final = resources.Resource("apps", "v1", "deployments", "Deployment", namespaced=True)
KWOK_NODE_CLASSES: Final = resources.node_class("kwok.nodesmith.io", "KWOKNodeClass")
SERVICE_ACCOUNTS: Final = resources.Resource("", "v1", "serviceaccounts", "ServiceAccount", namespaced=True)
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DaemonProcess:
    """``python -m nodesmith run --provider kwok`` with test-friendly timings, logging to ``log``.

    Another autoscaler run the same way (a benchmark's Karpenter) sets its own `argv`, `env` (added to
    this process's environment) and `name` after this ``__init__``."""

    name = "nodesmith"

    def __init__(
        self, kubeconfig: pathlib.Path, log: pathlib.Path, *extra: str, provider: str = "kwok"
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.health = free_port()
        self.metrics = free_port()
        self.argv = [
            sys.executable, "-m", "nodesmith", "run", "--provider", provider, "--no-leader-elect",
            "--health-port", str(self.health), "--metrics-port", str(self.metrics),
            "--batch-idle-duration", "500ms", "--batch-max-duration", "3s", *extra,
        ]  # fmt: skip
        self.env: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        return self

    async def wait_ready(self, timeout: float = 60) -> None:
        async def ready() -> bool:
            self.check_alive()
            try:
                async with httpx.AsyncClient() as client:
                    response = await client.get(f"http://127.0.0.1:{self.health}/readyz", timeout=2)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        await eventually(ready, timeout, f"{self.name} to be ready")

    async def decisions(self) -> list[dict[str, Any]]:
        """The daemon's recent decisions (``GET /decisions`` on the health port), oldest first."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.health}/decisions", timeout=5)
        response.raise_for_status()
        return list(response.json()["decisions"])

    async def metrics_text(self) -> str:
        """The daemon's ``/metrics`` exposition (Prometheus text, on the metrics port)."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5)
        response.raise_for_status()
        return response.text

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}; log:\n{self.tail()}")

    def peak_rss_mib(self) -> float:
        """The process's peak resident set size so far (VmHWM), in MiB."""
        assert self.process is not None
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: a crash, no clean-up of any kind."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float, what: str, interval: float = 0.25
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    with anyio.move_on_after(timeout):
        while True:
            result = await probe()
            if result:
                return result
            await anyio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


async def create_namespace(kube: KubeClient, name: str, timeout: float = 60) -> None:
    """Create namespace ``name`` and wait for its ``default`` ServiceAccount: until kube-controller-manager
    has made it, the API server refuses pods created there (403 "serviceaccount default not found")."""
    await kube.create(resources.NAMESPACES, {"metadata": {"name": name}})

    async def default_service_account() -> bool:
        try:
            await kube.get(SERVICE_ACCOUNTS, "default", name)
        except kube_errors.NotFoundError:
            return False
        return True

    await eventually(default_service_account, timeout, f"the default ServiceAccount in {name}", interval=0.1)


def nodepool(
    name: str, node_class: str, *, requirements: Sequence[dict[str, Any]] = (), **spec: Any
) -> dict[str, Any]:
    """A NodePool whose nodes carry ``e2e/pool=<name>``; pods select it with that label."""
    template_spec = {
        "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": node_class},
        "requirements": [
            {"key": labels.LABEL_ARCH, "operator": "In", "values": ["amd64"]},
            {"key": labels.LABEL_OS, "operator": "In", "values": ["linux"]},
            *requirements,
        ],
    }
    body: dict[str, Any] = {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"labels": {"e2e/pool": name}}, "spec": template_spec}, **spec},
    }
    return body


def deployment(
    name: str,
    namespace: str,
    replicas: int,
    *,
    pool: str,
    cpu: str = "1",
    memory: str | None = None,
    pod_spec: dict[str, Any] | None = None,
    **pod_fields: Any,
) -> dict[str, Any]:
    """A pause-container Deployment pinned to NodePool ``pool`` by its ``e2e/pool`` label; ``pod_spec`` and
    keyword arguments add fields to the pod spec (a ``nodeSelector`` is merged with the pool's)."""
    requests = {"cpu": cpu} | ({"memory": memory} if memory else {})
    extra = {**(pod_spec or {}), **pod_fields}
    selector = {"e2e/pool": pool, **extra.pop("nodeSelector", {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": selector,
                    "containers": [{"name": "pause", "image": "pause", "resources": {"requests": requests}}],
                    **extra,
                },
            },
        },
    }


async def cleanup(
    kube: KubeClient, *, namespace: str | None, nodepools: Sequence[str], timeout: float = 90
) -> None:
    """Delete the test's namespace and NodePools' NodeClaims (letting a running daemon drain them), then
    clear what is left, finalizers included, so the next test starts clean."""
    if namespace:
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(resources.NAMESPACES, namespace)

    async def mine() -> list[dict[str, Any]]:
        return [
            c
            for c in (await kube.list(resources.NODECLAIMS)).items
            if c["metadata"].get("labels", {}).get(labels.LABEL_NODEPOOL) in nodepools
        ]

    deadline = time.monotonic() + timeout
    # Delete on every pass: the daemon may launch a replacement for pods evicted by the first deletions.
    while (claims := await mine()) and time.monotonic() < deadline:
        for claim in claims:
            if not claim["metadata"].get("deletionTimestamp"):
                with contextlib.suppress(kube_errors.NotFoundError):
                    await kube.delete(resources.NODECLAIMS, claim["metadata"]["name"])
        await anyio.sleep(0.5)
    for claim in await mine():  # the daemon did not finish: remove finalizers so nothing leaks
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.merge_patch(
                resources.NODECLAIMS, claim["metadata"]["name"], {"metadata": {"finalizers": None}}
            )
    for node in (await kube.list(resources.NODES)).items:
        if node["metadata"].get("labels", {}).get(labels.LABEL_NODEPOOL) in nodepools:
            with contextlib.suppress(kube_errors.NotFoundError):
                await kube.merge_patch(
                    resources.NODES, node["metadata"]["name"], {"metadata": {"finalizers": None}}
                )
                await kube.delete(resources.NODES, node["metadata"]["name"])
    for name in nodepools:
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(resources.NODEPOOLS, name)
