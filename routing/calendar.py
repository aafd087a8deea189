"""Working hours of managers and queues: is someone at work now, and SLA targets in working time.

A ``WorkingHours`` calendar lives in one time zone and says, for each local weekday, which
wall-clock intervals are working time; ``holidays`` are whole local days off and
``extra_workdays`` turn a day (say a Saturday, as Russian production calendars do) into a
workday with its own intervals.

Every datetime going in or out of this module is timezone-aware (naive ones raise
``ValueError``); results are in UTC. Inside, the calendar's zone decides the local date and
the wall-clock time, so an instant is working iff its local wall-clock time falls inside one
of the intervals of its local date. On a DST spring-forward day the skipped wall-clock hour
simply does not exist (an interval 01:00-04:00 holds two real hours); on a fall-back day the
repeated hour counts twice (the same interval holds four).

How it is computed: for wall-clock time (microseconds since 1970-01-01 00:00 local) the
cumulative working time ``F`` has a closed form - whole weeks times the weekly total, plus a
partial week, plus the difference every holiday or extra workday makes (prefix sums over the
sorted exceptional days). Between two UTC-offset changes the wall clock is UTC plus a
constant, so working time over any UTC span is a few evaluations of ``F`` per offset change,
and ``add_working_time`` inverts ``F`` by galloping/binary search over days. Nothing loops
per minute or per working day; only the search for offset changes probes once per day of span.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator, model_validator

__all__ = [
    "WEEKDAYS",
    "Interval",
    "Weekday",
    "WorkingHours",
    "add_working_time",
    "is_working",
    "next_working_moment",
    "working_seconds_between",
]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Interval = tuple[str, str]
"""A wall-clock interval ("HH:MM", "HH:MM"), start included, end excluded; "24:00" may end it."""

_US = 1_000_000
_MINUTE_US = 60 * _US
_DAY_US = 86_400 * _US
_ONE_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# 1970-01-01 was a Thursday; day index 4 (1970-01-05) is the Monday weeks are counted from.
_REF_MONDAY = 4
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

_Spans = tuple[tuple[int, int], ...]  # microseconds since local midnight, start < end, sorted


def _parse_time(value: str, *, is_end: bool) -> int:
    """Minutes since midnight for "HH:MM" ("24:00" only as an end)."""
    if is_end and value == "24:00":
        return 24 * 60
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if match is None:
        allowed = '"HH:MM" from "00:00" to "24:00"' if is_end else '"HH:MM" from "00:00" to "23:59"'
        role = "end" if is_end else "start"
        raise ValueError(f"{role} time {value!r} is not {allowed}")
    return int(match.group(1)) * 60 + int(match.group(2))


def _check_intervals(where: str, intervals: Sequence[Interval]) -> _Spans:
    """Validate one day's intervals; returns them as microsecond spans."""
    spans: list[tuple[int, int]] = []
    for number, (start, end) in enumerate(intervals, start=1):
        label = f"{where}: interval #{number} {start!r}-{end!r}"
        try:
            s = _parse_time(start, is_end=False)
            e = _parse_time(end, is_end=True)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        if s >= e:
            raise ValueError(
                f"{label}: start must be before end (an interval may not cross midnight; "
                'split a night shift into "22:00"-"24:00" and "00:00"-"06:00" of the next day)'
            )
        if spans:
            prev_s, prev_e = spans[-1]
            prev = f"{intervals[number - 2][0]!r}-{intervals[number - 2][1]!r}"
            if s < prev_s:
                raise ValueError(f"{label}: intervals must be sorted, it starts before {prev}")
            if s < prev_e:
                raise ValueError(f"{label}: overlaps the previous interval {prev}")
        spans.append((s, e))
    return tuple((s * _MINUTE_US, e * _MINUTE_US) for s, e in spans)


