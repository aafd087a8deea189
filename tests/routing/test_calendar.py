"""Working hours: worked examples, validation, DST, and properties of the arithmetic."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routing.calendar import (
    WEEKDAYS,
    WorkingHours,
    add_working_time,
    is_working,
    next_working_moment,
    working_seconds_between,
)

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0
US = timedelta(microseconds=1)


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    """A local wall-clock time, returned in UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold).astimezone(UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


LUNCH = WorkingHours(week={d: [("09:00", "13:00"), ("14:00", "18:00")] for d in WEEKDAYS[:5]})


# --- worked examples --------------------------------------------------------------------------


def test_friday_evening_plus_two_hours_is_monday_morning() -> None:
    hours = WorkingHours.weekdays_9_to_18()
    start = local(MSK, 2024, 3, 15, 17)  # Friday
    assert start == utc(2024, 3, 15, 14)
    due = add_working_time(hours, start, 2 * HOUR)
    assert due == local(MSK, 2024, 3, 18, 10) == utc(2024, 3, 18, 7)
    assert due.tzinfo is UTC
    assert working_seconds_between(hours, start, due) == 2 * HOUR


def test_start_outside_hours_counts_from_next_working_moment() -> None:
    hours = WorkingHours.weekdays_9_to_18()
    saturday = local(MSK, 2024, 3, 16, 12)
    assert not is_working(hours, saturday)
    assert next_working_moment(hours, saturday) == local(MSK, 2024, 3, 18, 9)
    assert add_working_time(hours, saturday, 30 * 60) == local(MSK, 2024, 3, 18, 9, 30)
    assert add_working_time(hours, saturday, 0) == local(MSK, 2024, 3, 18, 9)
    # Ends exactly at the end of an interval: that end, not the next morning.
    assert add_working_time(hours, local(MSK, 2024, 3, 18, 9), 9 * HOUR) == local(
        MSK, 2024, 3, 18, 18
    )


def test_lunch_break() -> None:
    assert add_working_time(LUNCH, local(MSK, 2024, 3, 18, 12, 30), HOUR) == local(
        MSK, 2024, 3, 18, 14, 30
    )
    assert add_working_time(LUNCH, local(MSK, 2024, 3, 18, 13, 15), HOUR) == local(
        MSK, 2024, 3, 18, 15
    )
    between = working_seconds_between(
        LUNCH, local(MSK, 2024, 3, 18, 12), local(MSK, 2024, 3, 18, 15)
    )
    assert between == 2 * HOUR
    assert not is_working(LUNCH, local(MSK, 2024, 3, 18, 13, 30))
    assert not is_working(LUNCH, utc(2024, 3, 18, 10, 59, 59))
    assert is_working(LUNCH, local(MSK, 2024, 3, 18, 14))
    assert not is_working(LUNCH, local(MSK, 2024, 3, 18, 18))  # ends are excluded


def test_holidays() -> None:
    hours = WorkingHours(
        week={d: [("09:00", "18:00")] for d in WEEKDAYS[:5]},
        holidays=[date(2024, 3, 18)],
    )
    start = local(MSK, 2024, 3, 15, 17)
    assert add_working_time(hours, start, 2 * HOUR) == local(MSK, 2024, 3, 19, 10)
    assert not is_working(hours, local(MSK, 2024, 3, 18, 12))
    assert working_seconds_between(hours, start, local(MSK, 2024, 3, 20, 9)) == 10 * HOUR


def test_extra_workday_russian_style() -> None:
    # November 2024: Saturday the 2nd was a workday, Monday the 4th a holiday.
    hours = WorkingHours(
        week={d: [("09:00", "18:00")] for d in WEEKDAYS[:5]},
        holidays=[date(2024, 11, 4)],
        extra_workdays={date(2024, 11, 2): [("09:00", "17:00")]},
    )
    friday = local(MSK, 2024, 11, 1, 17)
    assert add_working_time(hours, friday, 2 * HOUR) == local(MSK, 2024, 11, 2, 10)
    assert add_working_time(hours, friday, 9 * HOUR) == local(MSK, 2024, 11, 2, 17)
    assert add_working_time(hours, friday, 10 * HOUR) == local(MSK, 2024, 11, 5, 10)
    assert is_working(hours, local(MSK, 2024, 11, 2, 16, 59))
    assert not is_working(hours, local(MSK, 2024, 11, 2, 17, 30))
    assert working_seconds_between(hours, friday, local(MSK, 2024, 11, 6)) == 18 * HOUR


def test_night_shift_is_two_intervals() -> None:
    hours = WorkingHours(week={"mon": [("22:00", "24:00")], "tue": [("00:00", "06:00")]})
    monday = local(MSK, 2024, 3, 18, 23)
    assert add_working_time(hours, monday, 3 * HOUR) == local(MSK, 2024, 3, 19, 2)
    assert add_working_time(hours, monday, 7 * HOUR) == local(MSK, 2024, 3, 19, 6)
    assert add_working_time(hours, monday, 8 * HOUR) == local(MSK, 2024, 3, 25, 23)
    assert is_working(hours, local(MSK, 2024, 3, 19, 0))


def test_day_without_hours_is_skipped() -> None:
    hours = WorkingHours(week={"mon": [("10:00", "12:00")], "wed": [("10:00", "12:00")]})
    assert add_working_time(hours, local(MSK, 2024, 3, 18, 11), 2 * HOUR) == local(
        MSK, 2024, 3, 20, 11
    )


def test_always_and_none_mean_24_7() -> None:
    start = utc(2024, 3, 15, 14, 5, 6, 7)
    for hours in (WorkingHours.always(), None):
        assert is_working(hours, start)
        assert add_working_time(hours, start, 10 * 24 * HOUR) == start + timedelta(days=10)
        assert working_seconds_between(hours, start, start + timedelta(hours=5)) == 5 * HOUR


def test_non_utc_aware_input_gives_utc_output() -> None:
    hours = WorkingHours.weekdays_9_to_18()
    start = datetime(2024, 3, 15, 17, tzinfo=MSK)
    due = add_working_time(hours, start, 2 * HOUR)
    assert due == utc(2024, 3, 18, 7) and due.utcoffset() == timedelta(0)


def test_long_targets_are_fast() -> None:
    hours = WorkingHours.weekdays_9_to_18("Europe/Berlin")
    start = local(BERLIN, 2024, 1, 1, 9)  # Monday
    assert add_working_time(hours, start, 4 * 45 * HOUR) == local(BERLIN, 2024, 1, 26, 18)
    began = time.perf_counter()
    for _ in range(20):
        due = add_working_time(hours, start, 52 * 45 * HOUR)
        assert working_seconds_between(hours, start, due) == 52 * 45 * HOUR
    assert due == local(BERLIN, 2024, 12, 27, 18)
    assert time.perf_counter() - began < 1.0


# --- DST --------------------------------------------------------------------------------------


def test_berlin_spring_forward() -> None:
    # 2024-03-31 (Sunday): 02:00 CET becomes 03:00 CEST; the day has 23 hours.
    day = WorkingHours(timezone="Europe/Berlin", week={"sun": [("00:00", "24:00")]})
    midnight = local(BERLIN, 2024, 3, 31)
    assert add_working_time(day, midnight, 3 * HOUR) == local(BERLIN, 2024, 3, 31, 4)
    assert working_seconds_between(day, midnight, local(BERLIN, 2024, 4, 1)) == 23 * HOUR

    night = WorkingHours(timezone="Europe/Berlin", week={"sun": [("01:00", "04:00")]})
    one = local(BERLIN, 2024, 3, 31, 1)
    assert one == utc(2024, 3, 31, 0)
    assert working_seconds_between(night, one, local(BERLIN, 2024, 3, 31, 5)) == 2 * HOUR
    assert add_working_time(night, one, 1.5 * HOUR) == local(BERLIN, 2024, 3, 31, 3, 30)
    assert add_working_time(night, one, 1.5 * HOUR) == utc(2024, 3, 31, 1, 30)

    # An interval starting in the skipped hour begins when the clock jumps.
    gap = WorkingHours(timezone="Europe/Berlin", week={"sun": [("02:30", "04:00")]})
    assert next_working_moment(gap, one) == utc(2024, 3, 31, 1)  # 03:00 CEST
    assert working_seconds_between(gap, one, local(BERLIN, 2024, 3, 31, 5)) == HOUR

    # A weekday target across the change: Friday CET to Monday CEST.
    office = WorkingHours.weekdays_9_to_18("Europe/Berlin")
    due = add_working_time(office, local(BERLIN, 2024, 3, 29, 17), 2 * HOUR)
    assert due == local(BERLIN, 2024, 4, 1, 10) == utc(2024, 4, 1, 8)


def test_berlin_fall_back() -> None:
    # 2024-10-27 (Sunday): 03:00 CEST becomes 02:00 CET; the day has 25 hours.
    day = WorkingHours(timezone="Europe/Berlin", week={"sun": [("00:00", "24:00")]})
    midnight = local(BERLIN, 2024, 10, 27)
    assert working_seconds_between(day, midnight, local(BERLIN, 2024, 10, 28)) == 25 * HOUR
    assert add_working_time(day, midnight, 4 * HOUR) == local(BERLIN, 2024, 10, 27, 3)

    night = WorkingHours(timezone="Europe/Berlin", week={"sun": [("01:00", "04:00")]})
    one = local(BERLIN, 2024, 10, 27, 1)
    assert one == utc(2024, 10, 26, 23)
    assert working_seconds_between(night, one, local(BERLIN, 2024, 10, 27, 5)) == 4 * HOUR
    # 1.5 h after 01:00 CEST is the first 02:30 (CEST); 2.5 h is the second 02:30 (CET).
    assert add_working_time(night, one, 1.5 * HOUR) == local(BERLIN, 2024, 10, 27, 2, 30)
    assert add_working_time(night, one, 2.5 * HOUR) == local(BERLIN, 2024, 10, 27, 2, 30, fold=1)
    assert add_working_time(night, one, 2.5 * HOUR) == utc(2024, 10, 27, 1, 30)

    # Wall-clock 02:30-04:00 is passed twice: 02:30-03:00 CEST, then 02:30-04:00 CET.
    late = WorkingHours(timezone="Europe/Berlin", week={"sun": [("02:30", "04:00")]})
    assert is_working(late, utc(2024, 10, 27, 0, 30))  # 02:30 CEST
    assert not is_working(late, utc(2024, 10, 27, 1, 15))  # 02:15 CET
    assert next_working_moment(late, utc(2024, 10, 27, 1, 0)) == utc(2024, 10, 27, 1, 30)
    assert working_seconds_between(late, one, local(BERLIN, 2024, 10, 27, 5)) == 2 * HOUR


def test_moscow_has_no_dst() -> None:
    office = WorkingHours.weekdays_9_to_18()
    for month in (1, 4, 7, 10):
        monday = next(
            date(2024, month, d) for d in range(1, 8) if date(2024, month, d).weekday() == 0
        )
        start = datetime(monday.year, monday.month, monday.day, 6, tzinfo=UTC)  # 09:00 MSK
        assert add_working_time(office, start, 9 * HOUR) == start + timedelta(hours=9)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"week": {"mon": [("9:00", "18:00")]}}, r"week\.mon: interval #1 .*start time '9:00'"),
        ({"week": {"mon": [("09:00", "25:00")]}}, r"end time '25:00' is not"),
        ({"week": {"mon": [("24:00", "24:00")]}}, r"start time '24:00'"),
        ({"week": {"mon": [("09:60", "18:00")]}}, r"start time '09:60'"),
        ({"week": {"tue": [("18:00", "09:00")]}}, r"week\.tue: .*start must be before end"),
        ({"week": {"fri": [("22:00", "06:00")]}}, r"may not cross midnight"),
        ({"week": {"mon": [("10:00", "10:00")]}}, r"start must be before end"),
        (
            {"week": {"mon": [("14:00", "18:00"), ("09:00", "13:00")]}},
            r"week\.mon: interval #2 .*must be sorted",
        ),
        (
            {"week": {"mon": [("09:00", "13:00"), ("12:00", "18:00")]}},
            r"interval #2 '12:00'-'18:00': overlaps the previous interval '09:00'-'13:00'",
        ),
        ({"week": {"monday": [("09:00", "18:00")]}}, r"week\.monday"),
        ({"week": {"mon": [("09:00", "13:00", "14:00")]}}, r"week\.mon\.0"),
        ({"week": {}, "timezone": "Mars/Olympus"}, r"unknown time zone 'Mars/Olympus'"),
        (
            {"week": {}, "extra_workdays": {date(2024, 11, 2): [("18:00", "09:00")]}},
            r"extra_workdays\.2024-11-02: interval #1",
        ),
        ({"week": {}, "extra_workdays": {date(2024, 11, 2): []}}, r"no intervals"),
        (
            {
                "week": {},
                "holidays": [date(2024, 11, 2)],
                "extra_workdays": {date(2024, 11, 2): [("09:00", "18:00")]},
            },
            r"both in holidays and in extra_workdays: 2024-11-02",
        ),
        ({"week": {}, "unknown": 1}, r"unknown"),
    ],
)
def test_validation_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WorkingHours.model_validate(kwargs)


