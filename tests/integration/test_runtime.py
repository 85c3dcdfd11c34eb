"""The daemon as a user runs it: `nodesmith run` processes against the real control plane.

Two processes elect exactly one leader; killing the leader hands the lease to the standby (the takeover
time is printed); /healthz, /readyz and /metrics answer; SIGTERM releases the lease at once.
"""

from __future__ import annotations

import collections.abc
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import anyio
import httpx
import pytest

from nodesmith.kube.client import KubeClient
from nodesmith.kube.leases import LeaseClient
from nodesmith.runtime import crds

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

NAMESPACE = "kube-system"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    def __init__(self, kubeconfig: pathlib.Path, lease: str, identity: str, log_dir: pathlib.Path) -> None:
        self.identity = identity
        self.health = free_port()
        self.metrics = free_port()
        self.log = log_dir / f"{identity}.log"
        command = [
            sys.executable, "-m", "nodesmith", "run", "--provider", "kwok",
            "--health-port", str(self.health), "--metrics-port", str(self.metrics),
            "--leader-election-name", lease, "--identity", identity,
            "--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def get(self, port: int, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
async def daemons(
    kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> collections.abc.AsyncIterator[collections.abc.Callable[..., Daemon]]:
    kube = await KubeClient.connect(kubeconfig)
    await crds.install(kube, crds.all_crds())
    started: list[Daemon] = []

    def start(lease: str, identity: str) -> Daemon:
        daemon = Daemon(kubeconfig, lease, identity, tmp_path)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop(signal.SIGKILL)


async def holder(leases: LeaseClient, name: str) -> str | None:
    lease = await leases.get(name, NAMESPACE)
    return lease.holder if lease is not None and not lease.expired(leases.clock.now()) else None


async def wait_for(
    probe: collections.abc.Callable[[], collections.abc.Awaitable[bool]], timeout: float = 60
) -> None:
    with anyio.fail_after(timeout):
        while not await probe():
            await anyio.sleep(0.1)


async def test_two_daemons_elect_one_leader_and_the_standby_takes_over(
    kubeconfig: pathlib.Path, daemons: collections.abc.Callable[..., Daemon]
) -> None:
    lease_name = f"nodesmith-test-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    leases = LeaseClient(await KubeClient.connect(kubeconfig), "observer")
    first = daemons(lease_name, "daemon-a")
    second = daemons(lease_name, "daemon-b")

    async def elected() -> bool:
        return await holder(leases, lease_name) in ("daemon-a", "daemon-b")

    await wait_for(elected)
    leader_id = await holder(leases, lease_name)
    leader, standby = (first, second) if leader_id == "daemon-a" else (second, first)

    async def both_ready() -> bool:
        for d in (first, second):
            with contextlib.suppress(httpx.HTTPError):
                if d.get(d.health, "/readyz").status_code != 200:
                    return False
                continue
            return False
        return True

    await wait_for(both_ready)
    await anyio.sleep(2)  # several renewals: the lease must not change hands while both run
    assert await holder(leases, lease_name) == leader.identity
    assert leader.get(leader.metrics, "/metrics").text.count("nodesmith_leader") >= 1
    leading = [
        line
        for line in leader.get(leader.metrics, "/metrics").text.splitlines()
        if line.startswith("nodesmith_leader")
    ]
    standing = [
        line
        for line in standby.get(standby.metrics, "/metrics").text.splitlines()
        if line.startswith("nodesmith_leader")
    ]
    assert leading
    assert leading[0].endswith(" 1.0")
    assert not standing or standing[0].endswith(" 0.0")
    assert leader.get(leader.health, "/healthz").status_code == 200

    killed_at = time.monotonic()
    leader.stop(signal.SIGKILL)

    async def taken_over() -> bool:
        return await holder(leases, lease_name) == standby.identity

    await wait_for(taken_over)
    print(
        f"\nleader killed with SIGKILL; standby took over in {time.monotonic() - killed_at:.2f}s (lease 4s, retry 0.5s)"
    )
    assert standby.process.poll() is None


async def test_sigterm_releases_the_lease_at_once(
    kubeconfig: pathlib.Path, daemons: collections.abc.Callable[..., Daemon]
) -> None:
    lease_name = f"nodesmith-term-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    leases = LeaseClient(await KubeClient.connect(kubeconfig), "observer")
    daemon = daemons(lease_name, "daemon-t")

    async def elected() -> bool:
        return await holder(leases, lease_name) == "daemon-t"

    await wait_for(elected)
    daemon.stop(signal.SIGTERM)
    assert daemon.process.returncode == 0
    assert await holder(leases, lease_name) is None
    assert "released leadership" in daemon.log.read_text()


async def test_sigterm_after_renewals_releases_the_lease_at_once(
    kubeconfig: pathlib.Path, daemons: collections.abc.Callable[..., Daemon]
) -> None:
    """Each renewal moves the Lease's resourceVersion; the release must use the newest one (it used the
    one from acquisition, hit a conflict and left the lease held until it expired)."""
    lease_name = f"nodesmith-renewed-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    leases = LeaseClient(await KubeClient.connect(kubeconfig), "observer")
    daemon = daemons(lease_name, "daemon-r")

    async def elected() -> bool:
        return await holder(leases, lease_name) == "daemon-r"

    await wait_for(elected)
    acquired = await leases.get(lease_name, NAMESPACE)
    assert acquired is not None

    async def renewed_twice() -> bool:
        current = await leases.get(lease_name, NAMESPACE)
        return current is not None and int(current.resource_version) >= int(acquired.resource_version) + 2

    await wait_for(renewed_twice)
    daemon.stop(signal.SIGTERM)
    assert daemon.process.returncode == 0
    assert await holder(leases, lease_name) is None
    assert "released leadership" in daemon.log.read_text()


def test_invalid_settings_are_refused_naming_the_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nodesmith", "run", "--provider", "kwok", "--batch-idle-duration", "soon"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--batch-idle-duration" in result.stderr
    assert "not a duration" in result.stderr
