"""The EC2NodeClass CustomResourceDefinition, generated from `nodesmith_aws.nodeclass`'s schema.

Consumed by the ``nodesmith_crds`` hook (so ``nodesmith dev`` and the Helm chart install it) and by the
checked-in ``deploy/crds/aws.nodesmith.io_ec2nodeclasses.yaml``, which a unit test keeps equal to
this module's output. Regenerate with::

    uv run python -m nodesmith_aws.crds deploy/crds
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Sequence
from typing import Any, Final

from nodesmith.api import crds
from nodesmith_aws import nodeclass

__all__ = ["EC2NODECLASS", "crd", "main"]

_READY: Final = '.status.conditions[?(@.type=="Ready")].status'

EC2NODECLASS: Final = crds.CustomResource(
    group=nodeclass.GROUP,
    kind=nodeclass.KIND,
    plural="ec2nodeclasses",
    spec=nodeclass.SPEC_SCHEMA,
    status=nodeclass.STATUS_SCHEMA,
    description=nodeclass.OBJECT_SCHEMA.description,
    short_names=("ec2nc", "ec2ncs"),
    printer_columns=(
        crds.PrinterColumn("Ready", _READY),
        crds.PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        crds.PrinterColumn("Role", ".spec.role", priority=1),
    ),
)


def crd() -> dict[str, Any]:
    return crds.custom_resource_definition(EC2NODECLASS)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m nodesmith_aws.crds DIRECTORY", file=sys.stderr)
        return 2
    for path in crds.write(pathlib.Path(args[0]), [EC2NODECLASS]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
