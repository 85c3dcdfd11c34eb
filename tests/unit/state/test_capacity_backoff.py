"""NodePool capacity backoff: when it starts, how long it lasts, what ends it, and how the simulation
then sees the pool (its backed-off capacity type excluded, so pods go to the next pool by weight)."""

from __future__ import annotations

from nodesmith import scheduling
from nodesmith.state import capacity_backoff
from nodesmith.state.capacity_backoff import BASE_BACKOFF, FAILURE_THRESHOLD, MAX_BACKOFF, CapacityBackoff
from nodesmith.testing import factories
from nodesmith.testing.clock import FakeClock

from .factories import T0


def fail(
    backoff: CapacityBackoff, clock: FakeClock, times: int = 1, pool: str = "spot", *types: str
) -> list[capacity_backoff.Backoff]:
    started = []
    for _ in range(times):
        started += backoff.record_failure(pool, types or ("spot",), "ICE", clock.now())
    return started


def test_a_pool_is_backed_off_after_failures_in_a_row_not_before() -> None:
    clock, backoff = FakeClock(T0), CapacityBackoff()
    assert fail(backoff, clock, FAILURE_THRESHOLD - 1) == []
    assert backoff.active(clock.now()) == []
    (started,) = fail(backoff, clock)
    assert (started.nodepool, started.capacity_type) == ("spot", "spot")
    assert started.until == clock.now() + BASE_BACKOFF
    assert started.failures == FAILURE_THRESHOLD
    assert backoff.active(clock.now()) == [started]
    assert backoff.active(clock.now(), "od") == []
    assert "until" in started.message()
    assert "spot capacity" in started.message()


def test_the_backoff_ends_when_the_clock_passes_until() -> None:
    clock, backoff = FakeClock(T0), CapacityBackoff()
    fail(backoff, clock, FAILURE_THRESHOLD)
    clock.step(BASE_BACKOFF.total_seconds() - 1)
    assert len(backoff.active(clock.now())) == 1
    clock.step(1)
    assert backoff.active(clock.now()) == []


def test_a_pool_that_fails_again_after_its_backoff_is_backed_off_at_once_and_longer() -> None:
    clock, backoff = FakeClock(T0), CapacityBackoff()
    fail(backoff, clock, FAILURE_THRESHOLD)
    clock.step(BASE_BACKOFF.total_seconds())
    (again,) = fail(backoff, clock)  # one failure is enough now
    assert again.until == clock.now() + 2 * BASE_BACKOFF
    for _ in range(10):
        clock.step((again.until - clock.now()).total_seconds())
        (again,) = fail(backoff, clock)
    assert again.until == clock.now() + MAX_BACKOFF


def test_failures_during_a_backoff_do_not_extend_it() -> None:
    clock, backoff = FakeClock(T0), CapacityBackoff()
    (started,) = fail(backoff, clock, FAILURE_THRESHOLD)
    clock.step(10)
    assert fail(backoff, clock, 5) == []  # launches decided before the backoff began, failing late
    (active,) = backoff.active(clock.now())
    assert active.until == started.until


def test_a_successful_launch_clears_the_record() -> None:
    clock, backoff = FakeClock(T0), CapacityBackoff()
    fail(backoff, clock, FAILURE_THRESHOLD)
    backoff.record_success("spot", "spot")
    assert backoff.active(clock.now()) == []
    assert fail(backoff, clock, FAILURE_THRESHOLD - 1) == []  # counting starts over, at the base length
    (started,) = fail(backoff, clock)
    assert started.until == clock.now() + BASE_BACKOFF


def test_capacity_types_and_pools_are_backed_off_separately() -> None:
    clock, backoff = FakeClock(T0), CapacityBackoff()
    fail(backoff, clock, FAILURE_THRESHOLD, "mixed", "spot")
    fail(backoff, clock, FAILURE_THRESHOLD - 1, "mixed", "on-demand")
    fail(backoff, clock, FAILURE_THRESHOLD - 1, "other", "spot")
    assert [(b.nodepool, b.capacity_type) for b in backoff.active(clock.now())] == [("mixed", "spot")]
    backoff.record_success("mixed", "on-demand")  # success of another capacity type changes nothing
    assert len(backoff.active(clock.now())) == 1
    backoff.forget(["mixed"])
    assert backoff.active(clock.now()) == []


def test_restrict_marks_only_the_backed_off_pools_capacity_type_unavailable() -> None:
    clock, backoff = FakeClock(T0), CapacityBackoff()
    fail(backoff, clock, FAILURE_THRESHOLD, "preferred", "spot")
    its = factories.fake_instance_types(2)
    restricted = capacity_backoff.restrict({"preferred": its, "fallback": its}, backoff.active(clock.now()))
    for it in restricted["preferred"]:
        assert {o.capacity_type for o in it.offerings if o.available} == {"on-demand"}
        assert {o.capacity_type for o in it.offerings} == {"spot", "on-demand"}  # still listed
    assert restricted["fallback"] == tuple(its)


def test_the_simulation_places_pods_on_the_next_pool_by_weight_while_the_preferred_one_is_backed_off() -> (
    None
):
    clock, backoff = FakeClock(T0), CapacityBackoff()
    spot_types = [factories.instance_type("s", cpu=8, memory="16Gi", capacity_types=("spot",))]
    od_types = [factories.instance_type("o", cpu=8, memory="16Gi", capacity_types=("on-demand",))]

    def placed() -> list[str]:
        restricted = capacity_backoff.restrict(
            {"spot": spot_types, "od": od_types}, backoff.active(clock.now())
        )
        templates = [
            factories.template("spot", list(restricted["spot"]), weight=100),
            factories.template("od", list(restricted["od"]), weight=1),
        ]
        result = scheduling.solve(
            scheduling.SchedulingInput(pods=factories.pods(3, cpu="1"), templates=templates)
        )
        assert result.pod_errors == {}
        return [claim.nodepool for claim in result.new_nodeclaims]

    assert placed() == ["spot"]
    fail(backoff, clock, FAILURE_THRESHOLD, "spot", "spot")
    assert placed() == ["od"]
    clock.step(BASE_BACKOFF.total_seconds())  # the preferred pool gets new capacity again once it is over
    assert placed() == ["spot"]
