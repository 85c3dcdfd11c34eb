"""The API objects the cluster state reads, for unit tests and benchmarks: NodePool manifests, a managed
Node with its NodeClaim (conditions, labels, providerID, allocatable), controller-owned pods bound or
pending, and PDBs. The scheduling engine's inputs (pod dicts, instance types, templates) are in
`nodesmith.testing.factories`.

The test-local factory modules (``tests/unit/{disruption,state,whatif}``) and the consolidation benchmark
wrap these with their own catalogues and defaults, so a change in what the state reads is one edit here.
Deterministic: every name, uid and timestamp comes from the arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nodesmith.api import labels

__all__ = [
    "STAMP",
    "app_pod",
    "claim_condition",
    "machine",
    "machine_labels",
    "nodeclass_ref",
    "nodepool_disruption",
    "nodepool_manifest",
    "pdb_manifest",
]

STAMP = "2025-01-01T00:00:00Z"
"""The default creation/transition timestamp."""


def nodeclass_ref(name: str = "default") -> dict[str, str]:
    """A KWOK ``nodeClassRef``."""
    return {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": name}


def nodepool_disruption(
    *,
    policy: str | None = "WhenEmptyOrUnderutilized",
    consolidate_after: str = "0s",
    budgets: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A NodePool's ``spec.disruption`` (``policy=None`` leaves ``consolidationPolicy`` out)."""
    out: dict[str, Any] = {} if policy is None else {"consolidationPolicy": policy}
    out["consolidateAfter"] = consolidate_after
    if budgets is not None:
        out["budgets"] = list(budgets)
    return out


