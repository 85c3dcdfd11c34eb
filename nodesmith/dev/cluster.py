"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, run as plain processes (what kwokctl's "binary" runtime does).

Fed by `nodesmith.dev.binaries` (paths), `nodesmith.dev.pki` (certificates), `nodesmith.dev.processes`
(spawn/stop/readiness) and the kwok stages in ``nodesmith/dev/data/``. Consumed by the CLI
(`nodesmith dev up|down|env|status`), by `nodesmith.testing.cluster` (the pytest fixture) and by
anything else that wants a cluster, e.g. the demo and ``.ci/run``.

A cluster is a directory, ``<cache>/clusters/<name>/``, holding ``pki/``, ``etcd/`` data, ``logs/``
(one file per component, kept after `down` for debugging), the admin ``kubeconfig`` and
``state.json`` -- the PIDs, argv and ports that let a later CLI invocation find, check and stop the
processes. `up` always starts from a fresh PKI and an empty etcd; ports are picked free at start.
Everything binds 127.0.0.1; the service CIDR is configuration only and nothing sends traffic to it.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import pathlib
import shutil
import socket
import ssl
import time
import typing

import httpx
import yaml

from nodesmith import errors
from nodesmith.dev import binaries, pki, processes, versions

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
LOOPBACK = "127.0.0.1"
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")

#: Controllers that need a cloud or a real network; an unknown name here makes KCM exit.
KCM_CONTROLLERS = (
    "*,-node-ipam-controller,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller"
)

#: Seconds each component gets after SIGTERM before SIGKILL, in stop order.
STOP_TIMEOUTS = {
    "kwok": 5.0,
    "kube-scheduler": 5.0,
    "kube-controller-manager": 5.0,
    "kube-apiserver": 15.0,
    "etcd": 10.0,
}

Progress = binaries.Progress


class ClusterError(errors.NodesmithError):
    """Raised when the cluster cannot be started, or is asked to start while already running."""


@dataclasses.dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    running: bool
    ready: bool
    rss_mib: float | None
    log: pathlib.Path


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def default_directory(name: str) -> pathlib.Path:
    return binaries.cache_dir() / "clusters" / name