def _day_index(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def _within(spans: _Spans, offset: int) -> int:
    """Working microseconds in [local midnight, midnight + offset) of a day with ``spans``."""
    total = 0
    for s, e in spans:
        if offset <= s:
            break
        total += min(offset, e) - s
    return total


@dataclass(frozen=True)
class _Calendar:
    """The calendar compiled for arithmetic; all times in integer microseconds."""

    tz: ZoneInfo
    weekly: tuple[_Spans, ...]  # Monday first
    exceptions: Mapping[int, _Spans]  # day index -> spans (a holiday has none)
    exc_days: tuple[int, ...]  # sorted keys of ``exceptions``
    exc_cum: tuple[int, ...]  # exc_cum[i]: sum of (actual - usual) over exc_days[:i]
    week_prefix: tuple[int, ...]  # week_prefix[k]: usual working time of Monday..(k-1)
    week_total: int
    has_any: bool  # any working time at all

    # --- wall-clock arithmetic (microseconds since 1970-01-01 00:00 local) -------------------

    def spans(self, day: int) -> _Spans:
        found = self.exceptions.get(day)
        if found is not None:
            return found
        return self.weekly[(day + 3) % 7]

    def at_day(self, day: int) -> int:
        """Cumulative working time at local midnight starting ``day`` (relative, monotone)."""
        weeks, k = divmod(day - _REF_MONDAY, 7)
        usual = weeks * self.week_total + self.week_prefix[k]
        return usual + self.exc_cum[bisect_left(self.exc_days, day)]

    def cumulative(self, wall: int) -> int:
        """F(wall): cumulative working time at a wall-clock moment."""
        day, offset = divmod(wall, _DAY_US)
        return self.at_day(day) + _within(self.spans(day), offset)

    def first_reaching(self, value: int, from_day: int) -> int | None:
        """Smallest wall moment with F >= ``value``; F at the start of ``from_day`` < value.

        None if the calendar never accumulates that much.
        """
        at_day = self.at_day
        if at_day(from_day + 1) >= value:
            day = from_day
        else:
            low = from_day  # invariant: at_day(low + 1) < value <= at_day(high + 1)
            if self.week_total == 0:
                last = max(self.exc_days[-1] if self.exc_days else from_day, from_day)
                if at_day(last + 1) < value:
                    return None  # no working time after the last exceptional day
                high = last
            else:
                # Jump straight to the estimate by whole weeks, then gallop past holidays.
                missing = value - at_day(from_day + 1)
                step = max(1, 7 * (missing // self.week_total))
                while True:
                    high = low + step
                    if at_day(high + 1) >= value:
                        break
                    low, step = high, step * 2
            while high - low > 1:
                middle = (low + high) // 2
                if at_day(middle + 1) >= value:
                    high = middle
                else:
                    low = middle
            day = high
        remaining = value - at_day(day)
        base = day * _DAY_US
        for s, e in self.spans(day):
            if remaining <= e - s:
                return base + s + remaining
            remaining -= e - s
        raise AssertionError("working time of a day does not add up")  # pragma: no cover

    # --- the zone ---------------------------------------------------------------------------

    def offset(self, t: int) -> int:
        """UTC offset (microseconds) in effect at UTC moment ``t``."""
        delta = _from_us(t).astimezone(self.tz).utcoffset()
        assert delta is not None
        return delta // _ONE_US

    def next_change(self, after: int, until: int, offset: int) -> int | None:
        """First UTC moment in (after, until] whose offset differs from ``offset``, if any.

        Probes once a day (no zone changes its offset twice within a day) and bisects.
        """
        probe = after
        while probe < until:
            nxt = min(probe + _DAY_US, until)
            if self.offset(nxt) != offset:
                low, high = probe, nxt
                while high - low > 1:
                    middle = (low + high) // 2
                    if self.offset(middle) == offset:
                        low = middle
                    else:
                        high = middle
                return high
            probe = nxt
        return None


def _to_us(moment: datetime, name: str) -> int:
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (UTC), got naive {moment}")
    return (moment - _EPOCH) // _ONE_US


def _from_us(t: int) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=t)
    except OverflowError:
        raise ValueError("moment is out of the datetime range") from None


class WorkingHours(BaseModel):
    """Weekly working hours in a time zone, with holidays and extra workdays.

    ``week`` maps a weekday to its intervals, e.g.
    ``{"mon": [["09:00", "13:00"], ["14:00", "18:00"]]}``; a missing weekday is a day off.
    Intervals are "HH:MM"-"HH:MM" (end "24:00" allowed), sorted and not overlapping, and never
    cross midnight: a night shift is "22:00"-"24:00" on one day and "00:00"-"06:00" on the next.
    ``holidays`` are whole local days off; ``extra_workdays`` give a date (usually a weekend
    day) its own intervals, replacing the weekday's. A date may not be both.
    The model is frozen: build a new one to change the hours.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "Europe/Moscow"
    week: dict[Weekday, list[Interval]]
    holidays: list[date] = []
    extra_workdays: dict[date, list[Interval]] = {}

    _calendar: _Calendar = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name)") from None
        return value

    @field_validator("week")
    @classmethod
    def _valid_week(cls, value: dict[Weekday, list[Interval]]) -> dict[Weekday, list[Interval]]:
        for day, intervals in value.items():
            _check_intervals(f"week.{day}", intervals)
        return value

    @field_validator("extra_workdays")
    @classmethod
    def _valid_extra(cls, value: dict[date, list[Interval]]) -> dict[date, list[Interval]]:
        for day, intervals in value.items():
            if not intervals:
                raise ValueError(
                    f"extra_workdays.{day.isoformat()}: no intervals (list days off in holidays)"
                )
            _check_intervals(f"extra_workdays.{day.isoformat()}", intervals)
        return value

    @model_validator(mode="after")
    def _holidays_are_not_workdays(self) -> WorkingHours:
        both = sorted(set(self.holidays) & set(self.extra_workdays))
        if both:
            days = ", ".join(d.isoformat() for d in both)
            raise ValueError(f"dates both in holidays and in extra_workdays: {days}")
        return self

    def model_post_init(self, context: Any, /) -> None:
        weekly = tuple(_check_intervals(d, self.week.get(d, [])) for d in WEEKDAYS)
        totals = [sum(e - s for s, e in spans) for spans in weekly]
        exceptions: dict[int, _Spans] = {_day_index(d): () for d in self.holidays}
        for extra_day, intervals in self.extra_workdays.items():
            exceptions[_day_index(extra_day)] = _check_intervals(extra_day.isoformat(), intervals)
        exc_days = tuple(sorted(exceptions))
        exc_cum = [0]
        for index in exc_days:
            actual = sum(e - s for s, e in exceptions[index])
            exc_cum.append(exc_cum[-1] + actual - totals[(index + 3) % 7])
        prefix = [0]
        for total in totals:
            prefix.append(prefix[-1] + total)
        self._calendar = _Calendar(
            tz=ZoneInfo(self.timezone),
            weekly=weekly,
            exceptions=exceptions,
            exc_days=exc_days,
            exc_cum=tuple(exc_cum),
            week_prefix=tuple(prefix[:7]),
            week_total=prefix[7],
            has_any=prefix[7] > 0 or bool(self.extra_workdays),
        )

    @classmethod
    def always(cls, tz: str = "Europe/Moscow") -> WorkingHours:
        """24/7: the hours of a manager or queue that has none configured."""
        return cls(timezone=tz, week={d: [("00:00", "24:00")] for d in WEEKDAYS})

    @classmethod
    def weekdays_9_to_18(cls, tz: str = "Europe/Moscow") -> WorkingHours:
        """Monday to Friday, 09:00-18:00 in ``tz``."""
        return cls(timezone=tz, week={d: [("09:00", "18:00")] for d in WEEKDAYS[:5]})


_ALWAYS = WorkingHours.always()


def _compiled(hours: WorkingHours | None) -> _Calendar:
    return (hours if hours is not None else _ALWAYS)._calendar


def is_working(hours: WorkingHours | None, at: datetime) -> bool:
    """Whether ``at`` falls in working time (``None`` hours mean 24/7)."""
    cal = _compiled(hours)
    _to_us(at, "at")
    local = at.astimezone(cal.tz)
    since_midnight = (
        local.hour * 3600 + local.minute * 60 + local.second
    ) * _US + local.microsecond
    return any(s <= since_midnight < e for s, e in cal.spans(_day_index(local.date())))


def next_working_moment(hours: WorkingHours | None, at: datetime) -> datetime:
    """The first working moment at or after ``at`` (``at`` itself if it is working), in UTC.

    Raises ValueError if no working time follows ``at``.
    """
    cal = _compiled(hours)
    t = _to_us(at, "at")
    if not cal.has_any:
        raise ValueError("the working hours have no working time at all")
    while True:
        offset = cal.offset(t)
        wall = t + offset
        end = cal.first_reaching(cal.cumulative(wall) + 1, wall // _DAY_US)
        if end is None:
            raise ValueError(f"no working time after {at.isoformat()}")
        candidate = end - 1 - offset
        change = cal.next_change(t, candidate, offset)
        if change is None:
            return _from_us(candidate)
        t = change  # the wall clock jumps here; look again from the new offset


def working_seconds_between(hours: WorkingHours | None, start: datetime, end: datetime) -> float:
    """Seconds of working time in [start, end); 0 if ``end <= start``."""
    cal = _compiled(hours)
    t = _to_us(start, "start")
    stop = _to_us(end, "end")
    total = 0
    while t < stop:
        offset = cal.offset(t)
        change = cal.next_change(t, stop, offset)
        segment_end = stop if change is None else change
        total += cal.cumulative(segment_end + offset) - cal.cumulative(t + offset)
        t = segment_end
    return total / _US


def add_working_time(hours: WorkingHours | None, start: datetime, seconds: float) -> datetime:
    """The UTC moment when ``seconds`` of working time have passed since ``start``.

    Counting begins at the next working moment if ``start`` is outside working hours; when
    the time runs out exactly at the end of an interval, that end is the answer. With
    ``seconds == 0`` the answer is ``next_working_moment(start)``. Precision: microseconds.
    Raises ValueError for negative seconds or when the calendar has not enough working time.
    """
    cal = _compiled(hours)
    t = _to_us(start, "start")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    remaining = round(seconds * _US)
    if remaining == 0:
        return next_working_moment(hours, start) if cal.has_any else start
    if not cal.has_any:
        raise ValueError("the working hours have no working time at all")
    while True:
        offset = cal.offset(t)
        wall = t + offset
        reached = cal.cumulative(wall)
        end = cal.first_reaching(reached + remaining, wall // _DAY_US)
        if end is None:
            raise ValueError(
                f"the working hours have fewer than {seconds} s of working time "
                f"after {start.isoformat()}"
            )
        candidate = end - offset
        change = cal.next_change(t, candidate - 1, offset)
        if change is None:
            return _from_us(candidate)
        remaining -= cal.cumulative(change + offset) - reached  # worked in [t, change)
        t = change
