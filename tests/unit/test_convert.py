"""`nodesmith convert`: Karpenter manifests from Karpenter's docs (tests/fixtures/karpenter/) become valid
nodesmith objects, and every field without an equivalent is reported."""

from __future__ import annotations

import pathlib
import string
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from nodesmith import cli, convert
from nodesmith.api import nodepool
from nodesmith.cloudprovider import manager
from nodesmith_aws import nodeclass
from nodesmith_aws import plugin as aws_plugin
from nodesmith_kwok import plugin as kwok_plugin

# The providers' converters, as `nodesmith convert` receives them: through the plugin hook.
AWS = manager.Plugins(load_entry_points=False, plugins=[aws_plugin, kwok_plugin]).karpenter_converters()

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "karpenter"
# What the getting-started guides' `envsubst` fills in.
ENV = {"CLUSTER_NAME": "demo", "ARM_AMI_ID": "ami-0123", "AMD_AMI_ID": "ami-0456", "ALIAS_VERSION": "latest"}


def load(name: str) -> list[dict[str, Any]]:
    text = string.Template((FIXTURES / name).read_text()).substitute(ENV)
    return [d for d in yaml.safe_load_all(text) if d]


def run(name: str, **options: str) -> convert.Conversion:
    return convert.convert_all(load(name), convert.Options(**options), AWS)


def by_kind(result: convert.Conversion, kind: str) -> dict[str, Any]:
    (obj,) = [o for o in result.objects if o["kind"] == kind]
    return obj


def notes(result: convert.Conversion, kind: convert.NoteKind) -> set[str]:
    return {n.field for n in result.notes if n.kind is kind}


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.yaml")))
def test_every_fixture_converts_to_objects_the_nodesmith_models_accept(name: str) -> None:
    result = run(name, role="KarpenterNodeRole-demo")
    assert not notes(result, convert.NoteKind.INVALID), result.notes
    kinds = sorted(o["kind"] for o in result.objects)
    assert kinds == ["EC2NodeClass", "NodePool"]
    for obj in result.objects:
        if obj["kind"] == "NodePool":
            assert obj["apiVersion"] == "nodesmith.io/v1"
            pool = nodepool.NodePool.from_dict(obj)
            assert pool.spec.template.spec.node_class_ref.group == "aws.nodesmith.io"
        else:
            assert obj["apiVersion"] == "aws.nodesmith.io/v1"
            nodeclass.EC2NodeClass.from_dict(obj)
        assert "karpenter" not in yaml.safe_dump(obj["spec"]).replace("karpenter.sh/discovery", "").replace(
            "Karpenter", ""
        )


