"""Template parts of pods are stored once: equal values share one object, unequal ones never do, the
table stays bounded, and ClusterState's snapshots reuse the pod mapping until a pod changes."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Callable

import pytest

from nodesmith.kube import resources
from nodesmith.kube.results import ListResult, WatchEvent
from nodesmith.state import ClusterState, Informer, sharing
from nodesmith.testing.clock import FakeClock

from . import factories as f

pytestmark = pytest.mark.anyio

Obj = dict[str, typing.Any]


class Listed:
    """A Source that lists ``items`` once and has no watch."""

    def __init__(self, items: list[Obj]) -> None:
        self.items = items

    async def list(
        self,
        resource: resources.Resource,
        namespace: str | None = None,
        *,
        each: Callable[[Obj], Obj | None] | None = None,
        resource_version: str = "",
    ) -> ListResult:
        kept = [o for o in map(each, self.items) if o is not None] if each else self.items
        return ListResult(kept, "1")

    async def watch(
        self, resource: resources.Resource, *, resource_version: str, timeout_seconds: int = 300
    ) -> AsyncIterator[WatchEvent]:
        raise AssertionError("not watched")
        yield  # pragma: no cover


def replica(name: str, node: str, *, toleration_seconds: typing.Any = 300) -> Obj:
    pod = f.pod(name, node_name=node)
    pod["metadata"]["labels"] = {"app": "web", "pod-template-hash": "abc"}
    pod["spec"]["tolerations"] = [
        {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": toleration_seconds}
    ]
    return pod


async def test_pods_from_one_template_share_labels_containers_and_tolerations() -> None:
    state = ClusterState(clock=FakeClock().now)
    informer = Informer(Listed([replica("a", "n1"), replica("b", "n2")]), resources.PODS, state)

    await informer.relist()

    a, b = informer.store["default/a"], informer.store["default/b"]
    assert a["metadata"]["labels"] is b["metadata"]["labels"]
    assert a["spec"]["containers"] is b["spec"]["containers"]
    assert a["spec"]["tolerations"] is b["spec"]["tolerations"]
    assert a["metadata"]["name"] == "a"
    assert b["metadata"]["name"] == "b"
    assert a["spec"]["nodeName"] == "n1"
    assert b["spec"]["nodeName"] == "n2"
    snapshot = state.snapshot()
    assert snapshot.pods["default/a"].body is a


def test_values_equal_in_python_but_not_in_json_are_not_shared() -> None:
    sharer = sharing.SharedValues(sharing.SHARED_FIELDS[resources.PODS])
    one = sharer.share(replica("a", "n", toleration_seconds=1))
    true = sharer.share(replica("b", "n", toleration_seconds=True))
    different = sharer.share(replica("c", "n", toleration_seconds=2))

    assert true["spec"]["tolerations"][0]["tolerationSeconds"] is True
    assert one["spec"]["tolerations"] is not true["spec"]["tolerations"]
    assert different["spec"]["tolerations"][0]["tolerationSeconds"] == 2


def test_the_table_starts_afresh_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sharing, "MAX_ENTRIES", 3)
    sharer = sharing.SharedValues((("metadata", "labels"),))
    for i in range(3):
        sharer.share({"metadata": {"labels": {"i": str(i)}}})
    assert len(sharer) == 3

    first = sharer.share({"metadata": {"labels": {"i": "new"}}})
    again = sharer.share({"metadata": {"labels": {"i": "new"}}})

    assert len(sharer) == 1
    assert again["metadata"]["labels"] is first["metadata"]["labels"]


def test_node_informers_share_nothing() -> None:
    assert sharing.SharedValues.for_resource(resources.NODES) is None


def test_snapshots_reuse_the_pod_mapping_until_a_pod_changes() -> None:
    state = ClusterState(clock=FakeClock().now)
    state.on_upsert(resources.NODES, f.node("n1", provider_id="kwok://n1"))
    state.on_upsert(resources.PODS, f.pod("a", node_name="n1"))
    first = state.snapshot()

    state.on_upsert(resources.NODES, f.node("n2", provider_id="kwok://n2"))
    after_node = state.snapshot()
    state.on_upsert(resources.PODS, f.pod("b", node_name="n2"))
    after_pod = state.snapshot()
    state.on_delete(resources.PODS, f.pod("a", node_name="n1"))
    after_delete = state.snapshot()

    assert after_node.pods is first.pods
    assert len(after_node.nodes) == 2
    assert set(after_pod.pods) == {"default/a", "default/b"}
    assert set(after_delete.pods) == {"default/b"}
    assert set(first.pods) == {"default/a"}, "an earlier snapshot does not change"
