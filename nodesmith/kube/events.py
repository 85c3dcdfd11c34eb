"""Kubernetes Events, deduplicated: the same event about the same object is written at most once per
window, and repeats are folded into its ``count``.

Fed by reconcilers (``recorder.publish(obj, "Warning", "FailedScheduling", "...")``); writes core/v1
Events (what ``kubectl describe`` and ``kubectl events`` show) through `nodesmith.kube.client`.
Consumed by people and dashboards. Publishing never raises: an event that cannot be written is logged
and dropped, because no decision may depend on it.

Dedup rule (Karpenter's recorder drops repeats within 2 minutes; we also keep the tally): the first
occurrence of (object, type, reason, message) creates an Event with ``count: 1``. Repeats within
``window`` only bump an in-memory tally. The first repeat after the window patches the Event's
``count`` (first + tallied repeats + this one) and ``lastTimestamp``; `EventRecorder.flush` writes
tallies that are still pending. The cache holds at most ``max_entries`` keys (oldest dropped), so
memory is bounded whatever the event rate.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import socket
import typing
import uuid
from collections.abc import Mapping

import attrs

from nodesmith.clock import SYSTEM, Clock
from nodesmith.kube import errors
from nodesmith.kube.client import KubeClient
from nodesmith.kube.resources import CORE_EVENTS

__all__ = ["NORMAL", "WARNING", "EventRecorder"]

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"

_Key = tuple[str, str, str, str]


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(slots=True)
class _Entry:
    name: str
    namespace: str
    count: int
    written_at: dt.datetime
    pending: int = 0


@typing.final
@attrs.define
class EventRecorder:
    """Writes deduplicated core/v1 Events; ``clock`` is the daemon's one clock, a stepped one in tests."""

    client: KubeClient
    component: str = "nodesmith"
    instance: str = attrs.field(factory=socket.gethostname)
    window: dt.timedelta = dt.timedelta(minutes=2)
    max_entries: int = 4096
    clock: Clock = SYSTEM
    _entries: collections.OrderedDict[_Key, _Entry] = attrs.field(init=False, factory=collections.OrderedDict)

    async def publish(self, involved: Mapping[str, typing.Any], type: str, reason: str, message: str) -> None:
        """Record an event about ``involved`` (a Kubernetes object dict with kind/apiVersion/metadata)."""
        meta = involved.get("metadata") or {}
        ident = str(
            meta.get("uid") or f"{involved.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}"
        )
        key: _Key = (ident, type, reason, message)
        now = self.clock.now()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            if now - entry.written_at < self.window:
                entry.pending += 1
                return
            entry.pending += 1
            await self._write_count(key, entry, now)
            return
        namespace = str(meta.get("namespace") or "default")
        name = f"{meta.get('name', 'unknown')}.{uuid.uuid4().hex[:16]}"
        entry = _Entry(name=name, namespace=namespace, count=1, written_at=now)
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        await self._create(involved, entry, type, reason, message, now)

    async def flush(self) -> None:
        """Write pending repeat tallies whose window has passed (call it periodically)."""
        now = self.clock.now()
        for key, entry in list(self._entries.items()):
            if entry.pending and now - entry.written_at >= self.window:
                await self._write_count(key, entry, now)

    async def _create(
        self,
        involved: Mapping[str, typing.Any],
        entry: _Entry,
        type: str,
        reason: str,
        message: str,
        now: dt.datetime,
    ) -> None:
        meta = involved.get("metadata") or {}
        ref = {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        body = {
            "metadata": {"name": entry.name, "namespace": entry.namespace},
            "involvedObject": {k: v for k, v in ref.items() if v},
            "type": type,
            "reason": reason,
            "message": message[:1024],
            "count": 1,
            "firstTimestamp": _stamp(now),
            "lastTimestamp": _stamp(now),
            "source": {"component": self.component, "host": self.instance},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        try:
            await self.client.create(CORE_EVENTS, body, entry.namespace)
        except errors.KubeError as err:
            log.warning("cannot record event %s/%s %s: %s", entry.namespace, entry.name, reason, err)

    async def _write_count(self, key: _Key, entry: _Entry, now: dt.datetime) -> None:
        count = entry.count + entry.pending
        patch = {"count": count, "lastTimestamp": _stamp(now)}
        try:
            await self.client.merge_patch(CORE_EVENTS, entry.name, patch, entry.namespace)
        except errors.NotFoundError:
            # The Event expired server-side (default TTL 1h): start a fresh one next time.
            self._entries.pop(key, None)
            return
        except errors.KubeError as err:
            log.warning("cannot update event %s/%s: %s", entry.namespace, entry.name, err)
            return
        entry.count, entry.pending, entry.written_at = count, 0, now
