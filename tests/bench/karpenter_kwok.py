"""Real Karpenter (its kwok provider) as the provisioning benchmark's third run, beside the floor and nodesmith.

The question it answers: is nodesmith's distance from the floor its own, or the control plane's? So
Karpenter gets what nodesmith gets -- a fresh control plane, the same Deployments, the same NodePool
(requirements translated to its kwok labels), the same batch window (0.5 s idle / 3 s max, as
`nodesmith.testing.e2e.DaemonProcess` passes) -- and the same timeline is read from the objects.

Karpenter's kwok provider offers the same 144 synthetic instance types at the same prices as nodesmith's
kwok catalogue (which was shaped after it) and creates each Node itself, annotated
``kwok.x-k8s.io/node=fake`` -- the annotation the local kwok controller manages, so kwok makes the
Nodes Ready and runs their pods exactly as it does nodesmith's.

The binary and CRDs come from `nodesmith.dev.karpenter` (built from the Go module proxy on first
use, cached outside the repository); this module only renders objects and runs the process. CI never
calls it: only ``bench_provisioning.py --with-karpenter`` (or ``--mode karpenter``) does.
"""

from __future__ import annotations

import copy
import pathlib
import re
from typing import Any, Final

import yaml

from nodesmith.dev import karpenter as karpenter_build
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.runtime import crds
from nodesmith.testing import e2e

GROUP: Final = "karpenter.sh"
KWOK_GROUP: Final = "karpenter.kwok.sh"
NODEPOOLS: Final = resources.Resource(GROUP, "v1", "nodepools", "NodePool", namespaced=False)
NODECLAIMS: Final = resources.Resource(GROUP, "v1", "nodeclaims", "NodeClaim", namespaced=False)
KWOK_NODE_CLASSES: Final = resources.Resource(
    KWOK_GROUP, "v1alpha1", "kwoknodeclasses", "KWOKNodeClass", namespaced=False
)
NODEPOOL_LABEL: Final = f"{GROUP}/nodepool"
VERSION: Final = karpenter_build.VERSION

#: nodesmith's kwok label prefix -> Karpenter's kwok provider's, for the instance-type requirements.
_LABEL_PREFIXES: Final = (("kwok.nodesmith.io/", f"{KWOK_GROUP}/"),)

#: Karpenter's metrics the report reads: the provisioner's solve time and its cloud provider's creates.
SOLVE_METRIC: Final = "karpenter_scheduler_scheduling_duration_seconds"
CREATE_METRIC: Final = "karpenter_cloudprovider_duration_seconds"


def nodepool(ours: dict[str, Any]) -> dict[str, Any]:
    """Karpenter's NodePool equivalent to nodesmith's ``ours`` (same name, labels, requirements, limits and
    disruption): only the API group, the node class and the kwok label prefix differ."""
    body = copy.deepcopy(ours)
    body["apiVersion"] = f"{GROUP}/v1"
    body["kind"] = "NodePool"
    template = body["spec"]["template"]["spec"]
    template["nodeClassRef"] = {
        "group": KWOK_GROUP,
        "kind": "KWOKNodeClass",
        "name": template["nodeClassRef"]["name"],
    }
    for requirement in template.get("requirements", ()):
        for old, new in _LABEL_PREFIXES:
            if requirement["key"].startswith(old):
                requirement["key"] = new + requirement["key"][len(old) :]
    return body


def node_class(name: str) -> dict[str, Any]:
    """A KWOKNodeClass with no registration delay; its CRD defaults its status to Ready."""
    return {"apiVersion": f"{KWOK_GROUP}/v1alpha1", "kind": "KWOKNodeClass", "metadata": {"name": name}}


def load_crds(paths: list[pathlib.Path]) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in ``paths`` (multi-document YAML)."""
    out: list[dict[str, Any]] = []
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                out.append(document)
    return out


async def prepare(kube: KubeClient, pool: str, ours: dict[str, Any]) -> None:
    """Install Karpenter's CRDs and create the node class and ``ours``'s Karpenter twin."""
    await crds.install(kube, load_crds(karpenter_build.crd_files()))
    await kube.create(KWOK_NODE_CLASSES, node_class(pool))
    await kube.create(NODEPOOLS, nodepool(ours))


def metric_sum(text: str, name: str, **match: str) -> float:
    """The sum of the series of ``name`` whose labels include ``match``, in a Prometheus exposition."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{([^}}]*)}})? ([0-9.eE+-]+)$", re.MULTILINE)
    total = 0.0
    for found in pattern.finditer(text):
        series = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1) or ""))
        if all(series.get(k) == v for k, v in match.items()):
            total += float(found.group(2))
    return total


def summary(text: str) -> dict[str, float]:
    """The figures the report prints for an autoscaler, from Karpenter's ``/metrics``."""
    return {
        "solve_seconds": metric_sum(text, SOLVE_METRIC + "_sum", controller="provisioner"),
        "batches": metric_sum(text, SOLVE_METRIC + "_count", controller="provisioner"),
        "create_seconds": metric_sum(text, CREATE_METRIC + "_sum", method="Create"),
    }


class KarpenterProcess(e2e.DaemonProcess):
    """Karpenter's kwok controller as a process on the bench's control plane, logging to ``log``: an
    `e2e.DaemonProcess` (start, readiness, metrics, peak RSS, stop) with Karpenter's binary and
    settings instead of nodesmith's."""

    name = "karpenter"

    def __init__(self, kubeconfig: pathlib.Path, log: pathlib.Path) -> None:
        super().__init__(kubeconfig, log)
        self.binary = karpenter_build.ensure()
        self.argv = [str(self.binary)]
        self.env = {
            "DISABLE_LEADER_ELECTION": "true",
            "METRICS_PORT": str(self.metrics),
            "HEALTH_PROBE_PORT": str(self.health),
            "BATCH_IDLE_DURATION": "500ms",
            "BATCH_MAX_DURATION": "3s",
            "LOG_LEVEL": "info",
        }

    async def wait_ready(self, timeout: float = 120) -> None:
        """As nodesmith's, with the 120 s this bench has always allowed Karpenter to become ready."""
        await super().wait_ready(timeout)
