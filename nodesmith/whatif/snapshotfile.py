"""The simulation snapshot file: a cluster's objects and what the provider offered each NodePool, kept so
``nodesmith simulate`` and ``nodesmith explain`` can replay the daemon's decisions offline.

::

    apiVersion: nodesmith.io/v1
    kind: SimulationSnapshot
    takenAt: "2026-01-01T00:00:00Z"        # the simulation's "now" (consolidateAfter, budgets' schedules)
    objects: [...]                          # Nodes, NodeClaims, NodePools, Pods, DaemonSets, PDBs, PVCs,
                                            # PVs, StorageClasses, CSINodes, VolumeAttachments, NodeClasses
    instanceTypes: {<nodepool>: [...]}      # `InstanceType.to_dict` each, after the plugins' adjusters
    skippedNodePools: {<nodepool>: why}     # optional: pools the provider gave no instance types
    wellKnownLabels: [...]                  # the core's and the plugins' well-known labels when taken
                                            # (missing: the core's only)

Written by `nodesmith.whatif.live` (from a live cluster) or by hand; read here. `SnapshotFile.state` feeds
the objects one by one into a real `ClusterState` (``on_upsert``), exactly as the informers do, so a
replay sees the cluster as the daemon would: that is where the file's pods are parsed into
`nodesmith.state.views.PodView`s (a malformed one is left out with a note), and nothing after it reads
a pod dict but the scheduling engine. Pure: text and values in, values out.
"""

from __future__ import annotations

import datetime as dt
import json
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
import yaml

from nodesmith import errors
from nodesmith.api import labels, meta
from nodesmith.api import nodepool as api_nodepool
from nodesmith.cloudprovider.types import InstanceType
from nodesmith.kube import resources
from nodesmith.state import informer
from nodesmith.state.cluster import ClusterState

__all__ = ["API_VERSION", "KIND", "SnapshotFile", "dumps", "loads", "resource_of"]

API_VERSION: Final = f"{labels.GROUP}/v1"
KIND: Final = "SimulationSnapshot"

Obj: typing.TypeAlias = Mapping[str, Any]

_KNOWN: Final = {(r.group, r.kind): r for r in informer.DEFAULT_RESOURCES}
_FIRST: Final = (resources.NODEPOOLS, resources.NODECLAIMS, resources.NODES)
"""Fed before everything else, so pods meet the machines they are bound to."""


def resource_of(obj: Obj) -> resources.Resource:
    """The resource descriptor of a Kubernetes object dict, from its ``apiVersion`` and ``kind``; a kind
    nodesmith does not watch (a provider's NodeClass) gets a cluster-scoped descriptor of its own."""
    api_version = str(obj.get("apiVersion") or "")
    kind = str(obj.get("kind") or "")
    if not kind or not api_version:
        raise errors.ValidationError("objects[]", "every object needs apiVersion and kind")
    group, _, version = api_version.rpartition("/")
    known = _KNOWN.get((group, kind))
    if known is not None:
        return known
    namespaced = bool((obj.get("metadata") or {}).get("namespace"))
    if namespaced:
        return resources.Resource(group, version, kind.lower() + "s", kind, namespaced=True)
    return resources.node_class(group, kind, version=version)


