"""`metrics.Readings`: the series an observable gauge reports follow what its writer says, so series of
objects that are gone are no longer exported (the SDK's synchronous gauge never forgets one)."""

from __future__ import annotations

from typing import Any

from nodesmith import metrics


def _reported(readings: metrics.Readings) -> dict[tuple[tuple[str, Any], ...], float]:
    return {
        tuple(sorted((o.attributes or {}).items())): float(o.value)
        for o in readings.observe(None)  # type: ignore[arg-type]  # the callback ignores its options
    }


def test_put_sets_one_series_and_replaces_its_value() -> None:
    readings = metrics.Readings()
    readings.put(1, {"nodepool": "a", "resource_type": "cpu"})
    readings.put(2, {"resource_type": "cpu", "nodepool": "a"})  # the same series, attributes reordered
    readings.put(3, {"nodepool": "b", "resource_type": "cpu"})
    assert _reported(readings) == {
        (("nodepool", "a"), ("resource_type", "cpu")): 2.0,
        (("nodepool", "b"), ("resource_type", "cpu")): 3.0,
    }


def test_drop_removes_only_the_series_that_match_every_given_attribute() -> None:
    readings = metrics.Readings()
    for pool in ("a", "b"):
        for reason in ("Empty", "Drifted"):
            readings.put(1, {"nodepool": pool, "reason": reason})
    readings.drop(reason="Empty")
    assert set(_reported(readings)) == {
        (("nodepool", "a"), ("reason", "Drifted")),
        (("nodepool", "b"), ("reason", "Drifted")),
    }
    readings.drop(nodepool="a", reason="Drifted")
    assert set(_reported(readings)) == {(("nodepool", "b"), ("reason", "Drifted"))}


def test_retain_keeps_the_series_of_the_objects_still_there() -> None:
    readings = metrics.Readings()
    for pool in ("a", "b", "c"):
        readings.put(1, {"nodepool": pool})
    readings.retain("nodepool", ["a", "c"])
    assert set(_reported(readings)) == {(("nodepool", "a"),), (("nodepool", "c"),)}


def test_publish_replaces_everything_and_clear_reports_nothing() -> None:
    readings = metrics.Readings()
    readings.put(1, {"nodepool": "old"})
    readings.publish([(5, {"nodepool": "new"})])
    assert _reported(readings) == {(("nodepool", "new"),): 5.0}
    readings.clear()
    assert _reported(readings) == {}