def test_v1alpha5_getting_started_provisioner_becomes_a_when_empty_nodepool() -> None:
    result = run("v1alpha5-getting-started.yaml", instance_profile="KarpenterNodeInstanceProfile-demo")
    pool = by_kind(result, "NodePool")
    assert pool["metadata"] == {"name": "default"}
    assert pool["spec"]["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30s"}
    assert pool["spec"]["limits"] == {"cpu": 1000}
    template = pool["spec"]["template"]["spec"]
    assert template["requirements"] == [
        {"key": "nodesmith.io/capacity-type", "operator": "In", "values": ["spot"]}
    ]
    assert template["nodeClassRef"] == {
        "group": "aws.nodesmith.io",
        "kind": "EC2NodeClass",
        "name": "default",
    }
    # v1alpha5 nodes never expired unless asked to; v1 defaults to 720h, so this is said out loud.
    assert template["expireAfter"] == "Never"
    assert "spec.ttlSecondsUntilExpired" in notes(result, convert.NoteKind.CHANGED)

    node_class = by_kind(result, "EC2NodeClass")["spec"]
    assert node_class["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "demo"}}]
    assert node_class["securityGroupSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "demo"}}]
    assert node_class["amiSelectorTerms"] == [{"alias": "al2@latest"}]
    assert node_class["instanceProfile"] == "KarpenterNodeInstanceProfile-demo"
    assert node_class["metadataOptions"]["httpPutResponseHopLimit"] == 2
    assert convert.NoteKind.DROPPED not in {n.kind for n in result.notes}


def test_without_role_or_instance_profile_the_node_class_is_reported_invalid() -> None:
    result = run("v1alpha5-getting-started.yaml")
    assert notes(result, convert.NoteKind.INVALID) == {"spec.role"}
    assert not result.lossless


def test_v1alpha5_reference_provisioner_maps_every_field_or_reports_it() -> None:
    result = run("v1alpha5-provisioner-reference.yaml")
    pool = by_kind(result, "NodePool")["spec"]
    assert pool["weight"] == 10
    assert pool["limits"] == {"cpu": "1000", "memory": "1000Gi"}
    assert pool["disruption"] == {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "0s"}
    template = pool["template"]
    assert template["metadata"] == {
        "labels": {"billing-team": "my-team"},
        "annotations": {"example.com/owner": "my-team"},
    }
    assert template["spec"]["expireAfter"] == "720h"
    assert template["spec"]["taints"] == [{"key": "example.com/special-taint", "effect": "NoSchedule"}]
    assert template["spec"]["startupTaints"] == [{"key": "example.com/another-taint", "effect": "NoSchedule"}]
    keys = [r["key"] for r in template["spec"]["requirements"]]
    assert keys == [
        "aws.nodesmith.io/instance-category",
        "aws.nodesmith.io/instance-cpu",
        "aws.nodesmith.io/instance-hypervisor",
        "aws.nodesmith.io/instance-generation",
        "topology.kubernetes.io/zone",
        "kubernetes.io/arch",
        "nodesmith.io/capacity-type",
    ]
    # kubeletConfiguration moves to the EC2NodeClass it references; what nodesmith lacks is reported.
    node_class = by_kind(result, "EC2NodeClass")["spec"]
    assert node_class["kubelet"] == {
        "clusterDNS": ["10.0.1.100"],
        "systemReserved": {"cpu": "100m", "memory": "100Mi", "ephemeral-storage": "1Gi"},
        "kubeReserved": {"cpu": "200m", "memory": "100Mi", "ephemeral-storage": "3Gi"},
        "evictionHard": {"memory.available": "5%", "nodefs.available": "10%", "nodefs.inodesFree": "10%"},
        "evictionSoft": {"memory.available": "500Mi", "nodefs.available": "15%", "nodefs.inodesFree": "15%"},
        "evictionSoftGracePeriod": {
            "memory.available": "1m",
            "nodefs.available": "1m30s",
            "nodefs.inodesFree": "2m",
        },
        "evictionMaxPodGracePeriod": 60,
        "imageGCHighThresholdPercent": 85,
        "imageGCLowThresholdPercent": 80,
        "cpuCFSQuota": True,
        "podsPerCore": 2,
        "maxPods": 20,
    }
    assert notes(result, convert.NoteKind.DROPPED) == {
        "spec.ttlSecondsAfterEmpty",
        "spec.kubeletConfiguration.containerRuntime",
    }
    assert "spec.kubeletConfiguration" in notes(result, convert.NoteKind.MOVED)
    # The AWSNodeTemplate's amiSelector keeps amiFamily (no alias), the rest is copied.
    assert node_class["amiSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "my-cluster"}}]
    assert node_class["amiFamily"] == "AL2"
    assert node_class["instanceProfile"] == "MyInstanceProfile"
    assert node_class["blockDeviceMappings"][0]["ebs"]["volumeSize"] == "100Gi"
    assert node_class["detailedMonitoring"] is True
    assert node_class["userData"] == 'echo "Hello world"\n'


def test_v1beta1_nodepool_moves_expiry_and_renames_when_underutilized() -> None:
    result = run("v1beta1-getting-started.yaml")
    pool = by_kind(result, "NodePool")["spec"]
    assert pool["disruption"] == {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "0s"}
    assert pool["template"]["spec"]["expireAfter"] == "720h"
    assert pool["template"]["spec"]["nodeClassRef"] == {
        "group": "aws.nodesmith.io",
        "kind": "EC2NodeClass",
        "name": "default",
    }
    node_class = by_kind(result, "EC2NodeClass")["spec"]
    # Pinned AMI ids keep amiFamily, which v1 needs to pick the bootstrap format.
    assert node_class["amiSelectorTerms"] == [{"id": "ami-0123"}, {"id": "ami-0456"}]
    assert node_class["amiFamily"] == "AL2"
    assert node_class["role"] == "KarpenterNodeRole-demo"


def test_v1beta1_nodepool_kubelet_moves_to_its_node_class() -> None:
    result = run("v1beta1-nodepool-kubelet.yaml")
    pool = by_kind(result, "NodePool")["spec"]
    assert "kubelet" not in pool["template"]["spec"]
    assert pool["template"]["spec"]["nodeClassRef"]["kind"] == "EC2NodeClass"
    assert pool["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "30s",
        "budgets": [{"nodes": "10%"}],
    }
    node_class = by_kind(result, "EC2NodeClass")["spec"]
    assert node_class["kubelet"] == {
        "clusterDNS": ["10.0.1.100"],
        "systemReserved": {"cpu": "100m", "memory": "100Mi"},
        "maxPods": 110,
        "cpuCFSQuota": True,
    }
    assert node_class["amiSelectorTerms"] == [{"alias": "bottlerocket@latest"}]
    assert "amiFamily" not in node_class
    assert notes(result, convert.NoteKind.DROPPED) == set()


def test_v1beta1_kubelet_without_its_node_class_is_reported_not_lost() -> None:
    (pool_doc, _) = load("v1beta1-nodepool-kubelet.yaml")
    result = convert.convert_all([pool_doc], converters=AWS)
    (note,) = [n for n in result.notes if n.field == "spec.template.spec.kubelet"]
    assert note.kind is convert.NoteKind.DROPPED
    assert "maxPods" in note.message


def test_v1_objects_only_change_group_and_keys() -> None:
    docs = load("v1-getting-started.yaml")
    result = convert.convert_all(docs, converters=AWS)
    assert result.notes == []
    pool, node_class = result.objects
    assert pool["spec"]["disruption"] == docs[0]["spec"]["disruption"]
    assert pool["spec"]["template"]["spec"]["expireAfter"] == "720h"
    assert pool["spec"]["template"]["spec"]["requirements"][2]["key"] == "nodesmith.io/capacity-type"
    assert pool["spec"]["template"]["spec"]["requirements"][3]["key"] == "aws.nodesmith.io/instance-category"
    assert node_class["spec"] == docs[1]["spec"]


def test_v1_fields_nodesmith_lacks_are_reported() -> None:
    result = run("v1-disruption-budgets.yaml")
    pool = by_kind(result, "NodePool")["spec"]
    assert pool["disruption"]["budgets"][2] == {
        "nodes": "0",
        "schedule": "@daily",
        "duration": "10m",
        "reasons": ["Underutilized"],
    }
    assert pool["template"]["spec"]["requirements"][0]["minValues"] == 2
    assert notes(result, convert.NoteKind.DROPPED) == {
        "spec.capacityReservationSelectorTerms",
        "spec.networkInterfaces",
    }


def test_non_karpenter_objects_pass_through_and_runtime_objects_are_reported() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "inflate"}}
    claim = {"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim", "metadata": {"name": "default-abcde"}}
    result = convert.convert_all([deployment, None, claim], converters=AWS)
    assert result.objects == [deployment]
    assert [(n.source, n.kind) for n in result.notes] == [
        ("NodeClaim/default-abcde", convert.NoteKind.DROPPED)
    ]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("karpenter.sh/capacity-type", "nodesmith.io/capacity-type"),
        ("karpenter.sh/provisioner-name", "nodesmith.io/nodepool"),
        ("karpenter.sh/do-not-evict", "nodesmith.io/do-not-disrupt"),
        ("karpenter.k8s.aws/instance-family", "aws.nodesmith.io/instance-family"),
        ("karpenter.kwok.sh/kwoknodeclass", "kwok.nodesmith.io/kwoknodeclass"),
        ("topology.kubernetes.io/zone", "topology.kubernetes.io/zone"),
    ],
)
def test_rename_key(key: str, expected: str) -> None:
    assert convert.rename_key(key, AWS) == expected


