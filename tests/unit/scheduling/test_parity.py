"""Scheduling decisions checked case by case against Karpenter's own suites
(``pkg/controllers/provisioning/suite_test.go``): each test names the Karpenter case it follows."""

from __future__ import annotations

from typing import Any

import pytest

from nodesmith import scheduling
from nodesmith.testing import factories

from .conftest import Solve

HUGE = {"cpu": "10000", "memory": "10000Gi"}


def _container(
    requests: dict[str, str] | None = None, limits: dict[str, str] | None = None
) -> dict[str, Any]:
    return {"name": "c", "image": "pause", "resources": {"requests": requests or {}, "limits": limits or {}}}


def _daemon(**kwargs: Any) -> dict[str, Any]:
    """A DaemonSet pod with the given containers (``containers``/``init``) instead of the factory's one."""
    pod = factories.daemonset_pod()
    if "containers" in kwargs:
        pod["spec"]["containers"] = kwargs["containers"]
    if "init" in kwargs:
        pod["spec"]["initContainers"] = kwargs["init"]
    return pod


def _not_scheduled(solve: Solve, daemon: dict[str, Any]) -> None:
    result = solve([factories.pod()], daemonset_pods=[daemon])
    assert result.new_nodeclaims == (), [c.requests for c in result.new_nodeclaims]
    assert len(result.pod_errors) == 1


def test_daemonset_overhead_too_large_for_every_type_blocks_a_pod_without_requests(solve: Solve) -> None:
    """ "should not schedule if daemonset overhead is too large": the pod requests no CPU or memory, but
    every node would also run the DaemonSet pod."""
    _not_scheduled(solve, _daemon(containers=[_container(requests=HUGE)]))


def test_daemonset_limits_stand_in_for_missing_requests(solve: Solve) -> None:
    """ "should not schedule if resource requests are not defined and limits (requests) are too large"."""
    _not_scheduled(solve, _daemon(containers=[_container(requests={"cpu": "1"}, limits=HUGE)]))


def test_daemonset_init_container_overhead_too_large(solve: Solve) -> None:
    """ "should not schedule if initContainer resources are too large"."""
    _not_scheduled(solve, _daemon(containers=[_container()], init=[_container(requests=HUGE)]))


def test_daemonset_combined_max_of_containers_and_init_containers(solve: Solve) -> None:
    """ "should not schedule if combined max resources are too large for any node": CPU from the
    containers' requests, memory from an init container's limits."""
    _not_scheduled(
        solve,
        _daemon(
            containers=[_container(requests={"cpu": "1"}, limits={"cpu": "10000", "memory": "1Gi"})],
            init=[_container(requests={"cpu": "1"}, limits={"cpu": "10000", "memory": "10000Gi"})],
        ),
    )


def test_daemonset_overhead_of_the_init_container_sizes_the_node(solve: Solve) -> None:
    """ "should schedule based on the max resource requests of containers and initContainers": 3 CPU and
    3Gi from the init container (limits standing in for the memory request)."""
    daemon = _daemon(
        containers=[_container(requests={"cpu": "1"}, limits={"cpu": "10000", "memory": "1Gi"})],
        init=[_container(requests={"cpu": "3"}, limits={"cpu": "10000", "memory": "3Gi"})],
    )
    result = solve([factories.pod()], daemonset_pods=[daemon])
    (claim,) = result.new_nodeclaims
    assert claim.instance_types[0].name == "fake-it-3", "3 CPU + 100m reserved needs the 4-vCPU type"
    assert claim.requests["cpu"] == 3000
    assert claim.requests["memory"] == 3 * 2**30 * 1000


def test_daemonset_without_requests_or_limits_does_not_block(solve: Solve) -> None:
    """ "should be able to schedule pods if resource requests and limits are not defined"."""
    result = solve([factories.pod()], daemonset_pods=[_daemon(containers=[_container()])])
    assert len(result.new_nodeclaims) == 1


# -- PersistentVolumeClaims the provisioner ignores (suite_test.go "Volume Topology Requirements") ------------

_BOUND = {
    "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
    "spec": {"volumeName": "pv1", "storageClassName": ""},
    "status": {"phase": "Bound"},
}
_PV = {"pv1": {"metadata": {"name": "pv1"}, "spec": {"csi": {"driver": "ebs.csi.aws.com"}}}}


def _outcome(solve: Solve, claim: dict[str, Any] | None, **catalog: Any) -> tuple[int, str]:
    """(NodeClaims made, the error of the pod using claim "data"), next to a pod without volumes that
    must be placed either way ("should schedule valid pods when a pod with an invalid pvc is
    encountered")."""
    claims = {} if claim is None else {("default", "data"): claim}
    volumes = scheduling.VolumeCatalog(claims=claims, **catalog)
    result = solve([factories.pod(name="db", claims=["data"]), factories.pod(name="web")], volumes=volumes)
    assert "uid-default-web" not in result.pod_errors
    error = result.pod_errors.get("uid-default-db")
    return sum(len(c.pods) for c in result.new_nodeclaims), "" if error is None else error.message()


@pytest.mark.parametrize(
    ("title", "claim", "catalog", "problem"),
    [
        ("should not schedule if invalid pvc", None, {}, "not found"),
        (
            "should not schedule with an empty storage class if the pvc is not bound",
            {"spec": {"storageClassName": ""}},
            {},
            "storage class",
        ),
        ("unbound pvc without storageClassName at all", {"spec": {}}, {}, "storage class"),
        (
            "should not schedule with a missing storage class if the pvc is not bound",
            {"spec": {"storageClassName": "missing"}},
            {},
            "missing",
        ),
        (
            "should schedule valid pods when a pod with an invalid pvc is encountered (volume name)",
            {"spec": {"volumeName": "gone"}},
            {},
            "gone",
        ),
        (
            "unbound pvc with an Immediate storage class",
            {"spec": {"storageClassName": "now"}},
            {"storage_classes": {"now": {"provisioner": "x", "volumeBindingMode": "Immediate"}}},
            "Immediate",
        ),
        (
            "pvc being deleted",
            {**_BOUND, "metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}},
            {},
            "deleted",
        ),
        ("pvc lost", {"spec": {"volumeName": "pv1"}, "status": {"phase": "Lost"}}, {"volumes": _PV}, "Lost"),
        (
            "pvc naming its volume before binding completed",
            {"spec": {"volumeName": "pv1"}},
            {"volumes": _PV},
            "bind-completed",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_pods_with_unusable_claims_are_ignored(
    solve: Solve, title: str, claim: dict[str, Any] | None, catalog: dict[str, Any], problem: str
) -> None:
    placed, error = _outcome(solve, claim, **catalog)
    assert placed == 1, "only the pod without volumes is placed"
    assert problem in error


@pytest.mark.parametrize(
    ("title", "claim", "catalog"),
    [
        ("should schedule with an empty storage class if the pvc is bound", _BOUND, {"volumes": _PV}),
        (
            "should schedule with a missing storage class if the pvc is bound",
            {**_BOUND, "spec": {"volumeName": "pv1", "storageClassName": "missing"}},
            {"volumes": _PV},
        ),
        (
            "unbound pvc with a WaitForFirstConsumer storage class",
            {"spec": {"storageClassName": "later"}},
            {"storage_classes": {"later": {"provisioner": "x", "volumeBindingMode": "WaitForFirstConsumer"}}},
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_pods_with_usable_claims_are_placed(
    solve: Solve, title: str, claim: dict[str, Any], catalog: dict[str, Any]
) -> None:
    assert _outcome(solve, claim, **catalog) == (2, "")
