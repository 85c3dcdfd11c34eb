"""Plugin discovery and the checks the plugin manager makes on providers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.nodepool import NodePool
from nodesmith.api.requirements import Requirements
from nodesmith.cloudprovider import manager, protocol
from nodesmith.cloudprovider.types import InstanceType, Offering
from nodesmith.testing import conformance, manifests


def test_first_party_providers_are_discovered_through_entry_points() -> None:
    plugins = manager.Plugins.load()
    names = {name for name, _, _ in plugins.distributions()}
    assert {"aws", "kwok"} <= names
    dists = {dist for _, dist, _ in plugins.distributions()}
    assert {"nodesmith-aws", "nodesmith-kwok"} <= dists


def test_provider_well_known_labels_join_the_core_set_as_a_value() -> None:
    well_known = manager.Plugins.load().well_known_labels()
    assert "aws.nodesmith.io/instance-family" in well_known
    assert "kwok.nodesmith.io/instance-size" in well_known
    assert well_known >= labels.CORE_WELL_KNOWN_LABELS
    assert "aws.nodesmith.io/instance-family" not in labels.CORE_WELL_KNOWN_LABELS  # no global was changed


def test_unknown_provider_names_what_is_installed() -> None:
    plugins = manager.Plugins(load_entry_points=False, plugins=[_provider_plugin("fakecloud", object())])
    with pytest.raises(errors.PluginError, match=r"'nope'.*available: fakecloud.*pip install nodesmith-nope"):
        plugins.cloud_provider("nope", protocol.ProviderContext(cluster_name="c"))


def test_incomplete_provider_is_refused_naming_plugin_and_missing_members() -> None:
    class HalfProvider:
        name = "half"

        async def create(self, nodeclaim: Any) -> Any:
            return nodeclaim

    plugins = manager.Plugins(load_entry_points=False, plugins=[_provider_plugin("half", HalfProvider())])
    with pytest.raises(errors.PluginError) as excinfo:
        plugins.cloud_provider("half", protocol.ProviderContext(cluster_name="c"))
    message = str(excinfo.value)
    assert "plugin 'provider-half'" in message
    missing = message.split("members:")[1]
    assert "delete" in missing
    assert "get_instance_types" in missing
    assert "create" not in missing


def test_plugin_implementing_an_unknown_hook_fails_at_load() -> None:
    bad = manager.module_plugin("bad", nodesmith_not_a_hook=lambda: None)
    with pytest.raises(errors.PluginError, match="unknown hook"):
        manager.Plugins(load_entry_points=False, plugins=[bad])


def test_instance_type_adjusters_chain_in_turn() -> None:
    def halve(nodepool_name: str, instance_types: Sequence[InstanceType]) -> list[InstanceType]:
        return [_with_price(it, 0.5) for it in instance_types]

    def hide_big(instance_types: Sequence[InstanceType]) -> list[InstanceType]:
        return [it for it in instance_types if it.name != "big"]

    plugins = manager.Plugins(
        load_entry_points=False,
        plugins=[
            manager.module_plugin("halve", nodesmith_adjust_instance_types=halve),
            manager.module_plugin("hide", nodesmith_adjust_instance_types=hide_big),
        ],
    )
    result = plugins.adjust_instance_types(
        "default", [_instance_type("small", 1.0), _instance_type("big", 4.0)]
    )
    assert [(it.name, it.offerings[0].price) for it in result] == [("small", 0.5)]


@pytest.mark.anyio
async def test_instance_types_are_read_per_nodepool_adjusted_and_refusals_kept_apart() -> None:
    def hide_big(instance_types: Sequence[InstanceType]) -> list[InstanceType]:
        return [it for it in instance_types if it.name != "big"]

    class Provider:
        async def get_instance_types(self, nodepool: NodePool) -> Sequence[InstanceType]:
            if nodepool.name == "throttled":
                raise errors.ProviderError("RequestLimitExceeded")
            return [_instance_type("small", 1.0), _instance_type("big", 4.0)]

    plugins = manager.Plugins(
        load_entry_points=False,
        plugins=[manager.module_plugin("hide", nodesmith_adjust_instance_types=hide_big)],
    )
    pools = [NodePool.from_dict(manifests.nodepool_manifest(name)) for name in ("default", "throttled")]
    found, refused = await plugins.instance_types(Provider(), pools)  # type: ignore[arg-type]  # only the method read
    assert {name: [it.name for it in types] for name, types in found.items()} == {"default": ["small"]}
    assert refused == {"throttled": "RequestLimitExceeded"}


def test_a_failing_decision_observer_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def boom(decision: Any) -> None:
        raise RuntimeError("observer broke")

    def record(decision: Any) -> None:
        seen.append(decision["kind"])

    plugins = manager.Plugins(
        load_entry_points=False,
        plugins=[
            manager.module_plugin("record", nodesmith_observe_decision=record),
            manager.module_plugin("boom", nodesmith_observe_decision=boom),
        ],
    )
    plugins.observe_decision({"kind": "provision"})
    assert seen == ["provision"]
    assert "boom failed in nodesmith_observe_decision" in caplog.text


REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "plugins" / "provider-template"

Install = Callable[[Path], dict[str, str]]


def install_into(target: Path, source: Path) -> dict[str, str]:
    """Put a distribution into a throwaway ``--target`` directory with ``uv pip`` (no dependencies:
    nodesmith itself comes from this environment) and return an environment for a Python subprocess that
    sees it, as if it had been ``pip install``-ed."""
    uv = shutil.which("uv")
    assert uv, "uv is needed to install third-party test distributions (the set-up installs it)"
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    return {**os.environ, "PYTHONPATH": str(target)}


@pytest.fixture
def pip_install(tmp_path: Path) -> Install:
    """``install(source)``: `install_into` a directory of this test's own."""
    return lambda source: install_into(tmp_path / "site", source)


