"""`SharedValues`: one copy of each repeated sub-object (labels, owner references, containers,
tolerations...) held by the informers' stores, instead of one per pod.

Pods of one ReplicaSet, Job or StatefulSet are stamped from one template, so apart from their names,
uids, nodeName and status they are equal. After interning strings (`nodesmith.state.informer.interned`)
a stored pod still spends about half its memory on those template parts (tests/bench/bench_state.py:
4.7 KiB per object at 10,000 nodes and 150,000 pods); sharing them is what brings that cluster's cache
under 600 MiB.

Fed by `nodesmith.state.informer.Informer`, which passes each transformed object through `share`
before storing it; consumed by nobody directly -- the stored objects look exactly as before. Sharing
is safe because stored objects are never mutated (the state replaces objects, it does not edit them;
see `nodesmith.state.statenode.StateNode`). Equality is by JSON text, so ``true`` and ``1`` (equal in
Python) never share. The cache is bounded: past `MAX_ENTRIES` distinct values it starts afresh, which
costs sharing for values seen later, never correctness.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping

import attrs

from nodesmith.kube import resources

__all__ = ["MAX_ENTRIES", "SHARED_FIELDS", "SharedValues"]

Obj: typing.TypeAlias = dict[str, typing.Any]

#: Distinct values remembered before the cache starts afresh (a few MiB of keys at most).
MAX_ENTRIES = 20_000

#: Per kind, the (section, field) pairs that come from a template and so repeat across objects.
#: Pod volumes are left out: the service-account volume's name carries a random suffix per pod.
SHARED_FIELDS: Mapping[resources.Resource, tuple[tuple[str, str], ...]] = {
    resources.PODS: (
        ("metadata", "labels"),
        ("metadata", "annotations"),
        ("metadata", "ownerReferences"),
        ("spec", "containers"),
        ("spec", "initContainers"),
        ("spec", "tolerations"),
        ("spec", "affinity"),
        ("spec", "nodeSelector"),
        ("spec", "topologySpreadConstraints"),
        ("spec", "overhead"),
    ),
}


@typing.final
@attrs.define(eq=False)
class SharedValues:
    """A bounded table of canonical values, keyed by their JSON text."""

    fields: tuple[tuple[str, str], ...]
    _table: dict[str, typing.Any] = attrs.field(init=False, factory=dict)

    @classmethod
    def for_resource(cls, resource: resources.Resource) -> SharedValues | None:
        """The sharer for ``resource``, or None when nothing of it is worth sharing."""
        fields = SHARED_FIELDS.get(resource)
        return cls(fields) if fields else None

    def share(self, obj: Obj) -> Obj:
        """Replace ``obj``'s shared fields (in place; ``obj`` is fresh from the transform) by the
        canonical equal value; return ``obj``."""
        for section, field in self.fields:
            part = obj.get(section)
            if not isinstance(part, dict):
                continue
            value = part.get(field)
            if not value or not isinstance(value, (dict, list)):
                continue
            key = json.dumps(value, separators=(",", ":"))
            canonical = self._table.get(key)
            if canonical is None:
                if len(self._table) >= MAX_ENTRIES:
                    self._table.clear()
                self._table[key] = value
            else:
                part[field] = canonical
        return obj

    def __len__(self) -> int:
        return len(self._table)
