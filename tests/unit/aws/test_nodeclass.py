"""EC2NodeClass validation, defaults, CRD and hash; user data per AMI family."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from nodesmith import errors
from nodesmith.api import crds as core_crds
from nodesmith.cloudprovider.manager import Plugins
from nodesmith_aws import amifamily, crds, plugin
from nodesmith_aws.nodeclass import EC2NodeClass
from tests.unit.aws.conftest import nodeclass_manifest

DEPLOY = pathlib.Path(__file__).parents[3] / "deploy" / "crds"


def test_checked_in_crd_equals_the_generator_output() -> None:
    checked_in = (DEPLOY / crds.EC2NODECLASS.filename).read_text()
    assert checked_in == core_crds.to_yaml(crds.crd()), (
        "regenerate with: uv run python -m nodesmith_aws.crds deploy/crds"
    )


def test_plugin_names_builds_and_serves_the_crd() -> None:
    plugins = Plugins(load_entry_points=False, plugins=[plugin])
    assert plugins.provider_names() == ["aws"]
    assert [c["metadata"]["name"] for c in plugins.pm.hook.nodesmith_crds()[0]] == [
        "ec2nodeclasses.aws.nodesmith.io"
    ]


def test_defaults_require_imdsv2() -> None:
    nc = EC2NodeClass.from_dict(nodeclass_manifest())
    assert nc.spec["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpProtocolIPv6": "disabled",
        "httpPutResponseHopLimit": 1,
        "httpTokens": "required",
    }
    assert nc.ami_family == "AL2023"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"instanceProfile": "x"}, "spec", "exactly one of"),
        (
            {"amiSelectorTerms": [{"alias": "al2023@latest"}, {"id": "ami-123"}]},
            "spec.amiSelectorTerms",
            "alias",
        ),
        (
            {"amiSelectorTerms": [{"alias": "al2023@latest", "owner": "self"}]},
            "spec.amiSelectorTerms[0]",
            "alias",
        ),
        ({"subnetSelectorTerms": []}, "spec.subnetSelectorTerms", "at least 1"),
        (
            {"subnetSelectorTerms": [{"id": "subnet-1", "tags": {"a": "b"}}]},
            "spec.subnetSelectorTerms[0]",
            "id",
        ),
        ({"tags": {"kubernetes.io/cluster/x": "owned"}}, "spec.tags", "restricted"),
        ({"tags": {"nodesmith.io/nodepool": "x"}}, "spec.tags", "restricted"),
        ({"amiFamily": "Windows2022"}, "spec.amiFamily", "one of"),
        (
            {
                "blockDeviceMappings": [
                    {"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {"volumeSize": "1Gi"}}
                ]
                * 2
            },
            "spec.blockDeviceMappings",
            "rootVolume",
        ),
        (
            {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": "lots"}}]},
            "spec.blockDeviceMappings[0].ebs.volumeSize",
            "",
        ),
        (
            {"kubelet": {"evictionSoft": {"memory.available": "10%"}}},
            "spec.kubelet",
            "evictionSoft OwnerKey does not have a matching evictionSoftGracePeriod",
        ),
        (
            {"kubelet": {"evictionSoftGracePeriod": {"memory.available": "1m"}}},
            "spec.kubelet",
            "evictionSoftGracePeriod OwnerKey does not have a matching evictionSoft",
        ),
        ({"kubelet": {"evictionHard": {"memory.free": "1Gi"}}}, "spec.kubelet.evictionHard", "valid keys"),
        (
            {
                "kubelet": {
                    "evictionSoft": {"memory.available": "1Gi"},
                    "evictionSoftGracePeriod": {"memory.available": "soon"},
                }
            },
            "spec.kubelet.evictionSoftGracePeriod.memory.available",
            "",
        ),
    ],
)
def test_invalid_specs_name_the_field(change: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        EC2NodeClass.from_dict(nodeclass_manifest(**change))
    assert caught.value.field == field
    assert message in caught.value.message


def test_amifamily_is_required_without_an_alias_and_derived_from_one() -> None:
    manifest = nodeclass_manifest()
    del manifest["spec"]["amiFamily"]
    with pytest.raises(errors.ValidationError, match="amiFamily"):
        EC2NodeClass.from_dict(manifest)
    assert (
        EC2NodeClass.from_dict(
            nodeclass_manifest(amiSelectorTerms=[{"alias": "bottlerocket@latest"}], amiFamily=None)
        ).ami_family
        == "Bottlerocket"
    )


def test_static_hash_ignores_selectors_and_follows_other_fields() -> None:
    base = EC2NodeClass.from_dict(nodeclass_manifest()).static_hash()
    assert (
        EC2NodeClass.from_dict(nodeclass_manifest(subnetSelectorTerms=[{"id": "subnet-1"}])).static_hash()
        == base
    )
    assert EC2NodeClass.from_dict(nodeclass_manifest(userData="echo hi")).static_hash() != base
    assert EC2NodeClass.from_dict(nodeclass_manifest()).static_hash() == base


def test_alias_parameters() -> None:
    standard = {
        path: arch
        for path, (arch, variants) in amifamily.alias_parameters("al2023@latest", "1.31").items()
        if variants == ("standard",)
    }
    assert standard == {
        "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id": "amd64",
        "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/arm64/standard/recommended/image_id": "arm64",
    }
    assert "/aws/service/bottlerocket/aws-k8s-1.31/arm64/1.20.3/image_id" in amifamily.alias_parameters(
        "bottlerocket@v1.20.3", "1.31"
    )


BOOT = amifamily.Bootstrap(
    cluster_name="c",
    cluster_endpoint="https://api",
    ca_bundle="Q0E=",
    labels={"nodesmith.io/nodepool": "default"},
    taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
    max_pods=29,
    kubelet={"systemReserved": {"memory": "1Gi"}},
    cluster_cidr="10.100.0.0/16",
)


def test_al2_user_data_calls_bootstrap_with_kubelet_flags() -> None:
    text = amifamily.user_data("AL2", BOOT, None)
    assert "/etc/eks/bootstrap.sh c" in text
    assert "--register-with-taints=dedicated=gpu:NoSchedule,nodesmith.io/unregistered:NoExecute" in text
    assert "--max-pods=29" in text
    assert amifamily.user_data("Custom", BOOT, "raw") == "raw"
