"""routing.choice: who may take a conversation and whom each strategy picks (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.choice import Candidate, choose, eligible_ids, refusal
from storage.models import Presence, Strategy

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def cand(manager_id: int, **changes: object) -> Candidate:
    values: dict[str, object] = {
        "manager_id": manager_id,
        "position": manager_id,
        "is_active": True,
        "presence": Presence.ONLINE,
        "absent": False,
        "in_hours": True,
        "open_count": 0,
        "capacity": 5,
        "languages": (),
        "last_assigned_at": None,
    }
    values.update(changes)
    return Candidate(**values)  # type: ignore[arg-type]


# -- refusal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"is_active": False}, "inactive"),
        ({"absent": True}, "absent"),
        ({"presence": Presence.AWAY}, "away"),
        ({"presence": Presence.OFFLINE}, "offline"),
        ({"in_hours": False}, "outside working hours"),
        ({"open_count": 5, "capacity": 5}, "at capacity 5/5"),
        ({"open_count": 7, "capacity": 5}, "at capacity 7/5"),
        ({"capacity": 0}, "at capacity 0/0"),
        ({"languages": ("en",)}, "does not speak ru"),
    ],
)
def test_refusal_names_the_reason(changes: dict[str, object], reason: str) -> None:
    assert refusal(cand(1, **changes), language="ru", respect_hours=True) == reason


def test_refusal_none_for_an_eligible_member() -> None:
    assert refusal(cand(1), language="ru", respect_hours=True) is None
    assert refusal(cand(1, open_count=4), language=None, respect_hours=True) is None
    assert refusal(cand(1, languages=("ru", "en")), language="en", respect_hours=True) is None
    # No language known on either side: no refusal.
    assert refusal(cand(1, languages=("en",)), language=None, respect_hours=True) is None


def test_refusal_hours_only_when_respected() -> None:
    assert refusal(cand(1, in_hours=False), language=None, respect_hours=False) is None


def test_refusal_first_reason_wins() -> None:
    both = cand(1, is_active=False, presence=Presence.OFFLINE, open_count=9)
    assert refusal(both, language=None, respect_hours=True) == "inactive"


# -- choose, worked examples -----------------------------------------------------------


def test_evenly_picks_the_least_recently_assigned() -> None:
    members = [
        cand(1, last_assigned_at=T0 + timedelta(minutes=2)),
        cand(2, last_assigned_at=T0),
        cand(3, last_assigned_at=T0 + timedelta(minutes=1)),
    ]
    choice = choose(Strategy.EVENLY, members)
    assert choice.manager_id == 2
    assert "least recently assigned" in choice.explanation
    assert choice.refused == {}


def test_evenly_never_assigned_goes_first_then_by_position() -> None:
    members = [
        cand(1, position=2, last_assigned_at=T0),
        cand(2, position=1),
        cand(3, position=0, last_assigned_at=T0),
        cand(4, position=0),
    ]
    assert choose(Strategy.EVENLY, members).manager_id == 4
    assert "never" in choose(Strategy.EVENLY, members).explanation


def test_evenly_skips_the_ineligible_and_says_why() -> None:
    members = [cand(1, presence=Presence.AWAY), cand(2, last_assigned_at=T0), cand(3, absent=True)]
    choice = choose(Strategy.EVENLY, members)
    assert choice.manager_id == 2
    assert choice.refused == {1: "away", 3: "absent"}


def test_strict_order_first_eligible_by_position() -> None:
    members = [
        cand(10, position=3),
        cand(11, position=1, presence=Presence.OFFLINE),
        cand(12, position=2),
    ]
    choice = choose(Strategy.STRICT_ORDER, members)
    assert choice.manager_id == 12
    assert choice.explanation == "strict order: first in order (position 2)"


def test_strict_order_forwarding_takes_the_next_and_wraps_round() -> None:
    members = [cand(1, position=0), cand(2, position=1), cand(3, position=2)]
    assert choose(Strategy.STRICT_ORDER, members, after_manager_id=1).manager_id == 2
    assert choose(Strategy.STRICT_ORDER, members, after_manager_id=2).manager_id == 3
    assert choose(Strategy.STRICT_ORDER, members, after_manager_id=3).manager_id == 1
    skip = [cand(1, position=0), cand(2, position=1, open_count=5), cand(3, position=2)]
    choice = choose(Strategy.STRICT_ORDER, skip, after_manager_id=1)
    assert choice.manager_id == 3
    assert "next in order" in choice.explanation


def test_strict_order_forwarding_with_nobody_else_returns_nobody() -> None:
    members = [cand(1, position=0), cand(2, position=1, presence=Presence.AWAY)]
    choice = choose(Strategy.STRICT_ORDER, members, after_manager_id=1)
    assert choice.manager_id is None
    assert choice.explanation.startswith("nobody can take it")
    assert choice.refused == {2: "away"}


def test_least_loaded_by_share_of_capacity() -> None:
    members = [
        cand(1, open_count=2, capacity=4),  # 50 %
        cand(2, open_count=3, capacity=10),  # 30 %
        cand(3, open_count=1, capacity=2),  # 50 %
    ]
    choice = choose(Strategy.LEAST_LOADED, members)
    assert choice.manager_id == 2
    assert choice.explanation == "least loaded: 3/10 open"


def test_least_loaded_ties_go_to_the_least_recently_assigned() -> None:
    members = [
        cand(1, open_count=1, last_assigned_at=T0 + timedelta(seconds=5)),
        cand(2, open_count=1, last_assigned_at=T0),
    ]
    assert choose(Strategy.LEAST_LOADED, members).manager_id == 2


def test_nobody_explains_each_reason_with_counts() -> None:
    members = [
        cand(1, open_count=5),
        cand(2, open_count=5),
        cand(3, presence=Presence.OFFLINE),
    ]
    choice = choose(Strategy.EVENLY, members)
    assert choice.manager_id is None
    assert choice.explanation == "nobody can take it: 2 at capacity 5/5; 1 offline"
    assert choose(Strategy.EVENLY, []).explanation == "the queue has no members"


def test_language_is_respected() -> None:
    members = [cand(1, languages=("ru",)), cand(2, languages=("en", "ru"), position=5)]
    assert choose(Strategy.EVENLY, members, language="en").manager_id == 2
    assert eligible_ids(members, language="en", respect_hours=True) == [2]


# -- properties --------------------------------------------------------------------------

STRATEGIES = [Strategy.EVENLY, Strategy.STRICT_ORDER, Strategy.LEAST_LOADED, Strategy.EVERYBODY]


@st.composite
def candidates(draw: st.DrawFn, min_size: int = 0) -> list[Candidate]:
    count = draw(st.integers(min_value=min_size, max_value=8))
    ids = draw(st.lists(st.integers(1, 60), min_size=count, max_size=count, unique=True))
    result = []
    for manager_id in ids:
        capacity = draw(st.integers(0, 6))
        last = draw(st.none() | st.integers(0, 5).map(lambda m: T0 + timedelta(minutes=m)))
        result.append(
            Candidate(
                manager_id=manager_id,
                position=draw(st.integers(0, 5)),
                is_active=draw(st.booleans() | st.just(True)),
                presence=draw(st.sampled_from(list(Presence)) | st.just(Presence.ONLINE)),
                absent=draw(st.booleans() | st.just(False)),
                in_hours=draw(st.booleans() | st.just(True)),
                open_count=draw(st.integers(0, capacity + 1)),
                capacity=capacity,
                languages=tuple(draw(st.lists(st.sampled_from(["ru", "en", "de"]), max_size=2))),
                last_assigned_at=last,
            )
        )
    return result


languages = st.none() | st.sampled_from(["ru", "en"])


@settings(max_examples=400)
@given(st.sampled_from(STRATEGIES), candidates(), languages, st.booleans(), st.data())
def test_never_an_ineligible_manager(
    strategy: Strategy,
    members: list[Candidate],
    language: str | None,
    respect_hours: bool,
    data: st.DataObject,
) -> None:
    after = data.draw(st.none() | st.sampled_from([m.manager_id for m in members] or [999]))
    choice = choose(
        strategy, members, language=language, respect_hours=respect_hours, after_manager_id=after
    )
    by_id = {m.manager_id: m for m in members}
    eligible = {
        m.manager_id
        for m in members
        if refusal(m, language=language, respect_hours=respect_hours) is None
    }
    if choice.manager_id is not None:
        picked = by_id[choice.manager_id]
        # Each refusal reason, checked on its own terms.
        assert picked.is_active
        assert not picked.absent
        assert picked.presence is Presence.ONLINE
        assert picked.in_hours or not respect_hours
        assert picked.open_count < picked.capacity
        assert not language or not picked.languages or language in picked.languages
        assert choice.manager_id != after
    else:
        assert eligible - {after} == set()
    # Every refused member is ineligible, with its reason; no eligible one is refused.
    for manager_id, reason in choice.refused.items():
        assert reason == refusal(by_id[manager_id], language=language, respect_hours=respect_hours)
    assert set(choice.refused) == set(by_id) - eligible


@settings(max_examples=300)
@given(candidates(min_size=1), languages)
def test_evenly_picks_the_least_recently_assigned_eligible(
    members: list[Candidate], language: str | None
) -> None:
    choice = choose(Strategy.EVENLY, members, language=language)
    eligible = [m for m in members if refusal(m, language=language, respect_hours=True) is None]
    if not eligible:
        assert choice.manager_id is None
        return
    oldest = min(m.last_assigned_at or datetime.min.replace(tzinfo=UTC) for m in eligible)
    picked = next(m for m in members if m.manager_id == choice.manager_id)
    assert (picked.last_assigned_at or datetime.min.replace(tzinfo=UTC)) == oldest


@settings(max_examples=200)
@given(st.integers(2, 7), st.integers(0, 40))
def test_evenly_over_a_sequence_stays_within_one(size: int, arrivals: int) -> None:
    """Assign `arrivals` in turn to the same eligible members: counts differ by at most one."""
    members = {i: cand(i, capacity=1000) for i in range(1, size + 1)}
    counts = dict.fromkeys(members, 0)
    for tick in range(arrivals):
        choice = choose(Strategy.EVENLY, list(members.values()))
        assert choice.manager_id is not None
        counts[choice.manager_id] += 1
        old = members[choice.manager_id]
        members[choice.manager_id] = cand(
            old.manager_id,
            capacity=1000,
            open_count=old.open_count + 1,
            last_assigned_at=T0 + timedelta(seconds=tick),
        )
    assert max(counts.values()) - min(counts.values()) <= 1


def _cyclic_next(members: list[Candidate], after: int | None, allowed: set[int]) -> int | None:
    ordered = sorted(members, key=lambda c: (c.position, c.manager_id))
    ids = [c.manager_id for c in ordered]
    start = ids.index(after) + 1 if after in ids else 0
    for manager_id in ids[start:] + ids[:start]:
        if manager_id in allowed and manager_id != after:
            return manager_id
    return None


@settings(max_examples=400)
@given(candidates(min_size=1), st.data())
def test_strict_order_respects_positions_and_forwarding_wraps_round(
    members: list[Candidate], data: st.DataObject
) -> None:
    after = data.draw(st.none() | st.sampled_from([m.manager_id for m in members]))
    choice = choose(Strategy.STRICT_ORDER, members, after_manager_id=after)
    allowed = set(eligible_ids(members, language=None, respect_hours=True))
    expected = _cyclic_next(members, after, allowed)
    assert choice.manager_id == expected
    if after is not None:
        assert choice.manager_id != after
    if after is None and expected is not None:
        # No eligible member stands before the chosen one.
        picked = next(m for m in members if m.manager_id == expected)
        assert all(
            (m.position, m.manager_id) > (picked.position, picked.manager_id)
            for m in members
            if m.manager_id in allowed and m.manager_id != expected
        )


@settings(max_examples=100)
@given(st.integers(2, 7), st.integers(1, 30))
def test_strict_order_forwarding_visits_everyone_in_turn(size: int, hops: int) -> None:
    members = [cand(i, position=size - i) for i in range(1, size + 1)]  # reversed positions
    order = [m.manager_id for m in sorted(members, key=lambda c: c.position)]
    current = choose(Strategy.STRICT_ORDER, members).manager_id
    assert current == order[0]
    for hop in range(1, hops + 1):
        current = choose(Strategy.STRICT_ORDER, members, after_manager_id=current).manager_id
        assert current == order[hop % size]


@settings(max_examples=300)
@given(candidates(min_size=1), languages)
def test_least_loaded_picks_a_minimal_load(members: list[Candidate], language: str | None) -> None:
    choice = choose(Strategy.LEAST_LOADED, members, language=language)
    eligible = [m for m in members if refusal(m, language=language, respect_hours=True) is None]
    if not eligible:
        assert choice.manager_id is None
        return
    picked = next(m for m in members if m.manager_id == choice.manager_id)
    lowest = min(m.open_count / m.capacity for m in eligible)  # eligible: capacity > 0
    assert picked.open_count / picked.capacity == lowest
    assert picked.open_count == min(
        m.open_count for m in eligible if m.open_count / m.capacity == lowest
    )
