"""The plugin module registered under the ``nodesmith`` entry-point group as ``price-overlay``.

It implements one hook, ``nodesmith_adjust_instance_types``: the core calls it with each NodePool's
instance types whenever it reads them (provisioning, consolidation, drift marking), and it returns them
with the overlays of the file named by ``NODESMITH_PRICE_OVERLAYS`` applied — or ``None`` (no change) when
no file is configured, no overlay is valid, or no overlay selects anything.

It never raises into the core: a bug here is logged and the instance types are left alone. The result for a
NodePool is remembered while the provider hands over the very same instance-type objects and the file is
unchanged, so a steady cluster pays one ``stat`` and an identity check per pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nodesmith.cloudprovider.hookspecs import hookimpl
from nodesmith.cloudprovider.types import InstanceType
from nodesmith_price_overlay import apply, source

__all__ = ["Adjuster", "nodesmith_adjust_instance_types"]

log = logging.getLogger(__name__)


class Adjuster:
    """Applies the current overlay file to instance types, remembering the last answer per NodePool."""

    def __init__(self, overlays: source.OverlaySource | None = None) -> None:
        self.source = overlays if overlays is not None else source.OverlaySource()
        self._version: source.Loaded | None = None
        self._memo: dict[str, tuple[tuple[InstanceType, ...], list[InstanceType] | None]] = {}
        self._reported: set[str] = set()

    def adjust(self, nodepool_name: str, instance_types: Sequence[InstanceType]) -> list[InstanceType] | None:
        loaded = self.source.current()
        if loaded is None or not loaded.overlays:
            return None
        if loaded is not self._version:
            self._version, self._memo, self._reported = loaded, {}, set()
        remembered = self._memo.get(nodepool_name)
        if remembered is not None and _same(remembered[0], instance_types):
            return None if remembered[1] is None else list(remembered[1])
        result = apply.apply_overlays(loaded.overlays, nodepool_name, instance_types)
        for conflict in result.conflicts:
            message = conflict.message(nodepool_name)
            if message not in self._reported:
                self._reported.add(message)
                log.error("price overlay file %s: %s", loaded.path, message)
        self._memo[nodepool_name] = (tuple(instance_types), result.instance_types)
        return None if result.instance_types is None else list(result.instance_types)


def _same(a: Sequence[InstanceType], b: Sequence[InstanceType]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


ADJUSTER = Adjuster()
"""The process-wide adjuster the hook uses (it reads the environment on every call)."""


@hookimpl
def nodesmith_adjust_instance_types(
    nodepool_name: str, instance_types: Sequence[InstanceType]
) -> Sequence[InstanceType] | None:
    """Apply the NodeOverlays of ``$NODESMITH_PRICE_OVERLAYS`` to ``nodepool_name``'s instance types."""
    try:
        return ADJUSTER.adjust(nodepool_name, instance_types)
    except Exception:  # the provisioning path must survive a bug in an optional plugin
        log.exception(
            "price overlays: applying overlays to NodePool %s failed; left unchanged", nodepool_name
        )
        return None
