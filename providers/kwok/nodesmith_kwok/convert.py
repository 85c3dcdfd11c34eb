"""Karpenter's kwok objects into nodesmith-kwok objects, for ``nodesmith convert`` through the plugin hook.

Karpenter's kwok provider has one object, the ``karpenter.kwok.sh`` KWOKNodeClass; it keeps its spec and
moves to ``kwok.nodesmith.io/v1``. A KWOKNodeClass has no kubelet settings, so those bound for it are
reported. Pure: values in, values out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final, final

from nodesmith.convert import Context, NoteKind
from nodesmith_kwok import nodeclass

__all__ = ["KARPENTER_KWOK_GROUP", "KwokConverter"]

KARPENTER_KWOK_GROUP: Final = "karpenter.kwok.sh"


@final
class KwokConverter:
    """The `nodesmith.convert.KarpenterConverter` for ``karpenter.kwok.sh`` objects."""

    karpenter_group = KARPENTER_KWOK_GROUP
    group = nodeclass.GROUP

    def node_class_kind(self, karpenter_kind: str | None) -> str:
        return nodeclass.KIND

    def convert(self, d: Mapping[str, Any], version: str, ctx: Context) -> list[dict[str, Any]] | None:
        if d.get("kind") != nodeclass.KIND:
            return None
        out = copy.deepcopy(dict(d))
        out["apiVersion"] = f"{nodeclass.GROUP}/v1"
        out["metadata"] = ctx.metadata(d, f"{nodeclass.KIND}/{(d.get('metadata') or {}).get('name', '')}")
        return [out]

    def inline_provider(self, name: str, provider: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
        """Karpenter's v1alpha5 inline providers were AWS only; kwok never had one."""
        ctx.note(f"Provisioner/{name}", "spec.provider", NoteKind.DROPPED, "kwok has no inline provider")
        return []

    def kubelet(self, kubelet: Mapping[str, Any], ctx: Context, source: str, field: str) -> dict[str, Any]:
        ctx.drop_rest(source, f"{field}.", kubelet)
        return {}
