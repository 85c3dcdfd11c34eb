"""The kwok provider's plugin module, registered under the ``nodesmith`` entry-point group as ``kwok``.

It declares the labels kwok instance types always carry, so pods may require them even when a NodePool
does not mention them.
"""

from __future__ import annotations

from collections.abc import Sequence

from nodesmith.cloudprovider.hookspecs import hookimpl

LABEL_GROUP = "kwok.nodesmith.io"
INSTANCE_LABELS = tuple(f"{LABEL_GROUP}/instance-{suffix}" for suffix in ("family", "size", "cpu", "memory"))


@hookimpl
def nodesmith_well_known_labels() -> Sequence[str]:
    """kwok instance types define family, size, cpu and memory labels."""
    return INSTANCE_LABELS
