"""When the answer will come, in words: the greeting's `opens` phrase in both languages."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from channels.greeting import opens_phrase
from routing.calendar import WorkingHours

# Monday 2026-12-07, 20:00 in Moscow (17:00 UTC): after the day's working hours.
NOW = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("week", "holidays", "ru", "en"),
    [
        ({"mon": [["21:00", "22:00"]]}, [], "сегодня с 21:00", "today from 21:00"),
        ({"tue": [["09:00", "18:00"]]}, [], "завтра с 09:00", "tomorrow from 09:00"),
        ({"fri": [["10:00", "18:00"]]}, [], "в пятницу с 10:00", "on Friday from 10:00"),
        ({"wed": [["09:00", "18:00"]]}, [], "в среду с 09:00", "on Wednesday from 09:00"),
        ({"tue": [["09:00", "18:00"]]}, [date(2026, 12, 8)], "15.12.2026 с 09:00", None),
        (
            {"mon": [["09:00", "18:00"]]},
            [date(2026, 12, 14)],
            "21.12.2026 с 09:00",
            "on 21.12.2026 from 09:00",
        ),
    ],
)
def test_the_next_working_time_is_said_in_the_readers_language(
    week: dict[str, list[list[str]]], holidays: list[date], ru: str, en: str | None
) -> None:
    hours = WorkingHours.model_validate(
        {"timezone": "Europe/Moscow", "week": week, "holidays": holidays}
    )
    assert opens_phrase(hours, NOW, "ru") == ru
    if en is not None:
        assert opens_phrase(hours, NOW, "en") == en