def test_valid_shapes_and_round_trip() -> None:
    hours = WorkingHours.model_validate(
        {
            "timezone": "Europe/Berlin",
            "week": {"mon": [["09:00", "13:00"], ["13:00", "24:00"]], "sat": []},
            "holidays": ["2024-12-25"],
            "extra_workdays": {"2024-12-28": [["10:00", "14:00"]]},
        }
    )
    assert hours.week["mon"] == [("09:00", "13:00"), ("13:00", "24:00")]
    again = WorkingHours.model_validate_json(hours.model_dump_json())
    assert again == hours
    assert WorkingHours(week={}).timezone == "Europe/Moscow"
    with pytest.raises(ValidationError):
        hours.timezone = "UTC"  # type: ignore[misc]


def test_argument_errors() -> None:
    hours = WorkingHours.weekdays_9_to_18()
    naive = datetime(2024, 3, 15, 12)
    aware = utc(2024, 3, 15, 12)
    for call in (
        lambda: is_working(hours, naive),
        lambda: next_working_moment(hours, naive),
        lambda: add_working_time(hours, naive, 1),
        lambda: working_seconds_between(hours, naive, aware),
        lambda: working_seconds_between(hours, aware, naive),
        lambda: add_working_time(hours, aware, -1),
        lambda: add_working_time(hours, aware, float("nan")),
        lambda: add_working_time(hours, aware, float("inf")),
    ):
        with pytest.raises(ValueError):
            call()
    assert working_seconds_between(hours, aware, aware - timedelta(days=3)) == 0.0