def test_the_aws_conversion_comes_through_the_plugin_hook() -> None:
    docs = load("v1alpha5-getting-started.yaml")
    with_plugin = convert.convert_all(docs, convert.Options(role="r"), AWS)
    without = convert.convert_all(docs, convert.Options(role="r"))
    assert [o["kind"] for o in with_plugin.objects] == ["NodePool", "EC2NodeClass"]
    assert with_plugin.objects[1]["apiVersion"] == "aws.nodesmith.io/v1"
    # Without the plugin the core converts its own kind and reports the AWS objects instead.
    assert [o["kind"] for o in without.objects] == ["NodePool"]
    reported = {(n.source, n.field, n.kind) for n in without.notes}
    assert ("AWSNodeTemplate/default", "<object>", convert.NoteKind.DROPPED) in reported
    assert ("Provisioner/default", "spec.providerRef", convert.NoteKind.INVALID) in reported
    pool_spec = without.objects[0]["spec"]["template"]["spec"]
    assert pool_spec["requirements"] == with_plugin.objects[0]["spec"]["template"]["spec"]["requirements"]


def test_core_keys_rename_without_any_plugin() -> None:
    assert convert.rename_key("karpenter.sh/capacity-type") == "nodesmith.io/capacity-type"
    assert convert.rename_key("karpenter.k8s.aws/instance-family") == "karpenter.k8s.aws/instance-family"
    assert convert.rename_key("karpenter.kwok.sh/kwoknodeclass") == "karpenter.kwok.sh/kwoknodeclass"


