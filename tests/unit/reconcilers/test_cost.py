"""The cost reconciler publishes the offering prices and each NodePool's cost and unpriced nodes as
gauges whose series follow the cluster: a NodePool or offering that is gone stops being exported, and
nothing is exported once the loop stops."""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence

import anyio
import pytest

from nodesmith import errors
from nodesmith.cloudprovider.hookspecs import hookimpl
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.kube import resources
from nodesmith.reconcilers.cost import CostReconciler
from nodesmith.runtime import telemetry
from nodesmith.state import ClusterState
from nodesmith.testing import cloudprovider as fake
from nodesmith.testing import factories, manifests
from nodesmith.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

SMALL = factories.instance_type(
    "small", cpu=2, memory="4Gi", zones=("z1",), capacity_types=("on-demand",), price=0.1
)


class HalfPrice:
    """A price overlay for NodePool ``discounted``."""

    @hookimpl
    def nodesmith_adjust_instance_types(
        self, nodepool_name: str, instance_types: Sequence[InstanceType]
    ) -> Sequence[InstanceType] | None:
        if nodepool_name != "discounted":
            return None
        return [
            factories.instance_type(
                it.name, cpu=2, memory="4Gi", zones=("z1",), capacity_types=("on-demand",), price=0.05
            )
            for it in instance_types
        ]


def machine(name: str, pool: str) -> tuple[dict[str, typing.Any], dict[str, typing.Any]]:
    return manifests.machine(
        name,
        node_labels=manifests.machine_labels(name, instance_type="small", zone="z1", nodepool=pool),
        allocatable={"cpu": "2", "memory": "4Gi", "pods": "110"},
    )


def reconciler() -> tuple[CostReconciler, ClusterState]:
    clock = FakeClock()
    state = ClusterState(clock=clock.now)
    provider = fake.FakeCloudProvider(
        instance_types=[SMALL],
        instance_type_errors={
            "not-ready": errors.NodeClassNotReadyError("not ready"),
            "throttled": errors.ProviderError("RequestLimitExceeded"),
        },
    )
    plugins = fake.plugins(provider, HalfPrice())
    return CostReconciler(state, provider, plugins, clock, interval=3600), state


def samples(metric: str) -> dict[str, float]:
    """``{"label=value,...": value}`` of one metric in the live exposition (the OTel scope labels left out)."""
    out = {}
    for line in telemetry.prometheus_text().decode().splitlines():
        if line.startswith(metric + "{"):
            labels, _, value = line[len(metric) :].rpartition(" ")
            pairs = re.findall(r'(\w+)="([^"]*)"', labels)
            out[",".join(f"{k}={v}" for k, v in pairs if not k.startswith("otel_scope_"))] = float(value)
    return out


def sync(state: ClusterState) -> None:
    for resource in (resources.NODES, resources.NODECLAIMS, resources.NODEPOOLS):
        state.on_synced(resource)


async def test_cost_series_follow_the_nodepools_and_their_nodes() -> None:
    telemetry.setup()
    cost, state = reconciler()
    pools = (("a", "default"), ("discounted", "default"), ("broken", "not-ready"), ("busy", "throttled"))
    for pool, node_class in pools:
        state.on_upsert(resources.NODEPOOLS, manifests.nodepool_manifest(pool, node_class=node_class))
    for name, pool in (("n1", "a"), ("n2", "a"), ("n3", "discounted"), ("n4", "broken")):
        node, claim = machine(name, pool)
        state.on_upsert(resources.NODECLAIMS, claim)
        state.on_upsert(resources.NODES, node)
    # not synced yet: nothing computed
    assert await cost.reconcile() is None
    sync(state)
    published = await cost.reconcile()
    assert published is not None
    # the NodeClass that is not ready and the throttled one are skipped, not the whole pass; the node
    # of the first is priced by another pool's "small"
    assert samples("nodesmith_nodepools_cost_per_hour") == {
        "nodepool=a": 0.2,
        "nodepool=broken": 0.1,
        "nodepool=busy": 0.0,
        "nodepool=discounted": 0.05,
    }
    assert samples("nodesmith_nodepools_unpriced_nodes") == {
        "nodepool=a": 0.0,
        "nodepool=broken": 0.0,
        "nodepool=busy": 0.0,
        "nodepool=discounted": 0.0,
    }
    assert samples("nodesmith_cloudprovider_instance_type_offering_price_estimate") == {
        "capacity_type=on-demand,instance_type=small,zone=z1": 0.05
    }

    # NodePool "discounted" and its node go; "a" loses a node
    node, claim = machine("n3", "discounted")
    state.on_delete(resources.NODES, node)
    state.on_delete(resources.NODECLAIMS, claim)
    state.on_delete(resources.NODEPOOLS, manifests.nodepool_manifest("discounted"))
    node, claim = machine("n2", "a")
    state.on_delete(resources.NODES, node)
    state.on_delete(resources.NODECLAIMS, claim)
    await cost.reconcile()
    assert samples("nodesmith_nodepools_cost_per_hour") == {
        "nodepool=a": 0.1,
        "nodepool=broken": 0.1,
        "nodepool=busy": 0.0,
    }
    assert samples("nodesmith_cloudprovider_instance_type_offering_price_estimate") == {
        "capacity_type=on-demand,instance_type=small,zone=z1": 0.1
    }


async def test_nothing_is_exported_once_the_loop_stops() -> None:
    telemetry.setup()
    cost, state = reconciler()
    state.on_upsert(resources.NODEPOOLS, manifests.nodepool_manifest("a"))
    sync(state)
    async with anyio.create_task_group() as group:
        group.start_soon(cost.run)
        await anyio.wait_all_tasks_blocked()  # the first pass runs at once, then the loop sleeps
        assert samples("nodesmith_nodepools_cost_per_hour") == {"nodepool=a": 0.0}
        group.cancel_scope.cancel()
    assert samples("nodesmith_nodepools_cost_per_hour") == {}
    assert samples("nodesmith_cloudprovider_instance_type_offering_price_estimate") == {}
