"""nodesmith with the AWS provider on the real control plane, against moto: a pending Deployment gets an
EC2 instance (in moto) that the moto → kwok bridge turns into a Node, whose launch template's user data
nodeadm (the AL2023 node agent) accepts; a spot interruption warning on the SQS queue replaces it;
deleting the NodeClaims terminates the instances, and deleting the EC2NodeClass removes its launch
templates and instance profile. Every AWS call the daemon made is granted by the controller policy.

The daemon is ``nodesmith run --provider aws`` in its own process, configured as an operator would
(``NODESMITH_AWS_*`` variables, dummy credentials); the bridge runs in the test process and plays EC2
booting the instance and the kubelet registering it (`nodesmith_aws.testing.bridge`).
"""

from __future__ import annotations

import base64
import collections.abc
import contextlib
import email
import json
import os
import pathlib
import subprocess
import sys
import time
import tomllib
from email.message import Message
from typing import Any, cast

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
from nodesmith_aws.testing import iam, nodeadm
from nodesmith_aws.testing.bridge import MotoKwokBridge
from nodesmith_aws.testing.moto import REGION, MotoServer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CLUSTER = "e2e-aws"
DISCOVERY = "nodesmith.io/discovery"
EC2_NODE_CLASSES = resources.node_class(nodeclass.GROUP, nodeclass.KIND)
TYPES = ["m5.large", "m5.xlarge", "c5.large", "c5.xlarge"]
TEMPLATE = pathlib.Path(__file__).parents[2] / "deploy" / "aws" / "cloudformation.yaml"
DAEMON_KEY = "daemon-access-key"
"""The daemon's access key ID: moto's recording tells its calls from the test's by it."""


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
    eks = await clients.eks()
    with contextlib.suppress(eks.exceptions.ResourceInUseException):
        await eks.create_cluster(
            name=CLUSTER,
            version="1.31",
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={"subnetIds": []},
            kubernetesNetworkConfig={"serviceIpv4Cidr": "10.100.0.0/16"},
        )
    sqs = await clients.sqs()
    return str((await sqs.create_queue(QueueName=f"{name}-interruptions"))["QueueUrl"])


async def launch_template_user_data(ec2: Any, nodeclass_name: str) -> dict[str, str]:
    """Launch template name → its user data (decoded), for the templates made for ``nodeclass_name``."""
    found = await ec2.describe_launch_templates(
        Filters=[{"Name": "tag:aws.nodesmith.io/ec2nodeclass", "Values": [nodeclass_name]}]
    )
    out = {}
    for template in found["LaunchTemplates"]:
        versions = await ec2.describe_launch_template_versions(
            LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Latest"]
        )
        data = versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]
        out[template["LaunchTemplateName"]] = base64.b64decode(data).decode()
    return out


