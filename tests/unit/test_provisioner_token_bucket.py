"""The provisioner's token bucket (Karpenter's pod-nomination rate limiter): a burst, then the rate, on the
injected clock."""

from __future__ import annotations

from nodesmith.clock import SYSTEM
from nodesmith.reconcilers.provisioner import TokenBucket
from nodesmith.testing.clock import FakeClock


def test_a_burst_then_refused_until_the_clock_refills_it() -> None:
    clock = FakeClock(SYSTEM.now())
    bucket = TokenBucket(5.0, 10, clock)
    assert sum(bucket.try_take() for _ in range(25)) == 10
    clock.step(1.0)
    assert sum(bucket.try_take() for _ in range(25)) == 5
    clock.step(60.0)
    assert sum(bucket.try_take() for _ in range(25)) == 10
