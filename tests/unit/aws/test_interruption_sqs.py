"""The SQS interruption source against moto SQS in server mode: EventBridge messages become events with the
instance's providerID, acked messages leave the queue, and malformed, no-op and unknown-instance messages
are deleted and counted. The last test drives the core reconciler's ``handle`` with events from this source
against a real API server (integration: it needs the local control plane)."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import anyio
import attrs
import pytest

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.meta import NodeClassRef
from nodesmith.cloudprovider.types import InterruptionEvent, InterruptionKind
from nodesmith.runtime import telemetry
from nodesmith.testing import conformance
from nodesmith_aws import capacityreservations, interruption, nodeclass
from nodesmith_aws.cloudprovider import AwsCloudProvider
from nodesmith_aws.settings import Settings
from tests.unit.aws.conftest import AL2023_X86, CLUSTER, Env, nodeclass_manifest, ready_nodeclass

pytestmark = pytest.mark.anyio

QUEUE = "nodesmith-interruptions"
REF = NodeClassRef(nodeclass.GROUP, nodeclass.KIND, "default")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reservation(instance_id: str) -> dict[str, Any]:
    """EC2's capacity-reservation interruption warning (the spot warning's shape, its own detail-type)."""
    return {
        **spot(instance_id),
        "detail-type": "EC2 Capacity Reservation Instance Interruption Warning",
    }


def spot(instance_id: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "1",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": now_iso(),
        "region": "us-west-2",
        "resources": [f"arn:aws:ec2:us-west-2:123456789012:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "instance-action": "terminate"},
    }


def rebalance(instance_id: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "2",
        "detail-type": "EC2 Instance Rebalance Recommendation",
        "source": "aws.ec2",
        "time": now_iso(),
        "region": "us-west-2",
        "detail": {"instance-id": instance_id},
    }


def health(*instance_ids: str, service: str = "EC2", category: str = "scheduledChange") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "3",
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "time": now_iso(),
        "region": "us-west-2",
        "detail": {
            "eventArn": "arn:aws:health:us-west-2::event/EC2/x",
            "eventTypeCode": "AWS_EC2_PERSISTENT_INSTANCE_RETIREMENT_SCHEDULED",
            "service": service,
            "eventTypeCategory": category,
            "affectedEntities": [{"entityValue": i} for i in instance_ids],
        },
    }


def state_change(instance_id: str, state: str = "stopping") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "4",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "time": now_iso(),
        "region": "us-west-2",
        "detail": {"instance-id": instance_id, "state": state},
    }


@attrs.frozen
class Queue:
    sqs: Any
    url: str
    source: interruption.SqsSource

    async def send(self, body: dict[str, Any] | str) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        await self.sqs.send_message(QueueUrl=self.url, MessageBody=text)

    async def left(self) -> int:
        """Messages still in the queue, visible or in flight."""
        attrs_ = (
            await self.sqs.get_queue_attributes(
                QueueUrl=self.url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )
        )["Attributes"]
        return int(attrs_["ApproximateNumberOfMessages"]) + int(
            attrs_["ApproximateNumberOfMessagesNotVisible"]
        )

    async def receive_all(self) -> list[InterruptionEvent]:
        out: list[InterruptionEvent] = []
        while batch := await self.source.receive():
            out += batch
        return out


@pytest.fixture
async def queue(env: Env) -> Queue:
    sqs = await env.clients.sqs()
    url = (await sqs.create_queue(QueueName=QUEUE))["QueueUrl"]
    # by name, so GetQueueUrl is exercised; wait 0 so an empty queue answers at once
    source = interruption.SqsSource(env.clients, QUEUE, env.provider.zones, wait_seconds=0)
    return Queue(sqs, url, source)


async def run_instance(env: Env, zone: str = "us-west-2b") -> str:
    ec2 = await env.ec2()
    # the image AWS publishes for AL2023: listing all ~1,300 public images took seconds per launch
    image = (await (await env.clients.ssm()).get_parameter(Name=AL2023_X86))["Parameter"]["Value"]
    answer = await ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.large", Placement={"AvailabilityZone": zone}
    )
    return str(answer["Instances"][0]["InstanceId"])


def counter(name: str, *label_parts: str) -> float:
    telemetry.setup()
    for line in telemetry.prometheus_text().decode().splitlines():
        if line.startswith(name) and all(part in line for part in label_parts):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind", "state"),
    [
        (spot("i-0abc"), InterruptionKind.SPOT_INTERRUPTION, None),
        (reservation("i-0abc"), InterruptionKind.CAPACITY_RESERVATION_INTERRUPTION, None),
        (rebalance("i-0abc"), InterruptionKind.REBALANCE_RECOMMENDATION, None),
        (health("i-0abc"), InterruptionKind.SCHEDULED_CHANGE, None),
        (state_change("i-0abc", "shutting-down"), InterruptionKind.STATE_CHANGE, "shutting-down"),
    ],
)
def test_each_eventbridge_shape_parses_to_its_kind(
    body: dict[str, Any], kind: InterruptionKind, state: str | None
) -> None:
    body["time"] = "2024-01-01T00:00:00Z"
    notice = interruption.parse(json.dumps(body), sent=0.0)
    assert notice == interruption.Notice(kind, ("i-0abc",), 1704067200.0, state=state)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (health("i-0abc", service="RDS"), "health-filtered"),
        (health("i-0abc", category="issue"), "health-filtered"),
        (state_change("i-0abc", "running"), "state"),
        ({**spot("i-0abc"), "version": "1"}, "unrecognised"),
        ({**spot("i-0abc"), "detail-type": "EC2 Fleet Spot Instance Request Error"}, "unrecognised"),
    ],
)
def test_messages_that_call_for_nothing_are_no_ops(body: dict[str, Any], reason: str) -> None:
    assert interruption.parse(json.dumps(body), sent=0.0) == interruption.Notice(None, reason=reason)


@pytest.mark.parametrize(
    "body",
    [
        "not json {",
        "[1, 2]",
        json.dumps({"hello": "world"}),
        json.dumps({**spot("i-0abc"), "detail": {"instance-action": "terminate"}}),
        json.dumps({**state_change("i-0abc"), "detail": {"instance-id": "i-0abc"}}),
        json.dumps(
            {**health("i-0abc"), "detail": {"service": "EC2", "eventTypeCategory": "scheduledChange"}}
        ),
    ],
)
def test_malformed_bodies_raise(body: str) -> None:
    with pytest.raises(interruption.MalformedMessageError):
        interruption.parse(body, sent=0.0)


def test_a_missing_time_falls_back_to_the_sent_timestamp() -> None:
    body = spot("i-0abc")
    del body["time"]
    assert interruption.parse(json.dumps(body), sent=12.5).time == 12.5


def test_settings_accept_dashed_keys_and_validate_the_poll_time() -> None:
    parsed = Settings.from_context(
        CLUSTER,
        {
            "interruption-queue": "q",
            "interruption-wait-seconds": "2",
            "endpoint-url": "http://x",
            "region": "r",
        },
    )
    assert (parsed.interruption_queue, parsed.interruption_wait_seconds, parsed.endpoint_url) == (
        "q",
        2,
        "http://x",
    )
    with pytest.raises(errors.ConfigError):
        Settings.from_context(CLUSTER, {"interruption-wait-seconds": "21", "region": "r"})


# -- the queue ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "kind", "state"),
    [
        (spot, InterruptionKind.SPOT_INTERRUPTION, None),
        (rebalance, InterruptionKind.REBALANCE_RECOMMENDATION, None),
        (health, InterruptionKind.SCHEDULED_CHANGE, None),
        (lambda i: state_change(i, "stopped"), InterruptionKind.STATE_CHANGE, "stopped"),
    ],
)
async def test_each_kind_is_yielded_with_the_instance_provider_id_and_the_ack_deletes_it(
    env: Env, queue: Queue, make: Any, kind: InterruptionKind, state: str | None
) -> None:
    instance_id = await run_instance(env, "us-west-2b")
    await queue.send(make(instance_id))
    (event,) = await queue.receive_all()
    assert (event.provider_id, event.kind, event.state) == (f"aws:///us-west-2b/{instance_id}", kind, state)
    assert abs(event.time - time.time()) < 60
    assert event.message_id
    assert await queue.left() == 1  # in flight until acked
    assert event.ack is not None
    await event.ack()
    await event.ack()  # idempotent
    assert await queue.left() == 0


async def test_a_health_event_for_several_instances_is_deleted_once_every_event_is_acked(
    env: Env, queue: Queue
) -> None:
    first, second = await run_instance(env, "us-west-2a"), await run_instance(env, "us-west-2c")
    await queue.send(health(first, "vol-0123", second))
    events = await queue.receive_all()
    assert sorted(e.provider_id for e in events) == [
        f"aws:///us-west-2a/{first}",
        f"aws:///us-west-2c/{second}",
    ]
    assert events[0].ack is not None
    assert events[1].ack is not None
    await events[0].ack()
    await events[0].ack()
    assert await queue.left() == 1
    await events[1].ack()
    assert await queue.left() == 0


async def test_instances_this_provider_launched_need_no_describe_call(env: Env, queue: Queue) -> None:
    await ready_nodeclass(env)
    created = await env.provider.create(conformance.nodeclaim(conformance.nodepool("default", REF)))
    provider_id = created.status.provider_id or ""
    instance_id = provider_id.rsplit("/", 1)[1]
    before = env.faults.calls.get("DescribeInstances", 0)
    await queue.send(spot(instance_id))
    (event,) = await queue.receive_all()
    assert event.provider_id == provider_id
    assert env.faults.calls.get("DescribeInstances", 0) == before


async def test_malformed_messages_are_deleted_and_counted(env: Env, queue: Queue) -> None:
    before = counter("nodesmith_interruption_malformed_messages_total")
    await queue.send("not json {")
    await queue.send({"hello": "world"})
    await queue.send({**spot("i-0abc"), "detail": {}})
    assert await queue.receive_all() == []
    assert await queue.left() == 0
    assert counter("nodesmith_interruption_malformed_messages_total") == before + 3


async def test_no_op_and_unknown_instance_messages_are_deleted_and_counted(env: Env, queue: Queue) -> None:
    instance_id = await run_instance(env)
    ignored = "nodesmith_interruption_ignored_messages_total"
    before_unknown, before_state = (
        counter(ignored, 'reason="unknown-instance"'),
        counter(ignored, 'reason="state"'),
    )
    await queue.send(spot("i-0123456789abcdef0"))
    await queue.send(state_change(instance_id, "running"))
    assert await queue.receive_all() == []
    assert await queue.left() == 0
    assert counter(ignored, 'reason="unknown-instance"') == before_unknown + 1
    assert counter(ignored, 'reason="state"') == before_state + 1


async def test_terminated_instances_are_still_located(env: Env, queue: Queue) -> None:
    instance_id = await run_instance(env, "us-west-2d")
    ec2 = await env.ec2()
    await ec2.terminate_instances(InstanceIds=[instance_id])
    await queue.send(state_change(instance_id, "terminated"))
    (event,) = await queue.receive_all()
    assert event.provider_id == f"aws:///us-west-2d/{instance_id}"


async def test_a_failing_receive_is_retried_not_raised(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    source = interruption.SqsSource(
        env.clients, "created-later", env.provider.zones, wait_seconds=0, retry_delay=0.05
    )
    stream = source.events()
    instance_id = await run_instance(env)

    async def create_queue_then_send() -> None:
        # only once the source has failed and logged it (not after a guessed delay)
        while "receiving from interruption queue created-later failed" not in caplog.text:
            await anyio.sleep(0.01)
        sqs = await env.clients.sqs()
        url = (await sqs.create_queue(QueueName="created-later"))["QueueUrl"]
        await sqs.send_message(QueueUrl=url, MessageBody=json.dumps(spot(instance_id)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(create_queue_then_send)
        with anyio.fail_after(10):
            event = await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]  # the protocol says iterator; it is a generator
    assert event.provider_id.endswith(instance_id)
    assert "receiving from interruption queue created-later failed" in caplog.text


async def test_the_provider_offers_the_source_only_with_a_queue(env: Env, queue: Queue) -> None:
    assert env.provider.interruption_events() is None
    settings = attrs.evolve(env.provider.settings, interruption_queue=queue.url, interruption_wait_seconds=1)
    provider = AwsCloudProvider(settings, env.store, clients=env.clients, catalog=env.provider.catalog)
    instance_id = await run_instance(env)
    await queue.send(spot(instance_id))
    stream = provider.interruption_events()
    assert stream is not None
    event = await stream.__anext__()
    assert event.kind is InterruptionKind.SPOT_INTERRUPTION
    assert event.provider_id.endswith(instance_id)
    await stream.aclose()  # type: ignore[attr-defined]  # the protocol says iterator; it is a generator


async def test_a_spot_warning_marks_the_reclaimed_offering_unavailable(env: Env, queue: Queue) -> None:
    await ready_nodeclass(env)
    settings = attrs.evolve(env.provider.settings, interruption_queue=queue.url, interruption_wait_seconds=1)
    provider = AwsCloudProvider(settings, env.store, clients=env.clients, catalog=env.provider.catalog)
    reclaimed, recommended = await run_instance(env, "us-west-2b"), await run_instance(env, "us-west-2c")
    await queue.send(rebalance(recommended))
    await queue.send(spot(reclaimed))
    stream = provider.interruption_events()
    assert stream is not None
    kinds = {(await stream.__anext__()).kind for _ in range(2)}
    await stream.aclose()  # type: ignore[attr-defined]  # the protocol says iterator; it is a generator
    assert kinds == {InterruptionKind.SPOT_INTERRUPTION, InterruptionKind.REBALANCE_RECOMMENDATION}

    (m5,) = [
        it
        for it in await provider.get_instance_types(conformance.nodepool("p", REF))
        if it.name == "m5.large"
    ]
    unavailable = {(o.capacity_type, o.zone) for o in m5.offerings if not o.available}
    assert ("spot", "us-west-2b") in unavailable  # the reclaimed capacity
    assert ("spot", "us-west-2c") not in unavailable  # a rebalance recommendation marks nothing
    assert ("on-demand", "us-west-2b") not in unavailable


async def test_a_reservation_warning_offers_none_of_that_reservation_until_it_is_read_again(
    env: Env, queue: Queue
) -> None:
    (held,) = capacityreservations.from_api(
        [
            {
                "CapacityReservationId": "cr-0abc",
                "InstanceType": "m5.large",
                "AvailabilityZone": "us-west-2a",
                "AvailableInstanceCount": 3,
                "State": "active",
            }
        ]
    )
    manifest = nodeclass_manifest(capacityReservationSelectorTerms=[{"id": "cr-0abc"}])
    manifest["status"] = {"capacityReservations": [held.to_dict()]}
    env.store.put(manifest)
    settings = attrs.evolve(env.provider.settings, interruption_queue=queue.url, interruption_wait_seconds=1)
    provider = AwsCloudProvider(settings, env.store, clients=env.clients, catalog=env.provider.catalog)
    assert await provider.reconcile_node_class("default") is not None
    pool = conformance.nodepool("p", REF)
    pinned = [{"key": labels.LABEL_RESERVATION_ID, "operator": "In", "values": ["cr-0abc"]}]
    created = await provider.create(conformance.nodeclaim(pool, pinned, name="claim-crw"))
    instance_id = (created.status.provider_id or "").rsplit("/", 1)[1]

    def reserved() -> tuple[int, bool]:
        (o,) = [o for it in types if it.name == "m5.large" for o in it.offerings if o.reserved]
        return o.reservation_capacity, o.available

    types = await provider.get_instance_types(pool)
    assert reserved() == (2, True)  # the launch took one of three slots
    await queue.send(reservation(instance_id))
    stream = provider.interruption_events()
    assert stream is not None
    event = await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]  # the protocol says iterator; it is a generator
    assert event.kind is InterruptionKind.CAPACITY_RESERVATION_INTERRUPTION
    assert event.provider_id == created.status.provider_id
    types = await provider.get_instance_types(pool)
    assert reserved() == (0, False)  # the replacement is not launched back into the reservation
