"""What an EC2NodeClass's schema cannot catch, checked when it is resolved: ``ValidationSucceeded``.

Pure. Fed by the resolver with the EC2NodeClass; its answer becomes the ``ValidationSucceeded``
condition's message (so ``Ready=False`` says why), instead of an exception at the first launch:

1. ``spec.userData`` must read in the family's format (MIME for AL2/AL2023, TOML for Bottlerocket);
2. an ``alias`` of one family with an ``amiFamily`` of another is refused (which bootstrap format would
   the node read?).
"""

from __future__ import annotations

from typing import Final

from nodesmith_aws import amifamily
from nodesmith_aws.nodeclass import EC2NodeClass

__all__ = ["problem"]

ALIAS_FAMILIES: Final = {"al2": "AL2", "al2023": "AL2023", "bottlerocket": "Bottlerocket"}


def problem(nc: EC2NodeClass) -> str | None:
    """Why ``nc`` cannot launch nodes, or ``None``."""
    declared = nc.spec.get("amiFamily")
    for term in nc.spec["amiSelectorTerms"]:
        alias = term.get("alias")
        if alias and declared:
            family = ALIAS_FAMILIES[alias.split("@")[0]]
            if family != declared:
                return (
                    f"amiSelectorTerms alias {alias!r} is an {family} AMI but amiFamily is {declared!r}; "
                    f"drop amiFamily or use an alias of the {declared} family"
                )
    return amifamily.check_user_data(nc.ami_family, nc.spec.get("userData"))