def test_no_working_time_at_all() -> None:
    empty = WorkingHours(week={"mon": []}, holidays=[date(2024, 3, 18)])
    start = utc(2024, 3, 15, 12)
    with pytest.raises(ValueError, match="no working time"):
        add_working_time(empty, start, 1)
    with pytest.raises(ValueError, match="no working time"):
        next_working_moment(empty, start)
    assert add_working_time(empty, start, 0) == start
    assert not is_working(empty, start)
    assert working_seconds_between(empty, start, start + timedelta(days=30)) == 0.0


def test_only_extra_days_run_out() -> None:
    hours = WorkingHours(week={}, extra_workdays={date(2024, 3, 16): [("10:00", "12:00")]})
    start = local(MSK, 2024, 3, 15)
    assert add_working_time(hours, start, HOUR) == local(MSK, 2024, 3, 16, 11)
    assert add_working_time(hours, start, 2 * HOUR) == local(MSK, 2024, 3, 16, 12)
    with pytest.raises(ValueError, match="fewer than"):
        add_working_time(hours, start, 2 * HOUR + 1)
    with pytest.raises(ValueError, match="no working time after"):
        next_working_moment(hours, local(MSK, 2024, 3, 16, 12))


# --- properties -------------------------------------------------------------------------------

ZONES = [
    "Europe/Moscow",
    "Europe/Berlin",
    "America/New_York",
    "UTC",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/Santiago",  # changes at local midnight
    "Asia/Kolkata",
]
BOUNDARIES = list(range(0, 24 * 60 + 1, 30))


