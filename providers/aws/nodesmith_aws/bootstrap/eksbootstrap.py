"""AL2 user data: the user's parts, then a script calling the AMI's ``/etc/eks/bootstrap.sh``.

As Karpenter's ``EKSBootstrap``: the user's parts run first (cloud-init runs parts in order), then
nodesmith's script. Kubelet settings travel as ``--kubelet-extra-args`` flags in the kubelet's own flag
syntax (``--eviction-hard=memory.available<100Mi``), so reserved resources and eviction thresholds the
simulation assumed are the ones the node enforces.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Final

from nodesmith_aws.bootstrap import mime
from nodesmith_aws.bootstrap.options import Bootstrap, taints

__all__ = ["kubelet_flags", "user_data"]

_MAPS: Final = (
    ("kubeReserved", "--kube-reserved", "="),
    ("systemReserved", "--system-reserved", "="),
    ("evictionHard", "--eviction-hard", "<"),
    ("evictionSoft", "--eviction-soft", "<"),
    ("evictionSoftGracePeriod", "--eviction-soft-grace-period", "="),
)
_SCALARS: Final = (
    ("evictionMaxPodGracePeriod", "--eviction-max-pod-grace-period"),
    ("imageGCHighThresholdPercent", "--image-gc-high-threshold"),
    ("imageGCLowThresholdPercent", "--image-gc-low-threshold"),
    ("podsPerCore", "--pods-per-core"),
)


def _pairs(values: Mapping[str, str], sep: str) -> str:
    return ",".join(f"{k}{sep}{v}" for k, v in sorted(values.items()))


def kubelet_flags(boot: Bootstrap) -> list[str]:
    settings = boot.kubelet_settings()
    flags = [f"--node-labels={_pairs(boot.labels, '=')}"] if boot.labels else []
    flags.append(
        "--register-with-taints="
        + ",".join(
            f"{t['key']}={t['value']}:{t['effect']}" if t.get("value") else f"{t['key']}:{t['effect']}"
            for t in taints(boot)
        )
    )
    flags.append(f"--max-pods={boot.max_pods}")
    for key, flag, sep in _MAPS:
        if settings.get(key):
            flags.append(f"{flag}={_pairs(settings[key], sep)}")
    for key, flag in _SCALARS:
        if key in settings:
            flags.append(f"{flag}={settings[key]}")
    if "cpuCFSQuota" in settings:
        flags.append(f"--cpu-cfs-quota={str(bool(settings['cpuCFSQuota'])).lower()}")
    return flags


def user_data(boot: Bootstrap, user: str | None) -> str:
    args = [
        "/etc/eks/bootstrap.sh",
        boot.cluster_name,
        "--apiserver-endpoint",
        boot.cluster_endpoint,
        "--b64-cluster-ca",
        boot.ca_bundle,
        "--use-max-pods",
        "false",
        "--kubelet-extra-args",
        " ".join(kubelet_flags(boot)),
    ]
    if ":" in boot.cluster_cidr:
        args += ["--ip-family", "ipv6", "--service-ipv6-cidr", boot.cluster_cidr]
    if boot.dns:
        args += ["--dns-cluster-ip", boot.dns[0]]
    if boot.instance_store_policy == "RAID0":
        args += ["--local-disks", "raid0"]
    script = (
        "#!/bin/bash -xe\nexec > >(tee /var/log/user-data.log|logger -t user-data -s 2>/dev/console) 2>&1\n"
        + " ".join(shlex.quote(a) for a in args)
        + "\n"
    )
    return mime.archive([*mime.user_parts(user), mime.Part(mime.SHELL, script)])
