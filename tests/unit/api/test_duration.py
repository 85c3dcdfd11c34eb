"""Go durations as Karpenter's fields spell them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodesmith.api import duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("1m", timedelta(minutes=1)),
        ("720h", timedelta(hours=720)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h30m0s", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("10us", timedelta(microseconds=10)),
        ("-5m", timedelta(minutes=-5)),
    ],
)
def test_parse_duration_reads_go_durations(text: str, expected: timedelta) -> None:
    assert duration.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "h", "1d", "1h 30m", "Never", "1hm", "m5"])
def test_parse_duration_rejects_non_durations(text: str) -> None:
    with pytest.raises(duration.DurationError):
        duration.parse_duration(text)


def test_never_is_none() -> None:
    assert duration.parse_nillable_duration("Never") is None
    assert duration.parse_nillable_duration(None) is None
    assert duration.parse_nillable_duration("5m") == timedelta(minutes=5)
    assert duration.format_duration(None) == "Never"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=720), "720h"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=15), "15s"),
        (timedelta(milliseconds=250), "250ms"),
    ],
)
def test_format_duration_is_compact(value: timedelta, text: str) -> None:
    assert duration.format_duration(value) == text


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10_000)))
def test_format_then_parse_round_trips(value: timedelta) -> None:
    assert duration.parse_duration(duration.format_duration(value)) == value


@pytest.mark.parametrize("text", ["2562048h", "24000000000000h", "9223372036854775808ns", "-2562048h"])
def test_parse_duration_refuses_what_go_cannot_hold_instead_of_overflowing(text: str) -> None:
    with pytest.raises(duration.DurationError, match="out of range"):
        duration.parse_duration(text)


def test_the_longest_go_duration_still_parses() -> None:
    assert duration.parse_duration("2562047h") == timedelta(hours=2562047)
