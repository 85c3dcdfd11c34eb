"""What differs per AMI family: alias → SSM parameter names, default block devices, and user data.

Pure. Fed by the EC2NodeClass (family, alias, userData, kubelet), the cluster settings, and the labels and
taints of the NodeClaim being launched; consumed by `nodesmith_aws.resolver` (alias resolution) and
`nodesmith_aws.launchtemplates` (user data and block devices of each launch template).

User data is *merged*, as Karpenter merges it: for AL2 and AL2023 the user's MIME parts (or their script
or NodeConfig, wrapped as one part) come first and nodesmith's bootstrap part last; for Bottlerocket the
user's TOML is read and nodesmith's ``settings.kubernetes`` keys are laid over it; Custom is passed
through untouched. Every generated bootstrap registers the node with the ``nodesmith.io/unregistered``
taint (NoExecute), removed by the core at registration, and the kubelet settings used to compute
allocatable (max pods, reserved resources, eviction thresholds), so the node matches the simulation.
"""

from __future__ import annotations

import email
import email.mime.multipart
import email.policy
import json
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from nodesmith.api import labels as core_labels

__all__ = ["Bootstrap", "alias_parameters", "default_block_device_mappings", "user_data"]

ARCHES: Final = {"x86_64": "amd64", "arm64": "arm64"}
MIME_BOUNDARY: Final = "//"


def alias_parameters(alias: str, kubernetes_version: str) -> dict[str, str]:
    """SSM parameter name → the architecture (``amd64``/``arm64``) its AMI serves, for an alias such as
    ``al2023@latest``, ``al2@v20240807`` or ``bottlerocket@1.20.3``."""
    family, _, version = alias.partition("@")
    k8s = kubernetes_version
    out: dict[str, str] = {}
    for arch, label in ARCHES.items():
        if family == "al2023":
            leaf = (
                "recommended"
                if version == "latest"
                else f"amazon-eks-node-al2023-{arch}-standard-{k8s}-{version}"
            )
            out[f"/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/{arch}/standard/{leaf}/image_id"] = (
                label
            )
        elif family == "al2":
            variant = "amazon-linux-2" if arch == "x86_64" else "amazon-linux-2-arm64"
            leaf = (
                "recommended"
                if version == "latest"
                else f"amazon-eks-{'arm64-' if arch == 'arm64' else ''}node-{k8s}-{version}"
            )
            out[f"/aws/service/eks/optimized-ami/{k8s}/{variant}/{leaf}/image_id"] = label
        elif family == "bottlerocket":
            leaf = "latest" if version == "latest" else version.removeprefix("v")
            out[f"/aws/service/bottlerocket/aws-k8s-{k8s}/{arch}/{leaf}/image_id"] = label
        else:
            raise ValueError(f"unknown AMI alias family {family!r}")
    return out


def default_block_device_mappings(family: str) -> list[dict[str, Any]]:
    """The family's root volume(s) when the NodeClass sets none: 20Gi gp3 encrypted (Bottlerocket: a
    4Gi OS volume and a 20Gi data volume)."""
    if family == "Bottlerocket":
        return [
            {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "4Gi", "volumeType": "gp3", "encrypted": True}},
            {
                "deviceName": "/dev/xvdb",
                "ebs": {"volumeSize": "20Gi", "volumeType": "gp3", "encrypted": True},
            },
        ]
    if family == "Custom":
        return []
    return [
        {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "20Gi", "volumeType": "gp3", "encrypted": True}}
    ]


@attrs.frozen(slots=True)
class Bootstrap:
    """Everything a node's bootstrap needs; part of the launch template's identity."""

    cluster_name: str
    cluster_endpoint: str
    ca_bundle: str
    labels: Mapping[str, str]
    taints: Sequence[Mapping[str, str]]
    """``{key, value?, effect}``; the unregistered taint is added by :func:`user_data`."""
    max_pods: int
    kubelet: Mapping[str, Any]
    cluster_dns: Sequence[str] = ()


def _taints(boot: Bootstrap) -> list[dict[str, str]]:
    unregistered = {"key": core_labels.TAINT_UNREGISTERED, "effect": "NoExecute"}
    out = [dict(t) for t in boot.taints if t.get("key") != unregistered["key"]]
    return [*out, unregistered]


def _kubelet_config(boot: Bootstrap) -> dict[str, Any]:
    config: dict[str, Any] = {"maxPods": boot.max_pods}
    for key in ("kubeReserved", "systemReserved", "evictionHard", "evictionSoft"):
        if boot.kubelet.get(key):
            config[key] = dict(boot.kubelet[key])
    dns = list(boot.kubelet.get("clusterDNS") or boot.cluster_dns)
    if dns:
        config["clusterDNS"] = dns
    config["registerWithTaints"] = _taints(boot)
    return config


