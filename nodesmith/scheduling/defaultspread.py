"""Cluster-default topology spread: the constraints kube-scheduler gives a pod that declares none, so the
simulation spreads such pods as the scheduler will place them.

kube-scheduler's PodTopologySpread plugin takes ``defaultConstraints`` and ``defaultingType`` from its
configuration: ``System`` (the default) means its built-in pair (hostname, max skew 3; zone, max skew 5;
both ``ScheduleAnyway``) and no listed constraints; ``List`` means exactly the listed ones (none is
allowed: no defaults). The constraints carry no selector: for each pod the scheduler deduces one from the
Services selecting it and its controller (ReplicationController, ReplicaSet or StatefulSet), and a pod
for which nothing is deduced gets no default. Karpenter does the same with its ``--scheduler-config``
(``pkg/controllers/provisioning/scheduling/defaultconstraints.go``).

Fed by the daemon's ``--scheduler-config`` file (`from_scheduler_config`) and, per pod, the Services and
controller selectors the cluster state holds; consumed by `nodesmith.state.simulation`, which applies
`apply` to the pending pods before a run. Pure: values in, values out.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from nodesmith.api import labels

__all__ = [
    "OWNER_KINDS",
    "SYSTEM_DEFAULTS",
    "DefaultSpread",
    "SchedulerConfigError",
    "apply",
    "default_selector",
    "from_scheduler_config",
    "owner_of",
]

Obj: typing.TypeAlias = Mapping[str, Any]

SYSTEM_DEFAULTS: Final[tuple[Obj, ...]] = (
    {"topologyKey": labels.LABEL_HOSTNAME, "maxSkew": 3, "whenUnsatisfiable": "ScheduleAnyway"},
    {"topologyKey": labels.LABEL_ZONE, "maxSkew": 5, "whenUnsatisfiable": "ScheduleAnyway"},
)
"""kube-scheduler's ``systemDefaultConstraints`` (``defaultingType: System``)."""

OWNER_KINDS: Final = frozenset(
    {("v1", "ReplicationController"), ("apps/v1", "ReplicaSet"), ("apps/v1", "StatefulSet")}
)
"""The controllers whose selectors kube-scheduler adds to the deduced selector (``helper.DefaultSelector``)."""

_PLUGIN: Final = "PodTopologySpread"
_DEFAULT_SCHEDULER: Final = "default-scheduler"
_WHEN: Final = ("DoNotSchedule", "ScheduleAnyway")


class SchedulerConfigError(ValueError):
    """Raised when a scheduler configuration is one kube-scheduler itself would refuse; says which field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@typing.final
@attrs.frozen(slots=True)
class DefaultSpread:
    """The default constraints (``topologySpreadConstraints`` entries without a selector); empty: none."""

    constraints: tuple[Obj, ...] = ()


def from_scheduler_config(config: Obj, source: str = "scheduler-config") -> DefaultSpread:
    """The defaults a ``KubeSchedulerConfiguration`` gives the default scheduler's profile (the profile
    named ``default-scheduler``, else the first). Raises `SchedulerConfigError` on what kube-scheduler
    itself would refuse (a selector on a default constraint, constraints listed with ``System``)."""
    profiles = config.get("profiles") or [{}]
    if not isinstance(profiles, Sequence) or not profiles:
        raise SchedulerConfigError(f"{source}.profiles", "must be a non-empty list")
    profile = next(
        (p for p in profiles if (p.get("schedulerName") or _DEFAULT_SCHEDULER) == _DEFAULT_SCHEDULER),
        profiles[0],
    )
    if _disabled(profile):
        return DefaultSpread()
    args: Obj = {}
    for entry in profile.get("pluginConfig") or ():
        if entry.get("name") == _PLUGIN:
            args = entry.get("args") or {}
    path = f"{source}.pluginConfig[{_PLUGIN}].args"
    listed = args.get("defaultConstraints") or []
    defaulting = args.get("defaultingType") or "System"
    if defaulting == "System":
        if listed:
            raise SchedulerConfigError(
                f"{path}.defaultConstraints", "must be empty when defaultingType is System"
            )
        return DefaultSpread(SYSTEM_DEFAULTS)
    if defaulting != "List":
        raise SchedulerConfigError(f"{path}.defaultingType", f"must be System or List, got {defaulting!r}")
    return DefaultSpread(tuple(_checked(c, f"{path}.defaultConstraints[{i}]") for i, c in enumerate(listed)))


def _disabled(profile: Obj) -> bool:
    plugins = profile.get("plugins") or {}
    for point in ("multiPoint", "preFilter", "filter"):
        for entry in (plugins.get(point) or {}).get("disabled") or ():
            if entry.get("name") in (_PLUGIN, "*"):
                return True
    return False


def _checked(constraint: Obj, path: str) -> Obj:
    if not isinstance(constraint, Mapping):
        raise SchedulerConfigError(path, "must be an object")
    if constraint.get("labelSelector") is not None:
        raise SchedulerConfigError(f"{path}.labelSelector", "must not be set on a default constraint")
    if not constraint.get("topologyKey"):
        raise SchedulerConfigError(f"{path}.topologyKey", "is required")
    skew = constraint.get("maxSkew")
    if not isinstance(skew, int) or isinstance(skew, bool) or skew <= 0:
        raise SchedulerConfigError(f"{path}.maxSkew", f"must be a positive integer, got {skew!r}")
    if constraint.get("whenUnsatisfiable") not in _WHEN:
        raise SchedulerConfigError(f"{path}.whenUnsatisfiable", f"must be one of {', '.join(_WHEN)}")
    return dict(constraint)


def owner_of(pod: Obj) -> tuple[str, str, str] | None:
    """``(apiVersion, kind, name)`` of the pod's controller when it is one kube-scheduler reads a selector
    from, else ``None``."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            key = (str(ref.get("apiVersion")), str(ref.get("kind")))
            return (*key, str(ref.get("name"))) if key in OWNER_KINDS else None
    return None


