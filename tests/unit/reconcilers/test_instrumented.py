"""The provider decorator records call durations and errors under ``nodesmith_cloudprovider_*`` and passes
results and errors through unchanged."""

from __future__ import annotations

import pytest

from nodesmith import errors
from nodesmith.reconcilers.instrumented import InstrumentedProvider
from nodesmith.runtime import telemetry
from nodesmith.testing.cloudprovider import FakeCloudProvider

pytestmark = pytest.mark.anyio


async def test_calls_are_timed_and_errors_counted_by_method_and_class() -> None:
    telemetry.setup()
    provider = InstrumentedProvider(FakeCloudProvider())
    assert await provider.list() == []
    with pytest.raises(errors.NodeClaimNotFoundError):
        await provider.get("fake://gone")
    lines = telemetry.prometheus_text().decode().splitlines()
    assert _sample(
        lines, "nodesmith_cloudprovider_duration_seconds_count", 'method="List"', 'provider="fake"'
    )
    errors_line = _sample(
        lines, "nodesmith_cloudprovider_errors_total", 'method="Get"', 'error="NodeClaimNotFoundError"'
    )
    assert errors_line.endswith(" 1.0")


def _sample(lines: list[str], metric: str, *labels: str) -> str:
    for line in lines:
        if line.startswith(metric + "{") and all(label in line for label in labels):
            return line
    raise AssertionError(f"no {metric} sample with {labels}")
