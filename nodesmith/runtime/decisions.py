"""The daemon's memory of its recent decisions, served as JSON on ``/decisions`` for ``nodesmith explain``.

It is an ordinary decision observer: the daemon registers a `DecisionLog` with the plugin manager, so it
sees exactly the records plugins see (``nodesmith_observe_decision``: one per provisioning run and one per
disruption method run, accepted or not), and keeps the newest ``size`` of them in memory. Nothing is
persisted: a restarted or newly elected daemon starts with an empty log, and a standby's log stays empty.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping
from typing import Any

import anyio
import attrs

from nodesmith.cloudprovider.hookspecs import hookimpl
from nodesmith.runtime import http

__all__ = ["DEFAULT_SIZE", "DecisionLog"]

DEFAULT_SIZE = 200
"""Decisions kept: a few minutes of a busy cluster (a disruption pass records up to four)."""


@attrs.define
class DecisionLog:
    size: int = DEFAULT_SIZE
    _records: collections.deque[Mapping[str, Any]] = attrs.field(init=False)
    _sequence: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._records = collections.deque(maxlen=self.size)

    @hookimpl
    def nodesmith_observe_decision(self, decision: Mapping[str, Any]) -> None:
        """Keep ``decision``, numbered so a reader can ask for what is newer than what it saw."""
        self._sequence += 1
        self._records.append({"sequence": self._sequence, **decision})

    def records(self) -> list[Mapping[str, Any]]:
        """The kept decisions, oldest first."""
        return list(self._records)

    async def serve(self) -> http.Response:
        """``GET /decisions``: ``{"decisions": [...]}``, oldest first."""
        records = self.records()
        # off the event loop: a busy leader's log can take a while to encode
        body = await anyio.to_thread.run_sync(
            lambda: json.dumps({"decisions": records}, default=str, sort_keys=True)
        )
        return 200, "application/json", body.encode() + b"\n"
