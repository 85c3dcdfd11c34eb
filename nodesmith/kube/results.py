"""What list and watch calls return: `ListResult` and `WatchEvent`.

Kept apart from `nodesmith.kube.client` (which imports kr8s) so that consumers such as the informers in
`nodesmith.state` and recorded streams in tests can name these types without importing kr8s.
"""

from __future__ import annotations

import typing

import attrs

__all__ = ["ListResult", "WatchEvent"]

Obj: typing.TypeAlias = dict[str, typing.Any]


@typing.final
@attrs.frozen(slots=True)
class ListResult:
    """A list response: its items (with ``kind``/``apiVersion`` filled in) and the list's resourceVersion."""

    items: list[Obj]
    resource_version: str


@typing.final
@attrs.frozen(slots=True)
class WatchEvent:
    """One watch event: ``type`` is ADDED, MODIFIED, DELETED or BOOKMARK (ERROR is raised, not yielded)."""

    type: str
    object: Obj

    @property
    def resource_version(self) -> str:
        meta = self.object.get("metadata") if isinstance(self.object, dict) else None
        return str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
