"""`fitindex.FitIndex` yields exactly the positions a scan of every node's room would, in order, through
removals and updates."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nodesmith.scheduling import fitindex
from nodesmith.scheduling import resources as res

WIDTH = 3
amounts = st.integers(min_value=-2, max_value=12)
vectors = st.tuples(amounts, amounts, amounts)
requests = st.tuples(*(st.integers(min_value=0, max_value=12) for _ in range(WIDTH)))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.integers(min_value=0), vectors),
        st.tuples(st.just("remove"), st.integers(min_value=0), st.none()),
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(
    rooms=st.lists(vectors, max_size=2 * fitindex.FANOUT**2 + 3),
    changes=steps,
    probes=st.lists(requests, min_size=1, max_size=5),
)
def test_fitting_positions_are_those_of_a_full_scan(
    rooms: list[res.Vector], changes: list[tuple[str, int, res.Vector | None]], probes: list[res.Vector]
) -> None:
    index = fitindex.FitIndex(rooms, WIDTH)
    original = index.copy()
    expected: list[res.Vector | None] = list(rooms)
    for what, position, room in changes:
        if not rooms:
            break
        position %= len(rooms)
        if what == "remove":
            index.remove(position)
            expected[position] = None
        else:
            assert room is not None
            index.update(position, room)
            expected[position] = room
    for need in probes:
        scan = [i for i, room in enumerate(expected) if room is not None and res.fits(need, room)]
        assert list(index.fitting(need)) == scan
        assert list(original.fitting(need)) == [i for i, room in enumerate(rooms) if res.fits(need, room)]


@settings(max_examples=200, deadline=None)
@given(
    rooms=st.lists(vectors, max_size=2 * fitindex.FANOUT**2 + 3),
    probes=st.lists(requests, min_size=1, max_size=5),
)
def test_appending_one_room_at_a_time_answers_like_the_index_built_at_once(
    rooms: list[res.Vector], probes: list[res.Vector]
) -> None:
    """The cost-optimised packing grows an index of its NodeClaims' rooms as it opens them."""
    grown = fitindex.FitIndex([], WIDTH)
    for position, room in enumerate(rooms):
        assert grown.append(room) == position
    for probe in probes:
        assert list(grown.fitting(probe)) == [i for i, room in enumerate(rooms) if res.fits(probe, room)]
