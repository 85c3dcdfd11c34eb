"""Loads nodesmith plugins from entry points and answers the core's questions through their hooks.

The runtime builds one ``Plugins`` at start-up (``Plugins.load()``), picks the provider named by
``--provider``, and hands the manager to whoever needs instance-type adjustments or decision observers.
Tests build one with ``Plugins(load_entry_points=False)`` and register plugins in-process, so the fake
provider goes through the same checks as real ones.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.nodepool import NodePool
from nodesmith.cloudprovider import hookspecs, protocol
from nodesmith.cloudprovider.types import InstanceType

if TYPE_CHECKING:
    from nodesmith.convert import KarpenterConverter

__all__ = ["Plugins"]

log = logging.getLogger(__name__)


class Plugins:
    """The pluggy manager for the ``nodesmith`` project, with typed helpers for each hook."""

    def __init__(self, *, load_entry_points: bool = True, plugins: Sequence[object] = ()) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        for plugin in plugins:
            self.register(plugin)
        if load_entry_points:
            try:
                self.pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
            except Exception as err:  # a plugin that fails to import names itself in the traceback
                raise errors.PluginError(f"loading nodesmith plugins failed: {err}") from err
        self._check()

    @classmethod
    def load(cls) -> Plugins:
        """Load every installed plugin (entry-point group ``nodesmith``)."""
        return cls()

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin (a module or an object with ``@hookimpl`` methods)."""
        self.pm.register(plugin, name)

    def _check(self) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as err:
            raise errors.PluginError(f"plugin {err.plugin!r} implements an unknown hook: {err}") from err

    def plugin_names(self) -> list[str]:
        """Names of the registered plugins (entry-point names for installed ones), sorted."""
        return sorted(name for name, _ in self.pm.list_name_plugin() if name is not None)

    def distributions(self) -> list[tuple[str, str, str]]:
        """(entry-point name, distribution, version) of each plugin loaded from an entry point."""
        out = []
        for plugin, dist in self.pm.list_plugin_distinfo():
            name = self.pm.get_name(plugin) or repr(plugin)
            out.append((name, dist.project_name, dist.version))
        return sorted(out)

    # -- providers ---------------------------------------------------------------------------------

    def provider_names(self) -> list[str]:
        """Every provider name any plugin can build, sorted."""
        return sorted({name for names in self.pm.hook.nodesmith_provider_names() for name in names})

    def cloud_provider(self, name: str, context: protocol.ProviderContext) -> protocol.CloudProvider:
        """Build the provider called ``name`` and check it implements the contract.

        Raises ``PluginError`` naming the plugin and the missing members when it does not, and listing the
        providers that are installed when no plugin knows ``name``.
        """
        provider, owner = None, "?"
        for impl in self.pm.hook.nodesmith_cloud_provider.get_hookimpls()[::-1]:
            provider = _call(impl, name=name, context=context)
            if provider is not None:
                owner = impl.plugin_name
                break
        if provider is None:
            known = ", ".join(self.provider_names()) or "none installed"
            raise errors.PluginError(
                f"no plugin provides the cloud provider {name!r} (available: {known}); "
                f"install one, e.g. `pip install nodesmith-{name}`"
            )
        missing = [member for member in protocol.REQUIRED_MEMBERS if not hasattr(provider, member)]
        if missing:
            raise errors.PluginError(
                f"plugin {owner!r}: the object returned by nodesmith_cloud_provider({name!r}) "
                f"lacks CloudProvider members: {', '.join(missing)}"
            )
        return provider  # type: ignore[no-any-return]

    def crds(self) -> list[Mapping[str, Any]]:
        """The CRDs every plugin declares, in plugin order."""
        return [crd for crds in self.pm.hook.nodesmith_crds() for crd in crds]

    def well_known_labels(self) -> frozenset[str]:
        """The core's well-known labels and every plugin's: a value the composition root hands to the
        cluster state, so each decision (and each snapshot file) carries it."""
        declared = {key for keys in self.pm.hook.nodesmith_well_known_labels() for key in keys}
        return labels.CORE_WELL_KNOWN_LABELS | declared

    def karpenter_converters(self) -> list[KarpenterConverter]:
        """Every plugin's converter of its Karpenter objects (`nodesmith.convert.KarpenterConverter`),
        what ``nodesmith convert`` passes to ``convert_all``."""
        return list(self.pm.hook.nodesmith_karpenter_converter())

    # -- extension hooks ---------------------------------------------------------------------------

    def adjust_instance_types(
        self, nodepool_name: str, instance_types: Sequence[InstanceType]
    ) -> list[InstanceType]:
        """Pass the instance types through every ``nodesmith_adjust_instance_types`` in turn."""
        current = list(instance_types)
        for impl in self.pm.hook.nodesmith_adjust_instance_types.get_hookimpls()[::-1]:
            result = _call(impl, nodepool_name=nodepool_name, instance_types=current)
            if result is not None:
                current = list(result)
        return current

    async def instance_types(
        self, provider: protocol.CloudProvider, pools: Iterable[NodePool]
    ) -> tuple[dict[str, tuple[InstanceType, ...]], dict[str, str]]:
        """Each NodePool's instance types as the provider offers them, through `adjust_instance_types`;
        a NodePool the provider refuses (NodeClass not ready, throttled, ...) is left out and its name
        maps to the provider's reason in the second result. How the provisioner, the disruption loop, the
        cost metrics and ``nodesmith simulate`` all read instance types."""
        found: dict[str, tuple[InstanceType, ...]] = {}
        refused: dict[str, str] = {}
        for pool in pools:
            try:
                offered = await provider.get_instance_types(pool)
            except errors.ProviderError as err:
                refused[pool.name] = str(err)
                continue
            found[pool.name] = tuple(self.adjust_instance_types(pool.name, offered))
        return found, refused

    def observe_decision(self, decision: Mapping[str, Any]) -> None:
        """Tell every observer about a decision; an observer that raises is logged and skipped."""
        for impl in self.pm.hook.nodesmith_observe_decision.get_hookimpls():
            try:
                _call(impl, decision=decision)
            except Exception:
                log.exception("plugin %s failed in nodesmith_observe_decision", impl.plugin_name)


def _call(impl: Any, **kwargs: Any) -> Any:
    """Call one hook implementation the way pluggy does: with just the arguments it declares."""
    return impl.function(*(kwargs[name] for name in impl.argnames))


def module_plugin(name: str, **hooks: Any) -> types.ModuleType:
    """Build a throwaway plugin module from hook functions (tests and small embedded plugins)."""
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookspecs.hookimpl(function))
    return module
