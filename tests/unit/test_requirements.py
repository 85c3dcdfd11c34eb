"""The requirement algebra: table-driven cases plus laws checked against brute-force membership."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodesmith.api import labels
from nodesmith.api.requirements import Operator, Requirement, RequirementError, Requirements

KEY = "example.com/key"

# Brute force: every requirement below is drawn from these values and bounds, so membership over
# this universe (which also holds values none of them mention) decides set questions exactly.
VALUES = ["a", "b", "c", "1", "3", "5", "7", "9"]
UNIVERSE = ["a", "b", "c", "zz", "-5", *(str(n) for n in range(-1, 13))]


@st.composite
def requirements(draw: st.DrawFn, key: str = KEY) -> Requirement:
    op = draw(st.sampled_from(list(Operator)))
    if op in (Operator.IN, Operator.NOT_IN):
        values = draw(st.lists(st.sampled_from(VALUES), max_size=4))
        return Requirement.new(key, op, values)
    if op in (Operator.GT, Operator.LT, Operator.GTE, Operator.LTE):
        return Requirement.new(key, op, [str(draw(st.integers(0, 10)))])
    return Requirement.new(key, op)


def members(requirement: Requirement) -> set[str]:
    return {value for value in UNIVERSE if requirement.has(value)}


@pytest.mark.parametrize(
    ("operator", "values", "inside", "outside"),
    [
        (Operator.IN, ["a", "b"], ["a", "b"], ["c", ""]),
        (Operator.NOT_IN, ["a"], ["b", "zz"], ["a"]),
        (Operator.EXISTS, [], ["a", "7"], []),
        (Operator.DOES_NOT_EXIST, [], [], ["a", "7"]),
        (Operator.GT, ["3"], ["4", "100"], ["3", "2", "x"]),
        (Operator.LT, ["3"], ["2", "-1"], ["3", "x"]),
        (Operator.GTE, ["3"], ["3", "4"], ["2", "x"]),
        (Operator.LTE, ["3"], ["3", "0"], ["4", "x"]),
    ],
)
def test_operator_membership(
    operator: Operator, values: list[str], inside: list[str], outside: list[str]
) -> None:
    requirement = Requirement.new(KEY, operator, values)
    assert all(requirement.has(v) for v in inside)
    assert not any(requirement.has(v) for v in outside)


def test_gt_is_canonicalised_to_an_inclusive_bound() -> None:
    assert Requirement.new(KEY, "Gt", ["3"]) == Requirement.new(KEY, "Gte", ["4"])
    assert Requirement.new(KEY, "Lt", ["3"]) == Requirement.new(KEY, "Lte", ["2"])


def test_beta_label_keys_are_normalised_at_construction() -> None:
    beta = Requirement.new("failure-domain.beta.kubernetes.io/zone", "In", ["z1"])
    assert beta.key == labels.LABEL_ZONE
    assert Requirements([beta]).get(labels.LABEL_ZONE).has("z1")


@pytest.mark.parametrize(
    ("operator", "values", "message"),
    [
        ("Within", ["a"], "unknown operator 'Within'"),
        ("Gt", ["a"], "takes an integer value"),
        ("Gt", ["1", "2"], "exactly one integer value"),
        ("Lt", [], "exactly one integer value"),
    ],
)
def test_invalid_requirements_raise_a_typed_error_naming_the_key(
    operator: str, values: list[str], message: str
) -> None:
    with pytest.raises(RequirementError, match=message) as excinfo:
        Requirement.new(KEY, operator, values)
    assert KEY in str(excinfo.value)


def test_disjoint_bounds_intersect_to_does_not_exist() -> None:
    result = Requirement.new(KEY, "Gt", ["5"]).intersection(Requirement.new(KEY, "Lt", ["3"]))
    assert result.operator is Operator.DOES_NOT_EXIST


def test_bounded_range_with_every_integer_excluded_is_empty() -> None:
    # Karpenter's HasIntersection would say yes here; the exact answer is no.
    low = Requirement.new(KEY, "Gte", ["3"]).intersection(Requirement.not_in(KEY, "3"))
    high = Requirement.new(KEY, "Lte", ["4"]).intersection(Requirement.not_in(KEY, "4"))
    assert not low.has_intersection(high)
    assert low.intersection(high).is_empty()


def test_min_values_takes_the_larger_side() -> None:
    a = Requirement.new(KEY, "In", ["a", "b", "c"], min_values=2)
    b = Requirement.new(KEY, "Exists", min_values=3)
    assert a.intersection(b).min_values == 3


@settings(max_examples=400)
@given(requirements(), requirements())
def test_intersection_is_commutative(a: Requirement, b: Requirement) -> None:
    assert members(a.intersection(b)) == members(b.intersection(a))


@settings(max_examples=300)
@given(requirements(), requirements(), requirements())
def test_intersection_is_associative(a: Requirement, b: Requirement, c: Requirement) -> None:
    assert members(a.intersection(b).intersection(c)) == members(a.intersection(b.intersection(c)))


@settings(max_examples=400)
@given(requirements(), requirements())
def test_intersection_is_membership_of_both(a: Requirement, b: Requirement) -> None:
    assert members(a.intersection(b)) == members(a) & members(b)


@settings(max_examples=400)
@given(requirements(), requirements())
def test_has_intersection_agrees_with_brute_force(a: Requirement, b: Requirement) -> None:
    assert a.has_intersection(b) == bool(members(a) & members(b))
    assert a.intersection(b).is_empty() == (not members(a) & members(b))


@settings(max_examples=300)
@given(requirements())
def test_any_value_is_a_member(requirement: Requirement) -> None:
    value = requirement.any_value()
    if value is not None:
        assert requirement.has(value)


@settings(max_examples=300)
@given(requirements())
def test_node_selector_rendering_round_trips(requirement: Requirement) -> None:
    rendered = Requirements([requirement]).to_node_selector()
    assert members(Requirements.from_node_selector(rendered).get(KEY)) == members(requirement)


def _brute_force_compatible(
    existing: Requirements, incoming: Requirements, allow_undefined: frozenset[str]
) -> bool:
    """The rule written out long-hand: a custom key the pod requires positively must be defined on the node
    side; for keys both define, some value must satisfy both, unless both only exclude values."""
    negative = {Operator.NOT_IN, Operator.DOES_NOT_EXIST}
    for key, theirs in incoming.items():
        if key not in existing:
            if key not in allow_undefined and theirs.operator not in negative:
                return False
            continue
        mine = existing[key]
        both_negative = mine.operator in negative and theirs.operator in negative
        if not both_negative and not members(mine) & members(theirs):
            return False
    return True


KEYS = [labels.LABEL_ZONE, "example.com/team", "example.com/tier"]


@st.composite
def requirement_sets(draw: st.DrawFn) -> Requirements:
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=3))
    return Requirements(draw(requirements(key)) for key in keys)


@settings(max_examples=500)
@given(requirement_sets(), requirement_sets())
def test_compatibility_agrees_with_brute_force_evaluation(
    existing: Requirements, incoming: Requirements
) -> None:
    for allow in (frozenset(), labels.CORE_WELL_KNOWN_LABELS):
        expected = _brute_force_compatible(existing, incoming, allow)
        assert existing.is_compatible(incoming, allow) == expected
        assert (existing.compatibility_errors(incoming, allow) == []) == expected


def test_custom_labels_must_be_defined_but_well_known_may_be_undefined() -> None:
    nodepool = Requirements([Requirement.in_(labels.LABEL_ARCH, "amd64")])
    wants_zone = Requirements([Requirement.in_(labels.LABEL_ZONE, "z1")])
    wants_team = Requirements([Requirement.in_("example.com/team", "a")])
    avoids_team = Requirements([Requirement.not_in("example.com/team", "a")])
    assert nodepool.is_compatible(wants_zone, labels.CORE_WELL_KNOWN_LABELS)
    assert not nodepool.is_compatible(wants_team, labels.CORE_WELL_KNOWN_LABELS)
    assert nodepool.is_compatible(avoids_team, labels.CORE_WELL_KNOWN_LABELS)
    assert nodepool.compatibility_errors(wants_team) == [
        "label 'example.com/team' does not have known values"
    ]


def test_labels_are_the_single_valued_in_requirements() -> None:
    reqs = Requirements(
        [
            Requirement.in_(labels.LABEL_ZONE, "z1"),
            Requirement.in_(labels.LABEL_ARCH, "amd64", "arm64"),
            Requirement.exists("x"),
        ]
    )
    assert reqs.labels() == {labels.LABEL_ZONE: "z1"}


def test_adding_to_requirements_leaves_the_original_unchanged() -> None:
    base = Requirements([Requirement.in_(labels.LABEL_ZONE, "z1", "z2")])
    narrowed = base.add(Requirement.in_(labels.LABEL_ZONE, "z2", "z3"))
    assert base.get(labels.LABEL_ZONE).values == {"z1", "z2"}
    assert narrowed.get(labels.LABEL_ZONE).values == {"z2"}
    assert "missing" not in narrowed
    assert narrowed.get("missing").operator is Operator.EXISTS
