"""NodeClass readiness as the NodePool status reconciler reports it."""

from __future__ import annotations

import typing

import pytest

from nodesmith.api import conditions
from nodesmith.api import nodepool as api_nodepool
from nodesmith.reconcilers import nodepool_status

POOL = api_nodepool.NodePool.from_dict(
    {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodePool",
        "metadata": {"name": "default"},
        "spec": {
            "template": {
                "spec": {
                    "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "a"},
                    "requirements": [],
                }
            }
        },
    }
)


@pytest.mark.parametrize(
    ("node_class", "watched", "expected"),
    [
        ({"metadata": {"name": "a"}}, True, ("True", "NodeClassReady")),
        ({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, True, ("True", "NodeClassReady")),
        (
            {"status": {"conditions": [{"type": "Ready", "status": "False", "message": "no AMI"}]}},
            True,
            ("False", "NodeClassNotReady"),
        ),
        (None, True, ("False", "NodeClassNotFound")),
        (None, False, ("False", "UnsupportedNodeClass")),
    ],
)
def test_node_class_readiness(
    node_class: dict[str, typing.Any] | None, watched: bool, expected: tuple[str, str]
) -> None:
    status, reason, _ = nodepool_status.node_class_readiness(POOL, node_class, watched)
    assert (conditions.ConditionStatus(status).value, reason) == expected
