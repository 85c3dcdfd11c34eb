"""The ``nodesmith`` command line: one entry point, one sub-command per job.

Each command exists only when it works; ``--help`` on every one says what it does.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform

import anyio
import click

from nodesmith import errors
from nodesmith.cloudprovider import manager
from nodesmith.dev import cli as dev_cli

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nodesmith", prog_name="nodesmith")
def main() -> None:
    """nodesmith: just-in-time Kubernetes nodes, with Karpenter's semantics."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def version(as_json: bool) -> None:
    """Print the versions of nodesmith, its installed plugins and Python."""
    plugin_versions = {name: f"{dist} {ver}" for name, dist, ver in manager.Plugins.load().distributions()}
    info = {
        "nodesmith": importlib.metadata.version("nodesmith"),
        "python": platform.python_version(),
        "plugins": plugin_versions,
    }
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    click.echo(f"nodesmith {info['nodesmith']} (Python {info['python']})")
    for name, dist in sorted(plugin_versions.items()):
        click.echo(f"  plugin {name}: {dist}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins(as_json: bool) -> None:
    """List the installed plugins (entry-point group ``nodesmith``) and the providers they offer."""
    loaded = manager.Plugins.load()
    found = [{"name": n, "distribution": d, "version": v} for n, d, v in loaded.distributions()]
    providers = loaded.provider_names()
    if as_json:
        info = {"plugins": found, "providers": providers, "well_known_labels": loaded.well_known_labels()}
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    for plugin in found:
        click.echo(f"{plugin['name']}: {plugin['distribution']} {plugin['version']}")
    click.echo(f"providers: {', '.join(providers) or '(none)'}")


def _provider_settings(provider: str, pairs: tuple[str, ...]) -> dict[str, str]:
    """``NODESMITH_<PROVIDER>_SOME_KEY`` variables and ``--provider-setting some-key=value`` flags (flags win)."""
    prefix = f"NODESMITH_{provider.upper()}_"
    out = {
        name[len(prefix) :].lower().replace("_", "-"): value
        for name, value in os.environ.items()
        if name.startswith(prefix)
    }
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--provider-setting")
        out[key] = value
    return out


@main.command(context_settings={"auto_envvar_prefix": "NODESMITH", "show_default": True})
@click.option("--provider", required=True, help="Cloud provider plugin to use, by name (e.g. kwok, aws).")
@click.option(
    "--provider-setting",
    "provider_setting",
    multiple=True,
    metavar="KEY=VALUE",
    help="A provider option; repeatable.",
)
@click.option("--cluster-name", default="nodesmith", help="Name of the cluster (tags, ownership).")
@click.option(
    "--kubeconfig",
    default=None,
    help="Kubeconfig path; default $KUBECONFIG, ~/.kube/config, then in-cluster.",
)
@click.option(
    "--metrics-port", default=8080, type=int, help="Port serving /metrics (0 = on the health port)."
)
@click.option("--health-port", default=8081, type=int, help="Port serving /healthz and /readyz.")
@click.option(
    "--batch-idle-duration", default="1s", help="Provisioning batch closes after this long without new pods."
)
@click.option(
    "--batch-max-duration", default="10s", help="Provisioning batch closes after this long regardless."
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--leader-elect/--no-leader-elect", "leader_election", default=True, help="Run leader election."
)
@click.option("--leader-election-namespace", default="kube-system", help="Namespace of the leader Lease.")
@click.option("--leader-election-name", default="nodesmith-leader-election", help="Name of the leader Lease.")
@click.option("--lease-duration", default="15s", help="How long a lease is valid without renewal.")
@click.option(
    "--renew-deadline", default="10s", help="How long the leader retries renewing before giving up."
)
@click.option("--retry-period", default="2s", help="Interval between acquire/renew attempts.")
@click.option("--feature-gates", default="", help="Comma-separated Name=true|false.")
@click.option(
    "--identity", default="", help="Leader election identity (default: hostname and a random suffix)."
)
@click.option(
    "--traces-exporter",
    default="none",
    type=click.Choice(["none", "console"]),
    help="Where the spans of each reconcile go (none: tracing off).",
)
def run(
    provider: str, provider_setting: tuple[str, ...], log_level: str, traces_exporter: str, **options: object
) -> None:
    """Run the nodesmith daemon: informers, health/metrics endpoints, leader election and reconcilers."""
    from nodesmith.runtime import app, logs
    from nodesmith.runtime.settings import Settings

    try:
        settings = Settings.from_raw(
            provider=provider,
            provider_settings=_provider_settings(provider, provider_setting),
            log_level=log_level,
            **options,  # type: ignore[arg-type]
        )
    except errors.ConfigError as err:
        raise click.BadParameter(err.message, param_hint=f"--{err.setting}") from err
    logs.configure(settings.logging_level)
    try:
        anyio.run(functools.partial(app.run, settings, traces=traces_exporter))
    except errors.NodesmithError as err:
        raise click.ClickException(str(err)) from err


main.add_command(dev_cli.dev)


@main.command()
@click.option("--replicas", default=4, show_default=True, help="How many inflate replicas to scale to.")
@click.option(
    "--keep",
    is_flag=True,
    help="Leave the control plane running afterwards (stop it with `nodesmith dev down --name demo`).",
)
def demo(replicas: int, keep: bool) -> None:
    """Local control plane + nodesmith (kwok provider): scale `inflate` 0 -> N -> 0 and show each step."""
    from nodesmith import demo as demo_module
    from nodesmith.dev import binaries
    from nodesmith.dev import cluster as dev_cluster
    from nodesmith.testing import cluster as testing_cluster

    say = demo_module.Progress()
    say(
        "starting the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)"
    )
    if keep:
        local = dev_cluster.LocalCluster("demo", progress=binaries.stderr_progress("nodesmith dev"))
        if not local.is_running():
            local.up()
        kubeconfig = str(local.kubeconfig)
        timings = anyio.run(lambda: demo_module.run_demo(kubeconfig, say, replicas=replicas))
    else:
        with testing_cluster.start_local_cluster(
            "demo", progress=binaries.stderr_progress("nodesmith dev")
        ) as plane:
            timings = anyio.run(lambda: demo_module.run_demo(str(plane.kubeconfig), say, replicas=replicas))
    say(f"done: scale-up {timings['scale_up']:.1f}s, scale-down {timings['scale_down']:.1f}s")


@main.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              show_default=True, help="Where to write the nodesmith manifests.")  # fmt: skip
@click.option("--role", help="Node IAM role for EC2NodeClasses whose source relied on a global setting.")
@click.option("--instance-profile", help="Instance profile for such EC2NodeClasses (instead of --role).")
@click.option("--strict", is_flag=True, help="Exit 1 if any field was dropped or the result is invalid.")
def convert(
    files: tuple[str, ...], output: str, role: str | None, instance_profile: str | None, strict: bool
) -> None:
    """Convert Karpenter manifests (v1alpha5 Provisioner / AWSNodeTemplate, v1beta1 and v1 NodePool /
    EC2NodeClass) from FILES or stdin into nodesmith manifests; the report of fields that changed,
    moved or have no equivalent goes to stderr (and as comments at the top of the output)."""
    import yaml

    from nodesmith import convert as convert_module

    docs: list[object] = []
    for name in files or ("-",):
        with click.open_file(name) as stream:
            try:
                docs.extend(yaml.safe_load_all(stream))
            except yaml.YAMLError as err:
                raise click.ClickException(f"{name}: not valid YAML: {err}") from err
    bad = [d for d in docs if d is not None and not isinstance(d, dict)]
    if bad:
        raise click.ClickException(f"expected Kubernetes objects, got {type(bad[0]).__name__}")
    options = convert_module.Options(role=role, instance_profile=instance_profile)
    result = convert_module.convert_all([d for d in docs if isinstance(d, dict)], options)
    header = "".join(f"# {note}\n" for note in result.notes)
    with click.open_file(output, "w") as out:
        out.write(header + yaml.safe_dump_all(result.objects, sort_keys=False))
    for note in result.notes:
        click.echo(str(note), err=True)
    if strict and not result.lossless:
        raise SystemExit(1)
