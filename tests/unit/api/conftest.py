"""Shared helpers for the API model tests: the manifest fixtures and a minimal valid NodePool/NodeClaim."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml

MANIFESTS = pathlib.Path(__file__).parents[2] / "fixtures" / "manifests"


def load_manifest(name: str) -> dict[str, Any]:
    data = yaml.safe_load((MANIFESTS / name).read_text())
    assert isinstance(data, dict)
    return data


MINIMAL_NODEPOOL: dict[str, Any] = {
    "apiVersion": "nodesmith.io/v1",
    "kind": "NodePool",
    "metadata": {"name": "default"},
    "spec": {
        "template": {
            "spec": {
                "requirements": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}],
                "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"},
            }
        }
    },
}

MINIMAL_NODECLAIM: dict[str, Any] = {
    "apiVersion": "nodesmith.io/v1",
    "kind": "NodeClaim",
    "metadata": {"name": "default-abcde"},
    "spec": {
        "requirements": [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c-1x-amd64-linux"]}
        ],
        "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"},
    },
}


@pytest.fixture
def nodepool_dict() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL_NODEPOOL)


@pytest.fixture
def nodeclaim_dict() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL_NODECLAIM)
