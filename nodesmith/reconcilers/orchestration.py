"""The orchestration queue: carries out disruption commands -- replacements first, then deletion
(spec §4.5; Karpenter's ``disruption/queue.go``).

`Orchestrator.start` is called by the disruption loop with a validated `nodesmith.disruption.Command`:

1. refuse if a candidate is already queued;
2. taint every candidate ``nodesmith.io/disrupted:NoSchedule`` and set ``DisruptionReason`` on its
   NodeClaim (a failure aborts and undoes the taints);
3. create the replacement NodeClaims (``provisioner.nodeclaim_object`` from the simulated claim, narrowed
   to the command's instance types and requirements) and insert them into the state at once; a failure
   aborts: created replacements are deleted again, taints removed;
4. mark the candidates for deletion in the state (after launching, so the provisioner does not launch
   again for the same pods: it now sees the in-flight replacements);
5. queue the command.

The queue then waits (re-checking every second) until every replacement is initialized, and deletes
the candidates' NodeClaims -- termination drains them, honouring PDBs. A replacement that disappears
(insufficient capacity, liveness) or a command older than the timeout (10 minutes, growing with the
queue like Karpenter's, at most an hour) is given up: taints removed, ``DisruptionReason`` cleared,
deletion marks undone; replacements that did come up are left to consolidation, as Karpenter does.
It also remembers when each node's disruption started, for time-window budgets.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import logging
from typing import Any, Final

import attrs

from nodesmith import metrics
from nodesmith.api import conditions, labels
from nodesmith.api import nodepool as api_nodepool
from nodesmith.clock import Clock
from nodesmith.disruption import budgets, candidates
from nodesmith.disruption.commands import Command, Replacement
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.reconcilers import provisioner
from nodesmith.reconcilers.nodeclaim_marking import clear_condition, set_condition
from nodesmith.reconcilers.queues import WorkQueue
from nodesmith.scheduling import results
from nodesmith.state.cluster import ClusterState

__all__ = ["Orchestrator", "QueuedCommand", "clear_disruption_reason", "untaint"]

log = logging.getLogger(__name__)

MIN_TIMEOUT: Final = dt.timedelta(minutes=10)
MAX_TIMEOUT: Final = dt.timedelta(hours=1)
HISTORY: Final = dt.timedelta(days=1)
RECHECK: Final = 1.0


@attrs.define
class QueuedCommand:
    id: str
    command: Command
    started: dt.datetime
    replacements: tuple[str, ...]
    """Names of the replacement NodeClaims."""
    timeout: dt.timedelta
    waiting_reported: bool = False


def _taint(node: dict[str, Any]) -> dict[str, Any] | None:
    obj = dict(node)
    spec = dict(obj.get("spec") or {})
    taints = list(spec.get("taints") or [])
    if any(t.get("key") == labels.TAINT_DISRUPTED and t.get("effect") == "NoSchedule" for t in taints):
        return None
    spec["taints"] = [*taints, {"key": labels.TAINT_DISRUPTED, "effect": "NoSchedule"}]
    obj["spec"] = spec
    return obj


def _untaint(node: dict[str, Any]) -> dict[str, Any] | None:
    obj = dict(node)
    spec = dict(obj.get("spec") or {})
    taints = list(spec.get("taints") or [])
    kept = [t for t in taints if t.get("key") != labels.TAINT_DISRUPTED]
    if len(kept) == len(taints):
        return None
    spec["taints"] = kept
    obj["spec"] = spec
    return obj


@attrs.define
class Orchestrator:
    """The disruption queue; build through ``controllers.build`` (the disruption loop owns the calls)."""

    kube: KubeClient
    state: ClusterState
    events: EventRecorder
    clock: Clock
    min_timeout: dt.timedelta = MIN_TIMEOUT
    name: str = "disruption.queue"
    _queue: WorkQueue[str] = attrs.field(init=False)
    _commands: dict[str, QueuedCommand] = attrs.field(init=False, factory=dict)
    _history: collections.deque[budgets.Started] = attrs.field(init=False, factory=collections.deque)
    _ids: itertools.count[int] = attrs.field(init=False, factory=itertools.count)

    def __attrs_post_init__(self) -> None:
        self._queue = WorkQueue(self.name, self.reconcile, workers=8, max_backoff=10.0, clock=self.clock)

    async def run(self) -> None:
        await self._queue.run()

    # -- what the disruption loop reads ----------------------------------------------------------------

    def queued_keys(self) -> frozenset[str]:
        return frozenset(key for queued in self._commands.values() for key in queued.command.keys)

    def history(self) -> tuple[budgets.Started, ...]:
        """Disruptions started within the last day (time-window budgets count these)."""
        since = self.clock.now() - HISTORY
        while self._history and self._history[0].at <= since:
            self._history.popleft()
        return tuple(self._history)

    def pending(self) -> list[QueuedCommand]:
        return list(self._commands.values())

    # -- start -------------------------------------------------------------------------------------

    async def start(self, command: Command) -> bool:
        """Begin carrying out ``command``; False (and nothing left changed) if it could not start."""
        now = self.clock.now()
        # 1. A candidate is already being disrupted.
        if self.queued_keys() & set(command.keys):
            return False
        # 2. Taint, and record the reason on the NodeClaims.
        tainted: list[str] = []
        try:
            for candidate in command.candidates:
                await self.kube.mutate(resources.NODES, candidate.name, _taint)
                tainted.append(candidate.name)
                await self._set_reason(candidate.nodeclaim.name, command, now)
        except kube_errors.KubeError as err:
            log.warning("could not mark %s for disruption: %s", command.describe(), err)
            await self._undo(command, tainted)
            return False
        # 3. Launch the replacements first.
        created: list[str] = []
        try:
            for replacement in command.replacements:
                created.append(await self._create(replacement, command))
        except (kube_errors.KubeError, ValueError) as err:
            log.warning("could not launch replacements for %s: %s", command.describe(), err)
            for name in created:
                await self._delete_claim(name, None)
            await self._undo(command, tainted)
            metrics.DISRUPTION_QUEUE_FAILURES.add(1, {"reason": "launch"})
            return False
        # 4. Only now mark them, so the provisioner sees the in-flight replacements for their pods.
        self.state.mark_for_deletion(*command.keys)
        for candidate in command.candidates:
            self._history.append(budgets.Started(candidate.nodepool.name, command.reason, now))
            metrics.DISRUPTION_DECISIONS.add(
                1,
                {
                    "decision": command.decision.value,
                    "reason": command.reason.value,
                    "nodepool": candidate.nodepool.name,
                },
            )
        queued = QueuedCommand(
            f"cmd-{next(self._ids)}",
            command,
            now,
            tuple(created),
            min(
                max(self.min_timeout, dt.timedelta(milliseconds=80) * (len(self._commands) + 1)), MAX_TIMEOUT
            ),
        )
        self._commands[queued.id] = queued
        reason = "DisruptionLaunching" if created else "DisruptionTerminating"
        text = f"Disrupting node: {command.describe()}"
        if created:
            text += f"; launching {', '.join(created)}"
        for candidate in command.candidates:
            await self._node_event(candidate.name, candidate.view.node, "Normal", reason, text)
        self._queue.add(queued.id)
        return True

    async def _set_reason(self, claim: str, command: Command, now: dt.datetime) -> None:
        def change(current: dict[str, Any]) -> dict[str, Any] | None:
            obj = dict(current)
            obj["status"] = dict(obj.get("status") or {})
            changed = set_condition(
                obj, conditions.ConditionType.DISRUPTION_REASON, command.reason.value, command.describe(), now
            )
            return obj if changed else None

        await self.kube.mutate(resources.NODECLAIMS, claim, change, subresource="status")

    async def _create(self, replacement: Replacement, command: Command) -> str:
        source = replacement.source
        if not isinstance(source, results.NewNodeClaim):
            raise ValueError("replacement without a simulated NodeClaim")
        pool: api_nodepool.NodePool | None = next(
            (c.nodepool for c in command.candidates if c.nodepool.name == replacement.nodepool), None
        ) or self.state.snapshot().nodepools.get(replacement.nodepool)
        if pool is None:
            raise ValueError(f"NodePool {replacement.nodepool} is gone")
        claim = attrs.evolve(
            source, instance_types=replacement.instance_types, requirements=replacement.requirements
        )
        obj = await self.kube.create(resources.NODECLAIMS, provisioner.nodeclaim_object(claim, pool))
        self.state.update_nodeclaim_created(obj)
        metrics.NODECLAIMS_CREATED.add(1, {"reason": command.reason.value.lower(), "nodepool": pool.name})
        return str(obj["metadata"]["name"])

    # -- the queue ---------------------------------------------------------------------------------

    async def reconcile(self, command_id: str) -> float | None:
        """Advance one queued command; seconds until the next look, or None when it is done."""
        queued = self._commands.get(command_id)
        if queued is None:
            return None
        command = queued.command
        # 1. Too old → give up.
        if self.clock.now() - queued.started > queued.timeout:
            await self._fail(queued, f"replacements did not initialize within {queued.timeout}")
            return None
        # 2. A replacement vanished → give up; one not initialized yet → wait.
        for name in queued.replacements:
            key = self.state.key_for_nodeclaim(name)
            node = self.state.state_node(key) if key else None
            if node is None or node.nodeclaim is None or node.nodeclaim.deleting:
                await self._fail(queued, f"replacement {name} was deleted before it initialized")
                return None
            if not node.initialized:
                if not queued.waiting_reported:
                    queued.waiting_reported = True
                    for candidate in command.candidates:
                        await self._node_event(
                            candidate.name,
                            candidate.view.node,
                            "Normal",
                            "DisruptionWaitingReadiness",
                            f"Waiting on readiness to continue disruption: replacement {name}",
                        )
                return RECHECK
        # 3. Everything is up → delete the candidates; termination drains them.
        for candidate in command.candidates:
            await self._delete_claim(candidate.nodeclaim.name, candidate.nodeclaim.metadata.uid)
            metrics.NODECLAIMS_DISRUPTED.add(
                1, {"reason": command.reason.value.lower(), "nodepool": candidate.nodepool.name}
            )
            await self._node_event(
                candidate.name,
                candidate.view.node,
                "Normal",
                "DisruptionTerminating",
                f"Disrupting node via {command.decision.value} for {command.reason.value}",
            )
        del self._commands[command_id]
        return None

    async def _fail(self, queued: QueuedCommand, why: str) -> None:
        command = queued.command
        log.warning("giving up disruption %s: %s", command.describe(), why)
        metrics.DISRUPTION_QUEUE_FAILURES.add(
            1, {"reason": "replacement" if queued.replacements else "other"}
        )
        self.state.unmark_for_deletion(*command.keys)
        await self._undo(command, [c.name for c in command.candidates])
        for candidate in command.candidates:
            await self._node_event(
                candidate.name,
                candidate.view.node,
                "Warning",
                "DisruptionFailed",
                f"Gave up disruption: {why}",
            )
        self._commands.pop(queued.id, None)

    async def _undo(self, command: Command, tainted: list[str]) -> None:
        for name in tainted:
            try:
                await self.kube.mutate(resources.NODES, name, _untaint)
            except kube_errors.NotFoundError:
                pass
            except kube_errors.KubeError as err:
                log.warning("could not remove the disrupted taint from %s: %s", name, err)
        for candidate in command.candidates:
            await clear_disruption_reason(self.kube, candidate.nodeclaim.name)

    async def _delete_claim(self, name: str, uid: str | None) -> None:
        with contextlib.suppress(kube_errors.NotFoundError, kube_errors.ConflictError):
            await self.kube.delete(resources.NODECLAIMS, name, uid=uid)

    async def _node_event(
        self, name: str, node: candidates.NodeFacts | None, kind: str, reason: str, message: str
    ) -> None:
        """An event about the candidate Node ``name``; ``node`` is the Node the disruption loop's candidate
        carries (the event's involvedObject names its uid and resourceVersion)."""
        involved = (
            node.reference()
            if node is not None
            else {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name}}
        )
        await self.events.publish(involved, kind, reason, message)


async def clear_disruption_reason(kube: KubeClient, claim: str) -> None:
    """Remove ``DisruptionReason`` from a NodeClaim's status (missing NodeClaims are fine)."""

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        obj = dict(current)
        obj["status"] = dict(obj.get("status") or {})
        return obj if clear_condition(obj, conditions.ConditionType.DISRUPTION_REASON) else None

    try:
        await kube.mutate(resources.NODECLAIMS, claim, change, subresource="status")
    except kube_errors.NotFoundError:
        pass
    except kube_errors.KubeError as err:
        log.warning("could not clear DisruptionReason on %s: %s", claim, err)


def untaint(node: dict[str, Any]) -> dict[str, Any] | None:
    """``mutate`` change that removes the disrupted taint (used by the loop's crash recovery)."""
    return _untaint(node)
