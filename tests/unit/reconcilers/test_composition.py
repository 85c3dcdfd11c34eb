"""The composition root: node repair runs only behind the NodeRepair gate (off by default, as Karpenter);
static capacity always runs (a NodePool without ``spec.replicas`` is not its business)."""

from __future__ import annotations

import datetime as dt
import typing

import pytest

from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import controllers
from nodesmith.runtime import settings
from nodesmith.state import ClusterState
from nodesmith.testing import cloudprovider
from nodesmith.testing.clock import FakeClock


def _names(node_repair: bool) -> list[str]:
    provider = cloudprovider.FakeCloudProvider()
    clock = FakeClock()
    kube = typing.cast(KubeClient, object())  # never called: building reconcilers does no I/O
    reconcilers = controllers.build(
        controllers.Collaborators(
            kube=kube,
            state=ClusterState(clock=clock.now),
            provider=provider,
            plugins=cloudprovider.plugins(provider),
            events=EventRecorder(kube, clock=clock),
            clock=clock,
            batch_idle=dt.timedelta(seconds=1),
            batch_max=dt.timedelta(seconds=10),
            cluster_name="test",
            node_repair=node_repair,
        )
    )
    return [r.name for r in reconcilers]


def test_node_repair_runs_only_when_its_gate_is_on() -> None:
    assert "node.repair" not in _names(node_repair=False)
    assert "node.repair" in _names(node_repair=True)


@pytest.mark.parametrize(("flag", "on"), [("", False), ("NodeRepair=true", True)])
def test_the_node_repair_gate_defaults_off(flag: str, on: bool) -> None:
    assert settings.Settings.from_raw(provider="kwok", feature_gates=flag).gate("NodeRepair") is on


def test_static_capacity_always_runs() -> None:
    assert "nodepool.staticcapacity" in _names(node_repair=False)
