"""Pure parts of the kube layer: status → typed error, URL building, retry policies, event dedup
bookkeeping and lease expiry (the API-facing behaviour is in tests/integration/test_kube_layer.py)."""

from __future__ import annotations

import datetime as dt
import typing

import pytest

import nodesmith.kube
from nodesmith import errors as base_errors
from nodesmith.kube import EventRecorder, Lease, errors, resources, retry
from nodesmith.testing.clock import FakeClock

pytestmark = pytest.mark.anyio


def test_front_door_exports_what_it_lists() -> None:
    for name in nodesmith.kube.__all__:
        assert hasattr(nodesmith.kube, name), name


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (400, "BadRequest", errors.BadRequestError),
        (403, "Forbidden", errors.ForbiddenError),
        (404, "NotFound", errors.NotFoundError),
        (409, "Conflict", errors.ConflictError),
        (409, "AlreadyExists", errors.AlreadyExistsError),
        (410, "Expired", errors.GoneError),
        (422, "Invalid", errors.InvalidError),
        (429, "TooManyRequests", errors.TooManyRequestsError),
        (500, "InternalError", errors.ServerError),
        (503, "ServiceUnavailable", errors.ServerError),
        (418, "Teapot", errors.KubeError),
    ],
)
def test_status_codes_map_to_typed_errors(code: int, reason: str, expected: type[errors.KubeError]) -> None:
    err = errors.from_status(
        code, {"reason": reason, "message": "m", "details": {"name": "x"}}, retry_after=2
    )
    assert type(err) is expected
    assert isinstance(err, base_errors.NodesmithError)
    assert (err.status, err.reason, err.message, err.details) == (code, reason, "m", {"name": "x"})


def test_retry_after_is_kept_on_429() -> None:
    err = errors.from_status(429, "slow down", retry_after=3.0)
    assert isinstance(err, errors.TooManyRequestsError)
    assert err.retry_after == 3.0
    assert err.message == "slow down"


def test_resource_paths() -> None:
    assert resources.PODS.path("ns", "p", "eviction") == "/api/v1/namespaces/ns/pods/p/eviction"
    assert resources.PODS.path() == "/api/v1/pods"
    assert resources.NODES.path(None, "n") == "/api/v1/nodes/n"
    assert resources.NODEPOOLS.path() == "/apis/nodesmith.io/v1/nodepools"
    assert (
        resources.LEASES.path("kube-system", "l")
        == "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l"
    )
    assert resources.NODES.api_version == "v1"
    assert resources.PDBS.api_version == "policy/v1"
    with pytest.raises(ValueError, match="namespaced"):
        resources.PODS.path(None, "p")


def test_node_class_descriptor() -> None:
    kwok = resources.node_class("kwok.nodesmith.io", "KWOKNodeClass")
    ec2 = resources.node_class("aws.nodesmith.io", "EC2NodeClass")
    assert kwok.path(None, "default") == "/apis/kwok.nodesmith.io/v1/kwoknodeclasses/default"
    assert ec2.plural == "ec2nodeclasses"
    assert not ec2.namespaced


@pytest.mark.parametrize(
    ("err", "safe", "unsafe", "evict"),
    [
        (errors.TooManyRequestsError("x", status=429), True, True, False),
        (errors.EvictionBlockedError("x", status=429), False, False, False),
        (errors.ServerError("x", status=503), True, False, False),
        (errors.APIUnavailableError("x"), True, False, False),
        (errors.APIUnavailableError("x", request_sent=False), True, True, True),
        (errors.ConflictError("x", status=409), False, False, False),
        (errors.NotFoundError("x", status=404), False, False, False),
    ],
)
def test_which_policy_retries_what(err: errors.KubeError, safe: bool, unsafe: bool, evict: bool) -> None:
    assert retry.SAFE.retryable(err) is safe
    assert retry.UNSAFE.retryable(err) is unsafe
    assert retry.EVICT.retryable(err) is evict


async def test_retry_call_retries_then_reraises_the_typed_error() -> None:
    policy = retry.Policy("test", retry.SAFE.retryable, attempts=3, initial=0.001, maximum=0.002)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise errors.ServerError("boom", status=500)
        return "ok"

    assert await retry.call(policy, flaky) == "ok"

    async def always_conflict() -> str:
        raise errors.ConflictError("no", status=409)

    with pytest.raises(errors.ConflictError):
        await retry.call(policy, always_conflict)

    calls = 0

    async def always_down() -> str:
        nonlocal calls
        calls += 1
        raise errors.APIUnavailableError("down")

    with pytest.raises(errors.APIUnavailableError):
        await retry.call(policy, always_down)
    assert calls == 3


class FakeEventsClient:
    def __init__(self) -> None:
        self.created: list[dict[str, typing.Any]] = []
        self.patched: list[tuple[str, dict[str, typing.Any]]] = []

    async def create(
        self, resource: object, body: dict[str, typing.Any], namespace: str | None = None
    ) -> None:
        self.created.append(body)

    async def merge_patch(
        self, resource: object, name: str, patch: dict[str, typing.Any], namespace: str
    ) -> None:
        self.patched.append((name, patch))


async def test_event_recorder_folds_repeats_and_flushes_pending_counts() -> None:
    clock = FakeClock(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    client = FakeEventsClient()
    recorder = EventRecorder(client, clock=clock, max_entries=2)  # type: ignore[arg-type]  # a recording stand-in
    pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}}

    for _ in range(5):
        await recorder.publish(pod, "Warning", "Stuck", "msg")
    assert len(client.created) == 1
    assert client.created[0]["metadata"]["namespace"] == "ns"
    assert client.patched == []

    await recorder.flush()  # window not over yet
    assert client.patched == []
    clock.step(dt.timedelta(minutes=3))
    await recorder.flush()
    assert [p["count"] for _, p in client.patched] == [5]

    node = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n", "uid": "u2"}}
    await recorder.publish(node, "Normal", "A", "m")
    await recorder.publish(node, "Normal", "B", "m")
    assert client.created[-1]["metadata"]["namespace"] == "default"
    await recorder.publish(pod, "Warning", "Stuck", "msg")  # evicted from the bounded cache: new Event
    assert len(client.created) == 4


def test_lease_expiry() -> None:
    t0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    lease = Lease.from_dict(
        {
            "metadata": {"name": "l", "namespace": "ns", "resourceVersion": "7"},
            "spec": {
                "holderIdentity": "a",
                "leaseDurationSeconds": 15,
                "renewTime": "2030-01-01T00:00:00.000000Z",
            },
        }
    )
    assert lease.held_by("a", t0 + dt.timedelta(seconds=14))
    assert not lease.held_by("b", t0)
    assert lease.expired(t0 + dt.timedelta(seconds=15))
    assert Lease.from_dict({"metadata": {"name": "l", "namespace": "ns"}, "spec": {}}).expired(t0)
