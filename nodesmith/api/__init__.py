"""nodesmith's API model: NodePool and NodeClaim (``nodesmith.io/v1``) as attrs values, the small types
they share, and the CRDs generated from them.

Fed by Kubernetes dicts (informers, manifests); consumed by every other nodesmith package and by provider
plugins. Inside nodesmith, import the modules (``from nodesmith.api import nodepool``); this front door
names them, plus the two resource classes, for everyone else.

* `labels` — group, label, annotation, taint and finalizer names
* `quantity`, `duration` — exact resource quantities (milli-units) and Go durations
* `requirements` — node requirements as set algebra
* `schema` — the schema DSL behind both ``from_dict`` validation and the CRDs
* `meta`, `conditions`, `budgets`, `nodeselector` — shared types: metadata, taints, NodeClass refs,
  conditions, budgets, ``requirements[]`` entries
* `nodepool`, `nodeclaim` — the resources; `crds` — CRD generation (``python -m nodesmith.api.crds DIR``)
"""

from __future__ import annotations

from nodesmith.api import (
    budgets,
    conditions,
    duration,
    labels,
    meta,
    nodeclaim,
    nodepool,
    nodeselector,
    quantity,
    requirements,
    schema,
)
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.api.nodepool import NodePool

__all__ = [
    "NodeClaim",
    "NodePool",
    "budgets",
    "conditions",
    "duration",
    "labels",
    "meta",
    "nodeclaim",
    "nodepool",
    "nodeselector",
    "quantity",
    "requirements",
    "schema",
]
