"""The AWS interruption source: EventBridge messages on an SQS queue become the core's `InterruptionEvent`s.

Fed by an SQS queue (setting ``interruption-queue``, a name or a URL) that EventBridge rules fill with five
kinds of message (Karpenter's ``pkg/controllers/interruption``): *EC2 Spot Instance Interruption
Warning*, *EC2 Capacity Reservation Instance Interruption Warning*, *EC2 Instance Rebalance
Recommendation*, *AWS Health Event* (EC2 scheduled changes only) and *EC2 Instance State-change
Notification* (stopping, stopped, shutting-down, terminated). Consumed by the
core's interruption reconciler through ``AwsCloudProvider.interruption_events()``, which decides what to
do and then awaits each event's ``ack``: that deletes the SQS message.

Two halves. `parse` is pure: one message body in, a `Notice` out (or `MalformedMessageError`). The
`SqsSource` does the I/O: it long-polls ReceiveMessage (10 messages, ``WaitTimeSeconds`` 20 by default),
parses and locates every message of a batch in parallel, and yields one event per instance. The
providerID the core keys its state by is ``aws:///<zone>/<instance-id>``, and messages carry only the
instance ID, so a `ZoneLocator` finds the zone (instances this process launched are known already; others
cost one DescribeInstances, without a state filter so terminated instances are found too).

No message is left to come back forever: malformed ones are deleted with a warning and counted in
``nodesmith_interruption_malformed_messages``; messages that call for nothing (another Health service, a
state such as ``running``, an unrecognised type) and messages about instances EC2 does not know are
deleted and counted in ``nodesmith_interruption_ignored_messages`` by reason. A failing ReceiveMessage is
logged and retried after a pause; the source never raises out of its loop except on cancellation.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, final

import anyio
import attrs
from botocore.exceptions import BotoCoreError, ClientError

from nodesmith import metrics
from nodesmith.cloudprovider.types import InterruptionEvent, InterruptionKind
from nodesmith_aws.clients import Clients, error_code
from nodesmith_aws.instances import format_provider_id

__all__ = [
    "IGNORED",
    "MALFORMED",
    "MalformedMessageError",
    "Notice",
    "SqsSource",
    "ZoneLocator",
    "parse",
]

log = logging.getLogger(__name__)

MAX_MESSAGES: Final = 10
RETRY_DELAY: Final = 5.0
SPOT_WARNING: Final = ("aws.ec2", "EC2 Spot Instance Interruption Warning")
RESERVATION_WARNING: Final = ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning")
REBALANCE: Final = ("aws.ec2", "EC2 Instance Rebalance Recommendation")
HEALTH: Final = ("aws.health", "AWS Health Event")
STATE_CHANGE: Final = ("aws.ec2", "EC2 Instance State-change Notification")
GOING_STATES: Final = frozenset({"stopping", "stopped", "shutting-down", "terminated"})
_NOT_FOUND: Final = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})

MALFORMED: Final = metrics.meter.create_counter(
    "nodesmith_interruption_malformed_messages",
    description="Interruption queue messages that could not be parsed (deleted with a warning).",
)
IGNORED: Final = metrics.meter.create_counter(
    "nodesmith_interruption_ignored_messages",
    description="Interruption queue messages deleted without an event, by reason "
    "(no-op kind or state, unknown instance).",
)


class MalformedMessageError(ValueError):
    """Raised by `parse` when a body is not JSON, not an EventBridge envelope, or lacks the fields its
    kind needs."""


# -- parsing (pure) ------------------------------------------------------------------------------------


@final
@attrs.frozen(slots=True)
class Notice:
    """What one message says: ``kind`` ``None`` means there is nothing to do (``reason`` says why)."""

    kind: InterruptionKind | None
    instance_ids: tuple[str, ...] = ()
    time: float = 0.0
    state: str | None = None
    reason: str = ""


def _str(detail: Mapping[str, Any], key: str) -> str:
    value = detail.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedMessageError(f"detail.{key} missing or not a string")
    return value


def _time(envelope: Mapping[str, Any], sent: float) -> float:
    raw = envelope.get("time")
    if not isinstance(raw, str):
        return sent
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        return sent
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def parse(body: str, *, sent: float) -> Notice:
    """The `Notice` in an EventBridge message body; ``sent`` (epoch seconds) stands in for a missing or
    unreadable ``time``. Routing is exact on (``version`` "0", ``source``, ``detail-type``), as in Karpenter.
    Raises `MalformedMessageError`."""
    try:
        envelope = json.loads(body)
    except ValueError as err:
        raise MalformedMessageError(f"not JSON: {err}") from err
    if not isinstance(envelope, dict):
        raise MalformedMessageError(f"expected a JSON object, got {type(envelope).__name__}")
    source, detail_type = envelope.get("source"), envelope.get("detail-type")
    if not isinstance(source, str) or not isinstance(detail_type, str):
        raise MalformedMessageError("no source / detail-type: not an EventBridge event")
    route = (source, detail_type)
    if envelope.get("version") != "0" or route not in (
        SPOT_WARNING,
        RESERVATION_WARNING,
        REBALANCE,
        HEALTH,
        STATE_CHANGE,
    ):
        return Notice(None, reason="unrecognised")
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise MalformedMessageError("detail missing or not an object")
    at = _time(envelope, sent)
    if route == SPOT_WARNING:
        return Notice(InterruptionKind.SPOT_INTERRUPTION, (_str(detail, "instance-id"),), at)
    if route == RESERVATION_WARNING:
        kind = InterruptionKind.CAPACITY_RESERVATION_INTERRUPTION
        return Notice(kind, (_str(detail, "instance-id"),), at)
    if route == REBALANCE:
        return Notice(InterruptionKind.REBALANCE_RECOMMENDATION, (_str(detail, "instance-id"),), at)
    if route == STATE_CHANGE:
        instance_id, state = _str(detail, "instance-id"), _str(detail, "state")
        if state not in GOING_STATES:
            return Notice(None, reason="state")
        return Notice(InterruptionKind.STATE_CHANGE, (instance_id,), at, state=state)
    if detail.get("service") != "EC2" or detail.get("eventTypeCategory") != "scheduledChange":
        return Notice(None, reason="health-filtered")
    entities = detail.get("affectedEntities")
    if not isinstance(entities, list):
        raise MalformedMessageError("detail.affectedEntities missing or not a list")
    ids = tuple(
        dict.fromkeys(
            e["entityValue"]
            for e in entities
            if isinstance(e, dict)
            and isinstance(e.get("entityValue"), str)
            and e["entityValue"].startswith("i-")
        )
    )
    if not ids:
        return Notice(None, reason="no-instance")
    return Notice(InterruptionKind.SCHEDULED_CHANGE, ids, at)


# -- the queue -----------------------------------------------------------------------------------------


class ZoneLocator:
    """Instance ID → availability zone: remembered (`remember`, fed by launches) or asked of EC2 once.

    An instance never changes zone, so answers are kept (up to ``limit`` of them, oldest forgotten first).
    ``None`` means EC2 does not know the instance (``InvalidInstanceID.NotFound``)."""

    def __init__(self, clients: Clients, *, limit: int = 10_000) -> None:
        self.clients = clients
        self.limit = limit
        self._zones: dict[str, str] = {}

    def remember(self, instance_id: str, zone: str) -> None:
        self._zones.pop(instance_id, None)
        self._zones[instance_id] = zone
        while len(self._zones) > self.limit:
            self._zones.pop(next(iter(self._zones)))

    async def zone(self, instance_id: str) -> str | None:
        known = self._zones.get(instance_id)
        if known is not None:
            return known
        ec2 = await self.clients.ec2()
        try:
            answer = await ec2.describe_instances(InstanceIds=[instance_id])
        except ClientError as err:
            if error_code(err) in _NOT_FOUND:
                return None
            raise
        for reservation in answer.get("Reservations") or ():
            for raw in reservation.get("Instances") or ():
                if raw.get("InstanceId") == instance_id:
                    zone = str(raw["Placement"]["AvailabilityZone"])
                    self.remember(instance_id, zone)
                    return zone
        return None


class SqsSource:
    """Long-polls one SQS queue and yields interruption events (see the module docstring).

    ``queue`` is a queue name (resolved once with GetQueueUrl) or an ``https://``/``http://`` URL."""

    def __init__(
        self,
        clients: Clients,
        queue: str,
        locator: ZoneLocator,
        *,
        wait_seconds: int = 20,
        visibility_timeout: int = 20,
        retry_delay: float = RETRY_DELAY,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.queue = queue
        self.locator = locator
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.retry_delay = retry_delay
        self._now = now
        self._url = queue if queue.startswith(("https://", "http://")) else ""

    async def _sqs(self) -> Any:
        return await self.clients.sqs()

    async def queue_url(self) -> str:
        if not self._url:
            sqs = await self._sqs()
            self._url = str((await sqs.get_queue_url(QueueName=self.queue))["QueueUrl"])
        return self._url

    async def events(self) -> AsyncIterator[InterruptionEvent]:
        """Events until cancelled; a failed receive is logged and retried after ``retry_delay``."""
        while True:
            try:
                batch = await self.receive()
            except Exception as err:  # boundary: the source outlives any failed round
                log.warning("receiving from interruption queue %s failed: %s", self.queue, err)
                await anyio.sleep(self.retry_delay)
                continue
            for event in batch:
                yield event

    async def receive(self) -> list[InterruptionEvent]:
        """One long-poll round: the events of up to 10 messages, parsed and located in parallel.
        Messages that yield no event are deleted here."""
        sqs = await self._sqs()
        url = await self.queue_url()
        answer = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=MAX_MESSAGES,
            WaitTimeSeconds=self.wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            MessageSystemAttributeNames=["SentTimestamp"],
        )
        messages: Sequence[Mapping[str, Any]] = answer.get("Messages") or ()
        found: list[list[InterruptionEvent]] = [[] for _ in messages]

        async def one(index: int, message: Mapping[str, Any]) -> None:
            try:
                found[index] = await self._events_of(message)
            except Exception as err:  # boundary: one message never stops the batch; SQS redelivers it
                log.warning("interruption message %s not handled: %s", message.get("MessageId"), err)

        async with anyio.create_task_group() as tg:
            for index, message in enumerate(messages):
                tg.start_soon(one, index, message)
        return [event for events in found for event in events]

    async def _events_of(self, message: Mapping[str, Any]) -> list[InterruptionEvent]:
        message_id = str(message.get("MessageId", ""))
        receipt = str(message["ReceiptHandle"])
        sent_ms = str((message.get("Attributes") or {}).get("SentTimestamp") or "")
        sent = int(sent_ms) / 1000 if sent_ms.isdigit() else self._now()
        try:
            notice = parse(str(message.get("Body", "")), sent=sent)
        except MalformedMessageError as err:
            log.warning("deleting malformed interruption message %s: %s", message_id, err)
            MALFORMED.add(1)
            await self._delete(receipt, message_id)
            return []
        if notice.kind is None:
            log.debug("deleting interruption message %s: nothing to do (%s)", message_id, notice.reason)
            IGNORED.add(1, {"reason": notice.reason})
            await self._delete(receipt, message_id)
            return []
        zones = [await self.locator.zone(i) for i in notice.instance_ids]
        located = [(i, z) for i, z in zip(notice.instance_ids, zones, strict=True) if z is not None]
        if not located:
            log.info(
                "deleting interruption message %s: unknown instance(s) %s", message_id, notice.instance_ids
            )
            IGNORED.add(1, {"reason": "unknown-instance"})
            await self._delete(receipt, message_id)
            return []
        ack = _SharedAck(len(located), lambda: self._delete(receipt, message_id))
        return [
            InterruptionEvent(
                provider_id=format_provider_id(zone, instance_id),
                kind=notice.kind,
                time=notice.time,
                state=notice.state,
                message_id=message_id,
                ack=ack.one(),
            )
            for instance_id, zone in located
        ]

    async def _delete(self, receipt: str, message_id: str) -> None:
        """Delete one message; a failure is logged (the message comes back after the visibility timeout
        and is handled again, which is harmless)."""
        try:
            sqs = await self._sqs()
            await sqs.delete_message(QueueUrl=await self.queue_url(), ReceiptHandle=receipt)
        except (ClientError, BotoCoreError, OSError) as err:
            log.warning("deleting interruption message %s failed: %s", message_id, err)


class _SharedAck:
    """One message can name several instances (a Health event): it is deleted once every event is acked.
    Each event's ack counts once, however often it is called."""

    def __init__(self, events: int, delete: Callable[[], Awaitable[None]]) -> None:
        self._left = events
        self._delete = delete

    def one(self) -> Callable[[], Awaitable[None]]:
        done = False

        async def ack() -> None:
            nonlocal done
            if done:
                return
            done = True
            self._left -= 1
            if self._left == 0:
                await self._delete()

        return ack
