"""A bound pod read without parsing (`pods.inert_when_bound`) counts exactly as the parsed pod does."""

from __future__ import annotations

from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.scheduling import pods, topology
from nodesmith.testing import factories

ANTI = factories.affinity_term(labels.LABEL_HOSTNAME, {"app": "a"})


def _no_uid() -> dict[str, Any]:
    pod = factories.pod(labels={"app": "a"}, node_name="n")
    del pod["metadata"]["uid"]
    del pod["metadata"]["namespace"]
    return pod


CASES = {
    "plain": (factories.pod(labels={"app": "a", "n": "1"}, node_name="n"), True),
    "no uid or namespace": (_no_uid(), True),
    "spread and affinity": (
        factories.pod(
            labels={"app": "a"},
            node_name="n",
            spread=[factories.spread(labels.LABEL_ZONE, {"app": "a"})],
            affinity=[ANTI],
        ),
        True,
    ),
    "anti-affinity": (factories.pod(labels={"app": "a"}, node_name="n", anti_affinity=[ANTI]), False),
    "preferred anti-affinity": (
        factories.pod(labels={"app": "a"}, node_name="n", preferred_anti_affinity=[(5, ANTI)]),
        False,
    ),
    "host port": (factories.pod(node_name="n", host_ports=[80]), False),
    "volume": (factories.pod(node_name="n", claims=["data"]), False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bound_pod_read_without_parsing_equals_the_parsed_one(name: str) -> None:
    pod, inert = CASES[name]
    assert pods.inert_when_bound(pod) is inert
    assert topology.BoundPod.from_dict(pod, "n") == topology.BoundPod.from_dict(pod, "n", pods.parse_pod(pod))