def daemon_stops_with_one_line(kubeconfig: pathlib.Path, cluster_name: str) -> str:
    """Run the daemon for a cluster moto's EKS does not know, with no cluster settings: it must stop at
    start; the last line of its output is returned."""
    done = subprocess.run(
        [sys.executable, "-m", "nodesmith", "run", "--provider", "aws", "--cluster-name", cluster_name,
         "--no-leader-elect", "--health-port", "0", "--metrics-port", "0"],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout + done.stderr
    return (done.stdout + done.stderr).strip().splitlines()[-1]


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
        "AWS_ACCESS_KEY_ID": DAEMON_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NODESMITH_AWS_NODECLASS_REFRESH_SECONDS": "2",
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
        # 0. a cluster that neither settings nor DescribeCluster can describe stops the daemon at start
        line = daemon_stops_with_one_line(kubeconfig, "no-such-cluster")
        assert line.startswith(
            "Error: cluster-endpoint: not set, and eks:DescribeCluster for cluster 'no-such-cluster' failed: "
            "ResourceNotFoundException"
        ), line
        moto.start_recording(tmp_path / "moto-recording.jsonl")
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

            # 1b. the user data the instance booted with is accepted by nodeadm, and names the cluster
            #     DescribeCluster described (endpoint, CA, service CIDR)
            described = (await (await clients.eks()).describe_cluster(name=CLUSTER))["cluster"]
            user_data = await launch_template_user_data(ec2, name)
            assert user_data
            for template, text in user_data.items():
                result = nodeadm.check(text)
                assert result.ok, f"{template}: {result.output}"
                assert f"apiServerEndpoint: {described['endpoint']}" in text
                assert "cidr: 10.100.0.0/16" in text
                assert "- --node-labels=" in text
                assert f"nodesmith.io/nodepool={name}" in text

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

            # 4. deleting the EC2NodeClass removes its launch templates and instance profile, then it
            await e2e.cleanup(kube, namespace=None, nodepools=[name])
            await kube.delete(EC2_NODE_CLASSES, name)

            async def nodeclass_gone() -> bool:
                try:
                    await kube.get(EC2_NODE_CLASSES, name)
                except kube_errors.NotFoundError:
                    return True
                return False

            await e2e.eventually(nodeclass_gone, 60, "the EC2NodeClass gone (finalizer released)")
            assert await launch_template_user_data(ec2, name) == {}
            profiles = (await (await clients.iam()).list_instance_profiles())["InstanceProfiles"]
            assert [p["InstanceProfileName"] for p in profiles if p["Path"].startswith("/nodesmith/")] == []
            tg.cancel_scope.cancel()

        # 5. every AWS call the daemon made is granted by the controller policy
        moto.stop_recording()
        called = iam.recorded((tmp_path / "moto-recording.jsonl").read_text().splitlines(), DAEMON_KEY)
        granted = iam.granted(TEMPLATE)
        print(f"\nAWS actions the daemon called ({len(called)}): {sorted(called)}")
        print(f"granted but not called in this run: {sorted(granted - called)}")
        assert called - granted == set(), "called without a grant"
        assert {"eks:DescribeCluster", "ec2:CreateFleet", "ec2:DeleteLaunchTemplate"} <= called
    finally:
        daemon.stop()
        print(f"--- nodesmith (aws) log (last lines) ---\n{daemon.tail(80)}")
        await e2e.cleanup(kube, namespace=None, nodepools=[name])
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(EC2_NODE_CLASSES, name)
        await provider.close()


FAMILY_SHAPES: dict[str, dict[str, Any]] = {
    "al2": {
        "amiFamily": "AL2",
        "kubelet": {"evictionHard": {"memory.available": "5%"}, "systemReserved": {"memory": "200Mi"}},
        "userData": "#!/bin/bash\necho before bootstrap\n",
    },
    "br": {
        "amiFamily": "Bottlerocket",
        "kubelet": {
            "evictionSoft": {"memory.available": "10%"},
            "evictionSoftGracePeriod": {"memory.available": "2m"},
            "kubeReserved": {"cpu": "100m"},
        },
        "userData": '[settings.host-containers.admin]\nenabled = true\n[settings.kubernetes.node-labels]\nmine = "yes"\n',
    },
}


async def test_every_family_boots_with_user_data_its_agent_accepts_and_deletion_cleans_up(
    kube: KubeClient,
    kubeconfig: pathlib.Path,
    moto: MotoServer,
    namespace: str,
    name: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.unit.aws import bottlerocket_model

    settings = Settings(cluster_name=CLUSTER, region=REGION, endpoint_url=moto.url, isolated_vpc=True)
    clients = Clients(settings, moto.session())
    await prepare_account(clients, name)
    names = {shape: f"{name}-{shape}" for shape in FAMILY_SHAPES}
    # the API server itself refuses a soft eviction threshold without its grace period (CEL)
    bad = ec2_nodeclass(f"{name}-bad")
    bad["spec"]["kubelet"] = {"evictionSoft": {"memory.available": "10%"}}
    with pytest.raises(kube_errors.InvalidError, match="evictionSoft OwnerKey does not have a matching"):
        await kube.create(EC2_NODE_CLASSES, bad)
    taint = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
    for shape, spec in FAMILY_SHAPES.items():
        manifest = ec2_nodeclass(names[shape])
        manifest["spec"].update(spec)
        terms = [{"tags": {DISCOVERY: name}}]
        for key in ("subnetSelectorTerms", "securityGroupSelectorTerms", "amiSelectorTerms"):
            manifest["spec"][key] = terms
        await kube.create(EC2_NODE_CLASSES, manifest)
        pool = aws_nodepool(names[shape])
        pool["spec"]["template"]["spec"]["taints"] = [taint]
        await kube.create(resources.NODEPOOLS, pool)
    for key, value in {
        "AWS_ACCESS_KEY_ID": DAEMON_KEY,
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NODESMITH_AWS_NODECLASS_REFRESH_SECONDS": "2",
        "NODESMITH_AWS_ENDPOINT_URL": moto.url,
        "NODESMITH_AWS_REGION": REGION,
        "NODESMITH_AWS_ISOLATED_VPC": "true",
    }.items():
        monkeypatch.setenv(key, value)
    daemon = e2e.DaemonProcess(
        kubeconfig, tmp_path / "nodesmith-aws.log", "--cluster-name", CLUSTER, provider="aws"
    )
    ec2 = await clients.ec2()
    iam_client = await clients.iam()
    pools = list(names.values())

    async def launched() -> set[str]:
        claims = (await kube.list(resources.NODECLAIMS)).items
        done = {
            c["metadata"]["labels"].get(labels.LABEL_NODEPOOL)
            for c in claims
            if c.get("status", {}).get("providerID")
        }
        return done if set(pools) <= done else set()

    try:
        daemon.start()
        await daemon.wait_ready(120)
        toleration = [{"key": "dedicated", "operator": "Exists"}]
        for pool_name in pools:
            await kube.create(
                e2e.DEPLOYMENTS,
                e2e.deployment(pool_name, namespace, 1, pool=pool_name, tolerations=toleration),
                namespace,
            )
        await e2e.eventually(launched, 180, "an instance launched for each family's NodePool")

        # Bottlerocket: every key nodesmith wrote passes Bottlerocket's settings model
        templates = await launch_template_user_data(ec2, names["br"])
        assert templates
        for text in templates.values():  # one template per (AMI, max pods) group of the launch
            document = tomllib.loads(text)
            kubernetes = document["settings"]["kubernetes"]
            assert bottlerocket_model.problems(document, ours=set(kubernetes)) == []
            assert kubernetes["node-taints"]["dedicated"] == ["infra:NoSchedule"]
            assert kubernetes["node-taints"]["nodesmith.io/unregistered"] == [":NoExecute"]
            assert kubernetes["eviction-soft-grace-period"] == {"memory.available": "2m"}
            assert kubernetes["node-labels"]["mine"] == "yes"
            assert document["settings"]["host-containers"]["admin"]["enabled"] is True

        # AL2: the user's script first, then bootstrap.sh with the kubelet overrides
        templates = await launch_template_user_data(ec2, names["al2"])
        assert templates
        for text in templates.values():
            parts = cast(list[Message], email.message_from_string(text).get_payload())  # multipart: its parts
            assert "echo before bootstrap" in cast(str, parts[0].get_payload())
            script = cast(str, parts[-1].get_payload())  # a leaf part: its text
            assert "/etc/eks/bootstrap.sh e2e-aws" in script
            assert "--eviction-hard=memory.available<5%" in script
            assert "--system-reserved=memory=200Mi" in script
            assert (
                "--register-with-taints=dedicated=infra:NoSchedule,nodesmith.io/unregistered:NoExecute"
                in script
            )

        # `nodesmith-aws render --from-cluster` shows what such a node boots with, from the live objects
        described = (await (await clients.eks()).describe_cluster(name=CLUSTER))["cluster"]
        rendered = await anyio.run_process(
            [sys.executable, "-m", "nodesmith_aws.cli", "render", "--from-cluster", "--user-data-only",
             "--nodeclass", names["br"], "--nodepool", names["br"], "--instance-type", "m5.large",
             "--cluster-name", CLUSTER, "--region", REGION, "--endpoint-url", moto.url],
            env={**os.environ, "KUBECONFIG": str(kubeconfig), "AWS_ACCESS_KEY_ID": "testing"},
            check=False,
        )  # fmt: skip
        assert rendered.returncode == 0, rendered.stderr.decode()
        document = tomllib.loads(rendered.stdout.decode())
        assert document["settings"]["kubernetes"]["api-server"] == described["endpoint"]
        assert document["settings"]["kubernetes"]["node-taints"]["dedicated"] == ["infra:NoSchedule"]
        assert bottlerocket_model.problems(document, ours=set(document["settings"]["kubernetes"])) == []

        # deleting the NodeClasses (after their NodeClaims) leaves no template or profile behind
        await e2e.cleanup(kube, namespace=namespace, nodepools=pools)
        for nodeclass_name in names.values():
            await kube.delete(EC2_NODE_CLASSES, nodeclass_name)

        async def all_gone() -> bool:
            left = [n for n in names.values() if await _exists(kube, n)]
            return not left

        await e2e.eventually(all_gone, 90, "the EC2NodeClasses gone (finalizers released)")
        for nodeclass_name in names.values():
            assert await launch_template_user_data(ec2, nodeclass_name) == {}
        profiles = (await iam_client.list_instance_profiles())["InstanceProfiles"]
        assert [p["InstanceProfileName"] for p in profiles if p["Path"].startswith("/nodesmith/")] == []
    finally:
        daemon.stop()
        print(f"--- nodesmith (aws) log (last lines) ---\n{daemon.tail(40)}")
        await e2e.cleanup(kube, namespace=None, nodepools=pools)
        for nodeclass_name in names.values():
            with contextlib.suppress(kube_errors.NotFoundError):
                await kube.delete(EC2_NODE_CLASSES, nodeclass_name)
        await clients.close()


async def _exists(kube: KubeClient, nodeclass_name: str) -> bool:
    try:
        await kube.get(EC2_NODE_CLASSES, nodeclass_name)
    except kube_errors.NotFoundError:
        return False
    return True