@typing.final
@attrs.frozen(slots=True)
class SnapshotFile:
    """One snapshot: ``objects`` as the API returned them, ``instance_types`` per NodePool name."""

    taken_at: dt.datetime
    objects: tuple[Obj, ...]
    instance_types: Mapping[str, tuple[InstanceType, ...]] = attrs.field(factory=dict)
    skipped_nodepools: Mapping[str, str] = attrs.field(factory=dict)
    well_known_labels: frozenset[str] = labels.CORE_WELL_KNOWN_LABELS
    """Recorded when the snapshot is taken, so an offline replay validates and schedules with the labels
    the daemon's plugins declared, whichever plugins are installed where it is replayed."""

    # -- format ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "takenAt": meta.format_time(self.taken_at),
            "objects": [dict(o) for o in self.objects],
            "instanceTypes": {
                pool: [it.to_dict() for it in types] for pool, types in sorted(self.instance_types.items())
            },
        }
        if self.skipped_nodepools:
            out["skippedNodePools"] = dict(sorted(self.skipped_nodepools.items()))
        out["wellKnownLabels"] = sorted(self.well_known_labels)
        return out

    @classmethod
    def from_dict(cls, d: Any, *, now: dt.datetime | None = None) -> SnapshotFile:
        """Read a snapshot document; ``now`` stands in for a missing ``takenAt``. Raises
        `errors.ValidationError` naming the bad field."""
        if not isinstance(d, Mapping):
            raise errors.ValidationError("<root>", f"a snapshot must be an object, got {type(d).__name__}")
        if d.get("apiVersion") != API_VERSION or d.get("kind") != KIND:
            raise errors.ValidationError(
                "<root>",
                f"expected apiVersion {API_VERSION} and kind {KIND}, "
                f"got {d.get('apiVersion')!r} and {d.get('kind')!r}",
            )
        raw_time = d.get("takenAt")
        if raw_time is not None:
            taken_at = meta.parse_time(str(raw_time), "takenAt")
        elif now is not None:
            taken_at = now
        else:
            raise errors.ValidationError("takenAt", "missing")
        objects = d.get("objects") or []
        if not isinstance(objects, list) or not all(isinstance(o, Mapping) for o in objects):
            raise errors.ValidationError("objects", "must be a list of Kubernetes objects")
        for index, obj in enumerate(objects):
            _check_metadata(obj, f"objects[{index}]")
            resource_of(obj)
        raw_types = d.get("instanceTypes") or {}
        if not isinstance(raw_types, Mapping):
            raise errors.ValidationError("instanceTypes", "must map NodePool names to lists")
        instance_types: dict[str, tuple[InstanceType, ...]] = {}
        for pool, entries in raw_types.items():
            if not isinstance(entries, list):
                raise errors.ValidationError(f"instanceTypes.{pool}", "must be a list of instance types")
            instance_types[str(pool)] = tuple(
                InstanceType.from_dict(e, f"instanceTypes.{pool}[{i}]") for i, e in enumerate(entries)
            )
        skipped = d.get("skippedNodePools") or {}
        if not isinstance(skipped, Mapping):
            raise errors.ValidationError("skippedNodePools", "must map NodePool names to reasons")
        well_known = d.get("wellKnownLabels")
        if well_known is None:
            well_known = labels.CORE_WELL_KNOWN_LABELS
        elif not isinstance(well_known, list) or not all(isinstance(k, str) for k in well_known):
            raise errors.ValidationError("wellKnownLabels", "must be a list of label keys")
        return cls(
            taken_at,
            tuple(objects),
            instance_types,
            {str(k): str(v) for k, v in skipped.items()},
            labels.CORE_WELL_KNOWN_LABELS | frozenset(well_known),
        )

    # -- edits -----------------------------------------------------------------------------------------

    def nodepool_objects(self) -> dict[str, Obj]:
        """NodePool dicts by name."""
        return {str(o["metadata"]["name"]): o for o in self.objects if resource_of(o) == resources.NODEPOOLS}

    def with_nodepools(self, replaced: Sequence[Obj], deleted: Iterable[str] = ()) -> SnapshotFile:
        """A copy with NodePools replaced (or added) by name and others removed. A replacement without a
        ``status`` keeps the old object's status while its ``nodeClassRef`` is unchanged (whether the
        NodeClass is ready does not change because the NodePool did)."""
        old = self.nodepool_objects()
        by_name = {str(o["metadata"]["name"]): o for o in replaced}
        gone = set(deleted)
        objects: list[Obj] = []
        for obj in self.objects:
            if resource_of(obj) == resources.NODEPOOLS:
                name = str(obj["metadata"]["name"])
                if name in gone or name in by_name:
                    continue
            objects.append(obj)
        for name, obj in by_name.items():
            previous = old.get(name)
            if previous is not None and "status" not in obj and _class_ref(previous) == _class_ref(obj):
                obj = {**obj, "status": previous.get("status") or {}}
            objects.append({"apiVersion": api_nodepool.API_VERSION, "kind": api_nodepool.KIND, **obj})
        return attrs.evolve(self, objects=tuple(objects))

    # -- replay ----------------------------------------------------------------------------------------

    def state(self) -> tuple[ClusterState, list[str]]:
        """A `ClusterState` fed with every object (synced, its clock stopped at ``taken_at``), and a
        note for each object it refused as malformed."""
        state = ClusterState(clock=lambda: self.taken_at, well_known_labels=self.well_known_labels)
        ordered = sorted(
            self.objects,
            key=lambda o: _FIRST.index(resource_of(o)) if resource_of(o) in _FIRST else len(_FIRST),
        )
        seen: set[resources.Resource] = set()
        for obj in ordered:
            resource = resource_of(obj)
            seen.add(resource)
            state.on_upsert(resource, obj)
        for resource in {*informer.DEFAULT_RESOURCES, *seen}:
            state.on_synced(resource)
        notes = [
            f"{resource.kind} {name} is malformed and was left out"
            for resource in sorted(seen, key=lambda r: r.kind)
            for name in sorted(state.malformed(resource))
        ]
        return state, notes


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _check_metadata(obj: Obj, where: str) -> None:
    """What the API server guarantees of every object's metadata, which a hand-edited file may break:
    a string name (and namespace), string-to-string labels and annotations. Raises `errors.ValidationError`."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        raise errors.ValidationError(where, "needs metadata.name")
    for field in ("name", "namespace", "uid", "resourceVersion"):
        if metadata.get(field) is not None and not isinstance(metadata[field], str):
            raise errors.ValidationError(f"{where}.metadata.{field}", "must be a string")
    for field in ("labels", "annotations"):
        values = metadata.get(field)
        if values is None:
            continue
        if not isinstance(values, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise errors.ValidationError(f"{where}.metadata.{field}", "must map strings to strings")
    for field in ("spec", "status"):
        if obj.get(field) is not None and not isinstance(obj[field], Mapping):
            raise errors.ValidationError(f"{where}.{field}", "must be an object")


def _class_ref(obj: Obj) -> Any:
    return ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeClassRef")) or {}


def loads(text: str, *, source: str = "snapshot", now: dt.datetime | None = None) -> SnapshotFile:
    """Parse a snapshot file (YAML or JSON). Raises `errors.ValidationError` (``source`` names the file)."""
    try:
        # JSON is YAML, but json parses it ~50x faster than PyYAML; libyaml's loader is ~10x faster than
        # the pure-Python one on a snapshot of a few thousand pods.
        document = json.loads(text) if text.lstrip().startswith("{") else yaml.load(text, Loader=_LOADER)
    except (yaml.YAMLError, ValueError) as err:
        raise errors.ValidationError(source, f"not valid YAML or JSON: {err}") from err
    try:
        return SnapshotFile.from_dict(document, now=now)
    except errors.ValidationError as err:
        raise errors.ValidationError(f"{source}: {err.field}", err.message) from err


def dumps(snapshot: SnapshotFile, *, as_json: bool = False) -> str:
    """The snapshot file's text: YAML, or JSON with ``as_json``."""
    document = snapshot.to_dict()
    if as_json:
        return json.dumps(document, indent=1, sort_keys=False) + "\n"
    return str(yaml.dump(document, Dumper=_DUMPER, sort_keys=False))