def test_a_kwok_node_class_comes_through_the_kwok_plugin_hook() -> None:
    doc = {
        "apiVersion": "karpenter.kwok.sh/v1alpha1",
        "kind": "KWOKNodeClass",
        "metadata": {"name": "default", "labels": {"karpenter.sh/discovery": "demo"}},
        "spec": {},
    }
    (out,) = convert.convert_all([doc], converters=AWS).objects
    assert out["apiVersion"] == "kwok.nodesmith.io/v1"
    assert out["metadata"]["labels"] == {"nodesmith.io/discovery": "demo"}
    assert convert.convert_all([doc]).objects == []


def test_cli_reads_files_writes_yaml_and_reports_on_stderr(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "in.yaml"
    source.write_text(
        string.Template((FIXTURES / "v1alpha5-provisioner-reference.yaml").read_text()).substitute(ENV)
    )
    target = tmp_path / "out.yaml"
    result = CliRunner().invoke(cli.main, ["convert", str(source), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "spec.kubeletConfiguration.containerRuntime: dropped" in result.stderr
    written = target.read_text()
    assert written.startswith("# Provisioner/default: ")
    assert [d["kind"] for d in yaml.safe_load_all(written)] == ["NodePool", "EC2NodeClass"]

    strict = CliRunner().invoke(cli.main, ["convert", "--strict", str(source), "-o", str(target)])
    assert strict.exit_code == 1


def test_cli_reads_stdin() -> None:
    text = string.Template((FIXTURES / "v1-getting-started.yaml").read_text()).substitute(ENV)
    result = CliRunner().invoke(cli.main, ["convert", "--strict"], input=text)
    assert result.exit_code == 0, result.output
    assert [d["kind"] for d in yaml.safe_load_all(result.stdout)] == ["NodePool", "EC2NodeClass"]


EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "examples"


def test_shipped_aws_example_is_the_converted_getting_started_and_valid() -> None:
    source = yaml.safe_load_all((EXAMPLES / "karpenter-v1alpha5-getting-started.yaml").read_text())
    result = convert.convert_all(source, convert.Options(role="NodesmithNodeRole-my-cluster"), AWS)
    shipped = [
        d for d in yaml.safe_load_all((EXAMPLES / "aws-spot-with-on-demand-fallback.yaml").read_text()) if d
    ]
    assert shipped == result.objects
    pool = nodepool.NodePool.from_dict(shipped[0])
    (capacity,) = [
        r
        for r in shipped[0]["spec"]["template"]["spec"]["requirements"]
        if r["key"] == "nodesmith.io/capacity-type"
    ]
    assert capacity["values"] == ["spot", "on-demand"]
    assert pool.spec.template.spec.node_class_ref.kind == "EC2NodeClass"
    nodeclass.EC2NodeClass.from_dict(shipped[1])


def test_shipped_kwok_example_is_valid() -> None:
    from nodesmith_kwok import nodeclass as kwok_nodeclass

    docs = [d for d in yaml.safe_load_all((EXAMPLES / "kwok.yaml").read_text()) if d]
    assert [d["kind"] for d in docs] == ["KWOKNodeClass", "NodePool", "Deployment"]
    nodepool.NodePool.from_dict(docs[1])
    assert docs[0]["apiVersion"] == f"{kwok_nodeclass.GROUP}/v1"
    kwok_nodeclass.KWOKNodeClass.from_dict(docs[0])
