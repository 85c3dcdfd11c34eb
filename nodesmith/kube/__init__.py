"""Thin async client layer over kr8s: CRUD, patches with preconditions, status, eviction, watch,
events and leases, all on plain dicts with typed errors.

The only package that imports kr8s (import-linter enforces it). Consumed by `nodesmith.state`
(informers), the reconcilers and the runtime. Modules: `client` (`KubeClient`), `resources`
(descriptors such as `resources.NODES`), `errors` (the typed error tree), `retry` (which call retries
on what), `events` (`EventRecorder`), `leases` (`LeaseClient`).
"""

from __future__ import annotations

from nodesmith.kube import errors, events, leases, resources, results, retry
from nodesmith.kube.client import KubeClient
from nodesmith.kube.events import EventRecorder
from nodesmith.kube.leases import Lease, LeaseClient
from nodesmith.kube.resources import Resource
from nodesmith.kube.results import ListResult, WatchEvent

__all__ = [
    "EventRecorder",
    "KubeClient",
    "Lease",
    "LeaseClient",
    "ListResult",
    "Resource",
    "WatchEvent",
    "errors",
    "events",
    "leases",
    "resources",
    "results",
    "retry",
]
