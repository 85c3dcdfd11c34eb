"""Host ports: an ``(ip, port, protocol)`` may be bound once per node.

``pods`` extracts a pod's host ports; ``nodeclaim`` and ``existingnode`` keep a :class:`HostPortUsage` per
simulated node and refuse a pod whose ports conflict; ``daemonsets`` adds daemon pods' ports per instance-type
group. ``0.0.0.0`` and ``::`` conflict with every address (Karpenter ``pkg/scheduling/hostportusage.go``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, final

import attrs

__all__ = ["HostPort", "HostPortUsage", "conflicts", "pod_host_ports"]

_UNSPECIFIED: Final = frozenset({"", "0.0.0.0", "::"})


@final
@attrs.frozen(slots=True)
class HostPort:
    ip: str
    port: int
    protocol: str

    def matches(self, other: HostPort) -> bool:
        if self.port != other.port or self.protocol != other.protocol:
            return False
        return self.ip in _UNSPECIFIED or other.ip in _UNSPECIFIED or self.ip == other.ip

    def __str__(self) -> str:
        return f"{self.ip or '0.0.0.0'}:{self.port}/{self.protocol}"


def pod_host_ports(spec: Mapping[str, Any]) -> tuple[HostPort, ...]:
    """Host ports of a pod's containers and its restartable init (sidecar) containers."""
    containers = list(spec.get("containers") or ())
    containers += [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    out = []
    for container in containers:
        for port in container.get("ports") or ():
            host_port = int(port.get("hostPort") or 0)
            if host_port:
                out.append(
                    HostPort(
                        str(port.get("hostIP") or "0.0.0.0"), host_port, str(port.get("protocol") or "TCP")
                    )
                )
    return tuple(out)


def conflicts(a: Iterable[HostPort], b: Iterable[HostPort]) -> HostPort | None:
    """The first port of ``a`` that conflicts with one of ``b``."""
    others = tuple(b)
    for port in a:
        for other in others:
            if port.matches(other):
                return port
    return None


@final
class HostPortUsage:
    """Host ports bound on one simulated node (mutable, owned by that node)."""

    __slots__ = ("_ports",)

    def __init__(self, ports: Iterable[HostPort] = ()) -> None:
        self._ports: list[HostPort] = list(ports)

    def conflict(self, ports: Iterable[HostPort]) -> HostPort | None:
        if not self._ports:
            return None
        return conflicts(ports, self._ports)

    def add(self, ports: Iterable[HostPort]) -> None:
        self._ports.extend(ports)

    def copy(self) -> HostPortUsage:
        return HostPortUsage(self._ports)

    def ports(self) -> tuple[HostPort, ...]:
        return tuple(self._ports)
