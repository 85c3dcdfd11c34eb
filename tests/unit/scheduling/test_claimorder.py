"""`claimorder.ByDomain` offers exactly the NodeClaims a plain walk in the run's order would not rule out
with a domain filter, in that order, while NodeClaims are added, given pods and narrowed."""

from __future__ import annotations

import random

import pytest

from nodesmith.api import labels
from nodesmith.api.requirements import Requirement, Requirements
from nodesmith.scheduling import claimorder, topology
from nodesmith.testing import factories

KEY = labels.LABEL_ZONE
ZONES = factories.FAKE_ZONES


class Claim:
    """The parts of a simulated NodeClaim the orders read."""

    def __init__(self, seq: int, requirements: Requirements) -> None:
        self.seq = seq
        self.hostname = f"hostname-placeholder-{seq + 1:04d}"
        self.requirements = requirements
        self.pods: list[object] = []


def _zone_requirements(rng: random.Random) -> Requirements:
    pick = rng.random()
    if pick < 0.2:
        return Requirements()
    if pick < 0.3:
        return Requirements([Requirement.not_in(KEY, rng.choice(ZONES))])
    return Requirements([Requirement.in_(KEY, *rng.sample(ZONES, rng.randint(1, 3)))])


@pytest.mark.parametrize("seed", range(30))
def test_claims_within_a_domain_filter_are_the_plain_walk_without_the_excluded(seed: int) -> None:
    rng = random.Random(seed)
    order = claimorder.ClaimOrder()
    index: claimorder.ByDomain | None = None
    for step in range(120):
        if not order.claims or rng.random() < 0.3:
            claim = Claim(len(order.claims), _zone_requirements(rng))
            order.add(claim)  # type: ignore[arg-type]  # a stand-in with only the fields the order reads
            if index is not None:
                index.refresh(claim)  # type: ignore[arg-type]  # the same stand-in
        else:
            claim = rng.choice(order.claims)  # type: ignore[assignment]  # holds only stand-ins
            claim.pods.append(object())
            if rng.random() < 0.4:
                claim.requirements = claim.requirements.add(Requirement.in_(KEY, rng.choice(ZONES)))
            order.bump(claim)  # type: ignore[arg-type]  # the same stand-in
            if index is not None:
                index.refresh(claim)  # type: ignore[arg-type]  # the same stand-in
        if step == 10:  # made lazily, on the first pod that has a filter
            index = claimorder.ByDomain(KEY, order.claims)
        if index is not None:
            allowed = frozenset(rng.sample(ZONES, rng.randint(0, 3)))
            filters = ((KEY, allowed),)
            plain = [c.seq for c in order if not topology.excluded(c.requirements, filters)]
            assert [c.seq for c in index.within(allowed)] == plain