@pytest.fixture(scope="module")
def template_installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The provider template, installed once for the tests that only read the installation (building and
    installing it is the slow part, and both would do the same)."""
    return install_into(tmp_path_factory.mktemp("template") / "site", TEMPLATE)


def test_a_third_party_distribution_installed_with_pip_is_discovered(
    tmp_path: Path, pip_install: Install
) -> None:
    source = tmp_path / "nodesmith-fakecloud"
    (source / "nodesmith_fakecloud").mkdir(parents=True)
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "nodesmith-fakecloud"
            version = "1.2.3"
            [project.entry-points.nodesmith]
            fakecloud = "nodesmith_fakecloud"
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"
            """
        )
    )
    (source / "nodesmith_fakecloud" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from nodesmith.cloudprovider.hookspecs import hookimpl

            @hookimpl
            def nodesmith_provider_names():
                return ["fakecloud"]
            """
        )
    )
    env = pip_install(source)
    out = subprocess.run(
        [sys.executable, "-m", "nodesmith", "plugins", "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    info = json.loads(out.stdout)
    assert {"name": "fakecloud", "distribution": "nodesmith-fakecloud", "version": "1.2.3"} in info["plugins"]
    assert "fakecloud" in info["providers"]


_DISCOVER = """
import json
from nodesmith.cloudprovider import manager, protocol

plugins = manager.Plugins.load()
provider = plugins.cloud_provider("template", protocol.ProviderContext(cluster_name="c"))
print(json.dumps({"distributions": plugins.distributions(), "providers": plugins.provider_names(),
                  "name": provider.name}))
"""


def test_the_provider_template_is_not_installed_in_the_workspace() -> None:
    plugins = manager.Plugins.load()
    assert "template" not in plugins.provider_names()
    assert "nodesmith-provider-template" not in {dist for _, dist, _ in plugins.distributions()}


def test_the_provider_template_installs_with_pip_and_plugins_load_builds_it(
    template_installed: dict[str, str],
) -> None:
    env = template_installed
    out = subprocess.run(
        [sys.executable, "-c", _DISCOVER], check=True, capture_output=True, text=True, env=env
    )
    info = json.loads(out.stdout)
    assert ["template", "nodesmith-provider-template", "0.1.0"] in info["distributions"]
    assert "template" in info["providers"]
    assert info["name"] == "template"


def test_the_installed_provider_template_passes_its_own_conformance_tests(
    template_installed: dict[str, str],
) -> None:
    env = template_installed
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(TEMPLATE / "tests"), "-q", "-rA", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    passed = {
        line.split("::", 1)[1]
        for line in run.stdout.splitlines()
        if line.startswith("PASSED ") and "::" in line
    }
    conformance_tests = {
        f"TestTemplateConformance::{name}"
        for name in dir(conformance.ProviderConformance)
        if name.startswith("test_")
    }
    assert conformance_tests, "the conformance suite has tests"
    assert conformance_tests <= passed, run.stdout[-3000:]


def _provider_plugin(name: str, provider: object) -> Any:
    def names() -> list[str]:
        return [name]

    def build(name: str, context: protocol.ProviderContext) -> object | None:
        return provider if name == provider_name else None

    provider_name = name
    return manager.module_plugin(
        f"provider-{name}", nodesmith_provider_names=names, nodesmith_cloud_provider=build
    )


def _instance_type(name: str, price: float) -> InstanceType:
    return InstanceType(name, Requirements(), (Offering.of("z1", "on-demand", price),), {"cpu": 1000})


def _with_price(it: InstanceType, factor: float) -> InstanceType:
    offerings = tuple(Offering(o.requirements, o.price * factor, o.available) for o in it.offerings)
    return InstanceType(it.name, it.requirements, offerings, it.capacity, it.overhead)
