"""Tolerations against taints, host-port conflicts."""

from __future__ import annotations

import pytest

from nodesmith.scheduling import hostports, taints

T = taints.Taint
Tol = taints.Toleration


@pytest.mark.parametrize(
    ("toleration", "taint", "tolerated"),
    [
        (Tol("gpu", "Equal", "true", "NoSchedule"), T("gpu", "NoSchedule", "true"), True),
        (Tol("gpu", "Equal", "false", "NoSchedule"), T("gpu", "NoSchedule", "true"), False),
        (Tol("gpu", "Exists", "", ""), T("gpu", "NoExecute", "x"), True),
        (Tol("", "Exists", "", ""), T("anything", "NoSchedule"), True),
        (Tol("gpu", "Exists", "", "NoExecute"), T("gpu", "NoSchedule"), False),
        (Tol("other", "Exists"), T("gpu", "NoSchedule"), False),
        (taints.PREFER_NO_SCHEDULE_TOLERATION, T("x", "PreferNoSchedule"), True),
    ],
)
def test_toleration_matches_taint(
    toleration: taints.Toleration, taint: taints.Taint, tolerated: bool
) -> None:
    assert toleration.tolerates(taint) is tolerated


def test_uninitialized_nodes_ignore_ephemeral_and_startup_taints() -> None:
    startup = T("example.com/booting", "NoSchedule")
    kept = T("dedicated", "NoSchedule", "x")
    result = taints.without_ephemeral(
        [
            T("node.kubernetes.io/not-ready", "NoSchedule"),
            T("readiness.k8s.io/net", "NoSchedule"),
            startup,
            kept,
        ],
        [startup],
    )
    assert result == (kept,)


@pytest.mark.parametrize(
    ("a", "b", "conflict"),
    [
        (hostports.HostPort("0.0.0.0", 80, "TCP"), hostports.HostPort("10.0.0.1", 80, "TCP"), True),
        (hostports.HostPort("10.0.0.2", 80, "TCP"), hostports.HostPort("10.0.0.1", 80, "TCP"), False),
        (hostports.HostPort("::", 80, "TCP"), hostports.HostPort("10.0.0.1", 80, "TCP"), True),
        (hostports.HostPort("0.0.0.0", 80, "UDP"), hostports.HostPort("0.0.0.0", 80, "TCP"), False),
        (hostports.HostPort("0.0.0.0", 81, "TCP"), hostports.HostPort("0.0.0.0", 80, "TCP"), False),
    ],
)
def test_host_port_conflicts(a: hostports.HostPort, b: hostports.HostPort, conflict: bool) -> None:
    assert a.matches(b) is conflict
    assert (hostports.conflicts([a], [b]) is not None) is conflict
