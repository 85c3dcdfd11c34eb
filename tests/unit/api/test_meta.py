"""Shared small types: do-not-disrupt, taints, timestamps, object metadata, NodeClass refs."""

from __future__ import annotations

import datetime as dt

import pytest

from nodesmith import errors
from nodesmith.api import meta

NOW = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (None, None),
        ({}, None),
        ({"other": "true"}, None),
        ({"nodesmith.io/do-not-disrupt": "true"}, True),
        ({"karpenter.sh/do-not-disrupt": "true"}, True),
        ({"karpenter.sh/do-not-disrupt": "30m"}, dt.timedelta(minutes=30)),
        ({"nodesmith.io/do-not-disrupt": "false"}, False),
        ({"nodesmith.io/do-not-disrupt": "soon"}, False),
        ({"nodesmith.io/do-not-disrupt": "1h", "karpenter.sh/do-not-disrupt": "true"}, True),
        ({"nodesmith.io/do-not-disrupt": "1h", "karpenter.sh/do-not-disrupt": "2h"}, dt.timedelta(hours=2)),
        (
            {"nodesmith.io/do-not-disrupt": "nope", "karpenter.sh/do-not-disrupt": "5m"},
            dt.timedelta(minutes=5),
        ),
    ],
)
def test_do_not_disrupt_honours_both_annotations_and_the_most_protective_wins(
    annotations: dict[str, str] | None, expected: bool | dt.timedelta | None
) -> None:
    assert meta.do_not_disrupt(annotations) == expected


def test_a_do_not_disrupt_duration_counts_from_pod_start() -> None:
    annotations = {"karpenter.sh/do-not-disrupt": "1h"}
    assert meta.do_not_disrupt_active(annotations, NOW - dt.timedelta(minutes=59), NOW)
    assert not meta.do_not_disrupt_active(annotations, NOW - dt.timedelta(hours=1), NOW)
    assert meta.do_not_disrupt_active(annotations, None, NOW)
    assert meta.do_not_disrupt_active({"nodesmith.io/do-not-disrupt": "true"}, None, NOW)
    assert not meta.do_not_disrupt_active({"nodesmith.io/do-not-disrupt": "bogus"}, None, NOW)
    assert not meta.do_not_disrupt_active({}, None, NOW)


def test_timestamps_round_trip_in_kubernetes_form() -> None:
    parsed = meta.parse_time("2025-01-02T03:04:05Z", "t")
    assert parsed == dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert meta.format_time(parsed) == "2025-01-02T03:04:05Z"
    assert meta.parse_time("2025-01-02T05:04:05+02:00", "t") == parsed


@pytest.mark.parametrize("text", ["yesterday", "2025-01-02T03:04:05"])
def test_bad_timestamps_name_the_field(text: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        meta.parse_time(text, "metadata.creationTimestamp")
    assert caught.value.field == "metadata.creationTimestamp"


def test_taints_round_trip_and_match_on_key_and_effect() -> None:
    raw = {
        "key": "example.com/special",
        "value": "true",
        "effect": "NoSchedule",
        "timeAdded": "2025-01-01T00:00:00Z",
    }
    taint = meta.Taint.from_dict(raw)
    assert taint.to_dict() == raw
    assert str(taint) == "example.com/special=true:NoSchedule"
    assert taint.matches(meta.Taint("example.com/special", meta.TaintEffect.NO_SCHEDULE))
    assert not taint.matches(meta.Taint("example.com/special", meta.TaintEffect.NO_EXECUTE))


def test_durations_compare_by_value_but_keep_their_spelling() -> None:
    ninety = meta.Duration.parse("90m", "d")
    assert ninety == meta.Duration.parse("1h30m", "d")
    assert ninety.text == "90m"
    assert meta.Duration.parse("Never", "d").never


def test_object_meta_keeps_what_nodesmith_uses_and_drops_the_rest() -> None:
    raw = {
        "name": "a",
        "uid": "u",
        "resourceVersion": "7",
        "generation": 2,
        "labels": {"k": "v"},
        "annotations": {"a": "b"},
        "finalizers": ["nodesmith.io/termination"],
        "creationTimestamp": "2025-01-01T00:00:00Z",
        "deletionTimestamp": "2025-01-01T01:00:00Z",
        "managedFields": [{"manager": "kubectl"}],
    }
    parsed = meta.ObjectMeta.from_dict(raw)
    expected = dict(raw)
    del expected["managedFields"]
    assert parsed.to_dict() == expected


def test_nodeclass_label_is_group_slash_lowercase_kind() -> None:
    ref = meta.NodeClassRef.from_dict(
        {"group": "aws.nodesmith.io", "kind": "EC2NodeClass", "name": "default"}
    )
    assert ref.label == "aws.nodesmith.io/ec2nodeclass"
