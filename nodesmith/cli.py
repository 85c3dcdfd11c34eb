"""The ``nodesmith`` command line: one entry point, one sub-command per job.

Each command exists only when it works; ``--help`` on every one says what it does.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform

import click

from nodesmith.cloudprovider import manager

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
