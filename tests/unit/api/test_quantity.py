"""Our quantity parser agrees with the Kubernetes client's and rounds sub-milli values up."""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils import quantity as kube_quantity

from nodesmith.api import quantity

_kube_parse: Callable[[str], decimal.Decimal] = kube_quantity.parse_quantity


def _kube_milli(text: str) -> int:
    return math.ceil(_kube_parse(text) * 1000)


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "1",
        "500m",
        "1.5",
        "1.5Gi",
        "100Mi",
        "2Ki",
        "1Ei",
        "3E",
        "2e3",
        "1E-3",
        "+1",
        "-1",
        ".5",
        "1.",
        "0.1m",
        "1n",
        "1u",
        "1k",
        "1M",
        "1G",
        "1T",
        "1P",
        "100e-2",
        "0.0001",
        "12345678901234567890",
    ],
)
def test_parse_quantity_agrees_with_kubernetes_client(text: str) -> None:
    assert quantity.parse_quantity(text) == _kube_milli(text)


@pytest.mark.parametrize("text", ["", "1e", "1.5.5", "Ki", "1KI", "1ki", "abc", "--1"])
def test_parse_quantity_rejects_what_kubernetes_rejects(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the client raises a bare ValueError
        _kube_parse(text)
    with pytest.raises(quantity.QuantityError):
        quantity.parse_quantity(text)


def test_inner_spaces_are_rejected_like_go_unlike_the_python_client() -> None:
    # apimachinery's ParseQuantity rejects "1 Gi"; the Python client's parser is laxer. We follow Go.
    with pytest.raises(quantity.QuantityError):
        quantity.parse_quantity("1 Gi")


def test_sub_milli_precision_rounds_up() -> None:
    assert quantity.parse_quantity("1n") == 1
    assert quantity.parse_quantity("0.0001") == 1
    assert quantity.parse_quantity("1.0001m") == 2
    assert quantity.parse_quantity("1m") == 1


def test_integers_and_floats_are_whole_units() -> None:
    assert quantity.parse_quantity(2) == 2000
    assert quantity.parse_quantity(0.25) == 250


_NUMBER = st.one_of(
    st.integers(min_value=0, max_value=10**12).map(str),
    st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False).map(
        lambda d: format(d, "f")
    ),
)
_SUFFIX = st.sampled_from(["", "m", "u", "n", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti", "e3", "E-2", "e0"])


@given(sign=st.sampled_from(["", "+", "-"]), number=_NUMBER, suffix=_SUFFIX)
def test_generated_quantities_agree_with_kubernetes_client(sign: str, number: str, suffix: str) -> None:
    text = f"{sign}{number}{suffix}"
    with decimal.localcontext() as context:
        context.prec = 60
        assert quantity.parse_quantity(text) == _kube_milli(text)


@given(milli=st.integers(min_value=0, max_value=10**21))
def test_format_quantity_round_trips(milli: int) -> None:
    assert quantity.parse_quantity(quantity.format_quantity(milli)) == milli


@pytest.mark.parametrize(
    ("milli", "text"),
    [(500, "500m"), (2000, "2"), (1024 * 2**20 * 1000, "1Gi"), (1536 * 2**20 * 1000, "1536Mi")],
)
def test_format_quantity_is_canonical(milli: int, text: str) -> None:
    assert quantity.format_quantity(milli) == text


def test_parse_resources_names_the_bad_key() -> None:
    with pytest.raises(quantity.QuantityError, match=r"spec\.limits\.memory"):
        quantity.parse_resources({"cpu": "1", "memory": "lots"}, field="spec.limits")
