"""AMI aliases resolve the accelerated variants per instance type from the same SSM parameters as
Karpenter (a GPU type gets the NVIDIA AMI, an Inferentia type the Neuron one, others the standard
one), and GPU/accelerator/metal types are offered only to NodePools that ask for them."""

from __future__ import annotations

from typing import Any

import pytest

from nodesmith.api import labels
from nodesmith.api.meta import NodeClassRef
from nodesmith.testing import conformance
from nodesmith_aws import amifamily, instancetypes, launch, nodeclass
from tests.unit.aws.conftest import Env, ready_nodeclass

pytestmark = pytest.mark.anyio
REF = NodeClassRef(nodeclass.GROUP, nodeclass.KIND, "default")
BASE = "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64"


def test_al2023_and_bottlerocket_aliases_read_the_accelerated_parameters() -> None:
    al2023 = amifamily.alias_parameters("al2023@latest", "1.31")
    assert al2023[f"{BASE}/nvidia/recommended/image_id"] == ("amd64", ("nvidia",))
    assert al2023[f"{BASE}/neuron/recommended/image_id"] == ("amd64", ("neuron",))
    assert len(al2023) == 5  # arm64 has no Neuron variant
    pinned = amifamily.alias_parameters("al2023@v20240807", "1.31")
    assert f"{BASE}/nvidia/amazon-eks-node-al2023-x86_64-nvidia-1.31-v20240807/image_id" in pinned
    bottlerocket = amifamily.alias_parameters("bottlerocket@latest", "1.31")
    assert bottlerocket["/aws/service/bottlerocket/aws-k8s-1.31-nvidia/arm64/latest/image_id"] == (
        "arm64",
        ("nvidia",),
    )
    al2 = amifamily.alias_parameters("al2@latest", "1.31")
    assert al2["/aws/service/eks/optimized-ami/1.31/amazon-linux-2-gpu/recommended/image_id"] == (
        "amd64",
        ("neuron", "nvidia"),
    )


async def x86_image(env: Env, name: str) -> str:
    ec2 = await env.ec2()
    source = (
        await ec2.describe_images(
            Owners=["amazon"],
            Filters=[
                {"Name": "architecture", "Values": ["x86_64"]},
                {"Name": "name", "Values": ["al2023-ami-*"]},
            ],
        )
    )["Images"][0]["ImageId"]
    return str((await ec2.copy_image(Name=name, SourceImageId=source, SourceRegion="us-west-2"))["ImageId"])


def gpu_pool(**extra: Any) -> Any:
    return conformance.nodepool(
        "default", REF, [{"key": "aws.nodesmith.io/instance-gpu-manufacturer", "operator": "Exists"}]
    )


async def test_each_instance_type_gets_its_variants_ami(env: Env) -> None:
    images = {
        variant: await x86_image(env, f"al2023-{variant}") for variant in ("standard", "nvidia", "neuron")
    }
    for variant, image in images.items():
        env.moto.put_public_parameter(f"{BASE}/{variant}/recommended/image_id", image)
    nc = await ready_nodeclass(env, amiSelectorTerms=[{"alias": "al2023@latest"}], amiFamily=None)
    assert nc.ready is not None
    assert nc.condition(nodeclass.Condition.AMIS_READY).is_true
    assert {a.id for a in nc.status.amis} == set(images.values())

    def ami_for(type_name: str, types: Any) -> set[str]:
        it = next((t for t in types if t.name == type_name), None)
        assert it is not None, f"{type_name} not among {len(types)} types"
        return {a.id for a in nc.status.amis if instancetypes.ami_matches(a.requirements, it.requirements)}

    everything = env.provider.instance_types.list(nc)
    assert ami_for("m5.large", everything) == {images["standard"]}
    assert ami_for("g4dn.xlarge", everything) == {images["nvidia"]}
    assert ami_for("p4d.24xlarge", everything) == {images["nvidia"]}
    assert ami_for("inf1.xlarge", everything) == {images["neuron"]}

    # a GPU NodeClaim launches with the NVIDIA image
    pool = gpu_pool()
    claim = conformance.nodeclaim(
        pool, [{"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["g4dn.xlarge"]}], name="gpu"
    )
    created = await env.provider.create(claim)
    assert created.status.image_id == images["nvidia"]
    assert launch.MAX_INSTANCE_TYPES  # the launch path is the real one


async def test_gpu_accelerator_and_metal_types_are_offered_only_when_a_nodepool_asks(env: Env) -> None:
    await ready_nodeclass(env)
    plain = {it.name for it in await env.provider.get_instance_types(conformance.nodepool("default", REF))}
    assert "m5.large" in plain
    assert not {"g4dn.xlarge", "p4d.24xlarge", "inf1.xlarge", "c5.metal"} & plain
    asked = {it.name for it in await env.provider.get_instance_types(gpu_pool())}
    assert {"g4dn.xlarge", "p4d.24xlarge", "c5.metal", "m5.large"} <= asked
    named = conformance.nodepool(
        "default", REF, [{"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["inf1.xlarge"]}]
    )
    assert "inf1.xlarge" in {it.name for it in await env.provider.get_instance_types(named)}
