"""`ListStream`: a list response's items, read as its body arrives in arbitrary chunks."""

from __future__ import annotations

import json
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodesmith.kube.liststream import ListStream

Obj = dict[str, typing.Any]

_json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(
    _json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_items = st.lists(st.dictionaries(st.text(max_size=8), _json, max_size=5), max_size=8)


def read(body: bytes, cuts: list[int]) -> tuple[list[Obj], ListStream]:
    """Feed ``body`` cut at ``cuts`` (byte offsets, so a cut may split a UTF-8 character)."""
    stream, start = ListStream(), 0
    items: list[Obj] = []
    for cut in [*sorted(set(cuts)), len(body)]:
        items += stream.feed(body[start:cut])
        start = cut
    items += stream.close()
    return items, stream


@given(
    items=_items,
    version=st.text(),
    indent=st.sampled_from([None, 1]),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_any_chunking_yields_every_item_in_order_and_the_head(
    items: list[Obj], version: str, indent: int | None, cuts: list[int]
) -> None:
    body = json.dumps(
        {"kind": "PodList", "metadata": {"resourceVersion": version}, "items": items, "after": 1.5},
        indent=indent,
        ensure_ascii=False,
    ).encode()

    got, stream = read(body, [c for c in cuts if c < len(body)])

    assert got == items
    assert stream.head == {"kind": "PodList", "metadata": {"resourceVersion": version}, "after": 1.5}
    assert stream.done


def test_a_number_split_at_a_chunk_boundary_is_read_whole() -> None:
    body = b'{"metadata": {}, "count": 12345, "items": []}'
    cut = body.index(b"123") + 2

    _, stream = read(body, [cut])

    assert stream.head["count"] == 12345


def test_null_or_missing_items_give_no_items() -> None:
    assert read(b'{"items": null, "metadata": {"resourceVersion": "7"}}', [3])[0] == []
    assert read(b'{"metadata": {"resourceVersion": "7"}}', [])[1].head["metadata"] == {"resourceVersion": "7"}


def test_items_are_handed_on_before_the_body_ends() -> None:
    stream = ListStream()
    first = list(stream.feed(b'{"items": [{"a": 1}, {"b": 2}, {"c"'))

    assert first == [{"a": 1}, {"b": 2}]
    assert list(stream.feed(b": 3}]}")) == [{"c": 3}]
    assert list(stream.close()) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": [{"a": 1}, {"b": 2}',  # cut short
        b'{"items": [{"a": 1} {"b": 2}]}',  # no comma
        b'{"items": [1, 2]}',  # items that are not objects
        b'{"items": {"a": 1}}',  # items not an array
        b'["not", "an", "object"]',
        b'{"items": [{"a": 1}]} trailing',
        b'{"items": [{"a": tru}]}',  # malformed inside an item
    ],
)
def test_a_body_that_is_not_a_whole_list_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match="list response"):
        read(body, [len(body) // 2])


def test_an_item_cut_after_the_buffer_was_trimmed_is_read_with_the_next_small_chunk() -> None:
    filler = [{"n": i, "pad": "x" * 1000} for i in range(100)]  # >64 KiB read, so the buffer is trimmed
    body = json.dumps({"items": [*filler, {"last": "y" * 500}]}).encode()
    cut = len(body) - 300  # inside the last item
    stream = ListStream()

    first = list(stream.feed(body[:cut]))
    rest = list(stream.feed(body[cut:]))  # a chunk far smaller than what was trimmed

    assert first == filler
    assert rest == [{"last": "y" * 500}]