@st.composite
def day_intervals(draw: st.DrawFn) -> list[tuple[str, str]]:
    points = sorted(draw(st.sets(st.sampled_from(BOUNDARIES), max_size=6)))
    if len(points) % 2:
        points = points[:-1]
    as_text = [f"{p // 60:02d}:{p % 60:02d}" for p in points]
    return [(as_text[i], as_text[i + 1]) for i in range(0, len(as_text), 2)]


@st.composite
def calendars(draw: st.DrawFn) -> tuple[WorkingHours, datetime]:
    start = draw(
        st.datetimes(
            min_value=datetime(2020, 1, 1),
            max_value=datetime(2027, 12, 31),
            timezones=st.just(UTC),
        )
    )
    if draw(st.booleans()):
        start = start.replace(second=0, microsecond=0)
    week = {d: draw(day_intervals()) for d in WEEKDAYS}
    if not any(week.values()):
        week["wed"] = [("10:00", "11:30")]
    offsets = draw(st.sets(st.integers(-3, 40), max_size=6))
    holidays = [start.date() + timedelta(days=k) for k in offsets if k % 3]
    extra = {}
    for k in offsets:
        if not k % 3:
            intervals = draw(day_intervals())
            if intervals:
                extra[start.date() + timedelta(days=k)] = intervals
    hours = WorkingHours(
        timezone=draw(st.sampled_from(ZONES)),
        week=week,
        holidays=holidays,
        extra_workdays=extra,
    )
    return hours, start


