"""``nodesmith-aws``: the AWS provider's own commands (the core CLI has no extension point for them).

``nodesmith-aws render`` prints the launch template and user data a node of an EC2NodeClass, NodePool
and instance type would boot with (`nodesmith_aws.render`): offline from YAML files and cluster values
given as options, or ``--from-cluster`` reading the objects from the API server and the cluster values
from the provider settings / eks:DescribeCluster as the daemon does.
"""

from __future__ import annotations

import pathlib
from typing import Any

import anyio
import click
import yaml

from nodesmith import errors
from nodesmith_aws import cluster, render

__all__ = ["main"]


def _load(path: pathlib.Path, kind: str) -> dict[str, Any]:
    for document in yaml.safe_load_all(path.read_text()):
        if isinstance(document, dict) and document.get("kind") == kind:
            return document
    raise click.BadParameter(f"no {kind} in {path}")


@click.group()
def main() -> None:
    """Commands of the nodesmith AWS provider."""


@main.command("render")
@click.option(
    "--nodeclass",
    "nodeclass_ref",
    required=True,
    help="EC2NodeClass: a YAML file, or a name with --from-cluster.",
)
@click.option(
    "--nodepool", "nodepool_ref", required=True, help="NodePool: a YAML file, or a name with --from-cluster."
)
@click.option("--instance-type", required=True, help="e.g. m5.large")
@click.option("--cluster-name", required=True)
@click.option("--cluster-endpoint", default="", help="API server URL (default: eks:DescribeCluster).")
@click.option("--cluster-ca-bundle", default="", help="Base64 CA bundle (default: eks:DescribeCluster).")
@click.option("--cluster-cidr", default="", help="Service CIDR (default: eks:DescribeCluster).")
@click.option("--cluster-dns", default="", help="Cluster DNS IP (default: service CIDR + 10).")
@click.option("--kubernetes-version", default="", help="e.g. 1.31 (default: eks:DescribeCluster).")
@click.option("--region", default="", help="Only needed when something is discovered (AWS_REGION otherwise).")
@click.option("--endpoint-url", default="", help="Send DescribeCluster here (a VPC endpoint, moto ...).")
@click.option(
    "--max-pods", type=int, default=None, help="Default: the NodeClass's kubelet.maxPods, else 110."
)
@click.option("--capacity-type", type=click.Choice(["on-demand", "spot"]), default="on-demand")
@click.option("--image-id", default=None, help="AMI (default: the first in the NodeClass status).")
@click.option("--from-cluster", is_flag=True, help="Read the EC2NodeClass and NodePool from the API server.")
@click.option("--user-data-only", is_flag=True, help="Print only the user data.")
def render_command(
    nodeclass_ref: str,
    nodepool_ref: str,
    instance_type: str,
    cluster_name: str,
    from_cluster: bool,
    user_data_only: bool,
    max_pods: int | None,
    capacity_type: str,
    image_id: str | None,
    **cluster_options: str,
) -> None:
    """Print the launch template fields and user data for one node."""
    from nodesmith_aws.settings import Settings

    raw = {k.replace("_", "-"): v for k, v in cluster_options.items() if v}
    given = ("cluster-endpoint", "cluster-ca-bundle", "cluster-cidr", "kubernetes-version")
    if "region" not in raw and all(raw.get(k) for k in given):
        raw["region"] = "offline"  # nothing is discovered, so no AWS call needs a region
    try:
        settings = Settings.from_context(cluster_name, raw)
        found = cluster.discover_blocking(settings)
    except errors.ConfigError as err:
        raise click.ClickException(str(err)) from err
    if from_cluster:
        nodeclass_dict, nodepool_dict = anyio.run(_from_cluster, nodeclass_ref, nodepool_ref)
    else:
        nodeclass_dict = _load(pathlib.Path(nodeclass_ref), "EC2NodeClass")
        nodepool_dict = _load(pathlib.Path(nodepool_ref), "NodePool")
    kubelet = (nodeclass_dict.get("spec") or {}).get("kubelet") or {}
    pods = max_pods if max_pods is not None else int(kubelet.get("maxPods", 110))
    try:
        rendered = render.render(
            found, nodeclass_dict, nodepool_dict, instance_type,
            max_pods=pods, capacity_type=capacity_type, image_id=image_id,
        )  # fmt: skip
    except errors.NodesmithError as err:
        raise click.ClickException(str(err)) from err
    if user_data_only:
        click.echo(rendered.user_data, nl=False)
        return
    click.echo(yaml.safe_dump(rendered.to_dict(), sort_keys=False, width=1_000_000), nl=False)


async def _from_cluster(nodeclass_name: str, nodepool_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from nodesmith.kube import resources
    from nodesmith.kube.client import KubeClient
    from nodesmith_aws import nodeclass

    kube = await KubeClient.connect()
    nc = await kube.get(resources.node_class(nodeclass.GROUP, nodeclass.KIND), nodeclass_name)
    pool = await kube.get(resources.NODEPOOLS, nodepool_name)
    return dict(nc), dict(pool)


if __name__ == "__main__":
    main()
