"""AL2023 user data: nodesmith's ``NodeConfig`` for nodeadm, then the user's own parts.

As Karpenter's ``Nodeadm.Script``: nodesmith's NodeConfig is the first MIME part and the user's parts
follow, so nodeadm (which merges NodeConfigs in order, later ones winning) lets a user's NodeConfig
override what nodesmith wrote. The NodeConfig carries everything nodeadm requires — cluster name, API
endpoint, CA and service CIDR (``nodeadm config check`` refuses a config without any of them) — and the
kubelet settings allocatable was computed with, so the node matches the simulation.
"""

from __future__ import annotations

from typing import Any

import yaml

from nodesmith_aws.bootstrap import mime
from nodesmith_aws.bootstrap.options import Bootstrap, taints

__all__ = ["node_config", "user_data"]


def node_config(boot: Bootstrap) -> dict[str, Any]:
    kubelet: dict[str, Any] = {"maxPods": boot.max_pods, **boot.kubelet_settings()}
    if boot.dns:
        kubelet["clusterDNS"] = boot.dns
    kubelet["registerWithTaints"] = taints(boot)
    spec: dict[str, Any] = {
        "cluster": {
            "name": boot.cluster_name,
            "apiServerEndpoint": boot.cluster_endpoint,
            "certificateAuthority": boot.ca_bundle,
            "cidr": boot.cluster_cidr,
        },
        "kubelet": {"config": kubelet},
    }
    if boot.labels:
        labels = ",".join(f"{k}={v}" for k, v in sorted(boot.labels.items()))
        spec["kubelet"]["flags"] = [f"--node-labels={labels}"]
    if boot.instance_store_policy == "RAID0":
        spec["instance"] = {"localStorage": {"strategy": "RAID0"}}
    return {"apiVersion": "node.eks.aws/v1alpha1", "kind": "NodeConfig", "spec": spec}


def user_data(boot: Bootstrap, user: str | None) -> str:
    ours = "# nodesmith generated NodeConfig\n" + yaml.safe_dump(
        node_config(boot), sort_keys=False, width=1_000_000
    )
    return mime.archive([mime.Part(mime.NODE_CONFIG, ours), *mime.user_parts(user)])
