"""The plugin module: registered under the ``nodesmith`` entry-point group as ``template`` (pyproject.toml).

nodesmith loads it at start-up (``Plugins.load()``), checks every ``@hookimpl`` against the hook specs in
``nodesmith.cloudprovider.hookspecs``, and calls these hooks. Hooks are synchronous and must not do I/O;
anything slow belongs on the provider object ``nodesmith_cloud_provider`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nodesmith.cloudprovider.hookspecs import hookimpl
from nodesmith.cloudprovider.protocol import CloudProvider, ProviderContext
from nodesmith_provider_template import catalogue
from nodesmith_provider_template.provider import PROVIDER_NAME, TemplateProvider


@hookimpl
def nodesmith_provider_names() -> Sequence[str]:
    """The names ``nodesmith run --provider NAME`` accepts for this plugin; ``nodesmith plugins`` lists them."""
    return (PROVIDER_NAME,)


@hookimpl
def nodesmith_cloud_provider(name: str, context: ProviderContext) -> CloudProvider | None:
    """Build the provider if ``name`` is ours, else ``None`` (another plugin may know it). No I/O here:
    validate ``context.settings`` and raise ``nodesmith.errors.ConfigError`` naming a bad one."""
    if name != PROVIDER_NAME:
        return None
    return TemplateProvider(context)


@hookimpl
def nodesmith_well_known_labels() -> Sequence[str]:
    """Labels every instance type of ours defines, so pods may require them even if no NodePool does."""
    return (catalogue.LABEL_FAMILY,)


@hookimpl
def nodesmith_crds() -> Sequence[Mapping[str, Any]]:
    """CRDs for this provider's objects (its NodeClass). The template reads no NodeClass object, so it has
    none; a real provider returns its NodeClass CRD here (see ``nodesmith_kwok.plugin``)."""
    return ()
