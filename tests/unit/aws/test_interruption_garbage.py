"""Malformed interruption messages: whatever arrives on the queue, `parse` returns a notice or raises
`MalformedMessageError` (which the source logs in one line and deletes), never anything else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nodesmith.cloudprovider.types import InterruptionKind
from nodesmith_aws import interruption

ROUTES = (interruption.SPOT_WARNING, interruption.REBALANCE, interruption.HEALTH, interruption.STATE_CHANGE)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
DETAIL_KEYS = st.sampled_from(
    ["instance-id", "state", "service", "eventTypeCategory", "affectedEntities", "entityValue", "x"]
)
DETAILS = st.dictionaries(DETAIL_KEYS, JSON | st.just("EC2") | st.just("scheduledChange"), max_size=5)


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """EventBridge-looking envelopes: a known route (mostly), then anything in the fields that matter."""
    source, detail_type = draw(st.sampled_from(ROUTES) | st.tuples(JSON, JSON))
    envelope: dict[str, Any] = {
        "version": draw(st.just("0") | JSON),
        "source": source,
        "detail-type": detail_type,
    }
    envelope["detail"] = draw(DETAILS | JSON)
    if draw(st.booleans()):
        envelope["time"] = draw(st.text(max_size=30) | JSON)
    return envelope


def parse_or_refuse(body: str) -> None:
    refusal: str | None = None
    try:
        notice = interruption.parse(body, sent=1_700_000_000.0)
    except interruption.MalformedMessageError as err:
        refusal = str(err)
    if refusal is not None:
        assert refusal
        assert "\n" not in refusal  # one line in the log
        return
    assert notice.kind is None or isinstance(notice.kind, InterruptionKind)
    assert notice.kind is None or all(isinstance(i, str) and i for i in notice.instance_ids)


@settings(max_examples=300, deadline=None)
@given(body=st.text(max_size=300))
def test_any_text_is_parsed_or_refused_as_malformed(body: str) -> None:
    parse_or_refuse(body)


@settings(max_examples=500, deadline=None)
@given(envelope=envelopes())
def test_an_envelope_with_garbage_fields_is_parsed_or_refused_as_malformed(envelope: dict[str, Any]) -> None:
    parse_or_refuse(json.dumps(envelope))