def nodepool_manifest(
    name: str = "default",
    *,
    uid: str | None = None,
    resource_version: str | None = None,
    annotations: Mapping[str, str] | None = None,
    node_class: str = "default",
    requirements: Sequence[Mapping[str, Any]] = (),
    taints: Sequence[Mapping[str, Any]] = (),
    template_labels: Mapping[str, str] | None = None,
    disruption: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A NodePool as the API returns it; ``uid`` defaults to ``uid-<name>``. Optional parts
    (``resourceVersion``, ``annotations``, template labels and taints, ``disruption``) are left out
    when not given."""
    metadata: dict[str, Any] = {"name": name, "uid": uid or f"uid-{name}"}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {"nodeClassRef": nodeclass_ref(node_class), "requirements": list(requirements)}
    if taints:
        spec["taints"] = list(taints)
    template: dict[str, Any] = {"spec": spec}
    if template_labels:
        template["metadata"] = {"labels": dict(template_labels)}
    pool_spec: dict[str, Any] = {"template": template}
    if disruption is not None:
        pool_spec["disruption"] = dict(disruption)
    return {"apiVersion": "nodesmith.io/v1", "kind": "NodePool", "metadata": metadata, "spec": pool_spec}


def claim_condition(type_: str, *, reason: str | None = None, stamp: str = STAMP) -> dict[str, Any]:
    """A ``True`` NodeClaim status condition; ``reason`` defaults to the type."""
    return {
        "type": type_,
        "status": "True",
        "reason": reason or type_,
        "message": "",
        "lastTransitionTime": stamp,
    }


def machine_labels(
    name: str,
    *,
    instance_type: str,
    zone: str,
    nodepool: str = "default",
    capacity_type: str = "on-demand",
    arch: str = "amd64",
    initialized: bool = True,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The labels of a registered node the NodePool ``nodepool`` launched (``extra`` added last)."""
    out = {
        labels.LABEL_HOSTNAME: name,
        labels.LABEL_NODEPOOL: nodepool,
        labels.LABEL_INSTANCE_TYPE: instance_type,
        labels.LABEL_ZONE: zone,
        labels.LABEL_CAPACITY_TYPE: capacity_type,
        labels.LABEL_ARCH: arch,
        labels.LABEL_OS: "linux",
        labels.LABEL_REGISTERED: "true",
    }
    if initialized:
        out[labels.LABEL_INITIALIZED] = "true"
    out.update(extra or {})
    return out


_NODE_ONLY_LABELS = (labels.LABEL_HOSTNAME, labels.LABEL_REGISTERED, labels.LABEL_INITIALIZED)


def machine(
    name: str,
    *,
    node_labels: Mapping[str, str],
    allocatable: Mapping[str, str],
    provider_id: str | None = None,
    ready: bool = True,
    consolidatable: bool = True,
    drifted: str | None = None,
    node_annotations: Mapping[str, str] | None = None,
    claim_annotations: Mapping[str, str] | None = None,
    claim_uid: str | None = None,
    created: str | None = STAMP,
    node_class: str = "default",
    termination_grace_period: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A managed machine as ``(Node, NodeClaim)``: joined by ``provider_id`` (default ``test://<name>``),
    the claim ``claim-<name>`` (uid ``claim_uid``, default ``uid-claim-<name>``) Launched, Registered,
    Initialized and Ready, then ``Consolidatable`` and ``Drifted`` (reason ``drifted``) when asked; it
    carries the node's labels but hostname / registered / initialized. Node and claim share one
    ``allocatable`` (= capacity) dict. Annotations and the claim's ``created`` are left out when ``None``."""
    provider_id = provider_id or f"test://{name}"
    node_labels = dict(node_labels)
    allocatable = dict(allocatable)
    node_meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "labels": node_labels}
    if node_annotations is not None:
        node_meta["annotations"] = dict(node_annotations)
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": node_meta,
        "spec": {"providerID": provider_id},
        "status": {
            "allocatable": allocatable,
            "capacity": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }
    conditions = [claim_condition(t) for t in ("Launched", "Registered", "Initialized", "Ready")]
    if consolidatable:
        conditions.append(claim_condition("Consolidatable"))
    if drifted:
        conditions.append(claim_condition("Drifted", reason=drifted))
    claim_meta: dict[str, Any] = {
        "name": f"claim-{name}",
        "uid": claim_uid or f"uid-claim-{name}",
        "labels": {k: v for k, v in node_labels.items() if k not in _NODE_ONLY_LABELS},
    }
    if claim_annotations is not None:
        claim_meta["annotations"] = dict(claim_annotations)
    if created is not None:
        claim_meta["creationTimestamp"] = created
    spec: dict[str, Any] = {"nodeClassRef": nodeclass_ref(node_class), "requirements": []}
    if termination_grace_period:
        spec["terminationGracePeriod"] = termination_grace_period
    claim = {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodeClaim",
        "metadata": claim_meta,
        "spec": spec,
        "status": {
            "providerID": provider_id,
            "nodeName": name,
            "capacity": allocatable,
            "allocatable": allocatable,
            "conditions": conditions,
        },
    }
    return node, claim


def app_pod(
    name: str,
    *,
    node_name: str | None = None,
    pending: bool = False,
    cpu: str = "1",
    memory: str = "100Mi",
    app: str = "app",
    namespace: str = "default",
    uid: str | None = None,
    annotations: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    owner_kind: str = "ReplicaSet",
    owner_name: str | None = None,
    created: str = STAMP,
    started: str = STAMP,
) -> dict[str, Any]:
    """A pod of ``app`` (label ``app``) owned by a controller (``owner_name`` defaults to ``app``) with one
    container ``c``: Running and Ready since ``started``, or Pending and unschedulable if ``pending``;
    bound when ``node_name`` is given. ``uid`` defaults to ``uid-<name>``; no ``annotations`` key when
    ``None``."""
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if node_name is not None:
        spec["nodeName"] = node_name
    if pending:
        status: dict[str, Any] = {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        }
    else:
        status = {
            "phase": "Running",
            "startTime": started,
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{name}",
        "labels": {"app": app},
    }
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    metadata["creationTimestamp"] = created
    metadata["ownerReferences"] = [{"kind": owner_kind, "name": owner_name or app, "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def pdb_manifest(name: str, *, app: str, allowed: int, namespace: str = "default") -> dict[str, Any]:
    """A PodDisruptionBudget over ``app=<app>`` whose status allows ``allowed`` disruptions."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": app}}},
        "status": {"disruptionsAllowed": allowed},
    }
