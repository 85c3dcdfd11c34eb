"""The daemon's decision log: fed through the plugin manager like any observer, bounded, served as JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from nodesmith.cloudprovider import manager
from nodesmith.runtime.decisions import DecisionLog

pytestmark = pytest.mark.anyio


def test_decisions_observed_through_the_plugin_manager_are_kept_in_order() -> None:
    plugins = manager.Plugins.load()
    log = DecisionLog()
    plugins.register(log, "nodesmith.decisions")
    plugins.observe_decision({"kind": "provisioning", "pods": 3})
    plugins.observe_decision({"kind": "disruption", "method": "emptiness"})
    assert [(r["sequence"], r["kind"]) for r in log.records()] == [(1, "provisioning"), (2, "disruption")]


def test_only_the_newest_are_kept_and_numbering_goes_on() -> None:
    log = DecisionLog(size=2)
    for pods in range(5):
        log.nodesmith_observe_decision({"kind": "provisioning", "pods": pods})
    assert [(r["sequence"], r["pods"]) for r in log.records()] == [(4, 3), (5, 4)]


async def test_served_as_json_even_with_values_json_cannot_encode() -> None:
    log = DecisionLog()
    at = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
    log.nodesmith_observe_decision({"kind": "provisioning", "at": at})
    status, content_type, body = await log.serve()
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"decisions": [{"sequence": 1, "kind": "provisioning", "at": str(at)}]}
