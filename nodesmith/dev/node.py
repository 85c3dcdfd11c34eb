"""One real kubelet node next to the local control plane: containerd, runc, a CNI bridge, kube-proxy.

Fed by `nodesmith dev up --real-node` / `dev down` (through `up` and `down` below) and by the
in-cluster e2e test. Everything it makes lives in ``<cluster dir>/node/`` (configuration, certificates,
containerd's and the kubelet's roots, pod logs, ``state.json``) and ``/run/nodesmith/<cluster>/``
(containerd's runtime state and socket); logs go to the cluster's ``logs/``. What it cannot keep there --
the network (`nodesmith.dev.nodenet`), the kubelet's cgroups, iptables chains and sysctls -- is recorded
in ``state.json`` when changed and put back by `down`, so nothing outlives the node: no process, mount,
iptables chain, link, cgroup or sysctl change.

How the pieces fit (each gotcha of the recipe in the project notes has its line here):

* containerd 1.6 from Debian with ``restrict_oom_score_adj`` (root here cannot lower OOM scores, and
  runc fails every sandbox without it) and an HTTP proxy on a closed loopback port, so an image pull
  can never leave the machine: images are imported (`nodesmith.dev.images`), never pulled;
* the kubelet (cgroupfs driver, cgroup v1 allowed) serves on the node address with a certificate from
  the cluster CA and authenticates the API server's client certificate, so ``kubectl logs/exec`` work;
  it registers tainted like a control-plane node, so only pods that tolerate it (the chart's) run here;
* kube-proxy (iptables mode, masquerading Service traffic so replies from pods on the same bridge come
  back through it) gives pods the ``kubernetes`` Service, which the API server publishes itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import time
import typing

import httpx
import yaml

from nodesmith import errors
from nodesmith.dev import binaries, cluster, host, images, nodenet, pki, processes, versions

#: Sysctls the kubelet sets on start (its "kernel defaults"); recorded and put back by `down`.
KUBELET_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
#: Nothing listens here: every registry request containerd might make is refused on loopback.
CLOSED_PROXY = "http://127.0.0.1:9"
STOP_TIMEOUTS = {"kube-proxy": 5.0, "kubelet": 10.0, "containerd": 10.0}
KUBE_PROXY_HEALTH = "http://127.0.0.1:10256/healthz"

Progress = binaries.Progress


class NodeError(errors.NodesmithError):
    """Raised when the real node cannot start or its teardown leaves something behind."""


class RealNode:
    """The node of one `cluster.LocalCluster`; its state file lets a later process stop it."""

    def __init__(self, local: cluster.LocalCluster) -> None:
        self.cluster = local
        self.directory = local.directory / "node"
        self.run_dir = pathlib.Path("/run/nodesmith") / local.name
        self.progress = local.progress
        self._state: dict[str, typing.Any] = {}
        self._procs: list[processes.Process] = []
        if self.state_path.exists():
            self._state = json.loads(self.state_path.read_text())
            self._procs = [processes.Process.from_json(p) for p in self._state.get("processes", [])]

    # -- paths and state ---------------------------------------------------------------------------

    @property
    def state_path(self) -> pathlib.Path:
        return self.directory / "state.json"

    @property
    def name(self) -> str:
        """The Node's name; not the machine's hostname, which may resolve to loopback."""
        return f"{self.cluster.name}-node"

    @property
    def socket(self) -> pathlib.Path:
        return self.run_dir / "containerd.sock"

    @property
    def exists(self) -> bool:
        """True while anything of this node may still need tearing down."""
        return bool(self._state) and not self._state.get("torn_down", False)

    def _save(self) -> None:
        self._state["processes"] = [p.to_json() for p in self._procs]
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=2))
        os.replace(tmp, self.state_path)

    def ctr(self, *args: str, check: bool = True) -> str:
        """Run ``ctr`` against this node's containerd in the Kubernetes namespace; return stdout."""
        return host.run(["ctr", "--address", str(self.socket), "-n", "k8s.io", *args], check=check).stdout

    def import_image(self, archive: pathlib.Path) -> None:
        self.ctr("images", "import", str(archive))

    # -- up ----------------------------------------------------------------------------------------

    def prepare(self, network: dict[str, typing.Any]) -> None:
        """Start a fresh record (the network is already made) before anything else changes the machine."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self._procs = []
        self._state = {
            "node_name": self.name,
            "network": network,
            "sysctls": {name: host.read_sysctl(name) for name in KUBELET_SYSCTLS},
            "netns_before": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else None,
            "log_links_dir_existed": os.path.isdir("/var/log/containers"),
        }
        self._save()

    def start(self, paths: dict[str, pathlib.Path], deadline: float) -> None:
        """containerd, the sandbox image, the kubelet (until the Node is Ready), then kube-proxy."""
        for sub in ("containerd", "kubelet", "cni/net.d", "cni/ipam", "pod-logs", "config", "opt"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        containerd = self._spawn(
            "containerd",
            ["containerd", "--config", str(self._containerd_config())],
            env={**os.environ, "HTTP_PROXY": CLOSED_PROXY, "HTTPS_PROXY": CLOSED_PROXY, "NO_PROXY": ""},
        )
        self._wait(containerd, deadline, "containerd answering", self._containerd_answers)
        self.import_image(images.pause_archive(self.progress))
        self._write_credentials()
        kubelet = self._spawn("kubelet", [str(paths["kubelet"]), *self._kubelet_flags()])
        with self.cluster.admin_http() as http:
            self._wait(kubelet, deadline, f"Node {self.name} Ready", lambda: self._node_ready(http))
            proxy = self._spawn(
                "kube-proxy", [str(paths["kube-proxy"]), f"--config={self._kube_proxy_config()}"]
            )
            self._wait(proxy, deadline, "kube-proxy healthy", lambda: _http_ok(http, KUBE_PROXY_HEALTH))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> processes.Process:
        proc = processes.spawn(
            name,
            argv,
            self.cluster.logs / f"{name}.log",
            die_with_parent=self.cluster.die_with_parent,
            env=env,
        )
        self._procs.append(proc)
        self._save()
        self.progress(f"started {name} (pid {proc.pid})")
        return proc

    def _wait(
        self, proc: processes.Process, deadline: float, what: str, check: typing.Callable[[], bool]
    ) -> None:
        while not check():
            if not processes.is_alive(proc):
                raise NodeError(f"{proc.name} exited (log {proc.log}):\n{processes.log_tail(proc)}")
            if time.monotonic() > deadline:
                raise NodeError(f"timed out waiting for {what} (log {proc.log}):\n{processes.log_tail(proc)}")
            time.sleep(0.3)
        self.progress(what)

    def _containerd_answers(self) -> bool:
        # `ctr version` prints its client half even when the server is not up yet: go by the exit code.
        return host.run(["ctr", "--address", str(self.socket), "version"], check=False).returncode == 0

    def _node_ready(self, http: httpx.Client) -> bool:
        response = http.get(f"{self.cluster.server}/api/v1/nodes/{self.name}")
        if response.status_code != 200:
            return False
        conditions = response.json().get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # -- configuration -------------------------------------------------------------------------------

    def _containerd_config(self) -> pathlib.Path:
        cri = "io.containerd.grpc.v1.cri"
        runc = f'plugins."{cri}".containerd.runtimes.runc'
        lines = [
            "version = 2",
            f'root = "{self.directory / "containerd"}"',
            f'state = "{self.run_dir / "state"}"',
            "[grpc]",
            f'  address = "{self.socket}"',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{self.directory / "opt"}"',
            f'[plugins."{cri}"]',
            f'  sandbox_image = "{images.PAUSE_IMAGE}"',
            # Root here lacks CAP_SYS_RESOURCE: runc cannot set the sandbox's -998 OOM score otherwise.
            "  restrict_oom_score_adj = true",
            '  stream_server_address = "127.0.0.1"',
            f'[plugins."{cri}".containerd]',
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
            f"[{runc}]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{runc}.options]",
            "  SystemdCgroup = false",
            f'[plugins."{cri}".cni]',
            '  bin_dir = "/usr/lib/cni"',
            f'  conf_dir = "{self.directory / "cni" / "net.d"}"',
        ]
        conflist = {
            "cniVersion": "1.0.0",
            "name": "nodesmith",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": nodenet.BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": nodenet.POD_CIDR, "gateway": nodenet.POD_GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.directory / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.directory / "cni" / "net.d" / "10-nodesmith.conflist").write_text(
            json.dumps(conflist, indent=2)
        )
        path = self.directory / "config" / "containerd.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _write_credentials(self) -> None:
        ca = pki.Authority.load(self.cluster.pki_dir)
        server = self.cluster.server
        assert server is not None
        config = self.directory / "config"
        kubelet = ca.client("kubelet-client", user=f"system:node:{self.name}", groups=("system:nodes",))
        self.cluster.write_kubeconfig(config / "kubelet.kubeconfig", server, ca.cert_path, kubelet, "kubelet")
        proxy = ca.client("kube-proxy-client", user="system:kube-proxy")
        self.cluster.write_kubeconfig(
            config / "kube-proxy.kubeconfig", server, ca.cert_path, proxy, "kube-proxy"
        )
        ca.issue(
            "kubelet-serving",
            common_name=self.name,
            dns_names=(self.name,),
            ip_addresses=(nodenet.API_ADDRESS,),
            server=True,
        )

    def _kubelet_flags(self) -> list[str]:
        pki_dir = self.cluster.pki_dir
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # cgroup v1 hosts only get a maintenance-mode warning in 1.34; containerd 1.6 cannot tell
            # the kubelet its cgroup driver, so it is set here (and in containerd's runc options).
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "failSwapOn": False,
            "address": nodenet.API_ADDRESS,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "tlsCertFile": str(pki_dir / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki_dir / "kubelet-serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki_dir / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            # No host resolver inside pods: a DNS query would be traffic off the bridge.
            "resolvConf": "",
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "podLogsDir": str(self.directory / "pod-logs"),
            # Imported images cannot be pulled again: never garbage-collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "registerWithTaints": [CONTROL_PLANE_TAINT],
        }
        path = self.directory / "config" / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [
            f"--config={path}",
            f"--kubeconfig={self.directory / 'config' / 'kubelet.kubeconfig'}",
            f"--node-ip={nodenet.API_ADDRESS}",
            f"--hostname-override={self.name}",
            f"--root-dir={self.directory / 'kubelet'}",
            f"--cert-dir={self.directory / 'kubelet' / 'pki'}",
            "--v=2",
        ]

    def _kube_proxy_config(self) -> pathlib.Path:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self.directory / "config" / "kube-proxy.kubeconfig")},
            "hostnameOverride": self.name,
            "clusterCIDR": nodenet.POD_CIDR,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "nodePortAddresses": [f"{nodenet.API_ADDRESS}/32"],
            # Leave the machine's conntrack and route_localnet sysctls alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False, "masqueradeAll": True},
        }
        path = self.directory / "config" / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # -- down ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the node and undo everything it changed on the machine except the network."""
        self._drain()
        by_name = {p.name: p for p in self._procs}
        if (proxy := by_name.get("kube-proxy")) is not None:
            processes.stop(proxy, STOP_TIMEOUTS["kube-proxy"])
            with contextlib.suppress(OSError):
                host.run([proxy.argv[0], "--cleanup"], check=False)
        if (kubelet := by_name.get("kubelet")) is not None:
            processes.stop(kubelet, STOP_TIMEOUTS["kubelet"])
        if (containerd := by_name.get("containerd")) is not None and processes.is_alive(containerd):
            self._remove_containers()
            processes.stop(containerd, STOP_TIMEOUTS["containerd"])
        self._kill_shims()
        self._unmount()
        self._remove_cgroups()
        nodenet.remove_kube_chains()
        for name, value in self._state.get("sysctls", {}).items():
            if value is not None:
                host.write_sysctl(name, value)
        self._remove_log_links()
        for sub in ("containerd", "kubelet", "opt", "cni"):
            shutil.rmtree(self.directory / sub, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.run_dir.parent.rmdir()
        self.progress(f"node {self.name} stopped")

    def _drain(self) -> None:
        """Delete the node's pods through the API so the kubelet unmounts volumes and runs CNI DEL."""
        server = self.cluster.server
        by_name = {p.name: p for p in self._procs}
        kubelet = by_name.get("kubelet")
        if server is None or kubelet is None or not processes.is_alive(kubelet):
            return
        try:
            with self.cluster.admin_http(timeout=5.0) as http:
                http.patch(
                    f"{server}/api/v1/nodes/{self.name}",
                    json={"spec": {"unschedulable": True}},
                    headers={"Content-Type": "application/merge-patch+json"},
                )
                deadline = time.monotonic() + 60.0
                while time.monotonic() < deadline:
                    pods = http.get(
                        f"{server}/api/v1/pods", params={"fieldSelector": f"spec.nodeName={self.name}"}
                    )
                    items = pods.json().get("items", []) if pods.status_code == 200 else []
                    if not items:
                        break
                    for pod in items:
                        meta = pod["metadata"]
                        if "deletionTimestamp" not in meta:
                            http.delete(
                                f"{server}/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                params={"gracePeriodSeconds": "5"},
                            )
                    time.sleep(0.5)
                # The kubelet stops sandboxes (CNI DEL, network namespace removed) right after.
                while time.monotonic() < deadline and self.ctr("tasks", "ls", "-q", check=False).strip():
                    time.sleep(0.5)
        except httpx.HTTPError as err:
            self.progress(f"could not drain {self.name} through the API ({err}); forcing")

    def _remove_containers(self) -> None:
        for task in self.ctr("tasks", "ls", "-q", check=False).split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
            self.ctr("tasks", "rm", "-f", task, check=False)
        for container in self.ctr("containers", "ls", "-q", check=False).split():
            self.ctr("containers", "rm", container, check=False)

    def _kill_shims(self) -> None:
        """Shims outlive containerd by design; ours name this node's socket on their command line."""
        needle = str(self.socket).encode()
        for entry in pathlib.Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount(self) -> None:
        """Unmount (deepest first) what the kubelet and containerd left under our directories."""
        before = set(self._state.get("netns_before") or [])
        roots = (str(self.directory) + "/", str(self.run_dir) + "/")
        points = []
        for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            netns = point.startswith("/run/netns/") and os.path.basename(point) not in before
            if netns or (point + "/").startswith(roots):
                points.append(point)
        for point in sorted(set(points), key=len, reverse=True):
            if host.run(["umount", point], check=False).returncode != 0:
                host.run(["umount", "-l", point], check=False)
        if os.path.isdir("/run/netns"):
            for name in set(os.listdir("/run/netns")) - before:
                with contextlib.suppress(OSError):
                    os.unlink(f"/run/netns/{name}")
            if self._state.get("netns_before") is None:
                with contextlib.suppress(OSError):
                    os.rmdir("/run/netns")

    def _remove_cgroups(self) -> None:
        root = pathlib.Path("/sys/fs/cgroup")
        trees = [root / "kubepods", *(d / "kubepods" for d in root.iterdir() if d.is_dir())]
        for tree in trees:
            if not tree.is_dir():
                continue
            for sub in sorted(
                (p for p in tree.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            ):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                tree.rmdir()

    def _remove_log_links(self) -> None:
        links = pathlib.Path("/var/log/containers")
        if not links.is_dir():
            return
        ours = str(self.directory / "pod-logs")
        for link in links.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(ours):
                link.unlink()
        if not self._state.get("log_links_dir_existed", True):
            with contextlib.suppress(OSError):
                links.rmdir()

    def leftovers(self) -> list[str]:
        """What of this node is still on the machine (empty after a clean `down`)."""
        found = [f"process {p.name} (pid {p.pid})" for p in self._procs if processes.is_alive(p)]
        mounts = pathlib.Path("/proc/self/mountinfo").read_text()
        for root in (str(self.directory), str(self.run_dir)):
            found += [
                f"mount {line.split()[4]}" for line in mounts.splitlines() if line.split()[4].startswith(root)
            ]
        found += [
            f"link {link}" for link in (nodenet.BRIDGE,) if pathlib.Path("/sys/class/net", link).exists()
        ]
        for tool in ("iptables-save", "ip6tables-save"):
            saved = host.run([tool], check=False).stdout
            found += [
                f"{tool}: {line}" for line in saved.splitlines() if "KUBE-" in line or "NODESMITH-" in line
            ]
        cgroup = pathlib.Path("/sys/fs/cgroup")
        found += [f"cgroup {p}" for p in cgroup.glob("*/kubepods")] + [
            f"cgroup {p}" for p in cgroup.glob("kubepods")
        ]
        return found

    def mark_torn_down(self) -> None:
        self._state["torn_down"] = True
        self._save()


def _http_ok(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def up(local: cluster.LocalCluster, *, timeout: float = 300.0) -> RealNode:
    """Start `local`'s control plane with a real node; on failure tear down whatever started."""
    host.require_root("`nodesmith dev up --real-node`")
    host.ensure_packages(local.progress)
    paths = binaries.ensure_binaries(
        {**versions.COMPONENTS, **versions.NODE_COMPONENTS}, progress=local.progress
    )
    images.pause_archive(local.progress)
    if local.is_running():
        raise cluster.ClusterError(f"cluster {local.name!r} is already running; `nodesmith dev down` first")
    reclaim_stale(local.progress)
    node = RealNode(local)
    started = time.monotonic()
    deadline = started + timeout
    node.prepare(nodenet.setup())
    try:
        control_plane = {k: v for k, v in paths.items() if k in versions.COMPONENTS}
        local.up(timeout=timeout, paths=control_plane, api_address=nodenet.API_ADDRESS)
        node.start(paths, deadline)
    except BaseException:
        local.progress("real node failed to start; tearing everything down")
        down(local)
        raise
    local.progress(f"real node {node.name} ready in {time.monotonic() - started:.1f}s")
    return node


def reclaim_stale(progress: Progress) -> None:
    """Tear down real nodes whose processes are all gone but whose network, mounts or chains remain
    (a run killed before its teardown); raise `NodeError` if one is still running."""
    for state in sorted((binaries.cache_dir() / "clusters").glob("*/node/state.json")):
        local = cluster.LocalCluster(
            state.parent.parent.name, directory=state.parent.parent, progress=progress
        )
        stale = RealNode(local)
        if not stale.exists:
            continue
        if local.is_running() or any(processes.is_alive(p) for p in stale._procs):
            raise NodeError(
                f"a real node of cluster {local.name!r} is running (one per machine): "
                f"`nodesmith dev down --name {local.name}` first"
            )
        progress(f"tearing down the remains of real node {stale.name} (its processes are gone)")
        down(local)


def down(local: cluster.LocalCluster) -> list[str]:
    """Stop the node (if any), then the control plane, then the network; return what is left over."""
    node = RealNode(local)
    if node.exists:
        node.stop()
    local.down()
    if node.exists:
        nodenet.teardown(node._state.get("network", {}))
        node.mark_torn_down()
        return node.leftovers()
    return []
