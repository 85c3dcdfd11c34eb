"""The ``nodesmith`` command line: one entry point, one sub-command per job.

Each command exists only when it works; ``--help`` on every one says what it does.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import time
import typing

import anyio
import attrs
import click

from nodesmith import cli_input, errors
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
        info = {
            "plugins": found,
            "providers": providers,
            "well_known_labels": sorted(loaded.well_known_labels()),
        }
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
    "--scheduler-config",
    default=None,
    help="KubeSchedulerConfiguration file: its PodTopologySpread defaults apply to pods without spread constraints.",
)
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
@cli_input.guarded
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
        docs.extend(cli_input.yaml_documents(name))
    bad = [d for d in docs if d is not None and not isinstance(d, dict)]
    if bad:
        raise cli_input.fail(f"expected Kubernetes objects, got {type(bad[0]).__name__}")
    options = convert_module.Options(role=role, instance_profile=instance_profile)
    try:
        converters = manager.Plugins.load().karpenter_converters()
        result = convert_module.convert_all([d for d in docs if isinstance(d, dict)], options, converters)
    except errors.ValidationError as err:
        raise cli_input.fail(str(err)) from err
    header = "".join(f"# {note}\n" for note in result.notes)
    with click.open_file(output, "w") as out:
        out.write(header + yaml.safe_dump_all(result.objects, sort_keys=False))
    for note in result.notes:
        click.echo(str(note), err=True)
    if strict and not result.lossless:
        raise SystemExit(1)


# -- what if? simulate and explain ------------------------------------------------------------------------

SOLVE_SECONDS = 60.0
"""How long one replayed scheduling run may take (the provisioner's deadline)."""


@attrs.frozen
class _SnapshotSource:
    """Where a what-if command's snapshot comes from: ``path`` (offline), or the cluster in
    ``kubeconfig`` through ``provider`` (live)."""

    path: str | None
    provider: str | None
    provider_setting: tuple[str, ...]
    cluster_name: str
    kubeconfig: str | None

    def load(
        self, extra_nodepools: typing.Sequence[typing.Mapping[str, typing.Any]] = ()
    ) -> tuple[typing.Any, dict[str, typing.Any]]:
        """The snapshot, and (live only) the instance types the provider offers ``extra_nodepools``."""
        from nodesmith.whatif import live, snapshotfile

        if self.path is not None:
            if self.provider is not None:
                raise click.UsageError("give either --snapshot or --provider (a live snapshot), not both")
            text = cli_input.read_text(self.path)
            try:
                return snapshotfile.loads(text, source=self.path), {}
            except errors.NodesmithError as err:
                raise cli_input.fail(str(err)) from err
        if self.provider is None:
            raise click.UsageError(
                "give --snapshot FILE, or --provider NAME to take a snapshot from the cluster"
            )
        settings = _provider_settings(self.provider, self.provider_setting)
        source = live.Source(self.provider, settings, self.cluster_name, self.kubeconfig)
        try:
            return anyio.run(lambda: live.take_snapshot(source, extra_nodepools=extra_nodepools))
        except errors.NodesmithError as err:
            raise click.ClickException(f"taking a snapshot from the cluster failed: {err}") from err


def _snapshot_options(function: typing.Callable[..., None]) -> typing.Callable[..., None]:
    """``--snapshot FILE``, or the flags that take a snapshot from the live cluster; the command gets
    them as one ``source: _SnapshotSource``."""

    @functools.wraps(function)
    def with_source(
        *,
        snapshot_path: str | None,
        provider: str | None,
        provider_setting: tuple[str, ...],
        cluster_name: str,
        kubeconfig: str | None,
        **rest: typing.Any,
    ) -> None:
        source = _SnapshotSource(snapshot_path, provider, provider_setting, cluster_name, kubeconfig)
        function(source=source, **rest)

    options = [
        click.option(
            "--snapshot",
            "snapshot_path",
            type=click.Path(exists=True, dir_okay=False, allow_dash=True),
            help="A snapshot file (YAML or JSON, from `nodesmith simulate --dump`); offline. "
            "Without it the snapshot is taken from the cluster in --kubeconfig.",
        ),
        click.option("--provider", help="Live snapshot: the provider plugin that lists instance types."),
        click.option(
            "--provider-setting",
            "provider_setting",
            multiple=True,
            metavar="KEY=VALUE",
            help="Live snapshot: a provider option; repeatable.",
        ),
        click.option(
            "--cluster-name", default="nodesmith", show_default=True, help="Live snapshot: cluster name."
        ),
        click.option(
            "--kubeconfig", default=None, help="Live snapshot: kubeconfig path (default as kubectl)."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON."),
    ]
    wrapped: typing.Callable[..., None] = with_source
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def _deadline() -> typing.Callable[[], bool]:
    limit = time.monotonic() + SOLVE_SECONDS
    return lambda: time.monotonic() > limit


def _echo(record: typing.Any, lines: typing.Callable[[typing.Any], list[str]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2))
    else:
        click.echo("\n".join(lines(record)))


@main.command()
@_snapshot_options
@click.option(
    "--nodepool", "nodepool_files", multiple=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="A file of NodePool manifests that replace (or add) NodePools of the same name; repeatable.",
)  # fmt: skip
@click.option(
    "--delete-nodepool", "deleted", multiple=True, metavar="NAME", help="Delete a NodePool; repeatable."
)
@click.option(
    "--dump", type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the live snapshot to this file (JSON if it ends in .json, else YAML); "
    "without NodePool changes, only that.",
)  # fmt: skip
@cli_input.guarded
def simulate(
    source: _SnapshotSource,
    as_json: bool,
    nodepool_files: tuple[str, ...],
    deleted: tuple[str, ...],
    dump: str | None,
) -> None:
    """Apply NodePool changes to a snapshot of the cluster and show BEFORE vs AFTER: NodeClaims launched
    and pods left pending, nodes the change drifts (and what the budgets allow at once), hourly cost.
    Offline with --snapshot; nothing is ever written to the cluster."""
    from nodesmith.whatif import render, snapshotfile
    from nodesmith.whatif import simulate as whatif_simulate

    if dump is not None and source.path is not None:
        raise click.UsageError("--dump takes a live snapshot; it does not go with --snapshot")
    manifests: list[typing.Mapping[str, typing.Any]] = []
    for name in nodepool_files:
        manifests.extend(d for d in cli_input.yaml_documents(name) if d is not None)
    snap, changed_types = source.load(manifests)
    if dump is not None:
        with click.open_file(dump, "w") as out:
            out.write(snapshotfile.dumps(snap, as_json=dump.endswith(".json")))
        if not manifests and not deleted:
            click.echo(f"snapshot written to {dump}", err=True)
            return
    change = whatif_simulate.Change(tuple(manifests), tuple(deleted), changed_types)
    try:
        with cli_input.replaying(source.path):
            report = whatif_simulate.run(snap, change, deadline=_deadline())
    except errors.ValidationError as err:
        raise click.ClickException(f"invalid change: {err.message}") from err
    _echo(report, render.report, as_json)


@main.group()
def explain() -> None:
    """Say why a pod is pending, or what disruption makes of a node (on a snapshot, offline or live)."""


@explain.command("pod")
@click.argument("pod")
@_snapshot_options
@cli_input.guarded
def explain_pod(
    pod: str,
    source: _SnapshotSource,
    as_json: bool,
) -> None:
    """Why POD (NAMESPACE/NAME) is pending: a provisioning run over every pending pod says whether it
    would go to an existing node or a new NodeClaim (pool, instance type, price), or which constraint of
    each NodePool refused it."""
    from nodesmith.whatif import explain as whatif_explain
    from nodesmith.whatif import render

    snap, _ = source.load()
    try:
        with cli_input.replaying(source.path):
            result = whatif_explain.explain_pod(snap, pod, deadline=_deadline())
    except LookupError as err:
        raise click.ClickException(str(err.args[0])) from err
    _echo(result, render.pod_explanation, as_json)


@explain.command("node")
@click.argument("node")
@_snapshot_options
@click.option("--spot-to-spot", is_flag=True, help="As with the SpotToSpotConsolidation feature gate on.")
@cli_input.guarded
def explain_node(
    node: str,
    source: _SnapshotSource,
    as_json: bool,
    spot_to_spot: bool,
) -> None:
    """The removal simulation for NODE (a Node or NodeClaim name): every reason it is not a disruption
    candidate, or whether its pods fit elsewhere (delete), need a cheaper replacement (replace, with
    prices and savings), or neither and why; and what the disruption loop would do first."""
    from nodesmith.disruption import consolidation
    from nodesmith.whatif import explain as whatif_explain
    from nodesmith.whatif import render

    snap, _ = source.load()
    try:
        with cli_input.replaying(source.path):
            result = whatif_explain.explain_node(
                snap, node, options=consolidation.Options(spot_to_spot=spot_to_spot), deadline=_deadline()
            )
    except LookupError as err:
        raise click.ClickException(str(err.args[0])) from err
    _echo(result, render.node_explanation, as_json)


@explain.command("decisions")
@click.option(
    "--url", default="http://127.0.0.1:8081", show_default=True,
    help="The running daemon's health endpoint (its --health-port), e.g. through kubectl port-forward.",
)  # fmt: skip
@click.option("--pod", metavar="NAMESPACE/NAME", help="Only decisions that left this pod pending.")
@click.option("--node", metavar="NAME", help="Only disruption decisions about this Node or NodeClaim.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def explain_decisions(url: str, pod: str | None, node: str | None, as_json: bool) -> None:
    """What the running daemon actually decided, newest last: its recent provisioning runs (NodeClaims
    created, pods left pending and why) and disruption runs (the command, or every rejection: budget,
    PDB, do-not-disrupt, not cheaper ...). The leader keeps its last 200 decisions in memory."""
    import httpx

    from nodesmith.whatif import recorded

    try:
        response = httpx.get(url.rstrip("/") + "/decisions", timeout=10)
        response.raise_for_status()
        records = response.json()["decisions"]
    except (httpx.HTTPError, ValueError, KeyError) as err:
        raise click.ClickException(f"cannot read decisions from {url}: {err}") from err
    chosen = recorded.select(records, pod=pod, node=node)
    if as_json:
        click.echo(json.dumps(chosen, indent=2))
    else:
        click.echo("\n".join(recorded.lines(chosen, pod=pod, node=node)))
