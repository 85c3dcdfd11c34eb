"""nodesmith with the AWS provider on the real control plane, against moto: a pending Deployment gets an
EC2 instance (in moto) that the moto → kwok bridge turns into a Node, a spot interruption warning on the
SQS queue replaces it, and deleting the NodeClaims terminates the instances.

The daemon is ``nodesmith run --provider aws`` in its own process, configured as an operator would
(``NODESMITH_AWS_*`` variables, dummy credentials); the bridge runs in the test process and plays EC2
booting the instance and the kubelet registering it (`nodesmith_aws.testing.bridge`).
"""

from __future__ import annotations

import collections.abc
import contextlib
import json
import pathlib
import time
from typing import Any

import anyio
import pytest

from nodesmith.api import labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e
from nodesmith_aws import nodeclass
from nodesmith_aws.clients import Clients
from nodesmith_aws.cloudprovider import TAG_CLUSTER_NAME, TAG_NODECLAIM, AwsCloudProvider
from nodesmith_aws.settings import Settings
from nodesmith_aws.store import KubeNodeClassStore
from nodesmith_aws.testing.bridge import MotoKwokBridge
from nodesmith_aws.testing.moto import REGION, MotoServer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CLUSTER = "e2e-aws"
DISCOVERY = "nodesmith.io/discovery"
EC2_NODE_CLASSES = resources.node_class(nodeclass.GROUP, nodeclass.KIND)
TYPES = ["m5.large", "m5.xlarge", "c5.large", "c5.xlarge"]


@pytest.fixture(scope="module")
def moto() -> collections.abc.Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


async def prepare_account(clients: Clients, name: str) -> str:
    """What an operator sets up once: a VPC with tagged subnets in two zones, a tagged security group,
    a tagged AMI, the node role and the interruption queue (returns its URL)."""
    ec2 = await clients.ec2()
    tag = [{"Key": DISCOVERY, "Value": name}]

    def spec(kind: str) -> list[dict[str, Any]]:
        return [{"ResourceType": kind, "Tags": tag}]

    vpc = (await ec2.create_vpc(CidrBlock="10.42.0.0/16", TagSpecifications=spec("vpc")))["Vpc"]["VpcId"]
    for index, zone in enumerate(("us-west-2a", "us-west-2b")):
        await ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.42.{index}.0/24",
            AvailabilityZone=zone,
            TagSpecifications=spec("subnet"),
        )
    await ec2.create_security_group(
        GroupName=f"{name}-nodes", Description="nodes", VpcId=vpc, TagSpecifications=spec("security-group")
    )
    # moto's RegisterImage drops the architecture; a copy of an AL2023 image keeps it
    source = (
        await ec2.describe_images(
            Owners=["amazon"],
            Filters=[
                {"Name": "architecture", "Values": ["x86_64"]},
                {"Name": "name", "Values": ["al2023-ami-*"]},
            ],
        )
    )["Images"][0]["ImageId"]
    image = await ec2.copy_image(Name=f"{name}-al2023", SourceImageId=source, SourceRegion=REGION)
    await ec2.create_tags(Resources=[image["ImageId"]], Tags=tag)
    iam = await clients.iam()
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        await iam.create_role(
            RoleName="NodeRole", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}'
        )
    sqs = await clients.sqs()
    return str((await sqs.create_queue(QueueName=f"{name}-interruptions"))["QueueUrl"])


def ec2_nodeclass(name: str) -> dict[str, Any]:
    terms = [{"tags": {DISCOVERY: name}}]
    return {
        "apiVersion": f"{nodeclass.GROUP}/v1",
        "kind": nodeclass.KIND,
        "metadata": {"name": name},
        "spec": {
            "subnetSelectorTerms": terms,
            "securityGroupSelectorTerms": terms,
            "amiSelectorTerms": terms,
            "amiFamily": "AL2023",
            "role": "NodeRole",
            "tags": {"e2e": name},
        },
    }


def aws_nodepool(name: str) -> dict[str, Any]:
    pool = e2e.nodepool(
        name,
        name,
        requirements=[
            {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": TYPES},
            {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["spot"]},
        ],
    )
    pool["spec"]["template"]["spec"]["nodeClassRef"] = {
        "group": nodeclass.GROUP,
        "kind": nodeclass.KIND,
        "name": name,
    }
    return pool


def spot_warning(instance_id: str) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "e2e",
            "detail-type": "EC2 Spot Instance Interruption Warning",
            "source": "aws.ec2",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": REGION,
            "detail": {"instance-id": instance_id, "instance-action": "terminate"},
        }
    )


