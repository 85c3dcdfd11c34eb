"""Bottlerocket user data: the user's TOML with nodesmith's ``settings.kubernetes`` keys laid over it.

As Karpenter's ``Bottlerocket.Script``: cluster name, API server, CA, labels, taints, max pods and the
kubelet settings are nodesmith's (they overwrite the user's), everything else the user wrote is kept.
Names and value shapes follow Bottlerocket's settings model (``settings.kubernetes.*``), and the tests
check every key written against a schema derived from it: taints are ``{key = ["value:Effect"]}`` (or
``[":Effect"]`` without a value), eviction signals and reserved resources are string maps, the grace
periods durations.
"""

from __future__ import annotations

import tomllib
from typing import Any, Final

from nodesmith_aws.bootstrap import toml
from nodesmith_aws.bootstrap.options import Bootstrap, UserDataError, taints

__all__ = ["KUBELET_NAMES", "parse_user", "settings", "user_data"]

KUBELET_NAMES: Final = {
    "kubeReserved": "kube-reserved",
    "systemReserved": "system-reserved",
    "evictionHard": "eviction-hard",
    "evictionSoft": "eviction-soft",
    "evictionSoftGracePeriod": "eviction-soft-grace-period",
    "evictionMaxPodGracePeriod": "eviction-max-pod-grace-period",
    "imageGCHighThresholdPercent": "image-gc-high-threshold-percent",
    "imageGCLowThresholdPercent": "image-gc-low-threshold-percent",
    "cpuCFSQuota": "cpu-cfs-quota-enforced",
}
"""EC2NodeClass ``kubelet`` key → Bottlerocket ``settings.kubernetes`` key. ``podsPerCore`` has no
Bottlerocket setting (Karpenter ignores it for this family too)."""


def parse_user(user: str | None) -> dict[str, Any]:
    """The user's TOML; raises `UserDataError` with the parser's message when it does not parse."""
    if not user:
        return {}
    try:
        return tomllib.loads(user)
    except tomllib.TOMLDecodeError as err:
        raise UserDataError(f"userData is not valid TOML: {err}") from None


def settings(boot: Bootstrap) -> dict[str, Any]:
    """nodesmith's ``settings.kubernetes`` table."""
    node_taints: dict[str, list[str]] = {}
    for taint in taints(boot):
        node_taints.setdefault(taint["key"], []).append(f"{taint.get('value', '')}:{taint['effect']}")
    kubernetes: dict[str, Any] = {
        "cluster-name": boot.cluster_name,
        "api-server": boot.cluster_endpoint,
        "cluster-certificate": boot.ca_bundle,
        "max-pods": boot.max_pods,
        "node-labels": dict(boot.labels),
        "node-taints": node_taints,
    }
    for key, value in boot.kubelet_settings().items():
        if key in KUBELET_NAMES:
            kubernetes[KUBELET_NAMES[key]] = value
    if boot.dns:
        kubernetes["cluster-dns-ip"] = boot.dns if len(boot.dns) > 1 else boot.dns[0]
    return kubernetes


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def user_data(boot: Bootstrap, user: str | None) -> str:
    document = parse_user(user)
    ours: dict[str, Any] = {"settings": {"kubernetes": settings(boot)}}
    # the user's labels are merged under nodesmith's; taints are replaced (as Karpenter does)
    kubernetes = document.get("settings", {}).get("kubernetes", {})
    if isinstance(kubernetes, dict):
        kubernetes.pop("node-taints", None)
    if boot.instance_store_policy == "RAID0":
        ours["settings"]["bootstrap-commands"] = {
            "000-mount-instance-storage": {
                "commands": [
                    ["apiclient", "ephemeral-storage", "init"],
                    [
                        "apiclient",
                        "ephemeral-storage",
                        "bind",
                        "--dirs",
                        "/var/lib/containerd",
                        "/var/lib/kubelet",
                        "/var/log/pods",
                    ],
                ],
                "essential": True,
                "mode": "always",
            }
        }
    return toml.dumps(_merge(document, ours))
