"""The schema DSL: apiserver-style defaulting and validation with field paths."""

from __future__ import annotations

import copy

import pytest

from nodesmith import errors
from nodesmith.api import schema

INNER = schema.obj({"b": schema.string(default="x"), "c": schema.integer(default=1)}, default={"b": "y"})
ROOT = schema.obj({"a": INNER, "items": schema.array(INNER, max_items=2)}, required=("a",))


def test_defaults_apply_inside_defaulted_objects_and_list_items() -> None:
    assert schema.apply_defaults(ROOT, {}) == {"a": {"b": "y", "c": 1}}
    assert schema.apply_defaults(ROOT, {"items": [{}]}) == {
        "a": {"b": "y", "c": 1},
        "items": [{"b": "x", "c": 1}],
    }


def test_defaulting_prunes_nulls_and_never_mutates_its_input() -> None:
    value = {"a": {"b": None}, "extra": {"kept": True}}
    before = copy.deepcopy(value)
    assert schema.apply_defaults(ROOT, value) == {"a": {"b": "x", "c": 1}, "extra": {"kept": True}}
    assert value == before


def test_validation_errors_carry_the_path() -> None:
    with pytest.raises(errors.ValidationError) as caught:
        schema.validate(ROOT, {"a": {"b": "x"}, "items": [{"c": 1}, {"c": "two"}]})
    assert caught.value.field == "items[1].c"
    with pytest.raises(errors.ValidationError) as caught:
        schema.validate(ROOT, {})
    assert caught.value.field == "a"


def test_rules_run_their_python_mirror_and_skip_transition_rules() -> None:
    checked = schema.string(
        max_length=10,
        rules=(
            schema.Rule("self != 'bad'", "must not be bad", lambda v: v != "bad"),
            schema.Rule("self == oldSelf", "immutable"),
        ),
    )
    schema.validate(checked, "good", "f")
    with pytest.raises(errors.ValidationError, match="must not be bad"):
        schema.validate(checked, "bad", "f")
    assert [rule.transition for rule in checked.rules] == [False, True]


def test_int_or_string_renders_like_controller_gen() -> None:
    rendered = schema.quantity().to_openapi()
    assert rendered["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert rendered["x-kubernetes-int-or-string"] is True
    assert "type" not in rendered