class LocalCluster:
    """One named local control plane; `up()`/`down()` work across processes through its state file."""

    def __init__(
        self,
        name: str = "default",
        *,
        directory: pathlib.Path | None = None,
        progress: Progress | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.name = name
        self.directory = directory or default_directory(name)
        self.progress = progress or binaries.stderr_progress()
        self.die_with_parent = die_with_parent
        self._procs: list[processes.Process] = []
        self._state: dict[str, typing.Any] = {}
        self._load_state()

    # -- paths and state ---------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> pathlib.Path:
        """The admin kubeconfig (user ``nodesmith-admin`` in ``system:masters``)."""
        return self.directory / "kubeconfig"

    @property
    def logs(self) -> pathlib.Path:
        return self.directory / "logs"

    @property
    def pki_dir(self) -> pathlib.Path:
        return self.directory / "pki"

    @property
    def state_path(self) -> pathlib.Path:
        return self.directory / "state.json"

    @property
    def api_address(self) -> str:
        """Where the API server listens: loopback, or the address a real node's pods reach it on."""
        return str(self._state.get("api_address", LOOPBACK))

    @property
    def server(self) -> str | None:
        """``https://<api_address>:<port>`` of the API server, once known."""
        return self._state.get("server")

    def _load_state(self) -> None:
        if self.state_path.exists():
            self._state = json.loads(self.state_path.read_text())
            self._procs = [processes.Process.from_json(p) for p in self._state.get("processes", [])]

    def _save_state(self) -> None:
        self._state["processes"] = [p.to_json() for p in self._procs]
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=2))
        os.replace(tmp, self.state_path)

    def admin_http(self, timeout: float = 5.0) -> httpx.Client:
        """An HTTP client that trusts the cluster CA and presents the admin client certificate."""
        # An SSLContext, not verify=<path>/cert=<pair>: httpx 0.28 drops `cert` when `verify` is a str.
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return httpx.Client(verify=context, timeout=timeout)

    def is_running(self) -> bool:
        """True if any recorded process of this cluster is still alive."""
        return any(processes.is_alive(p) for p in self._procs)

    # -- up ----------------------------------------------------------------------------------------

    def up(
        self,
        *,
        timeout: float = 120.0,
        paths: dict[str, pathlib.Path] | None = None,
        api_address: str = LOOPBACK,
    ) -> None:
        """Start every component and wait until each is ready and the cluster accepts pods.

        `api_address` other than loopback (a real node's, see `nodesmith.dev.nodenet`) makes the API
        server listen and advertise there, publish itself as the ``kubernetes`` Service's endpoint, and
        reach kubelets with a client certificate at their InternalIP.

        Raises `ClusterError` if this cluster is already running, `binaries.BinariesUnavailableError`
        if binaries are missing, `processes.ComponentFailedError` if a component fails; on failure
        whatever started is stopped again and the logs are kept.
        """
        if self.is_running():
            raise ClusterError(
                f"cluster {self.name!r} is already running (state {self.state_path}); `dev down` first"
            )
        started = time.monotonic()
        paths = paths or binaries.ensure_binaries(progress=self.progress)
        self._prepare_directory()
        self._state["api_address"] = api_address
        deadline = time.monotonic() + timeout
        try:
            self._start(paths, deadline)
        except BaseException:
            self.progress("start failed; stopping what was started (logs kept in " + str(self.logs) + ")")
            self.down()
            raise
        self.progress(
            f"cluster {self.name!r} ready in {time.monotonic() - started:.1f}s; KUBECONFIG={self.kubeconfig}"
        )

    def _prepare_directory(self) -> None:
        for sub in ("pki", "etcd", "config"):
            shutil.rmtree(self.directory / sub, ignore_errors=True)
        if self.logs.exists():
            previous = self.directory / "logs.previous"
            shutil.rmtree(previous, ignore_errors=True)
            self.logs.rename(previous)
        for sub in ("pki", "etcd", "config", "logs"):
            (self.directory / sub).mkdir(parents=True, mode=0o700)
        self._procs = []
        self._state = {"name": self.name, "directory": str(self.directory), "versions": versions.COMPONENTS}

    def _start(self, paths: dict[str, pathlib.Path], deadline: float) -> None:
        ports = dict(
            zip(
                ("etcd", "etcd-peer", "kube-apiserver", "kcm", "scheduler", "kwok"),
                _free_ports(6),
                strict=True,
            )
        )
        ca = pki.Authority.create(self.pki_dir)
        creds = self._credentials(ca)
        server = f"https://{self.api_address}:{ports['kube-apiserver']}"
        self._state.update(server=server, ports=ports, kubeconfig=str(self.kubeconfig))
        for name, (user_pair, path) in creds.items():
            self.write_kubeconfig(path, server, ca.cert_path, user_pair, name)
        local = "http://127.0.0.1"
        with self.admin_http() as http:
            etcd = self._spawn("etcd", [str(paths["etcd"]), *self._etcd_flags(ports)])
            self._ready(
                etcd, [f"{local}:{ports['etcd']}/readyz", f"{local}:{ports['etcd']}/health"], http, deadline
            )
            apiserver_argv = [str(paths["kube-apiserver"]), *self._apiserver_flags(ports, ca)]
            self._ready(self._spawn("kube-apiserver", apiserver_argv), [f"{server}/readyz"], http, deadline)
            # The rest only need the API server, so they start together and are awaited in turn.
            secure = "https://127.0.0.1"
            started = [
                (
                    self._spawn(
                        "kube-controller-manager",
                        [str(paths["kube-controller-manager"]), *self._kcm_flags(ports, ca)],
                    ),
                    f"{secure}:{ports['kcm']}",
                ),
                (
                    self._spawn(
                        "kube-scheduler", [str(paths["kube-scheduler"]), *self._scheduler_flags(ports, ca)]
                    ),
                    f"{secure}:{ports['scheduler']}",
                ),
                (
                    self._spawn("kwok", [str(paths["kwok"]), *self._kwok_flags(ports)]),
                    f"{local}:{ports['kwok']}",
                ),
            ]
            for proc, base in started:
                self._ready(proc, [f"{base}/readyz", f"{base}/healthz"], http, deadline)
            self._wait_default_service_account(http, server, deadline)

    def _ready(self, proc: processes.Process, urls: list[str], http: httpx.Client, deadline: float) -> None:
        url = processes.wait_ready(proc, urls, http, deadline)
        self._state.setdefault("ready_urls", {})[proc.name] = url
        self._save_state()
        self.progress(f"{proc.name} ready ({url})")

    def _spawn(self, name: str, argv: list[str]) -> processes.Process:
        proc = processes.spawn(name, argv, self.logs / f"{name}.log", die_with_parent=self.die_with_parent)
        self._procs.append(proc)
        self._save_state()
        self.progress(f"started {name} (pid {proc.pid})")
        return proc

    def _wait_default_service_account(self, http: httpx.Client, server: str, deadline: float) -> None:
        """Pods are refused until KCM has created ``default/default``; wait so callers need not."""
        url = f"{server}/api/v1/namespaces/default/serviceaccounts/default"
        while http.get(url).status_code != 200:
            if time.monotonic() > deadline:
                raise processes.ComponentFailedError("service account default/default was never created")
            time.sleep(0.2)

    # -- credentials and configuration -----------------------------------------------------------

    def _credentials(self, ca: pki.Authority) -> dict[str, tuple[pki.Pair, pathlib.Path]]:
        """Client certificates and the kubeconfig each one goes into, keyed by role."""
        config = self.directory / "config"
        pki.service_account_keys(self.pki_dir)
        return {
            "admin": (
                ca.client("admin", user="nodesmith-admin", groups=("system:masters",)),
                self.kubeconfig,
            ),
            "kube-controller-manager": (
                ca.client("kcm-client", user="system:kube-controller-manager"),
                config / "kube-controller-manager.kubeconfig",
            ),
            "kube-scheduler": (
                ca.client("scheduler-client", user="system:kube-scheduler"),
                config / "kube-scheduler.kubeconfig",
            ),
            # kwok writes node and pod status for whatever it manages; like kwokctl we give it admin rights.
            "kwok": (
                ca.client("kwok-client", user="kwok-controller", groups=("system:masters",)),
                config / "kwok.kubeconfig",
            ),
        }

    def write_kubeconfig(
        self, path: pathlib.Path, server: str, ca: pathlib.Path, pair: pki.Pair, user: str
    ) -> None:
        import base64

        def b64(p: pathlib.Path) -> str:
            return base64.b64encode(p.read_bytes()).decode()

        context = f"nodesmith-{self.name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": context, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}
            ],
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate-data": b64(pair.cert), "client-key-data": b64(pair.key)},
                }
            ],
            "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def _etcd_flags(self, ports: dict[str, int]) -> list[str]:
        client, peer = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd-peer']}"
        return [
            "--name=nodesmith",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=nodesmith={peer}",
            "--initial-cluster-state=new",
            # Throwaway data: skipping fsync makes every write (and so every test) faster.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_flags(self, ports: dict[str, int], ca: pki.Authority) -> list[str]:
        address = self.api_address
        extra_ips = ("10.96.0.1",) if address == LOOPBACK else ("10.96.0.1", address)
        serving = ca.serving("kube-apiserver", extra_dns=pki.APISERVER_DNS_NAMES, extra_ips=extra_ips)
        proxy = ca.client("front-proxy-client", user="front-proxy-client")
        return [
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            f"--bind-address={address}",
            f"--advertise-address={address}",
            f"--secure-port={ports['kube-apiserver']}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={ca.cert_path}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.pki_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={self.pki_dir / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--profiling=false",
            # Stop in about a second instead of 25+: no grace period for load balancers we do not have.
            "--shutdown-delay-duration=0s",
            "--shutdown-send-retry-after=false",
            "--shutdown-watch-termination-grace-period=0s",
            f"--cert-dir={self.pki_dir}",
            *(self._loopback_flags() if address == LOOPBACK else self._real_node_flags(ca)),
            # Aggregation-layer front proxy identity; KCM and the scheduler read this CA at start and
            # log errors every minute without it. Same CA, but only CN front-proxy-client is trusted.
            f"--requestheader-client-ca-file={ca.cert_path}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={proxy.cert}",
            f"--proxy-client-key-file={proxy.key}",
        ]

    def _loopback_flags(self) -> list[str]:
        # The lease reconciler would publish 127.0.0.1 as the `kubernetes` Service's endpoint,
        # which the API refuses (loopback); nothing in this cluster dials that Service anyway.
        return ["--endpoint-reconciler-type=none"]

    def _real_node_flags(self, ca: pki.Authority) -> list[str]:
        # The default endpoint reconciler publishes the advertised address: pods reach the API server
        # through the `kubernetes` Service. `kubectl logs/exec` need the API server to authenticate to
        # kubelets (which check the CA) and to dial their InternalIP, not a hostname that may not resolve.
        client = ca.client(
            "apiserver-kubelet-client", user="kube-apiserver-kubelet-client", groups=("system:masters",)
        )
        return [
            f"--kubelet-client-certificate={client.cert}",
            f"--kubelet-client-key={client.key}",
            f"--kubelet-certificate-authority={ca.cert_path}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]

    def _kcm_flags(self, ports: dict[str, int], ca: pki.Authority) -> list[str]:
        serving = ca.serving("kube-controller-manager")
        kubeconfig = self.directory / "config" / "kube-controller-manager.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['kcm']}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            "--leader-elect=false",
            f"--controllers={KCM_CONTROLLERS}",
            "--allocate-node-cidrs=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
            f"--root-ca-file={ca.cert_path}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={ca.cert_path}",
            f"--cluster-signing-key-file={ca.key_path}",
            "--profiling=false",
        ]

    def _scheduler_flags(self, ports: dict[str, int], ca: pki.Authority) -> list[str]:
        kubeconfig = self.directory / "config" / "kube-scheduler.kubeconfig"
        serving = ca.serving("kube-scheduler")
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['scheduler']}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _kwok_flags(self, ports: dict[str, int]) -> list[str]:
        stages = self.directory / "config" / "kwok.yaml"
        stages.write_text(
            importlib.resources.files("nodesmith.dev").joinpath("data/kwok-stages.yaml").read_text()
        )
        key, value = KWOK_NODE_ANNOTATION
        return [
            f"--kubeconfig={self.directory / 'config' / 'kwok.kubeconfig'}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            f"--server-address=127.0.0.1:{ports['kwok']}",
            f"--cidr={POD_CIDR}",
            # Nodes without an InternalIP get a loopback one: anything that ever dials a "kubelet"
            # (logs, exec) stays on this machine and is refused, instead of leaving it.
            "--node-ip=127.0.0.1",
        ]

    # -- down, status, env -------------------------------------------------------------------------

    def down(self) -> float:
        """Stop every recorded process in reverse start order; return the seconds it took.

        The records stay in the state file (so `status` can say "stopped" and point at the logs);
        `is_alive` checks each PID's command line, so a recycled PID is never signalled.
        """
        started = time.monotonic()
        for proc in reversed(self._procs):
            if processes.is_alive(proc):
                processes.stop(proc, STOP_TIMEOUTS.get(proc.name, 10.0))
                self.progress(f"stopped {proc.name} (pid {proc.pid})")
        if self._procs and self.directory.exists():
            self._state["stopped_at"] = time.time()
            self._save_state()
        return time.monotonic() - started

    def status(self) -> list[ComponentStatus]:
        """Liveness, readiness (the URL that answered at start) and memory of each recorded component."""
        ready_urls: dict[str, str] = self._state.get("ready_urls", {})
        running = {p.name: processes.is_alive(p) for p in self._procs}
        ready = dict.fromkeys(running, False)
        if any(running.values()):
            with self.admin_http(timeout=2.0) as http:
                for name, url in ready_urls.items():
                    if running.get(name):
                        try:
                            ready[name] = http.get(url).status_code == 200
                        except httpx.HTTPError:
                            ready[name] = False
        return [
            ComponentStatus(
                p.name,
                p.pid,
                running[p.name],
                ready[p.name],
                processes.rss_mib(p.pid) if running[p.name] else None,
                p.log,
            )
            for p in self._procs
        ]

    def env(self) -> dict[str, str]:
        """Environment a shell (or a test run) needs to talk to this cluster."""
        return {"KUBECONFIG": str(self.kubeconfig)}
