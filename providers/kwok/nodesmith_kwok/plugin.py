"""The kwok provider's plugin module, registered under the ``nodesmith`` entry-point group as ``kwok``.

It offers the ``kwok`` cloud provider, serves the KWOKNodeClass CRD, and declares the labels kwok
instance types always carry, so pods may require them even when a NodePool does not mention them.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml

from nodesmith import errors
from nodesmith.cloudprovider.hookspecs import hookimpl

if TYPE_CHECKING:
    from nodesmith.cloudprovider.protocol import CloudProvider, ProviderContext
    from nodesmith.cloudprovider.types import InstanceType
    from nodesmith.convert import KarpenterConverter

LABEL_GROUP = "kwok.nodesmith.io"
INSTANCE_LABELS = tuple(f"{LABEL_GROUP}/instance-{suffix}" for suffix in ("family", "size", "cpu", "memory"))


@hookimpl
def nodesmith_well_known_labels() -> Sequence[str]:
    """kwok instance types define family, size, cpu and memory labels."""
    return INSTANCE_LABELS


@hookimpl
def nodesmith_provider_names() -> Sequence[str]:
    return ("kwok",)


@hookimpl
def nodesmith_cloud_provider(name: str, context: ProviderContext) -> CloudProvider | None:
    """Build the kwok provider; setting ``instance-types-file`` loads a JSON/YAML catalogue instead of the
    built-in one."""
    if name != "kwok":
        return None
    from nodesmith_kwok import provider

    path = context.settings.get("instance-types-file")
    return provider.KWOKProvider(context, _load_catalogue(path) if path else None)


@hookimpl
def nodesmith_karpenter_converter() -> KarpenterConverter:
    """``nodesmith convert`` hands Karpenter's KWOKNodeClass objects to this."""
    from nodesmith_kwok import convert

    return convert.KwokConverter()


@hookimpl
def nodesmith_crds() -> Sequence[Mapping[str, Any]]:
    from nodesmith.api import crds
    from nodesmith_kwok import nodeclass

    return (crds.custom_resource_definition(nodeclass.CRD),)


def _load_catalogue(path: str) -> list[InstanceType]:
    from nodesmith_kwok import catalogue

    try:
        entries = yaml.safe_load(pathlib.Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise errors.ConfigError("instance-types-file", f"cannot read {path}: {err}") from err
    return catalogue.parse_catalogue(entries, source=f"instance-types-file {path}")