async def test_aws_provider_provisions_replaces_on_spot_interruption_and_terminates(
    kube: KubeClient,
    kubeconfig: pathlib.Path,
    moto: MotoServer,
    namespace: str,
    name: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(cluster_name=CLUSTER, region=REGION, endpoint_url=moto.url, isolated_vpc=True)
    clients = Clients(settings, moto.session())
    queue = await prepare_account(clients, name)
    await kube.create(EC2_NODE_CLASSES, ec2_nodeclass(name))
    await kube.create(resources.NODEPOOLS, aws_nodepool(name))

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "NODESMITH_AWS_ENDPOINT_URL": moto.url,
        "NODESMITH_AWS_REGION": REGION,
        "NODESMITH_AWS_ISOLATED_VPC": "true",
        "NODESMITH_AWS_INTERRUPTION_QUEUE": queue,
        "NODESMITH_AWS_INTERRUPTION_WAIT_SECONDS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    daemon = e2e.DaemonProcess(
        kubeconfig, tmp_path / "nodesmith-aws.log", "--cluster-name", CLUSTER, provider="aws"
    )
    provider = AwsCloudProvider(settings, KubeNodeClassStore(kube), clients=clients)
    bridge = MotoKwokBridge(provider, kube)
    ec2 = await clients.ec2()
    sqs = await clients.sqs()

    async def instance(instance_id: str) -> dict[str, Any]:
        answer = await ec2.describe_instances(InstanceIds=[instance_id])
        return dict(answer["Reservations"][0]["Instances"][0])

    async def running_on(exclude: str | None = None) -> set[str]:
        pods = (await kube.list(resources.PODS, namespace, label_selector="app=web")).items
        nodes = {p["spec"].get("nodeName", "") for p in pods}
        ok = len(pods) == 2 and all(p.get("status", {}).get("phase") == "Running" for p in pods)
        return nodes if ok and exclude not in nodes else set()

    async def claims() -> dict[str, str]:
        """NodeClaim name → providerID, for this test's pool's live NodeClaims."""
        items = (await kube.list(resources.NODECLAIMS)).items
        return {
            c["metadata"]["name"]: c.get("status", {}).get("providerID", "")
            for c in items
            if c["metadata"].get("labels", {}).get(labels.LABEL_NODEPOOL) == name
            and not c["metadata"].get("deletionTimestamp")
        }

    try:
        await provider.catalog.ensure()
        daemon.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run, 0.5)
            await daemon.wait_ready(120)
            await kube.create(e2e.DEPLOYMENTS, e2e.deployment("web", namespace, 2, pool=name), namespace)

            # 1. the pending pods get a moto instance, bridged into a Node, and run on it
            (node_name,) = await e2e.eventually(running_on, 180, "2 pods Running on one bridged node")
            node = await kube.get(resources.NODES, node_name)
            provider_id = node["spec"]["providerID"]
            zone, instance_id = provider_id.removeprefix("aws:///").split("/")
            raw = await instance(instance_id)
            tags = {t["Key"]: t["Value"] for t in raw["Tags"]}
            (claim_name,) = (await claims()).keys()
            assert raw["Placement"]["AvailabilityZone"] == zone
            assert raw["InstanceType"] in TYPES
            assert tags[TAG_CLUSTER_NAME] == CLUSTER
            assert tags[labels.LABEL_NODEPOOL] == name
            assert tags[TAG_NODECLAIM] == claim_name
            assert tags["e2e"] == name
            assert node["metadata"]["labels"][labels.LABEL_NODEPOOL] == name

            # 2. a spot interruption warning for it: NodeClaim deleted, a replacement launched
            sent = time.monotonic()
            await sqs.send_message(QueueUrl=queue, MessageBody=spot_warning(instance_id))

            async def replaced() -> dict[str, str]:
                now = await claims()
                return now if now and claim_name not in now and all(now.values()) else {}

            (new_claim, new_pid), *_ = (await e2e.eventually(replaced, 60, "a replacement NodeClaim")).items()
            print(f"\nSendMessage → replacement NodeClaim launched in {time.monotonic() - sent:.2f}s")
            assert new_pid != provider_id
            await e2e.eventually(lambda: running_on(node_name), 180, "the pods Running on the replacement")

            async def terminated(instance_id: str) -> bool:
                return bool((await instance(instance_id))["State"]["Name"] in ("shutting-down", "terminated"))

            await e2e.eventually(lambda: terminated(instance_id), 120, "the interrupted instance terminated")
            attributes = await sqs.get_queue_attributes(
                QueueUrl=queue,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )
            assert set(attributes["Attributes"].values()) == {"0"}

            # 3. scaled to zero and the NodeClaim deleted: its instance is terminated in moto
            await kube.merge_patch(e2e.DEPLOYMENTS, "web", {"spec": {"replicas": 0}}, namespace)
            await kube.delete(resources.NODECLAIMS, new_claim)
            new_instance = new_pid.rsplit("/", 1)[1]
            await e2e.eventually(lambda: terminated(new_instance), 120, "the replacement instance terminated")

            async def claims_gone() -> bool:
                return not await claims()

            await e2e.eventually(claims_gone, 60, "the NodeClaims gone")
            tg.cancel_scope.cancel()
    finally:
        daemon.stop()
        print(f"--- nodesmith (aws) log (last lines) ---\n{daemon.tail(80)}")
        await e2e.cleanup(kube, namespace=None, nodepools=[name])
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(EC2_NODE_CLASSES, name)
        await provider.close()
