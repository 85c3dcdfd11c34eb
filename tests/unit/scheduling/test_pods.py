"""Parsing pods: requests (init containers, sidecars, overhead, pods), requirements, provisionability."""

from __future__ import annotations

from typing import Any

import pytest

from nodesmith.api.requirements import Requirement
from nodesmith.scheduling import pods
from nodesmith.testing import factories

GI = 2**30 * 1000


def _container(cpu: str, memory: str = "0", **extra: Any) -> dict[str, Any]:
    return {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}


@pytest.mark.parametrize(
    ("spec", "cpu", "memory"),
    [
        pytest.param({"containers": [_container("1"), _container("500m")]}, 1500, 0, id="containers-sum"),
        pytest.param(
            {"containers": [_container("1")], "initContainers": [_container("2")]},
            2000,
            0,
            id="init-container-max",
        ),
        pytest.param(
            {"containers": [_container("1")], "initContainers": [_container("500m", restartPolicy="Always")]},
            1500,
            0,
            id="sidecar-adds-to-containers",
        ),
        pytest.param(
            {
                "containers": [_container("1")],
                "initContainers": [_container("500m", restartPolicy="Always"), _container("2")],
            },
            2500,
            0,
            id="init-after-sidecar-runs-beside-it",
        ),
        pytest.param(
            {"containers": [_container("1", "1Gi")], "overhead": {"cpu": "250m"}}, 1250, GI, id="overhead"
        ),
        pytest.param(
            {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]},
            2000,
            0,
            id="limits-stand-in",
        ),
    ],
)
def test_pod_requests_follow_kubernetes_pod_requests(spec: dict[str, Any], cpu: int, memory: int) -> None:
    requests = pods.pod_requests(spec)
    assert requests.get("cpu", 0) == cpu
    assert requests.get("memory", 0) == memory
    assert requests["pods"] == 1000


def test_node_selector_and_first_required_term_make_the_strict_requirements() -> None:
    pod = pods.parse_pod(
        factories.pod(
            node_selector={"team": "a"},
            required=[
                [factories.expr("topology.kubernetes.io/zone", "In", "z1")],
                [factories.expr("arch", "In", "arm")],
            ],
            preferred=[
                (1, [factories.expr("size", "In", "small")]),
                (50, [factories.expr("size", "In", "large")]),
            ],
        )
    )
    assert len(pod.required_terms) == 2
    assert pod.strict_requirements.get("team") == Requirement.in_("team", "a")
    assert pod.strict_requirements.get("topology.kubernetes.io/zone") == Requirement.in_(
        "topology.kubernetes.io/zone", "z1"
    )
    assert "arch" not in pod.strict_requirements
    assert pod.requirements.get("size") == Requirement.in_("size", "large"), (
        "the heaviest preference is required first"
    )


def test_identical_pods_share_a_key_and_different_ones_do_not() -> None:
    a, b = (pods.parse_pod(p) for p in factories.pods(2, cpu="1", labels={"app": "x"}))
    c = pods.parse_pod(factories.pod(cpu="1", labels={"app": "y"}))
    assert a.key == b.key
    assert a.key != c.key


@pytest.mark.parametrize(
    ("pod", "provisionable"),
    [
        pytest.param(factories.pod(), True, id="unschedulable"),
        pytest.param(factories.pod(unschedulable=False), False, id="not-marked-by-kube-scheduler"),
        pytest.param(factories.pod(node_name="n1"), False, id="bound"),
        pytest.param(factories.pod(owner_kind="DaemonSet"), False, id="daemonset"),
        pytest.param(factories.pod(owner_kind="Node"), False, id="static"),
        pytest.param(factories.pod(owner_kind="ReplicaSet"), True, id="replicaset"),
    ],
)
def test_is_provisionable(pod: dict[str, Any], provisionable: bool) -> None:
    assert pods.is_provisionable(pod) is provisionable


def test_nominated_pod_is_not_provisionable() -> None:
    pod = factories.pod()
    pod["status"]["nominatedNodeName"] = "n1"
    assert not pods.is_provisionable(pod)


def test_unknown_node_selector_operator_marks_the_pod_invalid() -> None:
    pod = pods.parse_pod(factories.pod(required=[[factories.expr("zone", "Bogus", "x")]]))
    assert pod.invalid is not None


def test_opting_out_of_managed_nodes_marks_the_pod_invalid() -> None:
    pod = pods.parse_pod(factories.pod(required=[[factories.expr("nodesmith.io/nodepool", "DoesNotExist")]]))
    assert pod.invalid is not None
    assert "DoesNotExist" in pod.invalid


def test_host_ports_come_from_containers_and_sidecars() -> None:
    pod = pods.parse_pod(factories.pod(host_ports=[8080]))
    assert [p.port for p in pod.host_ports] == [8080]
