"""The interruption reconciler: machines the cloud is about to take are deleted (and so replaced and
drained) before it takes them.

It consumes the provider's event source (``CloudProvider.interruption_events()``; providers without one
return ``None`` and this reconciler idles), decides per event with `nodesmith.disruption.interruption.decide`,
and acts: deleting the NodeClaim starts the normal termination path, and marking the machine for deletion
makes the provisioner place its pods elsewhere at once — usually before the drain finishes. Every event is
acknowledged once handled (a queue-backed source deletes the message), unknown instances included, so
nothing is redelivered forever. Events are handled in parallel, a bounded number at a time.
"""

from __future__ import annotations

import logging
from typing import Final

import anyio
import attrs

from nodesmith import metrics
from nodesmith.api import budgets
from nodesmith.clock import Clock
from nodesmith.cloudprovider.protocol import CloudProvider
from nodesmith.cloudprovider.types import InterruptionEvent
from nodesmith.disruption import interruption
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.state.cluster import ClusterState
from nodesmith.state.statenode import StateNode

__all__ = ["Interruption"]

log = logging.getLogger(__name__)

PARALLEL: Final = 10
STREAM_BACKOFF_INITIAL: Final = 1.0
STREAM_BACKOFF_MAX: Final = 30.0
"""Seconds between subscribing again to a failed event stream, doubling per failure in a row."""

RECEIVED: Final = metrics.meter.create_counter(
    "nodesmith_interruption_received_messages", description="Interruption events received, by kind."
)
ACTIONS: Final = metrics.meter.create_counter(
    "nodesmith_interruption_actions_performed",
    description="Actions taken on interruption events, by kind and action.",
)
LATENCY: Final = metrics.meter.create_histogram(
    "nodesmith_interruption_message_latency_seconds",
    unit="s",
    description="Time from the cloud emitting an interruption event to its NodeClaim being deleted.",
)

_REASONS: Final = {
    "SpotInterruption": "SpotInterrupted",
    "RebalanceRecommendation": "RebalanceRecommendation",
    "ScheduledChange": "InstanceScheduledChange",
    "StateChange": "InstanceStateChange",
    "CapacityReservationInterruption": "CapacityReservationInterrupted",
}


@attrs.define
class Interruption:
    """Consumes the provider's interruption events until cancelled."""

    kube: KubeClient
    state: ClusterState
    provider: CloudProvider
    events: EventRecorder
    clock: Clock
    replace_on_rebalance: bool = False
    name: str = "interruption"

    async def run(self) -> None:
        """Consume the provider's stream; when it fails (the API server or the cloud's queue is away),
        log it, back off and subscribe again: the daemon must not die because its event source did."""
        failures = 0
        slots = anyio.Semaphore(PARALLEL)
        async with anyio.create_task_group() as group:
            while True:
                stream = self.provider.interruption_events()
                if stream is None:
                    await anyio.sleep_forever()
                    return
                try:
                    async for event in stream:
                        failures = 0
                        await slots.acquire()  # at most PARALLEL events in hand; the stream waits meanwhile
                        group.start_soon(self._handle_then_release, event, slots)
                except Exception as err:
                    failures += 1
                    delay = min(STREAM_BACKOFF_MAX, STREAM_BACKOFF_INITIAL * 2 ** min(failures - 1, 16))
                    log.warning(
                        "interruption event stream failed (%s); subscribing again in %.1fs", err, delay
                    )
                    metrics.RECONCILE_ERRORS.add(1, {"reconciler": self.name})
                    await self.clock.sleep(delay)
                    continue
                return  # the provider ended its stream: nothing more will come

    async def _handle_then_release(self, event: InterruptionEvent, slots: anyio.Semaphore) -> None:
        try:
            await self.handle(event)
        except Exception:
            log.exception("handling interruption event %s for %s failed", event.kind, event.provider_id)
            metrics.RECONCILE_ERRORS.add(1, {"reconciler": self.name})
        finally:
            slots.release()

    async def handle(self, event: InterruptionEvent) -> interruption.Action:
        """Act on one event and acknowledge it; returns what was done."""
        RECEIVED.add(1, {"kind": event.kind.value})
        node = self.state.state_node(event.provider_id)
        claim = node.nodeclaim if node is not None else None
        action = interruption.decide(
            event,
            known=claim is not None,
            deleting=bool(node is not None and (node.deleting or (claim is not None and claim.deleting))),
            replace_on_rebalance=self.replace_on_rebalance,
        )
        if action is interruption.Action.REPLACE_WITHIN_BUDGET and node is not None:
            action = interruption.Action.DELETE if self._budget_allows(node) else interruption.Action.IGNORE
        if action is interruption.Action.DROP_UNKNOWN:
            log.debug("interruption event %s for unknown instance %s dropped", event.kind, event.provider_id)
        elif node is not None and claim is not None:
            await self._publish(node, event, action)
            if action is interruption.Action.DELETE:
                await self._delete(node, claim.name, event)
        ACTIONS.add(1, {"kind": event.kind.value, "action": action.value})
        if event.ack is not None:
            await event.ack()
        return action

    def _budget_allows(self, node: StateNode) -> bool:
        snapshot = self.state.snapshot()
        pool = snapshot.nodepools.get(node.nodepool or "")
        if pool is None:
            return False
        members = [n for n in snapshot.nodes if n.nodepool == pool.name]
        disrupting = sum(1 for n in members if n.marked_for_deletion)
        allowed = pool.allowed_disruptions(budgets.DisruptionReason.DRIFTED, len(members), self.clock.now())
        return allowed - disrupting > 0

    async def _delete(self, node: StateNode, claim_name: str, event: InterruptionEvent) -> None:
        self.state.mark_for_deletion(node.key)
        try:
            await self.kube.delete(resources.NODECLAIMS, claim_name)
        except kube_errors.NotFoundError:
            return
        LATENCY.record(max(0.0, self.clock.now().timestamp() - event.time))
        metrics.NODECLAIMS_TERMINATED.add(1, {"reason": "interrupted", "nodepool": node.nodepool or ""})
        log.info(
            "deleted interrupted NodeClaim",
            extra={"nodeclaim": claim_name, "kind": event.kind.value, "provider_id": event.provider_id},
        )

    async def _publish(self, node: StateNode, event: InterruptionEvent, action: interruption.Action) -> None:
        reason = _REASONS.get(event.kind.value, event.kind.value)
        state = f" (state {event.state})" if event.state else ""
        message = f"{event.kind.value}{state} for {event.provider_id}; action: {action.value}"
        if node.node is not None:
            await self.events.publish(node.node.reference(), "Warning", reason, message)
        elif node.nodeclaim_object is not None:
            involved = {"kind": "NodeClaim", "apiVersion": "nodesmith.io/v1", **node.nodeclaim_object}
            await self.events.publish(involved, "Warning", reason, message)
