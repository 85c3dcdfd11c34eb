"""Which instance types a NodePool is offered: GPU, accelerator and bare-metal types only on request.

Pure. Fed by the provider's ``get_instance_types`` with the NodeClass's types and the NodePool;
consumed by the core's scheduling through that list. A NodePool that says nothing about accelerators
gets no GPU, Neuron/Inferentia/Gaudi or ``.metal`` type, the way Karpenter's recommended default
NodePool requirements keep them out (they cost more, boot slower and need accelerated AMIs): the
cheapest-fit choice would otherwise land plain pods on them whenever their spot price dips. A NodePool
that names any of `REQUESTING_KEYS` in its requirements (say ``instance-gpu-manufacturer In [nvidia]``,
``instance-size In [metal]`` or an explicit ``node.kubernetes.io/instance-type`` list) gets them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from nodesmith.api import labels as core_labels
from nodesmith.cloudprovider.types import InstanceType

__all__ = ["REQUESTING_KEYS", "offered", "special"]

_GROUP: Final = "aws.nodesmith.io"
ACCELERATOR_RESOURCES: Final = ("nvidia.com/gpu", "amd.com/gpu", "aws.amazon.com/neuron", "habana.ai/gaudi")
REQUESTING_KEYS: Final = frozenset(
    {
        core_labels.LABEL_INSTANCE_TYPE,
        *(
            f"{_GROUP}/instance-{s}"
            for s in (
                "gpu-name",
                "gpu-manufacturer",
                "gpu-count",
                "gpu-memory",
                "accelerator-name",
                "accelerator-manufacturer",
                "accelerator-count",
                "size",
                "family",
            )
        ),
    }
)


def special(it: InstanceType) -> str | None:
    """``"accelerated"``, ``"metal"`` or ``None`` for an ordinary type."""
    if any(it.capacity.get(r, 0) > 0 for r in ACCELERATOR_RESOURCES):
        return "accelerated"
    if it.name.endswith(".metal") or ".metal-" in it.name:
        return "metal"
    return None


def offered(types: Sequence[InstanceType], requirement_keys: Iterable[str]) -> list[InstanceType]:
    """``types`` without the special ones, unless the requirements name a key that asks for them."""
    if REQUESTING_KEYS & set(requirement_keys):
        return list(types)
    return [it for it in types if special(it) is None]