def _label_flag(boot: Bootstrap) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(boot.labels.items()))


def _taint_flag(boot: Bootstrap) -> str:
    return ",".join(
        f"{t['key']}={t.get('value', '')}:{t['effect']}" if t.get("value") else f"{t['key']}:{t['effect']}"
        for t in _taints(boot)
    )


def _mime(user: str | None, ours: str, content_type: str) -> str:
    """The user's parts first, then ours, as one multipart/mixed document."""
    outer = email.mime.multipart.MIMEMultipart("mixed", boundary=MIME_BOUNDARY)
    if user:
        parsed = email.message_from_string(user, policy=email.policy.compat32)
        if parsed.is_multipart():
            for part in parsed.get_payload():
                outer.attach(part)
        else:
            kind = (
                "application/node.eks.aws"
                if "kind: NodeConfig" in user
                else 'text/x-shellscript; charset="us-ascii"'
            )
            outer.attach(_part(user, kind))
    outer.attach(_part(ours, content_type))
    return outer.as_string()


def _part(body: str, content_type: str) -> email.message.Message:
    part = email.message.Message()
    part["Content-Type"] = content_type
    part.set_payload(body)
    return part


def _al2023(boot: Bootstrap, user: str | None) -> str:
    node_config = {
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {
            "cluster": {
                "name": boot.cluster_name,
                "apiServerEndpoint": boot.cluster_endpoint,
                "certificateAuthority": boot.ca_bundle,
            },
            "kubelet": {"config": _kubelet_config(boot), "flags": [f"--node-labels={_label_flag(boot)}"]},
        },
    }
    # JSON is YAML: nodeadm reads it, and it needs no YAML writer.
    return _mime(user, json.dumps(node_config, indent=2, sort_keys=True), "application/node.eks.aws")


def _al2(boot: Bootstrap, user: str | None) -> str:
    extra = [
        f"--node-labels={_label_flag(boot)}",
        f"--register-with-taints={_taint_flag(boot)}",
        f"--max-pods={boot.max_pods}",
    ]
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
        " ".join(extra),
    ]
    dns = list(boot.kubelet.get("clusterDNS") or boot.cluster_dns)
    if dns:
        args += ["--dns-cluster-ip", dns[0]]
    script = (
        "#!/bin/bash -xe\nexec > >(tee /var/log/user-data.log|logger -t user-data -s 2>/dev/console) 2>&1\n"
    )
    script += " ".join(shlex.quote(a) for a in args) + "\n"
    return _mime(user, script, 'text/x-shellscript; charset="us-ascii"')


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml(table: Mapping[str, Any], prefix: str = "") -> str:
    """A minimal TOML writer for Bottlerocket settings: nested tables of scalars and lists."""
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    lines = [f"[{prefix}]"] if prefix and scalars else []
    lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in scalars]
    out = "\n".join(lines) + ("\n\n" if lines else "")
    for key, sub in tables:
        out += _toml(
            sub,
            f"{prefix}.{json.dumps(key) if not key.replace('-', '').isalnum() else key}" if prefix else key,
        )
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _bottlerocket(boot: Bootstrap, user: str | None) -> str:
    settings: dict[str, Any] = tomllib.loads(user) if user else {}
    kubernetes: dict[str, Any] = {
        "cluster-name": boot.cluster_name,
        "api-server": boot.cluster_endpoint,
        "cluster-certificate": boot.ca_bundle,
        "max-pods": boot.max_pods,
        "node-labels": dict(boot.labels),
        "node-taints": {t["key"]: [f"{t.get('value', '')}:{t['effect']}".lstrip(":")] for t in _taints(boot)},
    }
    for key, name in (
        ("kubeReserved", "kube-reserved"),
        ("systemReserved", "system-reserved"),
        ("evictionHard", "eviction-hard"),
    ):
        if boot.kubelet.get(key):
            kubernetes[name] = dict(boot.kubelet[key])
    dns = list(boot.kubelet.get("clusterDNS") or boot.cluster_dns)
    if dns:
        kubernetes["cluster-dns-ip"] = dns if len(dns) > 1 else dns[0]
    merged = _merge(settings, {"settings": {"kubernetes": kubernetes}})
    return _toml(merged)


def user_data(family: str, boot: Bootstrap, user: str | None) -> str:
    """The merged user data (plain text; the launch template base64-encodes it)."""
    if family == "AL2023":
        return _al2023(boot, user)
    if family == "AL2":
        return _al2(boot, user)
    if family == "Bottlerocket":
        return _bottlerocket(boot, user)
    return user or ""
