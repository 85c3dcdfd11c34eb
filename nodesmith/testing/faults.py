"""Faults between nodesmith and the API server, for the fault tests (``tests/chaos``).

* `TcpProxy` sits between a daemon and kube-apiserver on loopback. ``partition()`` stops every byte in
  both directions and leaves new connections hanging (a network that drops packets, not one that refuses
  them); ``heal()`` closes what was stuck (as a peer's reset eventually would) and forwards again.
  TLS passes through untouched: the API server's certificate names 127.0.0.1, which the proxy listens on.
* `proxied_kubeconfig` writes a copy of a kubeconfig whose server is the proxy.
* `ApiServerRestarter` stops and restarts the session control plane's kube-apiserver with its recorded
  command line.
* `compact_etcd` compacts the control plane's etcd to its current revision, so a watch resumed from an
  older resourceVersion is answered 410 Gone.
"""

from __future__ import annotations

import base64
import json
import pathlib
import ssl
import time
from typing import Any

import anyio
import anyio.abc
import attrs
import httpx
import yaml

from nodesmith.dev import cluster, processes
from nodesmith.testing import e2e

__all__ = ["ApiServerRestarter", "TcpProxy", "compact_etcd", "etcd_url", "proxied_kubeconfig"]


@attrs.define
class TcpProxy:
    """A loopback TCP proxy to ``host:port`` that a test can partition and heal."""

    host: str
    port: int
    listen_port: int = attrs.field(factory=e2e.free_port)
    partitioned: bool = False
    connections: int = 0
    _live: set[anyio.CancelScope] = attrs.field(factory=set)

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.listen_port)
        task_status.started()
        await listener.serve(self._handle)

    def partition(self) -> None:
        self.partitioned = True

    def heal(self) -> None:
        self.partitioned = False
        for scope in list(self._live):
            scope.cancel()

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.connections += 1
        with anyio.CancelScope() as scope:
            self._live.add(scope)
            try:
                async with client:
                    if self.partitioned:
                        await anyio.sleep_forever()
                    try:
                        upstream = await anyio.connect_tcp(self.host, self.port)
                    except OSError:
                        return
                    async with upstream, anyio.create_task_group() as group:
                        group.start_soon(self._pump, client, upstream, group.cancel_scope)
                        group.start_soon(self._pump, upstream, client, group.cancel_scope)
            finally:
                self._live.discard(scope)

    async def _pump(
        self, source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, both: anyio.CancelScope
    ) -> None:
        try:
            async for chunk in source:
                if self.partitioned:
                    await anyio.sleep_forever()  # dropped on the floor until heal() closes the connection
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        both.cancel()


def proxied_kubeconfig(kubeconfig: pathlib.Path, proxy: TcpProxy, out: pathlib.Path) -> pathlib.Path:
    """A copy of ``kubeconfig`` whose clusters' server is ``proxy`` (same scheme, same certificates)."""
    config: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    for entry in config.get("clusters") or ():
        entry["cluster"]["server"] = f"https://127.0.0.1:{proxy.listen_port}"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    out.chmod(0o600)
    return out


def _recorded(local: cluster.LocalCluster) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(local.state_path.read_text())
    return state


def etcd_url(local: cluster.LocalCluster) -> str:
    return f"http://127.0.0.1:{_recorded(local)['ports']['etcd']}"


def compact_etcd(local: cluster.LocalCluster) -> int:
    """Compact etcd to its current revision (etcd's JSON gateway); returns that revision."""
    url = etcd_url(local)
    with httpx.Client(timeout=10) as http:
        answer = http.post(f"{url}/v3/kv/range", json={"key": base64.b64encode(b"/").decode()})
        answer.raise_for_status()
        revision = int(answer.json()["header"]["revision"])
        http.post(f"{url}/v3/kv/compaction", json={"revision": revision, "physical": True}).raise_for_status()
    return revision


class ApiServerRestarter:
    """Stops and restarts a local control plane's kube-apiserver with its recorded argv."""

    def __init__(self, local: cluster.LocalCluster) -> None:
        self.cluster = local
        recorded = _recorded(local)["processes"]
        self.current = processes.Process.from_json(next(p for p in recorded if p["name"] == "kube-apiserver"))
        self.replacements: list[processes.Process] = []

    def stop(self) -> None:
        processes.stop(self.current, 15.0)

    def start(self) -> None:
        """Spawn the replacement. Call it from the main thread: the parent-death signal fires when the
        *thread* that forked exits, and a worker thread would take the API server down with it."""
        self.current = processes.spawn(
            "kube-apiserver", self.current.argv, self.current.log, die_with_parent=True
        )
        self.replacements.append(self.current)

    def wait_ready(self) -> None:
        pki = self.cluster.pki_dir
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        with httpx.Client(verify=context) as http:
            processes.wait_ready(self.current, [f"{self.cluster.server}/readyz"], http, time.monotonic() + 90)

    def close(self) -> None:
        for proc in self.replacements:
            processes.stop(proc, 15.0)