def default_selector(
    pod: Obj, service_selectors: Iterable[Mapping[str, str] | None], owner_selector: Obj | None
) -> Obj | None:
    """The label selector kube-scheduler deduces for ``pod``: the selectors of the Services (in its
    namespace) that select it, merged, as ``matchLabels``; its controller's selector added as
    ``matchExpressions`` (ANDed, as the scheduler adds requirements). ``None`` when both are empty -- the
    scheduler then applies no default, since an empty selector would count every pod."""
    pod_labels = (pod.get("metadata") or {}).get("labels") or {}
    match_labels: dict[str, str] = {}
    for selector in service_selectors:
        if selector is None:  # a Service without a selector selects nothing
            continue
        if all(pod_labels.get(k) == v for k, v in selector.items()):
            match_labels.update(selector)
    expressions: list[Obj] = []
    if owner_selector is not None:
        for key, value in sorted((owner_selector.get("matchLabels") or {}).items()):
            expressions.append({"key": key, "operator": "In", "values": [value]})
        expressions.extend(owner_selector.get("matchExpressions") or ())
    if not match_labels and not expressions:
        return None
    out: dict[str, Any] = {}
    if match_labels:
        out["matchLabels"] = match_labels
    if expressions:
        out["matchExpressions"] = expressions
    return out


def apply(
    pods: Sequence[Obj],
    spread: DefaultSpread,
    services: Mapping[str, Sequence[Mapping[str, str] | None]],
    owners: Mapping[tuple[str, str, str, str], Obj],
) -> list[Obj]:
    """``pods`` with the defaults added to each that declares no ``topologySpreadConstraints`` and has a
    deducible selector; the others unchanged (the same objects). ``services`` maps a namespace to its
    Services' selectors; ``owners`` maps ``(namespace, apiVersion, kind, name)`` to a controller's selector
    (a ReplicationController's plain map already as ``{"matchLabels": ...}``)."""
    if not spread.constraints:
        return list(pods)
    out: list[Obj] = []
    for pod in pods:
        spec = pod.get("spec") or {}
        if spec.get("topologySpreadConstraints"):
            out.append(pod)
            continue
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        owner = owner_of(pod)
        owner_selector = None if owner is None else owners.get((namespace, *owner))
        selector = default_selector(pod, services.get(namespace, ()), owner_selector)
        if selector is None:
            out.append(pod)
            continue
        constraints = [{**c, "labelSelector": selector} for c in spread.constraints]
        out.append({**pod, "spec": {**spec, "topologySpreadConstraints": constraints}})
    return out