amounts = st.one_of(
    st.integers(0, 30 * 24 * 3600).map(float),
    st.floats(0, 3 * 24 * 3600, allow_nan=False),
    st.integers(0, 3 * 24 * 3600 * 1_000_000).map(lambda us: us / 1_000_000),
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(calendars(), amounts)
def test_working_seconds_inverts_add_working_time(
    calendar: tuple[WorkingHours, datetime], seconds: float
) -> None:
    hours, start = calendar
    due = add_working_time(hours, start, seconds)
    assert due >= start and due.tzinfo is UTC
    assert abs(working_seconds_between(hours, start, due) - seconds) <= 1e-6
    # A working moment, or the (excluded) end of an interval: just before it was working.
    assert is_working(hours, due) or is_working(hours, due - US)
    if round(seconds * 1_000_000) > 0:  # the work done ends at ``due``, not earlier
        assert is_working(hours, due - US)
        assert working_seconds_between(hours, start, due - US) < seconds


@FAST
@given(calendars(), amounts, amounts)
def test_add_working_time_is_monotonic(
    calendar: tuple[WorkingHours, datetime], first: float, second: float
) -> None:
    hours, start = calendar
    low, high = sorted((first, second))
    assert add_working_time(hours, start, low) <= add_working_time(hours, start, high)
    # Splitting a target in two changes nothing (up to rounding to microseconds).
    twice = add_working_time(hours, add_working_time(hours, start, low), high)
    assert abs(working_seconds_between(hours, start, twice) - (low + high)) <= 2e-6


@FAST
@given(calendars(), st.integers(0, 14 * 24 * 60))
def test_is_working_agrees_with_next_working_moment(
    calendar: tuple[WorkingHours, datetime], minutes: int
) -> None:
    hours, start = calendar
    at = start + timedelta(minutes=minutes)
    upcoming = next_working_moment(hours, at)
    assert upcoming >= at
    assert is_working(hours, upcoming)
    assert is_working(hours, at) == (upcoming == at)
    assert working_seconds_between(hours, at, upcoming) == 0.0
    if upcoming > at:
        assert not is_working(hours, upcoming - US)


@settings(max_examples=40, deadline=None)
@given(calendars(), st.integers(0, 3 * 24 * 60))
def test_working_seconds_match_counting_minutes(
    calendar: tuple[WorkingHours, datetime], shift: int
) -> None:
    """Brute force over two days, minute by minute, with is_working as the oracle."""
    hours, start = calendar
    begin = start.replace(second=0, microsecond=0) + timedelta(minutes=shift)
    span = 2 * 24 * 60
    counted = sum(is_working(hours, begin + timedelta(minutes=m)) for m in range(span))
    end = begin + timedelta(minutes=span)
    assert working_seconds_between(hours, begin, end) == counted * 60.0
    middle = begin + timedelta(minutes=span // 3)
    assert working_seconds_between(hours, begin, middle) + working_seconds_between(
        hours, middle, end
    ) == working_seconds_between(hours, begin, end)
