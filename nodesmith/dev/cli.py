"""`nodesmith dev`: run a local Kubernetes control plane for development, tests and the demo.

Fed by the user's shell; drives `nodesmith.dev.cluster.LocalCluster` and `nodesmith.dev.binaries`.
Mounted under the root CLI by `nodesmith.cli` (``main.add_command(dev_cli.dev)``); also runnable on
its own as ``python -m nodesmith.dev.cli``. Progress goes to stderr, results to stdout, so
``eval "$(nodesmith dev env)"`` works.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

import click

from nodesmith import errors
from nodesmith.dev import binaries, cluster, host, images, incluster_demo, node, versions
from nodesmith.dev import helm as helm_binary

_name_option = click.option(
    "--name",
    default="default",
    show_default=True,
    help="Cluster name; its directory is <cache>/clusters/<name>.",
)


@click.group()
def dev() -> None:
    """Local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
    as plain processes on 127.0.0.1, with binaries found, cached or built with Go."""


@dev.command()
@click.option("--no-build", is_flag=True, help="Only look for binaries; fail instead of building.")
@click.option(
    "--real-node",
    is_flag=True,
    help="Also install/build what `up --real-node` and `image` need: packages, kubelet, kube-proxy, helm, "
    "the sandbox and base images (needs root).",
)
def build(no_build: bool, real_node: bool) -> None:
    """Find or build the pinned binaries and print where each one is."""
    progress = binaries.stderr_progress()
    wanted = {**versions.COMPONENTS, **(versions.NODE_COMPONENTS if real_node else {})}
    try:
        if real_node:
            host.ensure_packages(progress)
        paths = binaries.ensure_binaries(wanted, progress=progress, build=not no_build)
        if real_node:
            paths["helm"] = helm_binary.ensure_helm(progress)
            paths["pause image"] = images.pause_archive(progress)
            paths["base image"] = images.base_archive(progress)
    except errors.NodesmithError as err:
        raise click.ClickException(str(err)) from err
    for component, path in paths.items():
        click.echo(f"{component}\t{wanted.get(component, '-')}\t{path}")


@dev.command()
@_name_option
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for every component.")
@click.option(
    "--real-node",
    is_flag=True,
    help="Also run one real kubelet node (containerd, runc, CNI bridge, kube-proxy); needs root. "
    "Installs and builds what it lacks.",
)
def up(name: str, timeout: float, real_node: bool) -> None:
    """Start a fresh local cluster and print the KUBECONFIG export for it."""
    local = cluster.LocalCluster(name)
    try:
        if real_node:
            node.up(local, timeout=max(timeout, 300.0))
        else:
            local.up(timeout=timeout)
    except errors.NodesmithError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"export KUBECONFIG={shlex.quote(str(local.kubeconfig))}")


@dev.command()
@_name_option
def down(name: str) -> None:
    """Stop the cluster's processes (logs stay in <cluster dir>/logs) and its real node, if any."""
    local = cluster.LocalCluster(name)
    if node.RealNode(local).exists:
        started = time.monotonic()
        leftovers = node.down(local)
        click.echo(
            f"cluster {name!r} and its real node stopped in {time.monotonic() - started:.1f}s", err=True
        )
        if leftovers:
            raise click.ClickException("left behind:\n  " + "\n  ".join(leftovers))
        return
    if not local.is_running():
        click.echo(f"cluster {name!r} is not running", err=True)
        return
    took = local.down()
    click.echo(f"cluster {name!r} stopped in {took:.1f}s", err=True)


@dev.command()
@_name_option
def env(name: str) -> None:
    """Print shell exports for the cluster (use: eval "$(nodesmith dev env)")."""
    local = cluster.LocalCluster(name)
    if not local.is_running():
        click.echo(f"warning: cluster {name!r} is not running", err=True)
    for key, value in local.env().items():
        click.echo(f"export {key}={shlex.quote(value)}")


@dev.command()
@_name_option
def status(name: str) -> None:
    """Show each component's PID, liveness, readiness, memory and log; exit 1 unless all are ready."""
    local = cluster.LocalCluster(name)
    rows = local.status()
    if not rows:
        click.echo(f"cluster {name!r} has never been started ({local.directory})")
        sys.exit(1)
    click.echo(f"cluster {name!r}  server {local.server}  kubeconfig {local.kubeconfig}")
    for row in rows:
        rss = f"{row.rss_mib:.0f}MiB" if row.rss_mib is not None else "-"
        state = "ready" if row.ready else ("running" if row.running else "stopped")
        click.echo(f"  {row.name:<24} pid {row.pid:<8} {state:<8} rss {rss:<8} log {row.log}")
    if not all(r.ready for r in rows):
        sys.exit(1)


@dev.command()
@_name_option
@click.option("--timeout", default=180.0, show_default=True)
def wait(name: str, timeout: float) -> None:
    """Wait until every component of a running cluster answers ready."""
    local = cluster.LocalCluster(name)
    deadline = time.monotonic() + timeout
    while not (rows := local.status()) or not all(r.ready for r in rows):
        if time.monotonic() > deadline:
            raise click.ClickException(f"cluster {name!r} not ready after {timeout:.0f}s")
        time.sleep(0.5)


@dev.command()
@_name_option
def image(name: str) -> None:
    """Build deploy/Dockerfile without a Docker daemon (buildah), import it into the cluster's real
    node and print the image reference (last line)."""
    local = cluster.LocalCluster(name)
    real = node.RealNode(local)
    if not (real.exists and local.is_running()):
        raise click.ClickException(
            f"cluster {name!r} has no running real node: `nodesmith dev up --real-node`"
        )
    progress = binaries.stderr_progress()
    try:
        reference, archive = images.build(progress)
        real.import_image(archive)
    except errors.NodesmithError as err:
        raise click.ClickException(str(err)) from err
    progress(f"imported {reference} ({images.image_size(reference)} unpacked) into node {real.name}")
    click.echo(reference)


@dev.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_name_option
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def helm(name: str, args: tuple[str, ...]) -> None:
    """Run the pinned helm against the cluster: `nodesmith dev helm [--name N] -- ARGS...`."""
    local = cluster.LocalCluster(name)
    if not local.is_running():
        raise click.ClickException(f"cluster {name!r} is not running")
    try:
        path = helm_binary.ensure_helm()
    except errors.NodesmithError as err:
        raise click.ClickException(str(err)) from err
    env = {**os.environ, "KUBECONFIG": str(local.kubeconfig)}
    sys.exit(subprocess.run([str(path), *args], env=env, check=False).returncode)


@dev.command("demo-in-cluster")
@click.option("--name", default="in-cluster", show_default=True, help="Cluster name.")
@click.option("--keep", is_flag=True, help="Leave the cluster running at the end (stop: `dev down --name`).")
def demo_in_cluster(name: str, keep: bool) -> None:
    """nodesmith installed with its Helm chart on a real node, scaling kwok nodes (needs root)."""
    try:
        incluster_demo.run(name, keep=keep)
    except (errors.NodesmithError, subprocess.CalledProcessError) as err:
        raise click.ClickException(str(err)) from err


if __name__ == "__main__":
    dev()
