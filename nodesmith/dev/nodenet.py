"""The real node's network: an address for the API server, the pod bridge, and the egress fence.

Fed by `nodesmith.dev.node`; consumed by the kubelet, kube-proxy and CNI configurations it writes.

The rule on these machines is that no traffic leaves loopback and what the tooling itself creates, so:

* the pods' bridge, `BRIDGE`, is made here (the kernels of these machines have no dummy interfaces)
  with the pods' gateway address, `API_ADDRESS`, where the API server listens -- never on the
  machine's own address. It is also the node's InternalIP, so the API server reaches the kubelet
  there, and pods reach the API server through the ``kubernetes`` Service (kube-proxy DNATs to this
  local address). One address only: the CNI bridge plugin refuses a bridge whose first IPv4 address
  is not its gateway;
* pods get the rest of `POD_CIDR` (host-local IPAM, never the gateway), plugged into that bridge by
  the CNI bridge plugin, without masquerading;
* two chains in the ``mangle`` table, jumped to before anything kube-proxy or the kubelet install in
  ``filter``, drop every packet from a pod that would be forwarded off the bridge (`EGRESS_CHAIN`) and
  every new connection from a pod to this machine other than to the API server (`HOST_CHAIN`).

`setup` records what it changed in a dict that `teardown` takes back, so a later process can undo it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import pathlib
import shlex
import typing

from nodesmith.dev import host

BRIDGE = "nsbr0"
POD_CIDR = "10.88.0.0/16"
POD_GATEWAY = "10.88.0.1"
API_ADDRESS = POD_GATEWAY
EGRESS_CHAIN = "NODESMITH-POD-EGRESS"
HOST_CHAIN = "NODESMITH-POD-HOST"
#: The bridge plugin turns forwarding on for the whole machine; it is put back at teardown.
SYSCTLS = ("net.ipv4.ip_forward",)
_JUMPS = (("FORWARD", EGRESS_CHAIN), ("INPUT", HOST_CHAIN))


def _link_exists(name: str) -> bool:
    return pathlib.Path("/sys/class/net", name).exists()


def in_use() -> bool:
    """True if a real node's network already exists on this machine (there can be only one)."""
    return _link_exists(BRIDGE)


def setup() -> dict[str, typing.Any]:
    """Create the API address and the egress fence; return the record `teardown` needs."""
    host.require_root("a real node's network")
    if in_use():
        raise host.HostError(
            f"bridge {BRIDGE} exists: another real node runs on this machine (`nodesmith dev down` it)"
        )
    record: dict[str, typing.Any] = {"sysctls": {name: host.read_sysctl(name) for name in SYSCTLS}}
    host.run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    record["links"] = [BRIDGE]
    prefix = POD_CIDR.split("/")[1]
    host.run(["ip", "addr", "add", f"{API_ADDRESS}/{prefix}", "dev", BRIDGE])
    host.run(["ip", "link", "set", BRIDGE, "up"])
    install_fence()
    return record


def fence_rules() -> dict[str, list[list[str]]]:
    """The rules of each fence chain, in order (``iptables -t mangle -A <chain>`` arguments)."""
    return {
        EGRESS_CHAIN: [
            ["-o", BRIDGE, "-j", "RETURN"],
            ["-m", "comment", "--comment", "nodesmith: pods never leave this machine", "-j", "DROP"],
        ],
        HOST_CHAIN: [
            ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
            ["-d", API_ADDRESS, "-j", "RETURN"],
            ["-m", "comment", "--comment", "nodesmith: pods reach only the API server", "-j", "DROP"],
        ],
    }


def install_fence() -> None:
    for chain, rules in fence_rules().items():
        host.run(["iptables", "-w", "-t", "mangle", "-N", chain])
        for rule in rules:
            host.run(["iptables", "-w", "-t", "mangle", "-A", chain, *rule])
    for builtin, chain in _JUMPS:
        host.run(["iptables", "-w", "-t", "mangle", "-I", builtin, "1", "-i", BRIDGE, "-j", chain])


def remove_fence() -> None:
    for builtin, chain in _JUMPS:
        while (
            host.run(
                ["iptables", "-w", "-t", "mangle", "-D", builtin, "-i", BRIDGE, "-j", chain], check=False
            ).returncode
            == 0
        ):
            pass
    for chain in fence_rules():
        host.run(["iptables", "-w", "-t", "mangle", "-F", chain], check=False)
        host.run(["iptables", "-w", "-t", "mangle", "-X", chain], check=False)


def drop_count(chain: str = EGRESS_CHAIN) -> int:
    """Packets the fence chain's DROP rule has dropped so far (raises if the chain is missing)."""
    out = host.run(["iptables", "-w", "-t", "mangle", "-L", chain, "-v", "-x", "-n"]).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if " DROP " in f" {line} ")


def teardown(record: dict[str, typing.Any]) -> None:
    """Undo `setup` (and the bridge the CNI plugin made); safe to call twice."""
    remove_fence()
    for link in record.get("links", [BRIDGE]):
        if _link_exists(link):
            host.run(["ip", "link", "del", link], check=False)
    for name, value in record.get("sysctls", {}).items():
        if value is not None:
            host.write_sysctl(name, value)


def remove_kube_chains() -> None:
    """Delete what kube-proxy's ``--cleanup`` leaves: the kubelet's KUBE-* chains and their jumps.

    Only one real node runs per machine and nothing else here makes KUBE-* chains, so every one of them
    is ours once the node's processes are stopped.
    """
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            saved = host.run([f"{tool}-save", "-t", table], check=False).stdout
            chains = [line[1:].split()[0] for line in saved.splitlines() if line.startswith(":KUBE-")]
            for line in saved.splitlines():
                if not line.startswith("-A "):
                    continue
                words = shlex.split(line)
                if words[1].startswith("KUBE-") or not any(w.startswith("KUBE-") for w in words[2:]):
                    continue
                host.run([tool, "-w", "-t", table, "-D", *words[1:]], check=False)
            for verb in ("-F", "-X"):
                for chain in chains:
                    host.run([tool, "-w", "-t", table, verb, chain], check=False)


def pod_network_contains(address: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(address) in ipaddress.ip_network(POD_CIDR)
    return False
